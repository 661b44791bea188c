"""nohz_full on the exact scheduler: when the tick may stop (sched_can_stop_tick, core.c 6.13)."""

from __future__ import annotations

from memsched.sim.sched.isolation import IsolationConfig, NoiseModel
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run
from memsched.sim.sched.sched import SchedConfig
from memsched.uapi.sched import SchedAttr, SchedPolicy

MS = 1_000_000
#: Only the tick interrupts (1 us each), so noise events count ticks.
TICKS_ONLY = NoiseModel(tick_irq_ns=1_000, rcu_rate_hz=0.0, kworker_rate_hz=0.0, timer_rate_hz=0.0, pollution_ns=0)


def isolated_machine(**sched: object) -> RtMachine:
    """Two CPUs; CPU 1 is isolcpus + nohz_full + rcu_nocbs."""
    iso = IsolationConfig(isolcpus=(1,), nohz_full=(1,), rcu_nocbs=(1,))
    return RtMachine(2, SchedConfig.ideal(**sched), noise=TICKS_ONLY, isolation=iso)


def test_single_task_on_nohz_full_cpu_runs_without_its_tick() -> None:
    """One fair task alone on a nohz_full CPU: the tick stops, leaving the residual 1 Hz tick."""
    m = isolated_machine()
    m.spawn("poll", (Run(10_000 * MS),), affinity=[1])
    m.run(2_000 * MS)
    assert m.core.rqs[1].noise_events <= 4


def test_deadline_task_keeps_the_tick_on_a_nohz_full_cpu() -> None:
    """A SCHED_DEADLINE task, even alone, needs the tick: its runtime is enforced at ticks (HRTICK_DL off), so it
    gets 5 ms per 10 ms period (plus at most a tick), not whatever runs until the 1 Hz residual tick."""
    m = isolated_machine()
    m.spawn("hk", (Run(MS),), loops=1, affinity=[0])  # id 0, so the DL task (id 1) starts on CPU 1
    dl = m.spawn("dl", (Run(10_000 * MS),), attr=SchedAttr.deadline(5 * MS, 10 * MS), affinity=[0, 1])
    m.run(1_000 * MS)
    assert dl.cpu == 1 and dl.nr_migrations == 0
    assert m.core.rqs[1].noise_events >= 450  # ticking while the DL task runs (~half the time)
    assert 495 * MS <= dl.sum_exec <= 100 * (5 * MS + m.core.tick_ns)


def test_two_rr_tasks_bring_the_tick_back_on_a_nohz_full_cpu() -> None:
    """A second SCHED_RR task arriving on a nohz_full CPU restarts the tick (sched_update_tick_dependency), so the
    two round-robin every sched_rr_timeslice_ms instead of waiting for the 1 Hz residual tick."""
    m = isolated_machine(sched_rr_timeslice_ms=10)
    attr = SchedAttr(sched_policy=SchedPolicy.RR, sched_priority=10)
    a = m.spawn("a", (Run(10_000 * MS),), attr=attr, affinity=[1])
    b = m.spawn("b", (Run(10_000 * MS),), attr=attr, affinity=[1], start_ns=5 * MS)
    m.run(205 * MS)
    assert 90 * MS <= a.sum_exec <= 115 * MS
    assert 90 * MS <= b.sum_exec <= 110 * MS


def test_sched_can_stop_tick_rules() -> None:
    """sched_can_stop_tick(): no with a queued DL entity, two RR or two fair tasks; yes with FIFO (fair queued
    behind it) or with one RR task."""
    m = RtMachine(1, SchedConfig.ideal())
    core = m.core
    rq = core.rqs[0]
    fifo = m.spawn("fifo", (Run(MS),), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=5))
    rr1, rr2 = (
        m.spawn(n, (Run(MS),), attr=SchedAttr(sched_policy=SchedPolicy.RR, sched_priority=5)) for n in ("r1", "r2")
    )
    f1, f2 = (m.spawn(n, (Run(MS),)) for n in ("f1", "f2"))
    dl = m.spawn("dl", (Run(MS),), attr=SchedAttr.deadline(MS, 10 * MS))
    cases = [
        ([f1], [], [], True),
        ([f1, f2], [], [], False),
        ([f1, f2], [fifo], [], True),
        ([f1], [rr1], [], True),
        ([], [rr1, rr2], [], False),
        ([], [fifo, rr1, rr2], [], False),
        ([], [], [dl], False),
        ([f1], [fifo], [dl], False),
    ]
    for fair, rt, dls, expected in cases:
        rq.fair, rq.rt, rq.dl = list(fair), list(rt), list(dls)
        assert core.sched_can_stop_tick(rq) is expected, (fair, rt, dls)
