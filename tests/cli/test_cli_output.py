"""What a person reads: the compare table on an 80-column screen, whole names and full numbers, no dicts."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.report_check import check_report
from memsched.cli import main
from memsched.record import RunRecord
from memsched.report.tables import why_rows

#: Compact counts (``1.161M``): the multiplier of each suffix.
_SUFFIX = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _close(cell: str, value: float) -> bool:
    """Whether ``cell`` (``44.6``, ``1.161M``, ``44289``) is ``value`` shown to the digits it has."""
    m = re.fullmatch(r"(-?\d+)(?:\.(\d+))?([kMGT]?)", cell)
    assert m is not None, f"not a number: {cell!r}"
    scale = _SUFFIX.get(m.group(3), 1.0)
    decimals = len(m.group(2) or "")
    shown = float(f"{m.group(1)}.{m.group(2) or 0}") * scale
    return abs(shown - value) <= 0.5 * 10.0**-decimals * scale * (1 + 1e-9)


@pytest.fixture(scope="module")
def compare_numa02(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, object]], Path]:
    """``COLUMNS=80 memsched compare --workloads numa02`` (text and report) and the --json of the same run."""
    report = tmp_path_factory.mktemp("report") / "compare.html"
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "memsched", "compare", "--workloads", "numa02", "--jobs", "2", "--report", str(report)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stderr == ""  # no matplotlib (or any other) warning while the report is drawn
    text = done.stdout
    capture = subprocess.run(
        [sys.executable, "-m", "memsched", "compare", "--workloads", "numa02", "--jobs", "2", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return text, json.loads(capture), report


@pytest.mark.slow
def test_compare_on_80_columns(compare_numa02: tuple[str, list[dict[str, object]], Path]) -> None:
    """COLUMNS=80 compare: every line fits, every policy and workload name is whole, every number in full."""
    text, records, _ = compare_numa02
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in text and "{" not in text
    assert "numa02: best " in lines[0]
    rows = {}
    for line in lines:
        cells = line.split()
        if len(cells) == 7 and line.startswith("  "):
            rows[cells[0]] = cells[1:]
    assert "numa02" in [line.strip() for line in lines]
    hard = next(r for r in records if r["label"] == "HARD_BIND")
    assert {str(r["label"]) for r in records} == set(rows)
    for r in records:
        elapsed, system, faults, local, migrated, ratio = rows[str(r["label"])]
        vmstat = r["vmstat"]
        assert isinstance(vmstat, dict)
        assert _close(elapsed, float(r["elapsed_s"]))  # type: ignore[arg-type]
        assert _close(system, float(r["system_s"]))  # type: ignore[arg-type]
        assert _close(faults, vmstat["numa_hint_faults"])
        assert _close(local, float(r["local_fraction"]))  # type: ignore[arg-type]
        assert _close(migrated, vmstat["numa_pages_migrated"])
        assert _close(ratio, float(r["elapsed_s"]) / float(hard["elapsed_s"]))  # type: ignore[arg-type]
    best = min((r for r in records if r["role"] == "policy"), key=lambda r: float(r["elapsed_s"]))  # type: ignore[arg-type]
    assert lines[0].startswith(f"numa02: best {best['label']}, ")


def test_run_text_has_no_dicts(capsys: pytest.CaptureFixture[str]) -> None:
    """memsched run prints task groups and preferred nodes as words and ranges, not Python dicts."""
    rc = main(["run", "numa02", "--topology", "sandybridge-2n32", "--policy", "mainline"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "preferred_nodes" in out and "node 0: tasks " in out
    assert not re.search(r"[{}\[\]]|'\d+'", out)


def test_rt_sim_kvm_text_has_no_json(capsys: pytest.CaptureFixture[str]) -> None:
    """rt sim kvm prints its guest figures as indented words, not a JSON blob."""
    rc = main(["rt", "sim", "kvm"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "kvm: " in out and "latency_us: " in out
    assert not re.search(r'[{}]|"\w+":', out)


def _record(doc: dict[str, object]) -> RunRecord:
    figures = dict(doc)
    base, role, model = figures.pop("base"), figures.pop("role"), figures.pop("model_version")
    version = figures.pop("policy_version", None)
    return RunRecord(
        "numa", str(figures["workload"]), str(figures["policy"]), str(figures["label"]), int(figures["seed"]),  # type: ignore[call-overload]
        figures, role, str(base), version, str(model),  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_compare_report_at_a_glance(compare_numa02: tuple[str, list[dict[str, object]], Path]) -> None:
    """The report opens with the summary (winner, heatmap), has no empty section, and its charts are SVG."""
    _, records, report_path = compare_numa02
    report = check_report(report_path.read_text())
    assert report.problems == []
    assert report.headings() == ["Summary", "Results", "Why", "Elapsed time", "Locality and placement over time"]
    summary = report.section("Summary")
    assert summary.tables == 1 and "numa02: best " in summary.text.replace("\n", " ")
    assert "elapsed per workload and run" in report.charts
    assert len(report.charts) == 1 + len(records)  # the elapsed chart and one timeline per run


@pytest.mark.slow
def test_why_notes_are_the_same_in_terminal_and_report(
    compare_numa02: tuple[str, list[dict[str, object]], Path],
) -> None:
    """Every "why" note of the run is in the terminal output and, word for word, in the HTML report."""
    text, records, report_path = compare_numa02
    notes = why_rows([_record(r) for r in records])
    assert notes, "numa02 under every policy has runs that trail HARD_BIND"
    page = report_path.read_text()
    words = " ".join(text.split())
    for _, label, note in notes:
        assert html.escape(note) in page
        assert f"{label} {note}" in words


def test_version_and_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    """memsched --version prints the version; -h is --help, for the program and its commands."""
    from memsched import __version__

    assert main(["--version"]) == 0  # (the suite runs on the pure build: test_compiled.py asserts it)
    from memsched.sim.fluid import jit

    engine = jit.status()
    assert capsys.readouterr().out == f"memsched {__version__} (exact scheduler: pure Python; fluid engine: {engine})\n"
    assert main(["-h"]) == 0
    top = capsys.readouterr().out
    assert main(["compare", "-h"]) == 0
    assert top.startswith("Usage: memsched") and "Usage: memsched compare" in capsys.readouterr().out


def test_help_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    """Metavars name what to type; command summaries are whole; rt admit --flags lists every flag."""
    from memsched.uapi.sched import SchedFlag

    assert main(["compare", "-h"]) == 0
    out = capsys.readouterr().out
    assert "--policies POLICY[,POLICY…]|all" in out and "--workloads WORKLOAD[,WORKLOAD…]" in out
    assert "--jobs N" in out and "--report FILE.html" in out and "<" not in out
    assert main(["-h"]) == 0
    commands = " ".join(capsys.readouterr().out.split("Commands:")[1].split())
    assert "Simulate one workload under one policy and report times and /proc/vmstat counters." in commands
    assert "..." not in commands
    assert main(["rt", "admit", "-h"]) == 0
    words = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # click wraps after hyphens
    for flag in SchedFlag:
        assert str(flag.name).lower().replace("_", "-") in words


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["pressure", "act"], ["--protect PID|NAME"]),
        (["pressure", "dbus"], ["--min-interval DURATION", "--reconnect-timeout DURATION"]),
        (["results", "show"], ["--sweep NAME|ID"]),
        (["results", "export"], ["--sweep NAME|ID"]),
        (["rt", "sim"], ["--cpus N"]),  # a count here; rt noise --cpus is a CPU list
        (["rt", "noise"], ["--cpus CPUS"]),
        (["pressure", "serve"], ["--max-clients-per-uid N", "(default: 1/8 of --max-clients, at least 1)"]),
    ],
)
def test_help_metavars_say_what_to_type(argv: list[str], shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Options show the form of their value (DURATION, PID|NAME, N), not their own name in capitals."""
    assert main([*argv, "-h"]) == 0
    words = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # click wraps after hyphens
    for text in shown:
        assert text in words, text


