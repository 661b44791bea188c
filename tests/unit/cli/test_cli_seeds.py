"""Seeds on the command line: one range (memsched.config.MAX_SEED) for every command that takes one, checked
before anything runs; compare's --seeds must keep its last seed in that range; compare refuses a policy named
twice through an alias, and its help never breaks a workload id across lines."""

from __future__ import annotations

import pytest

from memsched.cli import main
from memsched.config import MAX_SEED

TOO_BIG = str(MAX_SEED + 1)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "numa02", "--seed", TOO_BIG],
        ["compare", "--workloads", "numa02", "--policies", "none", "--seed", TOO_BIG],
        ["rt", "sim", "dl-periodic", "--seed", TOO_BIG],
        ["pressure", "sim", "--seed", TOO_BIG],
        ["pressure", "act-sim", "--seed", TOO_BIG],
        ["numa", "balance", "--policy", "numad", "--dry-run", "--seed", TOO_BIG],
    ],
)
def test_every_seed_option_has_the_sweeps_range(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A seed past 32 bits is one line naming --seed and the range, exit 2, nothing run."""
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and err == f"memsched: error: '--seed' must be in 0..{MAX_SEED} (got {TOO_BIG})\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "numa02"],
        ["compare", "--workloads", "numa02", "--policies", "none"],
        ["rt", "sim", "dl-periodic"],
        ["pressure", "sim"],
        ["pressure", "act-sim"],
        ["numa", "balance", "--policy", "numad", "--dry-run"],
    ],
)
def test_a_seed_past_64_bits_is_told_the_seed_range(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Past a 64-bit integer too, the message gives the seed range, not int64's."""
    rc, out, err = run(capsys, *argv, "--seed", "9" * 20)
    assert rc == 2 and out == "" and f"'--seed': must be in 0..{MAX_SEED} (got '{'9' * 20}')" in err


def test_compare_seeds_must_end_inside_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    """--seed S --seeds N runs S..S+N-1: it used to record seed 2^63 (past int64) from --seed 2^63-1."""
    argv = ["compare", "--workloads", "numa02", "--policies", "none", "--topology", "sandybridge-2n32", "--json"]
    rc, out, err = run(capsys, *argv, "--seed", str(MAX_SEED - 1), "--seeds", "3")
    assert rc == 2 and out == "" and err.startswith("memsched: error: '--seeds' runs seeds 4294967294..4294967296")
    assert err.count("\n") == 1


def test_compare_refuses_a_policy_named_twice_through_its_alias(capsys: pytest.CaptureFixture[str]) -> None:
    """mainline and mainline-v1 are the same runs (as numa02,numa02 would be)."""
    rc, out, err = run(capsys, "compare", "--workloads", "numa02", "--policies", "mainline-v1,mainline")
    assert rc == 2 and out == "" and "'--policies' names mainline-v1 twice (mainline-v1 and mainline)" in err


@pytest.mark.parametrize("columns", ["60", "80", "100"])
def test_compare_help_never_splits_a_workload_id(
    columns: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default workload list is wrapped between ids (it was `[default: numa ⏎ 01,...]`)."""
    monkeypatch.setenv("COLUMNS", columns)
    rc, out, _ = run(capsys, "compare", "--help")
    assert rc == 0
    words = out.split()
    for wl in ("numa01,", "numa01_THREAD_ALLOC,", "numa02,", "numa02_SMT]"):
        assert wl in words, out
