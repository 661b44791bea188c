"""SCHED_DEADLINE mechanics of the exact scheduler: syscall errors, CBS rules, GRUB, fair_server."""

from __future__ import annotations

import errno

import pytest

from memsched.errors import KernelError
from memsched.sim.sched.deadline import replenish_dl_entity, update_dl_entity
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer, Yield
from memsched.sim.sched.sched import DlEntity, SchedConfig
from memsched.uapi.sched import SchedAttr, SchedFlag, SchedPolicy

MS = 1_000_000


def test_grub_worked_example_reproduces_exactly() -> None:
    """sched-deadline.rst: T1 blocks at 2 with q=2, 0-lag at 4; then T2 drains at 0.5·dt and runs until 8."""
    m = RtMachine(1, SchedConfig.ideal(sched_rt_runtime_us=1_000_000, hrtick_dl=True))
    flags = int(SchedFlag.RECLAIM)
    t1 = m.spawn("T1", (Run(2 * MS), Timer(8 * MS)), attr=SchedAttr.deadline(4 * MS, 8 * MS, 8 * MS, flags))
    t2 = m.spawn("T2", (Run(100 * MS),), attr=SchedAttr.deadline(4 * MS, 8 * MS, 8 * MS, flags))
    m.run(4 * MS)
    assert t1.dl.non_contending is False and t2.dl.runtime == 2 * MS  # inactive timer fired at the 0-lag time 4
    assert m.core.rqs[0].dl_running_bw == 1 << 19
    m.run(6 * MS)
    assert t2.dl.runtime == 1 * MS  # 2 ms of wall time cost 1 ms of runtime
    m.run(8 * MS - 1)
    m.core.update_curr(m.core.rqs[0])  # account up to now (the kernel does so at ticks and switches)
    assert t2.sum_exec == 6 * MS - 1 and m.core.rqs[0].curr is t2
    m.run(8 * MS)
    assert t2.sum_exec == 6 * MS and t1.sum_exec == 2 * MS


def test_without_reclaim_the_second_task_gets_its_runtime_only() -> None:
    """Without SCHED_FLAG_RECLAIM the same pair gives T2 exactly its 4 ms."""
    m = RtMachine(1, SchedConfig.ideal(sched_rt_runtime_us=1_000_000, hrtick_dl=True))
    m.spawn("T1", (Run(2 * MS), Timer(8 * MS)), attr=SchedAttr.deadline(4 * MS, 8 * MS, 8 * MS))
    t2 = m.spawn("T2", (Run(100 * MS),), attr=SchedAttr.deadline(4 * MS, 8 * MS, 8 * MS))
    m.run(8 * MS)
    assert t2.sum_exec == 4 * MS


@pytest.mark.parametrize(
    ("attr", "code"),
    [
        (SchedAttr.deadline(500, MS, MS), errno.EINVAL),  # runtime < 1 << DL_SCALE
        (SchedAttr.deadline(2 * MS, MS, MS), errno.EINVAL),  # runtime > deadline
        (SchedAttr.deadline(MS, 2 * MS, MS), errno.EINVAL),  # deadline > period
        (SchedAttr.deadline(10_000, 50_000, 50_000), errno.EINVAL),  # period < 100 us
        (SchedAttr.deadline(MS, 0, 0), errno.EINVAL),  # deadline 0
        (SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=0), errno.EINVAL),
        (SchedAttr(sched_policy=SchedPolicy.NORMAL, sched_priority=3), errno.EINVAL),
        (SchedAttr(sched_policy=4), errno.EINVAL),
        (SchedAttr(sched_policy=SchedPolicy.EXT), errno.EINVAL),
        (SchedAttr.deadline(990 * MS, 1000 * MS, 1000 * MS), errno.EBUSY),  # > 95 % - fair_server on 1 CPU
    ],
)
def test_sched_setattr_errors_match_the_kernel(attr: SchedAttr, code: int) -> None:
    """Invalid parameters are EINVAL (checkparam_dl and policy checks); too much bandwidth is EBUSY."""
    m = RtMachine(1)
    t = m.spawn("t", (Run(MS),))
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, attr)
    assert e.value.errno == code
    assert t.policy == SchedPolicy.NORMAL


def test_sched_setattr_raw_struct_and_flags() -> None:
    """A short or oversized struct with a non-zero tail is E2BIG; non-zero flags are EINVAL; VER0 bytes work."""
    m = RtMachine(2)
    t = m.spawn("t", (Run(MS),))
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, b"\x00" * 40)
    assert e.value.errno == errno.E2BIG
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, SchedAttr.deadline(MS, 10 * MS).pack() + b"\x01" * 8)
    assert e.value.errno == errno.E2BIG
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, SchedAttr(), flags=1)
    assert e.value.errno == errno.EINVAL
    m.sched_setattr(t, SchedAttr(6, 0, 0, 0, MS, 10 * MS, 0, size=48).pack())
    assert t.policy == SchedPolicy.DEADLINE and t.dl.dl_period == 10 * MS