def test_list_scenarios_names_each_with_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    """list scenarios: every built-in scenario of rt sim, pressure sim and pressure act-sim, with the command that
    runs it and its description."""
    from memsched.workloads import rt
    from memsched.workloads.act import list_act_scenarios
    from memsched.workloads.pressure.scenario import list_scenarios

    assert main(["list", "scenarios", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_command: dict[str, list[str]] = {}
    for r in rows:
        assert r["description"]
        by_command.setdefault(r["command"], []).append(r["id"])
    assert by_command == {
        "rt sim": rt.names(), "pressure sim": list_scenarios(), "pressure act-sim": list_act_scenarios(),
    }  # fmt: skip
    assert main(["list", "scenarios", "--policy", "mainline"]) == 2


def test_list_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """list settings shows each --set key with type, default, range, unit and source; JSON has the same rows."""
    assert main(["list", "settings", "--policy", "mainline", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    scan = next(r for r in rows if r["key"] == "scan_delay_ms")
    assert scan == {
        "owner": "policy mainline", "key": "scan_delay_ms", "type": "int", "default": 1000,
        "range": "0..2147483647", "min": 0, "max": 2147483647, "choices": None, "unit": "ms",
        "source": "numa_balancing_scan_delay_ms",
    }  # fmt: skip
    assert main(["list", "settings", "--scenario", "kvm"]) == 0
    out = capsys.readouterr().out
    assert "rt scenario kvm" in out and "the rt scheduler (rt sim)" in out and "eevdf|cfs" in out
    assert main(["list", "policies", "--policy", "mainline"]) == 2
    assert main(["list", "settings", "--scenario", "nope"]) == 2
    assert "'--scenario' must be one of" in capsys.readouterr().err


def test_numa_top_one_shot_says_nodes_and_balancing(capsys: pytest.CaptureFixture[str]) -> None:
    """numa top once: '4 nodes, balancing on' in words, and no rate column without a previous snapshot."""
    from helpers.live_fixtures import FIXTURES

    root = FIXTURES / "numa-4node"
    assert main(["numa", "top", "--proc-root", str(root / "proc"), "--sys-root", str(root / "sys")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 nodes, balancing on")
    assert "per s" not in out and "resident" in out


def test_numa_balance_dry_run_is_one_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run without --count takes one sample, prints the actions it would take, and ends."""
    from helpers.live_fixtures import FIXTURES

    root = FIXTURES / "numa-4node"
    argv = ["numa", "balance", "--policy", "mainline", "--dry-run"]
    assert main([*argv, "--proc-root", str(root / "proc"), "--sys-root", str(root / "sys")]) == 0
    out, err = capsys.readouterr()
    assert "1 sample(s)" in err
    lines = out.splitlines()
    assert lines[0].startswith("[1] ") and all(line.startswith("[1] ") for line in lines)
    assert any("dry-run: would move" in line for line in lines)
