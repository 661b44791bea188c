"""Fuzzing every input format through the command line's entry points, with a time and a memory cap per
example (``helpers.fuzz_worker``): topology and scenario TOML, rt-app JSON, ``--set`` strings, durations,
sizes, levels, PSI triggers, CPU lists and the daemon protocol.

A crash is any exception that is not memsched's own error type, or an example over its cap (10 s, 1 GiB of
data segment). CI runs :data:`EXAMPLES` derandomized examples per format (plus each format's valid seeds);
``benchmarks/fuzz.py`` runs the long campaign (10,000+ per format, atheris where it installs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from helpers.fuzz_strategies import STRATEGIES
from helpers.fuzz_targets import KINDS
from helpers.fuzz_worker import FuzzWorker, Outcome

#: Examples per format in the test suite (the campaign runs thousands).
EXAMPLES = 80


@pytest.fixture(scope="module")
def worker() -> Iterator[FuzzWorker]:
    w = FuzzWorker(time_cap=10.0, memory_cap=1 << 30)
    try:
        yield w
    finally:
        w.close()


def _check(outcome: Outcome, payload: Any) -> None:
    assert not outcome.failed, f"{outcome.kind}: {outcome.status}: {outcome.detail} (input {payload!r:.400})"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_valid_seed_inputs_do_not_crash(worker: FuzzWorker, kind: str) -> None:
    """The valid inputs the fuzzers start from are accepted or refused, never a crash."""
    for seed in KINDS[kind].seeds():
        _check(worker.run(kind, seed), seed)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzzed_inputs_get_memscheds_own_errors(worker: FuzzWorker, kind: str) -> None:
    """Random and mutated inputs of every format end accepted or with a MemschedError, within the caps."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(STRATEGIES[kind])
    def one(payload: Any) -> None:
        _check(worker.run(kind, payload), payload)

    one()


def test_the_caps_catch_a_hang_and_a_runaway_allocation() -> None:
    """The harness itself: an example over the time cap is a hang, one over the memory cap a runaway."""
    slow = FuzzWorker(time_cap=0.5, memory_cap=64 << 20)
    try:
        assert slow.run("rt-app", b'{"tasks": {"a": {"run": 10}}}').status in ("ok", "refused")
        assert slow.run("__sleep__", 5.0).status == "hang"
        assert slow.run("__allocate__", 256 << 20).status == "memory"
        assert slow.run("__raise__", "ValueError").status == "crash"
        assert slow.run("duration", "2ms").status == "ok"  # the worker is still (or again) usable
    finally:
        slow.close()


def test_a_killed_worker_leaves_no_temporary_files() -> None:
    """The worker is killed, not asked to stop, so it cleans nothing itself: its TMPDIR (where the daemon target
    puts its socket and FIFO) is the harness's to remove when it reaps the worker (a directory per run was left
    in /tmp)."""
    w = FuzzWorker(time_cap=0.5, memory_cap=64 << 20)
    try:
        assert w.run("daemon-protocol", ([b"\x08\0\0\0\0\x04\0\0"], False)).status in ("ok", "refused")
        tmp = w._tmp
        assert tmp is not None and any(Path(tmp).iterdir())  # the daemon's socket and FIFO
    finally:
        w.close()
    assert not Path(tmp).exists()