def test_deadline_affinity_narrower_than_root_domain_is_eperm() -> None:
    """A deadline task pinned to a subset of the root domain is refused with EPERM."""
    m = RtMachine(2)
    t = m.spawn("t", (Run(MS),), affinity=[0])
    with pytest.raises(KernelError) as e:
        m.sched_setattr(t, SchedAttr.deadline(MS, 10 * MS))
    assert e.value.errno == errno.EPERM


def test_fair_servers_count_against_admission_like_the_2cpu_kernel() -> None:
    """As a 2-CPU 6.18 kernel (two 5 % fair_servers admitted): three 0.6 tasks fit; 0.9 + 0.9 + 0.011 is EBUSY."""
    m = RtMachine(2)
    for i in range(3):
        m.spawn(f"a{i}", (Run(MS),), attr=SchedAttr.deadline(60 * MS, 100 * MS))
    m2 = RtMachine(2)
    m2.spawn("b0", (Run(MS),), attr=SchedAttr.deadline(90 * MS, 100 * MS))
    m2.spawn("b1", (Run(MS),), attr=SchedAttr.deadline(90 * MS, 100 * MS))
    t = m2.spawn("b2", (Run(MS),))
    with pytest.raises(KernelError) as e:
        m2.sched_setattr(t, SchedAttr.deadline(1_100_000, 100 * MS))
    assert e.value.errno == errno.EBUSY


def test_overrun_is_throttled_signalled_and_repaid_by_whole_periods() -> None:
    """An overrunning task is throttled at q <= 0, gets SIGXCPU with DL_OVERRUN, and runs runtime per period."""
    m = RtMachine(1, SchedConfig.ideal(hrtick_dl=True))
    t = m.spawn(
        "hog", (Run(1000 * MS),), attr=SchedAttr.deadline(2 * MS, 10 * MS, 10 * MS, int(SchedFlag.DL_OVERRUN))
    )
    m.run(100 * MS)
    assert t.dl.overruns == 10
    assert t.sum_exec == 20 * MS


def test_sched_yield_gives_up_the_rest_of_the_period() -> None:
    """sched_yield() zeroes the runtime: the task runs again exactly at its next period."""
    m = RtMachine(1, SchedConfig.ideal(hrtick_dl=True))
    m.enable_trace()
    t = m.spawn("y", (Run(1 * MS), Yield()), attr=SchedAttr.deadline(3 * MS, 10 * MS, 10 * MS))
    m.run(35 * MS)
    starts = [s[2] for s in m.core.trace or [] if s[1] == t.id]
    assert starts == [0, 10 * MS, 20 * MS, 30 * MS]
    assert t.sum_exec == 4 * MS


def test_revised_cbs_caps_runtime_for_constrained_deadlines() -> None:
    """A constrained task waking before its deadline with too much runtime gets q = density·(d − t)."""
    m = RtMachine(1, SchedConfig.ideal())
    t = m.spawn("c", (Run(1 * MS),), attr=SchedAttr.deadline(4 * MS, 5 * MS, 20 * MS), start_ns=10**12)
    t.dl.deadline = 3 * MS
    t.dl.runtime = 3 * MS
    update_dl_entity(t.dl, 1 * MS)
    assert t.dl.runtime == (t.dl.dl_density * 2 * MS) >> 20
    assert t.dl.deadline == 3 * MS


def test_replenishment_repays_an_overrun_by_whole_periods() -> None:
    """replenish_dl_entity(): q = -1.5 runtime costs two periods; a deadline still in the past starts afresh."""
    e = DlEntity(None)
    e.dl_runtime, e.dl_deadline, e.dl_period = 4 * MS, 8 * MS, 10 * MS
    e.deadline, e.runtime, e.throttled = 8 * MS, -6 * MS, True
    assert not replenish_dl_entity(e, 9 * MS)
    assert (e.deadline, e.runtime, e.throttled) == (28 * MS, 2 * MS, False)
    e.runtime = -1
    assert replenish_dl_entity(e, 100 * MS)  # "DL replenish lagged too much"
    assert (e.deadline, e.runtime) == (108 * MS, 4 * MS)


def test_yield_forfeits_the_remaining_runtime_at_replenishment() -> None:
    """replenish_dl_entity() after sched_yield(): the runtime left is dropped, the next period starts full."""
    e = DlEntity(None)
    e.dl_runtime, e.dl_deadline, e.dl_period = 4 * MS, 10 * MS, 10 * MS
    e.deadline, e.runtime, e.yielded = 10 * MS, 3 * MS, True
    replenish_dl_entity(e, 10 * MS)
    assert (e.deadline, e.runtime, e.yielded) == (20 * MS, 4 * MS, False)


