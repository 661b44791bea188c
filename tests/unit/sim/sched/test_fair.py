"""The fair class of the exact scheduler: EEVDF custom slices and PREEMPT_SHORT (6.12/6.13), CFS (6.5)."""

from __future__ import annotations

import pytest

from memsched.sim.sched.fair import SLICE_MAX_NS, SLICE_MIN_NS
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.preempt import Resched
from memsched.sim.sched.program import Nanosleep, Run
from memsched.sim.sched.sched import ENQUEUE_MIGRATED, ENQUEUE_WAKEUP, Rq, SchedConfig, SchedTask
from memsched.uapi.sched import SchedAttr, SchedPolicy

MS = 1_000_000
US = 1_000
LATER = 10**15  # a start time never reached: tasks that only serve as hand-placed entities


def first_run_start(m: RtMachine, t: SchedTask) -> int:
    """When ``t`` was first switched in (from the schedule trace)."""
    return min(s[2] for s in m.core.trace or [] if s[1] == t.id)


@pytest.mark.parametrize(("asked", "got"), [(50 * US, SLICE_MIN_NS), (3 * MS, 3 * MS), (500 * MS, SLICE_MAX_NS)])
def test_sched_runtime_sets_a_clamped_custom_slice(asked: int, got: int) -> None:
    """sched_setattr(sched_runtime) on SCHED_OTHER sets se->custom_slice, clamped to 0.1-100 ms, kept on placement."""
    m = RtMachine(1, SchedConfig.ideal())
    t = m.spawn("t", (Run(100 * MS),), attr=SchedAttr(sched_runtime=asked))
    assert t.se.custom_slice and t.se.slice == got
    m.run(20 * MS)  # placed, picked and through several update_deadline()s
    assert t.se.slice == got
    plain = m.spawn("plain", (Run(MS),), start_ns=m.engine.now)
    assert not plain.se.custom_slice


@pytest.mark.parametrize("preempt_short", [True, False])
def test_preempt_short_lets_a_short_slice_wakee_preempt_a_protected_long_slice(preempt_short: bool) -> None:
    """PREEMPT_SHORT: a 0.1 ms-slice task starting behind a 100 ms-slice hog runs at once; without it, at the hog's
    deadline (RUN_TO_PARITY protects the hog's first half-slice, 50 ms of runtime)."""
    m = RtMachine(1, SchedConfig.ideal(preempt="full", preempt_short=preempt_short))
    m.enable_trace()
    m.spawn("hog", (Run(10_000 * MS),), attr=SchedAttr(sched_runtime=100 * MS))
    short = m.spawn(
        "short", (Run(50 * US), Nanosleep(5 * MS)), attr=SchedAttr(sched_runtime=100 * US), start_ns=10 * MS
    )
    m.run(120 * MS)
    if preempt_short:
        assert first_run_start(m, short) == 10 * MS
    else:
        assert first_run_start(m, short) == 50 * MS  # the hog's initial deadline: v = 0 + 100 ms / 2


def _hand_placed(m: RtMachine, entries: list[tuple[SchedTask, int, int, int]], curr: SchedTask) -> Rq:
    """Queue tasks on CPU 0 with the given (vruntime, deadline, slice), ``curr`` running and protected."""
    rq = m.core.rqs[0]
    for t, v, d, sl in entries:
        t.se.vruntime, t.se.vdeadline, t.se.slice, t.se.custom_slice = v, d, sl, True
        t.on_rq = True
        rq.fair.append(t)
        rq.sum_w += t.se.weight
        rq.sum_wv += t.se.weight * v
    rq.curr = curr
    curr.se.vlag = curr.se.vdeadline  # RUN_TO_PARITY: the deadline stashed at pick time
    return rq


def test_short_wakee_cancels_protection_of_an_ineligible_curr_and_the_next_update_reschedules() -> None:
    """do_preempt_short() also fires when curr is no longer eligible (wakee deadline later); did_preempt_short()
    then reschedules curr at its next accounting update (the tick) although the wakee was not picked."""
    m = RtMachine(1, SchedConfig.ideal())
    a, b, c = (m.spawn(n, (Run(MS),), start_ns=LATER) for n in "abc")
    # V = (10 + 0 + 5) / 3 = 5 ms: a (curr) is ineligible, b and c are eligible, b has the earliest deadline.
    rq = _hand_placed(m, [(a, 10 * MS, 11 * MS, 3 * MS), (b, 0, 5 * MS, 3 * MS), (c, 5 * MS, 12 * MS, MS)], a)
    fair = m.core.fair_class
    assert fair.wakeup_preempt(rq, c) == Resched.NONE  # pick_eevdf() chooses b, not the wakee
    assert a.se.vlag != a.se.vdeadline  # ... but a's slice protection is gone
    assert fair.update_curr(rq, a, 1) == Resched.LAZY  # did_preempt_short(): a is not eligible


