"""Whose fault an error is: policy bugs and internal errors exit 1 with one line; --debug keeps the traceback.

Also the policy versions as the command line sees them (``--policy mainline-v1``, ``list policies``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from helpers.live_fixtures import FIXTURES
from helpers.numa_plugins import chatty_registered
from memsched.cli import main
from memsched.errors import SimulationError

SMALL = ("--topology", "laptop-1n8", "--seed", "1")
FOUR = ("--proc-root", str(FIXTURES / "numa-4node/proc"), "--sys-root", str(FIXTURES / "numa-4node/sys"))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def chatty() -> Iterator[str]:
    """A third-party policy whose hook returns words instead of actions."""
    with chatty_registered() as name:
        yield name


@pytest.mark.parametrize(
    "args",
    [
        ("run", "numa02", *SMALL, "--policy", "test-chatty"),
        ("compare", "--workloads", "numa02", "--policies", "none,test-chatty", *SMALL),
        ("numa", "balance", "--policy", "test-chatty", "--dry-run", "--count", "1", *FOUR),
    ],
    ids=["run", "compare", "numa-balance"],
)
def test_policy_bug_exits_1_naming_the_policy(
    capsys: pytest.CaptureFixture[str], chatty: str, args: tuple[str, ...]
) -> None:
    """A plug-in that fails the conformance check stops run, compare and numa balance with one line, exit 1."""
    rc, out, err = run_cli(capsys, *args)
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("memsched: error: policy test-chatty: fails the conformance check")


def test_policy_bug_with_debug_keeps_the_traceback(capsys: pytest.CaptureFixture[str], chatty: str) -> None:
    """memsched --debug shows where a policy bug was raised instead of the one line."""
    rc, _, err = run_cli(capsys, "--debug", "run", "numa02", *SMALL, "--policy", "test-chatty")
    assert rc == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "memsched.errors.PolicyError: policy test-chatty: fails the conformance check" in err


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ZeroDivisionError("division by zero"), "memsched: internal error: ZeroDivisionError: division by zero"),
        (SimulationError("phase completion on an idle CPU"), "memsched: error: phase completion on an idle CPU"),
    ],
    ids=["unexpected", "model"],
)
def test_model_and_internal_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception, line: str
) -> None:
    """Exit 1 with one line; with --debug, the traceback ending in the exception instead."""

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("memsched.workloads.runner.run_one", fail)  # cli/sim.py imports it when it runs
    rc, out, err = run_cli(capsys, "run", "numa02", *SMALL)
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(line)
    rc, out, err = run_cli(capsys, "--debug", "run", "numa02", *SMALL)
    assert rc == 1 and out == ""
    assert err.startswith("Traceback (most recent call last):") and "in fail" in err
    assert err.strip().splitlines()[-1].endswith(f"{type(error).__name__}: {error}")


def test_debug_does_not_change_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad argument is the user's: one line and exit 2, with or without --debug."""
    rc, _, err = run_cli(capsys, "--debug", "run", "numa02", "--policy", "greedy")
    assert rc == 2 and err.startswith("memsched: error: 'policy' must be one of") and "Traceback" not in err


def test_exact_version_runs_the_same_policy(capsys: pytest.CaptureFixture[str]) -> None:
    """--policy mainline-v1 is the latest mainline today: the same record as --policy mainline, which names
    the policy by its id and its version."""
    _, latest, _ = run_cli(capsys, "run", "numa02_SMT", *SMALL, "--policy", "mainline", "--json")
    _, exact, _ = run_cli(capsys, "run", "numa02_SMT", *SMALL, "--policy", "mainline-v1", "--json")
    a, b = json.loads(latest), json.loads(exact)
    assert (b["policy"], b["policy_version"]) == ("mainline", 1)
    assert a == b


def test_unknown_version_lists_the_versions(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown version of a known policy: exit 2, one line listing the versions that exist."""
    rc, out, err = run_cli(capsys, "run", "numa02", "--policy", "mainline-v9")
    assert rc == 2 and out == ""
    assert err.strip() == "memsched: error: 'policy' must be one of: mainline, mainline-v1 (got 'mainline-v9')"


def test_list_policies_shows_versions(capsys: pytest.CaptureFixture[str]) -> None:
    """memsched list policies gives each policy's version, in the JSON and in the table."""
    rc, out, _ = run_cli(capsys, "list", "policies", "--json")
    assert rc == 0
    assert {(r["id"], r["version"]) for r in json.loads(out)} >= {("none", 1), ("mainline", 1), ("numad", 1)}
    rc, out, _ = run_cli(capsys, "list", "policies")
    assert rc == 0 and "version" in out