def test_fair_server_and_tasks_share_one_deadline_entity_type() -> None:
    """rq->fair_server embeds the same DlEntity as a deadline task, queued in the same dl queue."""
    m = RtMachine(1)
    m.spawn("fifo", (Run(10_000 * MS),), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=50))
    m.spawn("other", (Run(10_000 * MS),))
    t = m.spawn("dl", (Run(MS), Timer(100 * MS)), attr=SchedAttr.deadline(MS, 100 * MS))
    s = m.core.rqs[0].fair_server
    assert s is not None and type(s.dl) is type(t.dl) is DlEntity
    assert s.dl.task is None and t.dl.task is t
    m.run(990 * MS)  # past the server's zero-laxity instant (950 ms): queued among the DL entities
    assert s.nr_runs == 1 and s.dl.queued and s.dl in m.core.rqs[0].dl and s.dl.deadline == 1000 * MS
    m.run(1001 * MS)  # its budget used up, the server was replenished for the next period
    assert not s.dl.throttled and s.dl.deadline == 2000 * MS


def test_fair_server_gives_fair_tasks_their_share_under_an_rt_hog() -> None:
    """6.12 fair_server: a fair task starved by SCHED_FIFO still gets ~50 ms per second."""
    m = RtMachine(1)
    m.spawn("fifo", (Run(10_000 * MS),), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=50))
    f = m.spawn("other", (Run(10_000 * MS),))
    m.run(3000 * MS)
    assert 130 * MS <= f.sum_exec <= 160 * MS


def test_rt_throttling_leaves_five_percent_to_fair_tasks() -> None:
    """Pre-6.12 RT throttling (950 ms per 1 s): the fair task gets the remaining ~50 ms per period."""
    m = RtMachine(1, SchedConfig(rt_bandwidth="throttle"))
    r = m.spawn("fifo", (Run(10_000 * MS),), attr=SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=50))
    f = m.spawn("other", (Run(10_000 * MS),))
    m.run(3000 * MS)
    assert 140 * MS <= f.sum_exec <= 160 * MS
    assert m.core.rt_class.nr_throttles == 3
    assert r.sum_exec > 2800 * MS


def test_exiting_task_keeps_its_bandwidth_until_the_0_lag_time() -> None:
    """task_non_contending()/inactive_task_timer() with TASK_DEAD: a DL task (5 ms / 10 ms) exiting at 1 ms with
    q = 4 ms keeps running_bw, this_bw and its admitted bandwidth until 0-lag = 10 - 4 * 10 / 5 = 2 ms."""
    m = RtMachine(1, SchedConfig.ideal(sched_rt_runtime_us=950_000, hrtick_dl=True))
    t = m.spawn("t", (Run(1 * MS),), loops=1, attr=SchedAttr.deadline(5 * MS, 10 * MS))
    rq = m.core.rqs[0]
    bw = t.dl.dl_bw
    late = m.spawn("late", (Run(MS),), start_ns=10**12)
    m.run(1_500_000)
    assert t.exit_ns == 1 * MS
    assert rq.dl_running_bw == bw and rq.dl_this_bw == bw
    with pytest.raises(KernelError) as e:  # 0.5 + 0.5 > 0.95 while the dead task still holds its share
        m.sched_setattr(late, SchedAttr.deadline(5 * MS, 10 * MS))
    assert e.value.errno == errno.EBUSY
    m.run(2 * MS)
    assert rq.dl_running_bw == 0 and rq.dl_this_bw == 0
    m.sched_setattr(late, SchedAttr.deadline(5 * MS, 10 * MS))
    assert late.policy == SchedPolicy.DEADLINE


def test_constrained_deadline_misses_count_against_the_deadline() -> None:
    """A constrained task (2 ms, 4 ms, 10 ms) behind an earlier-deadline one (3 ms, 3 ms, 10 ms) finishes each
    job at 5 ms: a miss by 1 ms against its 4 ms deadline (not a hit against its 10 ms period)."""
    m = RtMachine(1, SchedConfig.ideal(hrtick_dl=True))
    h = m.spawn("h", (Run(3 * MS), Timer(10 * MS)), attr=SchedAttr.deadline(3 * MS, 3 * MS, 10 * MS))
    c = m.spawn("c", (Run(2 * MS), Timer(10 * MS)), attr=SchedAttr.deadline(2 * MS, 4 * MS, 10 * MS))
    m.run(100 * MS)
    assert h.stats.jobs == c.stats.jobs == 10
    assert h.stats.misses == 0
    assert c.stats.misses == 10 and c.stats.max_tardiness == 1 * MS
    assert c.stats.resp == [5 * MS] * 10
