"""Timers of one CPU that expire at the same nanosecond are served in one interrupt (``hrtimer_expire``)."""

from __future__ import annotations

from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.sim.sched.sched import SchedConfig
from memsched.uapi.sched import SchedAttr, SchedPolicy

MS = 1_000_000


def _two_deadline_tasks() -> RtMachine:
    """The issue's reproducer: a (2 ms every 5 ms) and b (4 ms every 10 ms) on one CPU, overheads off."""
    m = RtMachine(1, SchedConfig.ideal())
    m.enable_trace()
    m.spawn("a", (Run(2 * MS), Timer(5 * MS)), attr=SchedAttr.deadline(2 * MS, 5 * MS, 5 * MS))
    m.spawn("b", (Run(4 * MS), Timer(10 * MS)), attr=SchedAttr.deadline(4 * MS, 10 * MS, 10 * MS))
    m.run(20 * MS)
    return m


def test_simultaneous_releases_switch_in_the_earliest_deadline_once() -> None:
    """At 10 ms both are released on the idle CPU: a (deadline 15 ms) runs, b (20 ms) is never switched in
    and out at the same instant; b's only wakeup latency is the 2 ms it waits for a."""
    m = _two_deadline_tasks()
    trace = m.core.trace
    assert trace is not None
    assert all(end > start for _, _, start, end in trace), trace  # no zero-length slice
    b = m.tasks[1]
    assert b.nivcsw == 0
    assert b.stats.lat == [2 * MS]  # released at 10 ms, first runs at 12 ms
    assert [(tid, start, end) for _, tid, start, end in trace if start >= 10 * MS] == [
        (0, 10 * MS, 12 * MS),
        (1, 12 * MS, 16 * MS),
        (0, 16 * MS, 18 * MS),
    ]


def test_fifo_tasks_released_together_run_by_priority_without_a_zero_length_switch() -> None:
    """A low-priority FIFO task whose timer comes first in the queue is not switched in and preempted at once
    when a higher-priority one expires at the same nanosecond; each timer still counts as one event."""
    m = RtMachine(1, SchedConfig.ideal())
    m.enable_trace()
    m.spawn("lo", (Timer(5 * MS), Run(MS)), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=10))
    m.spawn("hi", (Timer(5 * MS), Run(MS)), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=50))
    m.run(12 * MS)
    lo, hi = m.tasks
    assert lo.nivcsw == 0 and hi.nivcsw == 0
    assert lo.stats.lat == [MS, MS] and hi.stats.lat == [0, 0]  # releases at 5 and 10 ms
    assert m.core.trace is not None  # (at 0 each starts with its Timer and sleeps at once: a voluntary 0 ns)
    assert all(end > start for _, _, start, end in m.core.trace if start > 0)


def test_a_lone_timer_takes_the_direct_path() -> None:
    """Timers of different instants are not batched: a task released while another runs preempts it."""
    m = RtMachine(1, SchedConfig.ideal())
    m.spawn("long", (Run(10 * MS),), loops=1, attr=SchedAttr.deadline(10 * MS, 100 * MS, 100 * MS))
    m.spawn("short", (Run(MS), Timer(3 * MS)), attr=SchedAttr.deadline(MS, 3 * MS, 3 * MS), start_ns=MS)
    m.run(6 * MS)
    long_task = m.tasks[0]
    assert long_task.nivcsw >= 1
