"""SCHED_FIFO/RR push and pull of the exact scheduler (kernel/sched/rt.c 6.13)."""

from __future__ import annotations

from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.preempt import Resched
from memsched.sim.sched.program import Kernel, Nanosleep, Run
from memsched.sim.sched.sched import SchedConfig, SchedTask
from memsched.uapi.sched import SchedAttr, SchedPolicy

MS = 1_000_000
US = 1_000


def fifo(prio: int) -> SchedAttr:
    return SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=prio)


def first_run_start(m: RtMachine, t: SchedTask) -> int:
    return min(s[2] for s in m.core.trace or [] if s[1] == t.id)


def _rt_queued_behind_kernel_code() -> tuple[RtMachine, SchedTask, SchedTask]:
    """PREEMPT_NONE, 2 CPUs: CPU 0 runs a fair task in a 5 ms system call, CPU 1 a fair hog. Two migratable FIFO
    tasks (prio 60, then 70) wake on CPU 0 at 1 and 1.1 ms: they preempt at the cond_resched() point only."""
    m = RtMachine(2, SchedConfig.ideal(preempt="none"))
    m.enable_trace()
    m.spawn("sys", (Kernel(5 * MS), Run(10 * MS)), affinity=[0])
    m.spawn("hog", (Run(10_000 * MS),), affinity=[1])
    b = m.spawn("b", (Run(2 * MS), Nanosleep(100 * MS)), attr=fifo(60), affinity=[0, 1], start_ns=1 * MS)
    c = m.spawn("c", (Run(2 * MS), Nanosleep(100 * MS)), attr=fifo(70), affinity=[0, 1], start_ns=1 * MS + 100 * US)
    b.cpu = c.cpu = 0  # both last ran on CPU 0
    return m, b, c


def test_rt_wakeup_pushes_only_when_an_rt_or_dl_task_keeps_the_cpu() -> None:
    """task_woken_rt(): with a fair task running, a woken RT task stays on its CPU (no push), even under
    PREEMPT_NONE where it has to wait for cond_resched(); once it runs, set_next_task_rt()'s push moves the other
    waiting RT task to the CPU running only fair work."""
    m, b, c = _rt_queued_behind_kernel_code()
    m.run(20 * MS)
    assert c.nr_migrations == 0 and first_run_start(m, c) == 5 * MS  # at the system call's end
    assert b.nr_migrations == 1 and b.cpu == 1 and first_run_start(m, b) == 5 * MS  # pushed at the switch


def test_rt_push_reschedules_instead_of_pushing_a_task_that_outranks_curr() -> None:
    """push_rt_task(): if the next pushable task outranks the running one, reschedule the CPU instead."""
    m, b, c = _rt_queued_behind_kernel_code()
    m.run(2 * MS)
    rq0 = m.core.rqs[0]
    assert rq0.curr is not None and rq0.curr.name == "sys" and rq0.rt == [c, b]
    rq0.need_resched = Resched.NONE  # as if the wakeups had not asked yet
    m.core.rt_class.push_tasks(rq0)
    assert c.cpu == 0 and b.cpu == 0 and c.nr_migrations == 0
    assert rq0.need_resched == Resched.NOW


def _stuck_on_cpu1(m: RtMachine) -> SchedTask:
    """CPU 1 runs FIFO 80 (pinned); a FIFO 70 task queues behind it, pinned, then gets both CPUs allowed (as after
    sched_setaffinity without a push): it can only move when CPU 0 pulls."""
    m.spawn("d", (Run(10_000 * MS),), attr=fifo(80), affinity=[1])
    e = m.spawn("e", (Run(10_000 * MS),), attr=fifo(70), affinity=[1])
    m.run(1 * MS)
    e.affinity = (0, 1)
    return e


def test_rt_pull_only_when_prev_left_the_queue() -> None:
    """balance_rt(): a reschedule where prev stays queued (an RR timeslice expiry) does not pull; prev blocking
    with nothing of its priority left does (need_pull_rt_task)."""
    m = RtMachine(2, SchedConfig.ideal(sched_rr_timeslice_ms=10))
    rr = SchedAttr(sched_policy=SchedPolicy.RR, sched_priority=50)
    m.spawn("a", (Run(30 * MS), Nanosleep(1_000 * MS)), attr=rr, affinity=[0])
    m.spawn("a2", (Run(30 * MS), Nanosleep(1_000 * MS)), attr=rr, affinity=[0])
    e = _stuck_on_cpu1(m)
    m.run(59 * MS)  # RR expiries at 10..50 ms; a blocks at 50 with a2 (same priority) still queued
    assert e.cpu == 1 and e.sum_exec == 0
    m.run(70 * MS)  # a2 blocks at 60 ms: CPU 0 pulls e
    assert e.cpu == 0 and e.nr_migrations == 1
    assert e.sum_exec == 10 * MS


def test_dl_task_blocking_also_pulls_rt_work() -> None:
    """prev_balance() walks from prev's class down: after a DL task blocks, balance_rt() pulls RT work too."""
    m = RtMachine(2, SchedConfig.ideal())
    t = m.spawn("dl", (Run(2 * MS), Nanosleep(1_000 * MS)), attr=SchedAttr.deadline(5 * MS, 10 * MS))
    e = _stuck_on_cpu1(m)
    assert t.cpu == 0
    m.run(10 * MS)
    assert e.cpu == 0 and e.nr_migrations == 1
    assert e.sum_exec == 8 * MS  # from the DL task's block at 2 ms