def test_protected_eligible_curr_keeps_the_cpu_against_a_later_short_wakee() -> None:
    """Neither wakee-earlier nor curr-ineligible: a short-slice wakee does not cancel curr's protection."""
    m = RtMachine(1, SchedConfig.ideal())
    a, b, c = (m.spawn(n, (Run(MS),), start_ns=LATER) for n in "abc")
    # V = (0 + 10 + 5) / 3 = 5 ms: a (curr) is eligible with deadline 11 ms; c's deadline is 12 ms.
    rq = _hand_placed(m, [(a, 0, 11 * MS, 3 * MS), (b, 10 * MS, 13 * MS, 3 * MS), (c, 5 * MS, 12 * MS, MS)], a)
    fair = m.core.fair_class
    assert fair.wakeup_preempt(rq, c) == Resched.NONE
    assert a.se.vlag == a.se.vdeadline
    assert fair.update_curr(rq, a, 1) == Resched.NONE


def test_changing_a_running_fair_tasks_policy_keeps_its_lag_and_deadline() -> None:
    """sched_setattr NORMAL -> BATCH on the running task: DEQUEUE_SAVE/ENQUEUE_RESTORE keep its lag and its
    relative virtual deadline (PLACE_LAG, PLACE_REL_DEADLINE), instead of re-placing it as a new task."""
    m = RtMachine(1, SchedConfig.ideal(hz=100))
    a = m.spawn("a", (Run(10_000 * MS),))
    m.spawn("b", (Run(10_000 * MS),))
    m.run(3 * MS + 300 * US)
    core = m.core
    rq = core.rqs[0]
    curr = rq.curr
    assert curr is not None
    core.update_curr(rq)
    fair = core.fair_class
    lag = fair.avg_vruntime(rq) - curr.se.vruntime
    rel_deadline = curr.se.vdeadline - curr.se.vruntime
    assert lag != 0
    m.sched_setattr(curr, SchedAttr(sched_policy=SchedPolicy.BATCH))
    assert curr.policy == SchedPolicy.BATCH
    assert abs((fair.avg_vruntime(rq) - curr.se.vruntime) - lag) <= 1
    assert curr.se.vdeadline - curr.se.vruntime == rel_deadline
    assert a.on_rq


def test_cfs_min_vruntime_follows_accounting() -> None:
    """CFS update_curr() -> update_min_vruntime(): min_vruntime tracks the running task, not only placements."""
    m = RtMachine(1, SchedConfig.ideal(fair="cfs"))
    hog = m.spawn("hog", (Run(10_000 * MS),))
    m.run(100 * MS)
    rq = m.core.rqs[0]
    m.core.update_curr(rq)
    assert rq.min_vruntime == hog.se.vruntime
    assert hog.se.vruntime >= 100 * MS  # START_DEBIT placed it a slice ahead, then it ran 100 ms


def test_cfs_sleeper_credit_only_on_wakeup_not_on_migration() -> None:
    """CFS place_entity() runs for wakeups (at most sched_latency/2 of credit); a migrated queued task keeps its
    vruntime as normalised by migrate_task_rq."""
    m = RtMachine(1, SchedConfig.ideal(fair="cfs"))
    m.spawn("hog", (Run(10_000 * MS),))
    m.run(100 * MS)
    rq = m.core.rqs[0]
    m.core.update_curr(rq)
    fair = m.core.fair_class
    mover, sleeper = (m.spawn(n, (Run(MS),), start_ns=LATER) for n in ("mover", "sleeper"))
    mover.se.vruntime = sleeper.se.vruntime = 10 * MS  # far behind min_vruntime (100 ms)
    fair.enqueue_task(rq, mover, ENQUEUE_MIGRATED)
    fair.enqueue_task(rq, sleeper, ENQUEUE_WAKEUP)
    assert mover.se.vruntime == 10 * MS
    assert sleeper.se.vruntime == rq.min_vruntime - fair.latency // 2


def test_cfs_slice_has_the_base_slice_floor() -> None:
    """CFS sched_slice() (6.5, BASE_SLICE): a nice-19 task next to nice-0 hogs still runs >= min_granularity per
    turn (0.75 ms at 1 CPU), not its 29 us weighted share; ticks at 10 kHz would show the difference."""
    m = RtMachine(1, SchedConfig.ideal(fair="cfs", hz=10_000))
    m.enable_trace()
    for i in range(3):
        m.spawn(f"n0-{i}", (Run(10_000 * MS),))
    light = m.spawn("n19", (Run(10_000 * MS),), attr=SchedAttr(sched_nice=19))
    m.run(2_000 * MS)
    fair = m.core.fair_class
    assert fair._sched_slice(m.core.rqs[0], light) == fair.min_gran == 750 * US
    runs = [s[3] - s[2] for s in m.core.trace or [] if s[1] == light.id]
    assert len(runs) >= 3
    assert min(runs) >= 750 * US
