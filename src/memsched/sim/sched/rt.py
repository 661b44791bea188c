"""SCHED_FIFO and SCHED_RR for the exact scheduler, with RR time slices and RT throttling.

Follows ``kernel/sched/rt.c`` (v6.11 for throttling, v6.13 otherwise; checked with the search tool):

* priorities 1..99, higher runs first; FIFO within a priority (``enqueue_task_rt`` appends at the tail,
  a preempted task goes back to the *head* of its list);
* ``task_tick_rt``: an RR task's ``time_slice`` (``sched_rr_timeslice_ms``, 100 ms = ``RR_TIMESLICE``) is
  decremented per tick; when it runs out it is refilled and, if others share its priority, the task is
  requeued at the tail and a reschedule requested;
* ``wakeup_preempt_rt``: a strictly higher priority preempts (``resched_curr``, never lazy);
* ``select_task_rq_rt`` / ``push_rt_task`` / ``pull_rt_task``: a woken RT task that cannot preempt the
  current task of its CPU goes to the CPU running the lowest priority (cpupri: idle < fair < RT prio);
  an overloaded CPU pushes its next task to such a CPU — unless that task outranks the running one, which
  is then rescheduled instead — when a task is switched in (``set_next_task_rt`` → ``rt_queue_push_tasks``)
  and after a wakeup only if the running task is RT or DL and keeps the CPU (``task_woken_rt``); a CPU
  pulls in ``balance_rt`` only when ``prev`` left the RT queue and had a higher priority than anything
  still queued (``need_pull_rt_task``; a DL ``prev`` always qualifies, so a CPU whose DL task blocked
  pulls RT work too);
* **RT throttling** (``sched_rt_runtime_exceeded``, ``do_sched_rt_period_timer``; the default bandwidth
  control up to v6.11): RT execution on a CPU accumulates in ``rt_time``; above ``sched_rt_runtime_us``
  in a ``sched_rt_period_us`` window the RT queue is throttled (not picked) until the period timer has
  paid the excess back (``rt_time -= min(rt_time, runtime)`` per period). From v6.12 the fair_server
  deadline server (``deadline.py``) provides the guarantee instead (``SchedConfig.rt_bandwidth``).

Deviations from the kernel: no RT group scheduling, no RT_RUNTIME_SHARE (off by default since 5.x),
one period timer per CPU, aligned to time 0.
"""

from __future__ import annotations

from memsched.sim.engine import Prio
from memsched.sim.sched.preempt import Point, Resched
from memsched.sim.sched.sched import CoreOps, Rq, SchedClass, SchedTask
from memsched.uapi.sched import SchedPolicy
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC

__all__ = ["RtClass"]


