"""Guards for tests against the running kernel: skip with the kernel's own reason, and check that a test
leaves no task in SCHED_DEADLINE behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.kernel_helpers import deadline_tids
from memsched.live import capabilities


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
