"""The memsched command line: good paths, JSON contract, determinism, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.report_check import check_report
from memsched.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_run_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    """run --json prints one JSON document with the contract's fields and /proc/vmstat names."""
    rc, out, err = run_cli(
        capsys, "run", "numa02", "--topology", "opteron-4n32", "--policy", "none", "--seed", "3", "--json"
    )
    assert rc == 0 and err == ""
    rec = json.loads(out)
    for key in ("workload", "policy", "topology", "seed", "elapsed_s", "user_s", "system_s", "vmstat"):
        assert key in rec
    assert rec["workload"] == "numa02" and rec["topology"] == "opteron-4n32" and rec["seed"] == 3
    for counter in (
        "numa_pte_updates",
        "numa_hint_faults",
        "numa_hint_faults_local",
        "numa_pages_migrated",
        "pgmigrate_success",
    ):
        assert counter in rec["vmstat"]
    assert 40 < rec["elapsed_s"] < 80


def test_huge_scan_size_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """A scan size at or above MAX_SCAN_WINDOW (2560 MB) is a valid sysctl, not a ZeroDivisionError."""
    rc, out, err = run_cli(
        capsys, "run", "numa02_SMT", "-t", "sandybridge-2n32", "--policy", "mainline", "--set", "scan_size_mb=4096",
        "--json",
    )
    assert rc == 0 and err == ""
    assert json.loads(out)["vmstat"]["numa_pte_updates"] > 0


def test_same_seed_byte_identical_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The same seed gives byte-identical --json output."""
    args = ("run", "numa01_THREAD_ALLOC_HARD_BIND", "--topology", "opteron-4n32", "--seed", "5", "--json")
    _, a, _ = run_cli(capsys, *args)
    _, b, _ = run_cli(capsys, *args)
    assert a == b


def test_different_seeds_may_differ(capsys: pytest.CaptureFixture[str]) -> None:
    """numa01's first-touch node comes from the seed (the wall clock's parity in the original)."""
    nodes = set()
    for seed in range(6):
        _, out, _ = run_cli(capsys, "run", "numa01", "--topology", "opteron-4n32", "--seed", str(seed), "--json")
        nodes.add(json.loads(out)["metrics"]["nodemask_global"])
    assert nodes == {0, 1}


def test_run_table_on_terminal_output(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json, run prints a table with the elapsed time."""
    rc, out, _ = run_cli(capsys, "run", "numa02_SMT", "--topology", "laptop-1n8")
    assert rc == 0 and "elapsed" in out


def test_list_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """list shows the presets, the twelve autonuma-benchmark workloads and the policies."""
    rc, out, _ = run_cli(capsys, "list", "topologies", "--json")
    assert rc == 0 and {r["id"] for r in json.loads(out)} >= {"westmere-ex-4n48", "opteron-4n32", "x86-8n64"}
    _, out, _ = run_cli(capsys, "list", "workloads", "--json")
    ids = {r["id"] for r in json.loads(out)}
    assert {"numa01", "numa02_SMT_INVERSE_BIND", "numa01_THREAD_ALLOC_HARD_BIND"} <= ids
    _, out, _ = run_cli(capsys, "list", "policies", "--json")
    assert "none" in {r["id"] for r in json.loads(out)}


def test_list_without_an_argument_lists_every_catalogue_but_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """memsched list alone: the topologies, workloads, policies and scenarios, each as `list WHAT` prints it."""
    rc, out, _ = run_cli(capsys, "list", "--json")
    doc = json.loads(out)
    assert rc == 0 and list(doc) == ["policies", "scenarios", "topologies", "workloads"]  # (emit_json sorts keys)
    for kind, rows in doc.items():
        assert rows == json.loads(run_cli(capsys, "list", kind, "--json")[1])
    rc, out, _ = run_cli(capsys, "list")
    tables = [run_cli(capsys, "list", kind)[1] for kind in ("topologies", "workloads", "policies", "scenarios")]
    assert rc == 0 and out == "\n".join(tables)
    for args in (["--policy", "moron"], ["topologies", "--policy", "moron"]):  # (the value is fine: settings is not)
        rc, _, err = run_cli(capsys, "list", *args)
        assert rc == 2 and err == (
            "memsched: error: '--policy' selects --set keys: it goes with 'memsched list settings' "
            "(memsched list settings --policy moron) (got 'moron')\n"
        )


