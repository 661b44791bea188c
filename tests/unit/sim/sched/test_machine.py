"""RtMachine.sched_setattr: SCHED_FLAG_KEEP_PARAMS / KEEP_POLICY and the no-change case (syscalls.c 6.13)."""

from __future__ import annotations

import errno

import pytest

from memsched.errors import KernelError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run
from memsched.sim.sched.sched import SchedConfig
from memsched.uapi.sched import SchedAttr, SchedFlag, SchedPolicy

MS = 1_000_000
KEEP_PARAMS = int(SchedFlag.KEEP_PARAMS)
KEEP_POLICY = int(SchedFlag.KEEP_POLICY)


@pytest.mark.parametrize(
    "attr",
    [
        SchedAttr(sched_policy=SchedPolicy.FIFO, sched_flags=KEEP_PARAMS),  # kept "priority" of a fair task: 0
        SchedAttr(sched_policy=SchedPolicy.DEADLINE, sched_flags=KEEP_PARAMS),  # runtime = slice, deadline 0
    ],
)
def test_keep_params_still_checks_a_policy_change(attr: SchedAttr) -> None:
    """KEEP_PARAMS fills the attr from the task (get_params) and every check still runs: EINVAL, task unchanged."""
    m = RtMachine(1)
    t = m.spawn("t", (Run(MS),))
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, attr)
    assert e.value.errno == errno.EINVAL
    assert t.policy == SchedPolicy.NORMAL


def test_keep_params_keeps_the_parameters_of_the_current_class() -> None:
    """FIFO 42 -> RR with KEEP_PARAMS keeps priority 42; a DL task with KEEP_PARAMS|KEEP_POLICY keeps its
    reservation (a no-op, not a new admission)."""
    m = RtMachine(1)
    t = m.spawn("t", (Run(MS),), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=42))
    m.sched_setattr(t, SchedAttr(sched_policy=SchedPolicy.RR, sched_flags=KEEP_PARAMS))
    assert t.policy == SchedPolicy.RR and t.prio == 42
    d = m.spawn("d", (Run(MS),), attr=SchedAttr.deadline(2 * MS, 10 * MS, 10 * MS))
    total = m.core.dl_class.dl_b.total_bw
    m.sched_setattr(d, SchedAttr(sched_flags=KEEP_PARAMS | KEEP_POLICY))
    assert d.policy == SchedPolicy.DEADLINE
    assert (d.dl.dl_runtime, d.dl.dl_deadline, d.dl.dl_period) == (2 * MS, 10 * MS, 10 * MS)
    assert m.core.dl_class.dl_b.total_bw == total


def test_keep_params_to_deadline_admits_the_kept_slice_as_runtime() -> None:
    """fair -> DEADLINE with KEEP_PARAMS: sched_runtime comes from the task's slice, the rest from the caller."""
    m = RtMachine(1, SchedConfig(base_slice_ns=2 * MS))
    t = m.spawn("t", (Run(MS),))
    m.sched_setattr(
        t, SchedAttr(sched_policy=SchedPolicy.DEADLINE, sched_deadline=10 * MS, sched_flags=KEEP_PARAMS)
    )
    assert t.policy == SchedPolicy.DEADLINE and t.dl.dl_runtime == 2 * MS and t.dl.dl_period == 10 * MS
