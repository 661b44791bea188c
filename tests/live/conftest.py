"""Guards for tests against the running kernel: skip with the kernel's own reason, and check that a test
leaves no task in SCHED_DEADLINE behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from memsched.live import capabilities
from memsched.uapi.sched import SchedPolicy


def deadline_tids() -> set[int]:
    """Every thread on the machine whose /proc stat says SCHED_DEADLINE (policy, field 41)."""
    tids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for tid in filter(str.isdigit, os.listdir(f"/proc/{pid}/task")):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                if int(fields[38]) == SchedPolicy.DEADLINE and fields[0] not in ("Z", "X"):
                    tids.add(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return tids


@pytest.fixture
def deadline_machine() -> Iterator[None]:
    """Skip unless SCHED_DEADLINE is there and permitted; afterwards, no new deadline task may remain."""
    caps = capabilities()
    if not caps.sched_deadline.available:
        pytest.skip(f"SCHED_DEADLINE unavailable: {caps.sched_deadline.reason}")
    if not caps.sched_deadline_permitted.available:
        pytest.skip(f"SCHED_DEADLINE not permitted: {caps.sched_deadline_permitted.reason}")
    before = deadline_tids()
    yield
    left = deadline_tids() - before
    assert not left, f"the test left SCHED_DEADLINE tasks behind: {sorted(left)}"
