"""Guards for tests against the running kernel: skip with the kernel's own reason, check that a test leaves
none of **its own** tasks in SCHED_DEADLINE behind, and skip a test whose reservations do not fit next to
what other programs on this machine hold.

Other sessions on a shared machine may run SCHED_DEADLINE tasks at any time; comparing every deadline task
before and after a test made it fail for them, and a test that needs free bandwidth failed when they held
it. So the check counts only this test run's session (``helpers.kernel_helpers.own_deadline_tids``), and
``dl_bandwidth(cpus)`` skips, saying how much is free, when the root domain cannot give ``cpus``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from helpers.kernel_helpers import foreign_deadline_tids, own_deadline_tids
from memsched.admission import BW_UNIT
from memsched.live import capabilities
from memsched.live.deadline import predict_admission
from memsched.uapi.sched import SchedAttr


@pytest.fixture
def deadline_machine() -> Iterator[None]:
    """Skip unless SCHED_DEADLINE is there and permitted; afterwards, no new deadline task of ours may remain."""
    caps = capabilities()
    if not caps.sched_deadline.available:
        pytest.skip(f"SCHED_DEADLINE unavailable: {caps.sched_deadline.reason}")
    if not caps.sched_deadline_permitted.available:
        pytest.skip(f"SCHED_DEADLINE not permitted: {caps.sched_deadline_permitted.reason}")
    before = own_deadline_tids()
    yield
    left = own_deadline_tids() - before
    assert not left, f"the test left SCHED_DEADLINE tasks behind: {sorted(left)}"


def free_deadline_cpus() -> float:
    """SCHED_DEADLINE bandwidth a new task could get now, in CPUs (inf: no limit)."""
    avail = predict_admission(SchedAttr.deadline(1_000_000, 10_000_000)).available_bw
    return float("inf") if avail is None else avail / BW_UNIT


@pytest.fixture
def dl_bandwidth(deadline_machine: None) -> Callable[..., None]:
    """``dl_bandwidth(cpus, idle=False)``: skip unless ``cpus`` of deadline bandwidth are free (and, with
    ``idle``, unless no other program holds any: for tests that check exact figures)."""

    def need(cpus: float, *, idle: bool = False) -> None:
        if idle and (others := foreign_deadline_tids()):
            pytest.skip(f"other programs run {len(others)} SCHED_DEADLINE task(s); the figures need an idle domain")
        free = free_deadline_cpus()
        if free < cpus:
            pytest.skip(f"needs {cpus:.2f} CPU of free SCHED_DEADLINE bandwidth; {free:.3f} is free (held by others)")

    return need
