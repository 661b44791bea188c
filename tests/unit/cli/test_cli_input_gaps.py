"""Input the command line used to accept and act on though it contradicts itself or cannot be meant: each is
refused with one line naming the option or file, the field, the value and what is allowed, exit status 2, before
anything is run or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsched.cli import main


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of ``memsched ARGV``, which must exit 2 and print nothing on stdout."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", (rc, out, err)
    assert err.count("\n") == 1 and err.startswith("memsched: error: "), err
    return err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-p", "balancenuma", "--set", "scan_period_min_ms=6000"], "'scan_period_min_ms' must be <= scan_period_max_ms (5000) (got 6000)"),
        (["-p", "homenode", "--set", "scan_period_max_ms=50"], "'scan_period_min_ms' must be <= scan_period_max_ms (50) (got 100)"),
        (["-p", "mainline", "--set", "scan_period_min_ms=70000"], "'scan_period_min_ms' must be <= scan_period_max_ms (60000)"),
        (["-p", "mainline", "--set", "group_active_out=0.5"], "'group_active_out' must be <= group_active_in (0.375)"),
        (["-t", "laptop-1n8", "--set", "first_touch_node=1"], "'first_touch_node' must be -1 or a node of topology laptop-1n8 (0..0) (got 1)"),
    ],
)  # fmt: skip
def test_numa_settings_that_contradict_each_other_are_refused(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scan period minimum above its maximum, an inverted active-set hysteresis, a first-touch node the machine
    does not have: refused, not run with one of them silently winning."""
    assert needle in refused(capsys, "run", "numa01", *argv)
