"""Start-up: ``memsched list`` and ``memsched rt admit`` answer without typer, numpy or the simulators, and
their fast path (memsched.cli.fast) prints exactly what the typer command line prints.

benchmarks/startup.py measures the time; these tests check what is imported and what is printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memsched.cli import catalogue, fast, main

SRC = Path(__file__).resolve().parents[3] / "src"
HELPERS = Path(__file__).resolve().parents[2]

#: Every form of ``memsched list`` the fast path runs (each compared with the typer path below).
LIST_FORMS = [
    ["list"],
    ["list", "--json"],
    ["--debug", "list", "topologies"],
    ["list", "topologies"],
    ["list", "topologies", "--json"],
    ["list", "--json", "workloads"],
    ["list", "workloads"],
    ["list", "policies"],
    ["list", "policies", "--json"],
    ["list", "scenarios"],
    ["list", "scenarios", "--json"],
    ["list", "settings"],
    ["list", "settings", "--json"],
    ["list", "settings", "--policy", "mainline"],
    ["list", "settings", "-p", "mainline-v1"],
    ["list", "settings", "--policy=numad", "--json"],
    ["list", "settings", "-pmoron"],
    ["list", "-w", "numa02_SMT", "settings", "--json"],
    ["list", "settings", "--workload", "numa01"],
    ["list", "settings", "--scenario", "hackbench"],
    ["list", "settings", "--scenario=dl-periodic", "--json"],
    ["list", "settings", "--policy", "mainline", "--workload", "numa01", "--scenario", "grub"],
    ["list", "settings", "--policy", "greedy"],
    ["list", "settings", "--policy", "mainline-v9"],
    ["list", "settings", "--policy", ""],
    ["list", "settings", "--workload", "numa03"],
    ["list", "settings", "--scenario", "nope"],
    ["list", "foo"],
    ["list", ""],
    ["list", "TOPOLOGIES"],
    ["list", "topologies", "--policy", "mainline"],
    ["list", "workloads", "-w", "numa01", "--json"],
]

#: ``memsched --version`` forms the fast path runs.
VERSION_FORMS = [["--version"], ["--debug", "--version"]]

#: Forms the fast path hands to typer (help, usage errors click words itself); compared all the same.
TYPER_FORMS = [
    ["--version", "--debug"],
    ["--version", "list"],
    ["list", "--version"],
    ["list", "-h"],
    ["list", "--help"],
    ["list", "topologies", "extra"],
    ["list", "--bogus", "topologies"],
    ["list", "topologies", "--json", "--json"],
    ["list", "--", "topologies"],
    ["list", "settings", "--policy"],
    ["list", "settings", "--policy", "mainline", "--policy", "numad"],
    ["list", "settings", "--policy", "-x"],
    ["list", "topologies", "--json=1"],
    ["--debug", "--debug", "list", "topologies"],
    ["rt", "admit", "-h"],
    ["rt", "admit"],
    ["rt", "admit", "--runtime", "1ms"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "extra"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--bogus"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "abc"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "-1"],
]

#: ``memsched rt admit`` forms the fast path runs: admitted, refused, bad values, another task's pid.
ADMIT_FORMS = [
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--period", "20ms", "--json"],
    ["rt", "admit", "--json", "--runtime=2ms", "--deadline=10ms", "--period=10ms"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--flags", "reclaim,dl-overrun"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "1"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "007", "--json"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "4194303"],
    ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "4194305"],
    ["rt", "admit", "--runtime", "2", "--deadline", "10ms"],
    ["rt", "admit", "--runtime", "2ms", "--deadline", "10 parsecs"],
    ["rt", "admit", "--runtime", "2ms", "--deadline", "10ms", "--flags", "bogus"],
    ["rt", "admit", "--runtime", "20ms", "--deadline", "10ms"],
    ["rt", "admit", "--runtime", "1.9s", "--deadline", "2s"],
    ["rt", "admit", "--runtime", "10us", "--deadline", "50us"],
    ["--debug", "rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--period", "1h"],
]


def _outcome(capsys: pytest.CaptureFixture[str], run: object, argv: list[str]) -> tuple[int | None, str, str]:
    rc = run(argv)  # type: ignore[operator]
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv", LIST_FORMS + ADMIT_FORMS + VERSION_FORMS, ids=" ".join)
def test_the_fast_path_prints_what_typer_prints(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """Same stdout, stderr and exit status through memsched.cli.fast as through the typer command line."""
    assert fast.parse(argv) is not None, "the fast path should run this form"
    fast_rc, fast_out, fast_err = _outcome(capsys, fast.run, argv)
    rc, out, err = _outcome(capsys, main, argv)
    assert (fast_rc, fast_out, fast_err) == (rc, out, err)
    assert out or err


@pytest.mark.parametrize("argv", TYPER_FORMS, ids=" ".join)
def test_forms_the_fast_path_leaves_to_typer(argv: list[str]) -> None:
    """Help, unknown or repeated options, missing values, extra arguments: click's own words, so typer's."""
    assert fast.parse(argv) is None


def _run(argv: list[str], *, typer_path: bool = False, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    entry = "from memsched.cli import main; sys.exit(main())"
    if not typer_path:
        entry = "from memsched.__main__ import console; console()"
    code = f"import sys; sys.argv[0] = 'memsched'; {entry}"
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "argv",
    [["list", "topologies"], ["list", "settings", "--policy", "mainline"], ["list"],
     ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms"], ["--version"]],
    ids=" ".join,
)  # fmt: skip
def test_the_console_script_prints_what_typer_prints(argv: list[str]) -> None:
    """End to end, in a fresh process (the console script's own entry), also at 100 columns ($COLUMNS)."""
    for env in ({}, {"COLUMNS": "100"}):
        assert _run(argv, env=env) == _run(argv, typer_path=True, env=env)


def _imported(argv: list[str]) -> set[str]:
    code = "import sys; sys.argv[0] = 'memsched'; from memsched.__main__ import run; run(); print(sorted(sys.modules))"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}  # (plain output)
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    names: list[str] = json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))
    return set(names)


