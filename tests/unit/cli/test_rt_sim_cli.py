"""``memsched rt sim``: JSON contract, trace file, compare-preempt, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsched.cli import main


def test_json_is_one_document_with_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints exactly one sorted JSON document with per-task response times and misses."""
    assert (
        main(
            [
                "rt",
                "sim",
                "dl-periodic",
                "--json",
                "--set",
                "duration_ms=200",
                "--set",
                "tasks=6",
                "--set",
                "utilisation=2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["taskset"] == "dl-periodic" and len(doc["tasks"]) == 6
    for key in ("context_switches", "migrations", "cpu_utilisation", "deadline_misses", "events"):
        assert key in doc
    assert all("response_us" in t for t in doc["tasks"])


def test_trace_is_chrome_trace_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--trace writes a Trace Event Format file with one complete event per run slice."""
    f = tmp_path / "t.json"
    assert main(["rt", "sim", "grub", "--trace", str(f), "--json"]) == 0
    capsys.readouterr()
    doc = json.loads(f.read_text())
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in slices] == ["T1", "T2"]
    assert slices[1]["ts"] == 2000 and slices[1]["dur"] == 6000


def test_compare_preempt_reports_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    """--compare-preempt runs each model: lazy switches less and moves more messages than full, while the RT
    task's cyclictest latency is the same under every preemptible model (full, lazy, rt-lazy) within 1 %."""
    rc = main(
        [
            "rt",
            "sim",
            "--compare-preempt",
            "--json",
            "--set",
            "loops=100",
            "--set",
            "groups=4",
            "--set",
            "fds=5",
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["preempt"] for m in doc["models"]] == ["none", "voluntary", "full", "lazy", "rt-lazy"]
    ratios = doc["ratios"]
    assert ratios["context_switches_lazy_over_full"] < 0.95
    assert ratios["throughput_lazy_over_full"] > 1.01
    by = {m["preempt"]: m for m in doc["models"]}
    full_mean = by["full"]["cyclictest_mean_us"]
    for model in ("lazy", "rt-lazy"):
        assert abs(by[model]["cyclictest_mean_us"] - full_mean) / full_mean < 0.01
    assert abs(ratios["cyclictest_mean_lazy_over_full"] - 1) < 0.01


@pytest.mark.parametrize("scenario", ["dl-periodic", "dhall", "grub", "isolation", "kvm"])
def test_compare_preempt_refuses_scenarios_without_its_figures(
    scenario: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare-preempt on a scenario without hackbench or cyclictest figures exits 2 before running, naming
    the scenarios it applies to (it used to print a table of "-" and exit 0)."""
    assert main(["rt", "sim", scenario, "--compare-preempt"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count("\n") == 1 and "--compare-preempt" in cap.err and scenario in cap.err
    assert "hackbench, cyclictest, hackbench+cyclictest" in cap.err


def test_compare_preempt_default_scenario_has_its_figures() -> None:
    """Without a scenario argument --compare-preempt runs the default, which must be one it applies to."""
    from memsched.cli.rt_sim import PREEMPT_SCENARIOS
    from memsched.workloads.rt.run import DEFAULT_SCENARIO

    assert PREEMPT_SCENARIOS[-1] == DEFAULT_SCENARIO  # the help says so


@pytest.mark.parametrize(
    "argv",
    [
        ["rt", "sim", "nosuch"],
        ["rt", "sim", "hackbench", "--preempt", "sometimes"],
        ["rt", "sim", "hackbench", "--set", "groups=0"],
        ["rt", "sim", "hackbench", "--set", "bogus=1"],
        ["rt", "sim", "--rt-app", "/nonexistent.json"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments give one error line on stderr, nothing on stdout, exit status 2."""
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count("\n") == 1 and "error" in cap.err