class RtClass(SchedClass):
    """``rt_sched_class``."""

    rank = 2
    name = "rt"

    def __init__(self, core: CoreOps) -> None:
        super().__init__(core)
        cfg = core.cfg
        self.rr_slice = cfg.sched_rr_timeslice_ms * NSEC_PER_MSEC
        self.throttling = cfg.rt_bandwidth == "throttle" and cfg.sched_rt_runtime_us >= 0
        self.rt_runtime = cfg.sched_rt_runtime_us * NSEC_PER_USEC
        self.rt_period = cfg.sched_rt_period_us * NSEC_PER_USEC
        self.timers_started = False
        self.nr_throttles = 0

    # ---- queue order ----------------------------------------------------------------------------------------
    def enqueue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        q = rq.rt
        prio = p.prio
        i = len(q)
        while i > 0 and q[i - 1].prio < prio:
            i -= 1
        q.insert(i, p)
        if p.policy == SchedPolicy.RR and p.rt.time_slice <= 0:
            p.rt.time_slice = self.rr_slice
        if self.throttling and not self.timers_started:
            self._start_period_timers()

    def dequeue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        rq.rt.remove(p)

    def _requeue(self, rq: Rq, p: SchedTask, head: bool) -> None:
        q = rq.rt
        q.remove(p)
        prio = p.prio
        if head:
            i = 0
            while i < len(q) and q[i].prio > prio:
                i += 1
        else:
            i = len(q)
            while i > 0 and q[i - 1].prio < prio:
                i -= 1
        q.insert(i, p)

    def pick_task(self, rq: Rq) -> SchedTask | None:
        if rq.rt and not rq.rt_throttled:
            return rq.rt[0]
        return None

    def put_prev_task(self, rq: Rq, p: SchedTask) -> None:
        # A preempted RT task stays at the head of its priority list (it was not "yielded").
        return None

    def set_next_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def yield_task(self, rq: Rq, p: SchedTask) -> None:
        self._requeue(rq, p, head=False)

    # ---- accounting -----------------------------------------------------------------------------------------
    def update_curr(self, rq: Rq, p: SchedTask, delta: int) -> int:
        if self.throttling:
            rq.rt_time += delta
            if rq.rt_time > self.rt_runtime and not rq.rt_throttled:
                rq.rt_throttled = True  # sched_rt_runtime_exceeded()
                self.nr_throttles += 1
                return Resched.NOW
        return Resched.NONE

    def task_tick(self, rq: Rq, p: SchedTask) -> int:
        if p.policy != SchedPolicy.RR:
            return Resched.NONE
        rt_se = p.rt
        rt_se.time_slice -= self.core.tick_ns
        if rt_se.time_slice > 0:
            return Resched.NONE
        rt_se.time_slice = self.rr_slice
        if any(o is not p and o.prio == p.prio for o in rq.rt):
            self._requeue(rq, p, head=False)
            return Resched.NOW
        return Resched.NONE

    def wakeup_preempt(self, rq: Rq, p: SchedTask) -> int:
        curr = rq.curr
        if curr is not None and p.prio > curr.prio:
            return Resched.NOW
        return Resched.NONE

    # ---- throttling -------------------------------------------------------------------------------------------
    def _start_period_timers(self) -> None:
        self.timers_started = True
        core = self.core
        for rq in core.rqs:
            core.at(core.engine.now + self.rt_period, Prio.TIMER, self._period_timer, rq)

    def _period_timer(self, rq: Rq) -> None:
        core = self.core
        if rq.curr is not None and rq.curr.sched_class is self:
            core.update_curr(rq)
        rq.rt_time -= min(rq.rt_time, self.rt_runtime)
        core.at(core.engine.now + self.rt_period, Prio.TIMER, self._period_timer, rq)
        if rq.rt_throttled and rq.rt_time < self.rt_runtime:
            rq.rt_throttled = False
            if rq.rt:
                core.check_preempt(rq, rq.rt[0], Point.IRQ_EXIT)

    # ---- placement, push and pull -------------------------------------------------------------------------------
    def _cpu_prio(self, rq: Rq) -> int:
        """cpupri of a CPU: -1 idle, 0 fair, 1..99 RT priority, 100 deadline or stop."""
        curr = rq.curr
        if curr is None:
            return -1
        rank = curr.sched_class.rank
        if rank < 2:
            return 100
        if rank == 2:
            return int(curr.prio)
        return 0

    def find_lowest_rq(self, p: SchedTask) -> int | None:
        best = None
        best_prio = p.prio
        rqs = self.core.rqs
        for c in p.affinity:
            pr = self._cpu_prio(rqs[c])
            if pr < best_prio or (pr == best_prio and best is not None and c == p.cpu):
                best, best_prio = c, pr
        return best

    def select_task_rq(self, p: SchedTask, prev_cpu: int, waker_cpu: int) -> int:
        aff = p.affinity
        if prev_cpu not in aff:
            prev_cpu = aff[0]
        curr = self.core.rqs[prev_cpu].curr
        if (
            curr is not None
            and curr.sched_class.rank <= 2
            and (curr.sched_class.rank < 2 or curr.prio >= p.prio)
        ):
            target = self.find_lowest_rq(p)
            if target is not None and self._cpu_prio(self.core.rqs[target]) < p.prio:
                return target
        return prev_cpu

    def push_tasks(self, rq: Rq) -> None:
        """``push_rt_tasks()``: move the highest pushable task to a lower-priority CPU, while overloaded."""
        core = self.core
        while len(rq.rt) > 1:  # rt_overloaded()
            p = next((t for t in rq.rt if t is not rq.curr and len(t.affinity) > 1), None)
            if p is None:
                return
            if p.prio > self._cpu_prio(rq):
                # push_rt_task(): "next_task slipped in of higher priority than current": reschedule
                core.resched(rq, Resched.NOW, Point.ASYNC)
                return
            target = self.find_lowest_rq(p)
            if target is None or target == rq.cpu:
                return
            dst = core.rqs[target]
            if self._cpu_prio(dst) >= p.prio:
                return
            core.move_queued(p, rq, dst)
            core.check_preempt(dst, p, Point.ASYNC)

    def balance(self, rq: Rq, prev: SchedTask) -> bool:
        """``balance_rt()``: pull if ``prev`` left the RT queue and outranked what is still queued here."""
        # !on_rt_rq(&prev->rt) && need_pull_rt_task(): rq->rt.highest_prio.curr > prev->prio (a DL prev
        # always qualifies)
        left = not (prev.sched_class is self and prev.on_rq)
        if left and (
            prev.sched_class.rank < self.rank
            or (prev.sched_class is self and (not rq.rt or rq.rt[0].prio < prev.prio))
        ):
            self.pull(rq)
        if rq.dl or (rq.rt and not rq.rt_throttled):
            return True
        return self.core.stop_class.pick_task(rq) is not None

    def task_woken(self, rq: Rq, p: SchedTask) -> None:
        """``task_woken_rt()``: push if ``p`` waits behind an RT/DL task that keeps the CPU."""
        curr = rq.curr
        if (
            curr is not None
            and curr is not p
            and not rq.need_resched
            and len(p.affinity) > 1
            and curr.sched_class.rank < 3  # dl_task(curr) || rt_task(curr)
            and (len(curr.affinity) < 2 or self._cpu_prio(rq) >= p.prio)
        ):
            self.push_tasks(rq)

    def post_switch(self, rq: Rq) -> None:
        """``set_next_task_rt()`` → ``rt_queue_push_tasks()``: push what now waits here."""
        if len(rq.rt) > 1:
            self.push_tasks(rq)

    def pull(self, rq: Rq) -> None:
        """``pull_rt_task``: take the highest-priority queued RT task that would run here."""
        core = self.core
        best = None
        src = None
        mine = rq.rt[0].prio if rq.rt else 0
        for other in core.rqs:
            if other is rq or len(other.rt) < 2:
                continue
            for t in other.rt:
                if t is other.curr or rq.cpu not in t.affinity:
                    continue
                if t.prio > mine and (best is None or t.prio > best.prio):
                    ocurr = other.curr
                    if ocurr is not None and ocurr.sched_class is self and t.prio > ocurr.prio:
                        continue  # it will preempt there; let that CPU keep it
                    best, src = t, other
                break
        if best is not None and src is not None:
            core.move_queued(best, src, rq)
