"""The task-program interpreter: loops, mutex handoff, channels, and phase errors."""

from __future__ import annotations

import pytest

from memsched.errors import SimulationError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Lock, Nanosleep, Recv, Run, Send, Unlock
from memsched.sim.sched.sched import SchedConfig, SchedTaskState

MS = 1_000_000
US = 1_000


def test_program_repeats_loops_times_then_exits() -> None:
    """A program with loops=3 runs its phases three times and exits; loops=-1 keeps running."""
    m = RtMachine(2, SchedConfig.ideal())
    done = m.spawn("three", (Run(1 * MS),), loops=3, affinity=[0])
    forever = m.spawn("forever", (Run(1 * MS),), affinity=[1])
    m.run(10 * MS)
    assert done.state == SchedTaskState.EXITED
    assert done.exit_ns == 3 * MS
    assert done.stats.work_ns == 3 * MS
    assert forever.state == SchedTaskState.RUNNABLE
    assert forever.stats.work_ns == 10 * MS


def test_mutex_is_handed_to_the_first_waiter_at_unlock() -> None:
    """A contended Lock sleeps; Unlock gives the lock to that waiter, who holds it (and its lazy count) after."""
    m = RtMachine(2, SchedConfig.ideal())
    a = m.spawn("a", (Lock("m"), Run(1 * MS), Unlock("m"), Run(10 * MS)), loops=1, affinity=[0])
    b = m.spawn("b", (Nanosleep(100 * US), Lock("m"), Run(5 * MS), Unlock("m"), Run(10 * MS)), loops=1, affinity=[1])
    m.run(3 * MS)
    mutex = m.core.interp.locks["m"]
    assert mutex.contended == 1
    assert mutex.owner is b
    assert (a.locks_held, a.lazy_count) == (0, 0)
    assert (b.locks_held, b.lazy_count) == (1, 1)
    assert b.stats.work_ns == 0  # b's Run under the lock started at a's unlock (1 ms) and is not done
    m.run(7 * MS)
    assert mutex.owner is None and not mutex.waiters
    assert b.stats.work_ns == 5 * MS  # 1 ms + 5 ms: done by 6 ms


def test_unlocking_a_mutex_not_held_is_an_error() -> None:
    """Unlock of a lock the task does not own stops the simulation with a message naming task and lock."""
    m = RtMachine(1, SchedConfig.ideal())
    m.spawn("bad", (Unlock("nobody"), Run(1 * MS)))
    with pytest.raises(SimulationError, match="bad unlocks 'nobody'"):
        m.run(1 * MS)


def test_recv_sleeps_until_send_and_extra_messages_stay_queued() -> None:
    """A reader with nothing to read sleeps; one Send of 3 wakes it with one message and leaves 2 queued."""
    m = RtMachine(2, SchedConfig.ideal())
    reader = m.spawn("reader", (Recv("c"), Run(1 * MS)), loops=1, affinity=[1])
    m.spawn("writer", (Nanosleep(2 * MS), Send("c", 3)), loops=1, affinity=[0])
    m.run(1 * MS)
    assert reader.state == SchedTaskState.BLOCKED
    m.run(10 * MS)
    chan = m.core.interp.chans["c"]
    assert (chan.sent, chan.count) == (3, 2)
    assert reader.exit_ns == 3 * MS  # woken at the Send (2 ms), then 1 ms of work
