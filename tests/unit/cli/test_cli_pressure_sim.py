"""``memsched pressure sim``: one JSON document with --json, a self-contained HTML report, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.report_check import check_report
from memsched.cli import main

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "pressure" / "tiny.toml"


def test_json_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints exactly one JSON document (a record per design); --report writes HTML with charts."""
    report = tmp_path / "r.html"
    rc = main(
        ["pressure", "sim", str(TINY), "--designs", "mainline", "--json", "--report", str(report), "-j", "1"]
    )
    out = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out.out)
    assert doc["scenario"] == "tiny" and [r["design"] for r in doc["designs"]] == ["mainline"]
    rec = doc["designs"][0]
    for key in (
        "events",
        "event_first_s",
        "oom_kills",
        "app_released_mib",
        "services",
        "vmstat",
        "psi",
        "index",
    ):
        assert key in rec
    assert set(rec["services"]) == {"streamer", "cache", "batch"}
    checked = check_report(report.read_text())
    assert checked.problems == [] and checked.charts == ["design mainline"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pressure", "sim", "nope"], "'SCENARIO' must be one of"),
        (["pressure", "sim", "default", "--designs", "vmevent"], "'--designs' must be one of"),
        (["pressure", "sim", "default", "--report", "/no/such/dir/r.html"], "'--report'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad scenario names, designs or report paths: one line on stderr, exit 2, nothing on stdout."""
    rc = main(args)
    out = capsys.readouterr()
    assert rc == 2 and out.out == ""
    assert needle in out.err and out.err.count("\n") == 1