@pytest.mark.parametrize(
    "argv",
    [["list", "topologies"], ["list", "workloads", "--json"], ["list", "policies"], ["list", "settings"],
     ["list", "settings", "--scenario", "hackbench", "--json"],
     ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms"],
     ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--json"]],
    ids=" ".join,
)  # fmt: skip
def test_list_and_admit_import_neither_numpy_nor_the_simulators(argv: list[str]) -> None:
    """Modules loaded by the end of the command: no numpy, no memsched.sim, no workloads, no typer, no pydantic;
    for `list` off a terminal no rich either (report/plain.py), for `rt admit` not the cgroup readers (only the
    cgroup probes use them) nor ctypes.util."""
    loaded = _imported(argv)
    heavy = {"numpy", "typer", "pydantic", "memsched.sim", "memsched.workloads", "memsched.policies.numa.mainline"}
    heavy |= {"rich"} if argv[0] == "list" else {"memsched.live.cgroups", "ctypes.util"}
    assert "memsched.cli.fast" in loaded
    assert not {m for m in loaded if m in heavy or m.split(".")[0] in heavy or m.startswith("memsched.sim.")}


def test_a_numa_run_imports_neither_the_realtime_nor_the_pressure_simulator() -> None:
    """`memsched run` of a NUMA workload imports its family's runner only (``runner.FAMILIES``), and the pressure
    runner only for `memsched pressure sim`."""
    loaded = _imported(["run", "numa02", "-t", "laptop-1n8", "--json"])
    assert "memsched.workloads.numa" in loaded
    assert not {m for m in loaded if m.startswith(("memsched.workloads.rt", "memsched.workloads.pressure"))}
    assert not {m for m in loaded if m.startswith(("memsched.sim.sched.machine", "memsched.pressure"))}


def test_version_imports_neither_numpy_nor_typer_nor_numba() -> None:
    """`memsched --version` says which engine builds are installed without importing them (or typer, rich)."""
    loaded = _imported(["--version"])
    heavy = {"numpy", "numba", "typer", "pydantic", "rich", "memsched.sim.sched.core", "memsched.sim.fluid.machine"}
    assert "memsched.cli.fast" in loaded
    assert not {m for m in loaded if m in heavy or m.split(".")[0] in heavy}


def test_the_catalogue_is_what_the_registries_give() -> None:
    """data/catalogue.json is current: python -m memsched.cli.catalogue --write regenerates it."""
    assert catalogue.PATH.read_text(encoding="utf-8") == catalogue.dump(catalogue.build()), (
        "the registries changed: run python -m memsched.cli.catalogue --write"
    )


def test_copied_constants_agree() -> None:
    """The constants the light modules copy to avoid heavy imports are the originals' values."""
    from memsched.cli import rt_live
    from memsched.live import noise
    from memsched.policies.act import registry as act_registry
    from memsched.policies.numa import registry

    assert catalogue.PLUGIN_GROUPS == (registry.ENTRY_POINT_GROUP, act_registry.ENTRY_POINT_GROUP)
    assert rt_live.DEFAULT_THRESHOLD_NS == noise.DEFAULT_THRESHOLD_NS


def _plugin_dist(folder: Path, group: str) -> Path:
    dist = folder / "memsched_test_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memsched-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\ntest-ep-greedy = helpers.numa_plugins:Greedy\n")
    return folder


def test_installed_plugins_turn_the_catalogue_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution declaring a memsched.numa_policies entry point (or an unreadable zip) disables it."""
    assert not catalogue.plugins_installed([str(_plugin_dist(tmp_path / "other", "console_scripts"))])
    plugged = str(_plugin_dist(tmp_path / "plugged", "memsched.numa_policies"))
    assert catalogue.plugins_installed([str(_plugin_dist(tmp_path / "act", "memsched.act_policies"))])
    assert catalogue.plugins_installed([str(tmp_path / "missing"), plugged])
    (tmp_path / "some.zip").write_bytes(b"")
    assert catalogue.plugins_installed([str(tmp_path / "some.zip")])
    monkeypatch.setattr(sys, "path", [*sys.path, plugged])
    assert catalogue.load() is None and fast.parse(["list", "policies"]) is None
    assert fast.parse(["rt", "admit", "--runtime", "1ms", "--deadline", "10ms"]) is not None


def test_a_plugin_is_listed_by_the_console_script(tmp_path: Path) -> None:
    """With a plug-in installed, `memsched list policies` lists it (the registry answers, not the catalogue)."""
    site = _plugin_dist(tmp_path, "memsched.numa_policies")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(HELPERS), str(SRC)])}
    rc, out, err = _run(["list", "policies", "--json"], env=env)
    assert rc == 0, err
    assert "test-ep-greedy" in [p["id"] for p in json.loads(out)]
    assert (rc, out, err) == _run(["list", "policies", "--json"], typer_path=True, env=env)


def test_a_catalogue_of_another_format_is_not_used(tmp_path: Path) -> None:
    """A missing file, bad JSON or another format: None (memsched list takes the ordinary path)."""
    assert catalogue.load(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert catalogue.load(tmp_path / "bad.json") is None
    (tmp_path / "old.json").write_text(json.dumps({"format": catalogue.FORMAT + 1}))
    assert catalogue.load(tmp_path / "old.json") is None
    assert catalogue.load() is not None
