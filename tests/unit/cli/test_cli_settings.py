"""``memsched list settings``: each key's range shows its real bounds."""

from __future__ import annotations

import json

import pytest

from memsched.cli import main


def _ranges(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    assert main(["list", "settings", *argv, "--json"]) == 0
    return {row["key"]: row["range"] for row in json.loads(capsys.readouterr().out)}


def test_ranges_show_their_bounds_in_full(capsys: pytest.CaptureFixture[str]) -> None:
    """1048576 and 4294967295, not %g's 1.04858e+06 and 4.29497e+09; a fractional bound as written (0.01)."""
    specjbb = _ranges(capsys, "--workload", "specjbb")
    assert specjbb["heap_mb"] == "0..1048576" and specjbb["txn_kib"] == "0.01..1048576"
    assert _ranges(capsys, "--scenario", "dl-periodic")["set_seed"] == "0..4294967295"
    assert main(["list", "settings", "--workload", "specjbb"]) == 0
    assert "0..1048576" in capsys.readouterr().out