def test_compare_small_with_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """compare runs each workload with its HARD_BIND and INVERSE_BIND references and writes an HTML report."""
    report = tmp_path / "r.html"
    rc, out, _ = run_cli(
        capsys,
        "compare",
        "--topology",
        "opteron-4n32",
        "--workloads",
        "numa02",
        "--jobs",
        "1",
        "--json",
        "--report",
        str(report),
    )
    assert rc == 0
    recs = json.loads(out)
    assert [r["label"] for r in recs][-2:] == ["HARD_BIND", "INVERSE_BIND"]
    assert [r["role"] for r in recs][-3:] == ["policy", "reference", "reference"]
    assert all(r["base"] == "numa02" for r in recs)
    checked = check_report(report.read_text())
    assert checked.problems == [] and checked.headings()[0] == "Summary" and checked.charts


def test_compare_seeds_median_min_max(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """compare --seeds N runs every cell N times (seeds 5, 6) and reports median, min and max in the table, the
    JSON summary and the report."""
    args = ("compare", "-t", "sandybridge-2n32", "-w", "numa02", "--policies", "none,mainline", "-j", "1")
    rc, out, _ = run_cli(capsys, *args, "--seed", "5", "--seeds", "2", "--json", "--report", str(tmp_path / "r.html"))
    assert rc == 0
    doc = json.loads(out)
    assert sorted({r["seed"] for r in doc["runs"]}) == [5, 6]
    assert len(doc["runs"]) == 2 * 4  # none, mainline, HARD_BIND, INVERSE_BIND per seed
    cell = next(c for c in doc["summary"] if c["label"] == "mainline")
    assert cell["seeds"] == [5, 6]
    el = [r["elapsed_s"] for r in doc["runs"] if r["label"] == "mainline"]
    assert cell["elapsed_s"] == {"median": sum(el) / 2, "min": min(el), "max": max(el)}
    hard = next(c for c in doc["summary"] if c["label"] == "HARD_BIND")
    assert hard["vs_HARD_BIND"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    page = (tmp_path / "r.html").read_text()
    assert "seeds 5–6, median [min–max]" in page
    assert check_report(page).problems == []
    rc, out, _ = run_cli(capsys, *args, "--seed", "5", "--seeds", "2")
    flat = "".join(out.split())
    assert rc == 0 and "seeds5–6,median[min–max]" in flat
    mainline = [r["elapsed_s"] for r in doc["runs"] if r["label"] == "mainline"]
    assert f"{cell['elapsed_s']['median']:.1f}[{min(mainline):.1f}–{max(mainline):.1f}]" in flat


def test_compare_several_topologies_in_one_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """compare -t a,b runs both comparisons in one pool: each topology's records, in the order given, are those
    of its own compare; the table, the JSON summary and the report have a part per topology."""
    common = ("-w", "numa02", "--policies", "none,mainline", "-j", "2")
    report = tmp_path / "r.html"
    both_args = ("compare", "-t", "opteron-4n32,sandybridge-2n32", *common)
    rc, out, _ = run_cli(capsys, *both_args, "--json", "--report", str(report))
    assert rc == 0
    both = json.loads(out)
    alone = []
    for topo in ("opteron-4n32", "sandybridge-2n32"):
        rc, out, _ = run_cli(capsys, "compare", "-t", topo, *common, "--json")
        assert rc == 0
        alone += json.loads(out)
    assert [r["topology"] for r in both] == ["opteron-4n32"] * 4 + ["sandybridge-2n32"] * 4
    assert both == alone
    checked = check_report(report.read_text())
    assert checked.problems == [] and checked.charts
    heads = checked.headings()
    assert heads[0] == "opteron-4n32: Summary" and "sandybridge-2n32: Summary" in heads
    assert heads.index("sandybridge-2n32: Summary") > heads.index("opteron-4n32: Results")
    rc, out, _ = run_cli(capsys, *both_args)
    assert rc == 0
    first, second = out.index("opteron-4n32\n"), out.index("sandybridge-2n32\n")
    assert first == 0 and out.index("memsched compare on opteron-4n32") < second
    assert out.index("memsched compare on sandybridge-2n32") > second
    rc, out, _ = run_cli(capsys, *both_args, "--seeds", "2", "--json")
    assert rc == 0
    summary = json.loads(out)["summary"]
    labels = ("none", "mainline", "HARD_BIND", "INVERSE_BIND")
    assert [(c["topology"], c["label"]) for c in summary] == [
        (t, label) for t in ("opteron-4n32", "sandybridge-2n32") for label in labels
    ]


def test_compare_takes_a_topology_file_whose_name_has_a_comma(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A TOML file whose name holds a comma (or a space) is one topology, not a list; a preset's name is stripped of
    spaces, alone as in a list, as ``--workloads`` are."""
    from importlib import resources

    path = tmp_path / "a, b.toml"
    path.write_bytes(resources.files("memsched.data").joinpath("topologies", "opteron-4n32.toml").read_bytes())
    records = []
    for topology in (str(path), " opteron-4n32 "):
        rc, out, _ = run_cli(capsys, "compare", "-t", topology, "-w", "numa02", "--policies", "none", "--json")
        assert rc == 0
        records.append(json.loads(out))
    assert len(records[0]) == 3 and records[0] == records[1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "numa99"), "'workload' must be one of"),
        (("run", "numa02", "--topology", "cray-1"), "'topology' must be one of"),
        (("run", "numa02", "--policy", "greedy"), "'policy' must be one of"),
        (("run", "numa02", "--set", "novalue"), "'--set' must be key=value"),
        (("run", "numa02", "--set", "warp=9"), "'warp' is not a setting"),
        (("run", "numa02", "--set", "mof=maybe"), "'mof' must be true or false"),
        (("run", "numa02", "--seed", "-4"), "'--seed' must be in 0..4294967295"),
        (("run", "numa02", "--frobnicate"), "No such option"),
        (("list", "colours"), "'what' must be one of"),
        (("compare", "--policies", "none,greedy"), "'policy' must be one of"),
        (("compare", "--workloads", "numa01,numa99"), "'workload' must be one of"),
        (("compare", "--jobs", "0"), "'--jobs'"),
        (("compare", "--seeds", "0"), "'--seeds'"),
        (("compare", "-t", "opteron-4n32,cray-1"), "'topology' must be one of"),
        (("compare", "-t", "opteron-4n32,opteron-4n32"), "'--topology' names 'opteron-4n32' twice"),
        (("compare", "-t", ",,"), "'--topology' must be a preset name, a TOML file or a comma-separated list"),
        (("compare", "-t", " "), "'--topology' must be a preset name, a TOML file or a comma-separated list"),
    ],
)
def test_bad_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str) -> None:
    """Bad input: exit 2, nothing on stdout, one line on stderr naming the value and what is allowed."""
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert needle in err


def test_bad_report_path_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A report path in a missing folder fails before any simulation, leaving nothing behind."""
    target = tmp_path / "missing" / "r.html"
    rc, _out, err = run_cli(capsys, "compare", "--workloads", "numa02", "--report", str(target))
    assert rc == 2 and "'--report'" in err
    assert not target.exists() and not target.parent.exists()


def test_trace_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--trace writes a Chrome trace with counter events."""
    trace = tmp_path / "t.json"
    rc, _, _ = run_cli(capsys, "run", "numa02", "--topology", "sandybridge-2n32", "--trace", str(trace))
    assert rc == 0
    doc = json.loads(trace.read_text())
    assert any(e["ph"] == "C" for e in doc["traceEvents"])


def test_python_dash_m_entry_point() -> None:
    """python -m memsched works and exits 2 on a bad argument."""
    ok = subprocess.run(
        [sys.executable, "-m", "memsched", "list", "policies"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and "none" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "memsched", "run", "nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
