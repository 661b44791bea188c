"""SCHED_DEADLINE for the exact scheduler: EDF + CBS, GRUB reclaiming, global EDF push/pull, fair_server.

Follows ``kernel/sched/deadline.c`` (v6.6–v6.13; read with the search tool: ``setup_new_dl_entity``,
``replenish_dl_entity``, ``dl_entity_overflow``, ``update_dl_revised_wakeup``, ``update_dl_entity``,
``dl_next_period``, ``start_dl_timer``, ``dl_task_timer``, ``dl_check_constrained_dl``,
``task_non_contending`` / ``task_contending`` / ``inactive_task_timer`` (including their ``TASK_DEAD`` branch:
a dead task's bandwidth is released at its 0-lag time; there is no ``task_dead_dl`` since v4.13),
``grub_reclaim`` (the v6.6 form ``max{u_i, U_max - U_inact - U_extra} / U_max``), ``update_curr_dl``,
``yield_task_dl``, ``select_task_rq_dl`` / ``find_later_rq``, ``push_dl_task`` / ``pull_dl_task``,
``balance_dl`` (pull only when ``prev`` left the DL queue), ``task_woken_dl``, ``set_next_task_dl``'s push
callback, ``enqueue_dl_entity`` with ``ENQUEUE_RESTORE`` (``setup_new_dl_entity`` when the deadline has
passed), and the dl_server / fair_server of v6.12+) and
``Documentation/scheduler/sched-deadline.rst`` (realtime.md §1). Parameter checks and admission control
are *not* reimplemented here: they are ``memsched.admission.checkparam_dl`` and ``DlBandwidth``, shared with
the live ``memsched rt admit``.

Rules, in the kernel's fixed point (``BW_SHIFT`` = 20, ``DL_SCALE`` = 10, ``RATIO_SHIFT`` = 8):

* wakeup (``update_dl_entity``): if ``d < t`` or ``q/(d-t) > runtime/deadline`` (compared as
  ``((d-t)>>10)·(runtime>>10) < (deadline>>10)·(q>>10)``) then ``d = t + deadline, q = runtime`` — except
  for a constrained task (deadline < period) whose ``d`` is still ahead: revised CBS,
  ``q = dl_density·(d-t) >> 20``;
* execution: ``q -= delta`` (scaled by ``grub_reclaim`` with ``SCHED_FLAG_RECLAIM``); at ``q <= 0`` (or after
  ``sched_yield``) the entity is throttled until ``d - deadline + period`` (``SCHED_FLAG_DL_OVERRUN`` counts
  a SIGXCPU); replenishment: ``while q <= 0: d += period; q += runtime``, and if ``d`` is still in the past,
  ``d = now + deadline, q = runtime``;
* GRUB: ``running_bw`` drops at the 0-lag time ``d - q·period/runtime`` after a task blocks (the inactive
  timer), ``this_bw`` holds all DL tasks of the CPU, ``extra_bw`` the unallocated bandwidth;
* global EDF: a woken task that cannot preempt the current DL task of its CPU goes to the CPU whose
  earliest deadline is latest (free CPUs first); overloaded CPUs push, CPUs that lower their priority pull;
* fair_server (deferred, v6.12+): per CPU, 50 ms every 1 s by default; fair execution is charged to it
  whether or not it runs; if fair tasks still have server budget at the zero-laxity instant ``d - q`` the
  server is enqueued as a DL entity and runs fair tasks ahead of RT until its budget is used.

Deviations from the kernel: runtime is enforced at the tick unless ``SchedConfig.hrtick_dl`` (the kernel's
default, HRTICK_DL off, is the default here too); no frequency/capacity scaling of runtime (all CPUs at full
speed, capacity 1024), so GRUB-PA is absent; no priority inheritance (dl_boosted); no cpusets/root-domain
changes: the machine is one root domain; the fair_server is started when a fair task is enqueued and stopped
when it finds no fair task at its zero-laxity instant (the kernel stops it from ``pick``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from memsched.admission import BW_SHIFT, BW_UNIT, DL_SCALE, DlBandwidth, to_ratio
from memsched.sim.engine import Event, Prio
from memsched.sim.sched.core import TaskState
from memsched.sim.sched.preempt import Point, Resched
from memsched.sim.sched.sched_class import (
    DEQUEUE_SLEEP,
    ENQUEUE_INITIAL,
    ENQUEUE_REPLENISH,
    ENQUEUE_RESTORE,
    ENQUEUE_WAKEUP,
    SchedClass,
    div_s64,
)
from memsched.uapi.sched import SchedFlag, SchedPolicy

if TYPE_CHECKING:
    from memsched.sim.sched.core import Rq, SchedCore, Task

__all__ = ["RATIO_SHIFT", "DlClass", "FairServer"]

RATIO_SHIFT = 8
RECLAIM = int(SchedFlag.RECLAIM)
DL_OVERRUN = int(SchedFlag.DL_OVERRUN)


class FairServer:
    """``rq->fair_server``: a per-CPU ``sched_dl_entity`` whose "task" is the fair class."""

    __slots__ = (
        "active",
        "cpu",
        "dl_bw",
        "dl_d",
        "dl_deadline",
        "dl_flags",
        "dl_period",
        "dl_q",
        "dl_queued",
        "dl_runtime",
        "dl_throttled",
        "nr_runs",
        "timer",
    )

    def __init__(self, cpu: int, runtime: int, period: int) -> None:
        self.cpu = cpu
        self.dl_runtime = runtime
        self.dl_deadline = period
        self.dl_period = period
        self.dl_bw = to_ratio(period, runtime)
        self.dl_flags = 0
        self.dl_d = 0
        self.dl_q = 0
        self.dl_queued = False
        self.dl_throttled = False
        self.active = False
        self.timer: Event | None = None
        self.nr_runs = 0


class DlClass(SchedClass):
    """``dl_sched_class``."""

    rank = 1
    name = "deadline"

    def __init__(self, core: SchedCore) -> None:
        super().__init__(core)
        cfg = core.cfg
        self.servers = cfg.rt_bandwidth == "fair-server" and cfg.fair_server_runtime_ns > 0
        unlimited = cfg.sched_rt_runtime_us < 0
        fs = (cfg.fair_server_runtime_ns, cfg.fair_server_period_ns) if self.servers else None
        #: ``rd->dl_bw``: the admission-control state of the machine's one root domain.
        self.dl_b = DlBandwidth.symmetric(
            core.nr_cpus,
            rt_runtime_us=cfg.sched_rt_runtime_us,
            rt_period_us=cfg.sched_rt_period_us,
            fair_server=fs,
        )
        rt_runtime = cfg.sched_rt_runtime_us * 1000
        rt_period = cfg.sched_rt_period_us * 1000
        if unlimited:
            self.bw_ratio = 1 << RATIO_SHIFT
            self.max_bw = BW_UNIT
        else:
            self.bw_ratio = to_ratio(rt_runtime, rt_period) >> (BW_SHIFT - RATIO_SHIFT)
            self.max_bw = to_ratio(rt_period, rt_runtime)
        self.nr_throttled = 0
        self.nr_replenish_lagged = 0

    def init_rqs(self) -> None:
        core = self.core
        for rq in core.rqs:
            rq.dl_extra_bw = self.max_bw
        if self.servers:
            cfg = core.cfg
            for rq in core.rqs:
                s = FairServer(rq.cpu, cfg.fair_server_runtime_ns, cfg.fair_server_period_ns)
                rq.fair_server = s
                rq.dl_this_bw += s.dl_bw
                self.update_extra_bw(-s.dl_bw)

    # ---- bandwidth bookkeeping -----------------------------------------------------------------------------
    def update_extra_bw(self, delta_bw: int) -> None:
        """``__dl_update()``: spread an admitted (negative) or released (positive) bandwidth over the CPUs."""
        share = div_s64(delta_bw, self.core.nr_cpus)
        for rq in self.core.rqs:
            rq.dl_extra_bw += share

    def _running_bw(self, rq: Rq, delta: int) -> None:
        curr = rq.curr
        reclaiming = curr is not None and curr.sched_class is self and curr.dl_flags & RECLAIM
        if reclaiming:
            self.core.update_curr(rq)  # charge what ran at the old rate first
        rq.dl_running_bw += delta
        if reclaiming:
            self.core.rearm_budget(rq)

    def task_contending(self, rq: Rq, p: Task) -> None:
        if p.dl_non_contending:
            p.dl_non_contending = False
            if p.inactive_timer is not None:
                p.inactive_timer.cancel()
                p.inactive_timer = None
        else:
            self._running_bw(rq, p.dl_bw)

    def task_non_contending(self, rq: Rq, p: Task) -> None:
        now = self.core.engine.now
        zerolag = p.dl_d - div_s64(p.dl_q * p.dl_period, p.dl_runtime) - now
        if zerolag < 0 or p.inactive_timer is not None:
            self._running_bw(rq, -p.dl_bw)
            if p.state == TaskState.EXITED:
                self._release_dead(rq, p)
            return
        p.dl_non_contending = True
        p.inactive_timer = self.core.at(now + zerolag, Prio.TIMER, self._inactive_timer, p)

    def _inactive_timer(self, p: Task) -> None:
        p.inactive_timer = None
        if not p.dl_non_contending:
            return
        p.dl_non_contending = False
        rq = self.core.rqs[p.cpu]
        self._running_bw(rq, -p.dl_bw)
        if p.state == TaskState.EXITED:
            self._release_dead(rq, p)

    def _release_dead(self, rq: Rq, p: Task) -> None:
        """``TASK_DEAD`` at the 0-lag time: ``sub_rq_bw()``, ``__dl_sub()`` (total_bw and extra_bw)."""
        rq.dl_this_bw -= p.dl_bw
        self.dl_b.sub(p.dl_bw)
        self.update_extra_bw(p.dl_bw)
        if p.dl_timer is not None:
            p.dl_timer.cancel()
            p.dl_timer = None

    # ---- CBS --------------------------------------------------------------------------------------------------
    def _overflow(self, p: Task, t: int) -> bool:
        """``dl_entity_overflow()``: ``q/(d-t) > runtime/deadline`` at ~1 µs resolution."""
        if p.dl_q <= 0:
            return True
        left = (p.dl_deadline >> DL_SCALE) * (p.dl_q >> DL_SCALE)
        right = ((p.dl_d - t) >> DL_SCALE) * (p.dl_runtime >> DL_SCALE)
        return right < left

    def update_dl_entity(self, p: Task) -> None:
        now = self.core.engine.now
        if p.dl_d < now or self._overflow(p, now):
            if p.dl_deadline != p.dl_period and not p.dl_d < now:
                p.dl_q = (p.dl_density * (p.dl_d - now)) >> BW_SHIFT  # revised CBS
                return
            p.dl_d = now + p.dl_deadline
            p.dl_q = p.dl_runtime

    def replenish(self, p: Task) -> None:
        now = self.core.engine.now
        if p.dl_yielded and p.dl_q > 0:
            p.dl_q = 0
        while p.dl_q <= 0:
            p.dl_d += p.dl_period
            p.dl_q += p.dl_runtime
        if p.dl_d < now:  # "DL replenish lagged too much"
            self.nr_replenish_lagged += 1
            p.dl_d = now + p.dl_deadline
            p.dl_q = p.dl_runtime
        p.dl_yielded = False
        p.dl_throttled = False

    def start_dl_timer(self, p: Task) -> bool:
        act = p.dl_d - p.dl_deadline + p.dl_period
        now = self.core.engine.now
        if act < now:
            return False
        if p.dl_timer is None:
            p.dl_timer = self.core.at(act, Prio.TIMER, self._dl_timer, p)
        return True

    def _dl_timer(self, p: Task) -> None:
        p.dl_timer = None
        core = self.core
        if p.policy != SchedPolicy.DEADLINE or not p.dl_throttled:
            return
        if not p.on_rq:
            self.replenish(p)  # throttled during sched-out: the next wakeup enqueues normally
            return
        rq = core.rqs[p.cpu]
        self._insert(rq, p, replenish=True)
        core.tick_dep(rq)  # enqueue_task_dl(ENQUEUE_REPLENISH) → add_nr_running()
        core.check_preempt(rq, p, Point.IRQ_EXIT)
        self.push_tasks(rq)

    def _dl_check_constrained(self, p: Task) -> None:
        now = self.core.engine.now
        if p.dl_d < now < p.dl_d - p.dl_deadline + p.dl_period:
            if not self.start_dl_timer(p):
                return
            p.dl_throttled = True
            p.dl_q = min(p.dl_q, 0)

    def _insert(self, rq: Rq, p: Task, replenish: bool = False) -> None:
        if replenish:
            self.replenish(p)
        if not p.dl_queued:
            rq.dl.append(p)
            p.dl_queued = True

    # ---- struct sched_class ------------------------------------------------------------------------------------
    def enqueue_task(self, rq: Rq, p: Task, flags: int) -> None:
        if not p.dl_throttled and p.dl_deadline != p.dl_period:
            self._dl_check_constrained(p)
        wake = flags & (ENQUEUE_WAKEUP | ENQUEUE_INITIAL)
        if p.dl_throttled and not flags & ENQUEUE_REPLENISH:
            if wake:
                self.task_contending(rq, p)
            elif p.on_rq:
                self._running_bw(rq, p.dl_bw)  # a migrating queued task brings its running_bw
            return
        if wake:
            self.task_contending(rq, p)
            self.update_dl_entity(p)
            self._insert(rq, p)
        elif flags & ENQUEUE_REPLENISH:
            self._insert(rq, p, replenish=True)
        else:  # queued migration (push/pull) or a sched_setattr() change (ENQUEUE_RESTORE)
            self._running_bw(rq, p.dl_bw)
            if flags & ENQUEUE_RESTORE and p.dl_d < self.core.engine.now:
                p.dl_d = self.core.engine.now + p.dl_deadline  # setup_new_dl_entity()
                p.dl_q = p.dl_runtime
            self._insert(rq, p)

    def dequeue_task(self, rq: Rq, p: Task, flags: int) -> None:
        if p.dl_queued:
            rq.dl.remove(p)
            p.dl_queued = False
        if flags & DEQUEUE_SLEEP:
            self.task_non_contending(rq, p)
        else:  # queued migration: running_bw leaves with it
            self._running_bw(rq, -p.dl_bw)

    def migrate_task_rq(self, p: Task, src: Rq, dst: Rq) -> None:
        if not p.on_rq and p.dl_non_contending:  # waking on another CPU while ActiveNonContending
            p.dl_non_contending = False
            if p.inactive_timer is not None:
                p.inactive_timer.cancel()
                p.inactive_timer = None
            self._running_bw(src, -p.dl_bw)
        src.dl_this_bw -= p.dl_bw
        dst.dl_this_bw += p.dl_bw

    def pick_task(self, rq: Rq) -> Task | None:
        dl = rq.dl
        while dl:
            best = dl[0]
            for e in dl:
                if e.dl_d < best.dl_d:
                    best = e
            if not isinstance(best, FairServer):
                return best
            p = self.core.fair_class.pick_task(rq)
            if p is not None:
                return p
            self._server_stop(rq, best)
        return None

    def put_prev_task(self, rq: Rq, p: Task) -> None:
        return None

    def set_next_task(self, rq: Rq, p: Task) -> None:
        return None

    def grub_reclaim(self, delta: int, rq: Rq, p: Task | FairServer) -> int:
        """``grub_reclaim()`` (v6.6+): ``delta · max{u_i, U_max − U_inact − U_extra} / U_max``."""
        u_inact = rq.dl_this_bw - rq.dl_running_bw
        if u_inact + rq.dl_extra_bw > self.max_bw - p.dl_bw:
            u_act = p.dl_bw
        else:
            u_act = self.max_bw - u_inact - rq.dl_extra_bw
        u_act = (u_act * self.bw_ratio) >> RATIO_SHIFT
        return (delta * u_act) >> BW_SHIFT

    def _u_act(self, rq: Rq, p: Task | FairServer) -> int:
        return self.grub_reclaim(BW_UNIT, rq, p)

    def update_curr(self, rq: Rq, p: Task, delta: int) -> int:
        if p.dl_flags & RECLAIM:
            delta = self.grub_reclaim(delta, rq, p)
        p.dl_q -= delta
        if p.dl_q <= 0 or p.dl_yielded:
            return self._throttle(rq, p)
        return Resched.NONE

    def _throttle(self, rq: Rq, p: Task) -> int:
        if p.dl_throttled:
            return Resched.NONE
        p.dl_throttled = True
        self.nr_throttled += 1
        if p.dl_q <= 0 and not p.dl_yielded and p.dl_flags & DL_OVERRUN:
            p.dl_overruns += 1  # SIGXCPU
        if p.dl_queued:
            rq.dl.remove(p)
            p.dl_queued = False
        if not self.start_dl_timer(p):
            self._insert(rq, p, replenish=True)
        return Resched.NOW

    def yield_task(self, rq: Rq, p: Task) -> None:
        p.dl_yielded = True
        lvl = self._throttle(rq, p)
        if lvl:
            rq.need_resched = Resched.NOW

    def task_tick(self, rq: Rq, p: Task) -> int:
        return Resched.NONE  # update_curr_dl already ran from the core's tick

    def wakeup_preempt(self, rq: Rq, p: Task) -> int:
        curr = rq.curr
        if curr is not None and p.dl_d < curr.dl_d:
            return Resched.NOW
        return Resched.NONE

    def budget_wall_ns(self, rq: Rq, t: Task) -> int | None:
        """Wall time until the running entity's budget runs out (for the DL hrtick), or ``None``."""
        e: Task | FairServer
        if t.sched_class is self:
            e = t
        else:
            s = rq.fair_server
            if s is None or not s.dl_queued or t.sched_class is not self.core.fair_class:
                return None
            e = s
        q = e.dl_q
        if q <= 0:
            return 0
        if e.dl_flags & RECLAIM:
            u_act = self._u_act(rq, e)
            return -((-q << BW_SHIFT) // u_act) if u_act else None
        return int(q)

    # ---- global EDF: placement, push, pull ----------------------------------------------------------------------
    @staticmethod
    def _earliest(rq: Rq) -> int | None:
        dl = rq.dl
        if not dl:
            return None
        return min(e.dl_d for e in dl)

    def find_later_rq(self, p: Task) -> int | None:
        """``find_later_rq()`` via cpudl: a CPU without DL work, else the one with the latest deadline."""
        rqs = self.core.rqs
        free = None
        latest = None
        latest_d = p.dl_d
        for c in p.affinity:
            e = self._earliest(rqs[c])
            if e is None:
                if free is None or c == p.cpu:
                    free = c
            elif e > latest_d:
                latest, latest_d = c, e
        return free if free is not None else latest

    def select_task_rq(self, p: Task, prev_cpu: int, waker_cpu: int) -> int:
        aff = p.affinity
        if prev_cpu not in aff:
            prev_cpu = aff[0]
        curr = self.core.rqs[prev_cpu].curr
        if (
            curr is not None
            and curr.sched_class is self
            and (len(curr.affinity) < 2 or not p.dl_d < curr.dl_d)
            and len(aff) > 1
        ):
            target = self.find_later_rq(p)
            if target is not None:
                return target
        return prev_cpu

    def push_tasks(self, rq: Rq) -> None:
        core = self.core
        while len(rq.dl) > 1:
            curr = rq.curr
            p: Task | None = None
            for e in rq.dl:
                if e is curr or isinstance(e, FairServer) or len(e.affinity) < 2:
                    continue
                if p is None or e.dl_d < p.dl_d:
                    p = e
            if p is None:
                return
            if curr is not None and curr.sched_class is self and p.dl_d < curr.dl_d and len(curr.affinity) > 1:
                core.resched(rq, Resched.NOW, Point.ASYNC)  # it would preempt here: reschedule instead
                return
            target = self.find_later_rq(p)
            if target is None or target == rq.cpu:
                return
            dst = core.rqs[target]
            core.move_queued(p, rq, dst)
            core.check_preempt(dst, p, Point.ASYNC)

    def balance(self, rq: Rq, prev: Task) -> bool:
        """``balance_dl()``: pull if ``prev`` was a DL task that left the DL queue (blocked, throttled)."""
        if prev.sched_class is self and not prev.dl_queued:
            self.pull(rq)
        return bool(rq.dl) or self.core.stop_class.pick_task(rq) is not None

    def task_woken(self, rq: Rq, p: Task) -> None:
        """``task_woken_dl()``: push if ``p`` waits behind a DL task it cannot preempt (or a pinned one)."""
        curr = rq.curr
        if (
            curr is not None
            and curr is not p
            and not rq.need_resched
            and len(p.affinity) > 1
            and curr.sched_class is self
            and (len(curr.affinity) < 2 or not p.dl_d < curr.dl_d)
        ):
            self.push_tasks(rq)

    def post_switch(self, rq: Rq) -> None:
        """``set_next_task_dl()`` → ``deadline_queue_push_tasks()``: push what now waits here."""
        if len(rq.dl) > 1:
            self.push_tasks(rq)

    def pull(self, rq: Rq) -> None:
        """``pull_dl_task()``: take queued DL tasks from overloaded CPUs that would run earlier here."""
        core = self.core
        dmin = self._earliest(rq)
        cpu = rq.cpu
        for src in core.rqs:
            if src is rq or len(src.dl) < 2:
                continue
            scurr = src.curr
            p: Task | None = None
            for e in src.dl:
                if e is scurr or isinstance(e, FairServer) or cpu not in e.affinity:
                    continue
                if p is None or e.dl_d < p.dl_d:
                    p = e
            if p is None or (dmin is not None and not p.dl_d < dmin):
                continue
            if scurr is not None and scurr.sched_class is self and p.dl_d < scurr.dl_d:
                continue  # it preempts there; that CPU will push
            core.move_queued(p, src, rq)
            dmin = p.dl_d

    # ---- fair_server (dl_server, deferred) -------------------------------------------------------------------------
    def server_start(self, rq: Rq) -> None:
        s = rq.fair_server
        if s is None or s.active:
            return
        now = self.core.engine.now
        s.active = True
        s.dl_d = now + s.dl_deadline
        s.dl_q = s.dl_runtime
        s.dl_throttled = False
        self._running_bw(rq, s.dl_bw)
        self._arm_server(rq, s, s.dl_d - s.dl_q, self._server_zero_laxity)

    def _arm_server(self, rq: Rq, s: FairServer, when: int, fn: Callable[[Rq, FairServer], None]) -> None:
        if s.timer is not None:
            s.timer.cancel()
        now = self.core.engine.now
        s.timer = self.core.at(max(when, now), Prio.TIMER, fn, rq, s)

    def _server_stop(self, rq: Rq, s: FairServer) -> None:
        if s.dl_queued:
            rq.dl.remove(s)
            s.dl_queued = False
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        if s.active:
            s.active = False
            self._running_bw(rq, -s.dl_bw)

    def server_charge(self, rq: Rq, delta: int) -> int:
        """``dl_server_update()``: fair execution consumes the server's runtime, running or not."""
        s = rq.fair_server
        if s is None or not s.active or s.dl_throttled:
            return Resched.NONE
        s.dl_q -= delta
        if s.dl_q > 0:
            return Resched.NONE
        s.dl_throttled = True
        was_running = s.dl_queued
        if s.dl_queued:
            rq.dl.remove(s)
            s.dl_queued = False
        self._arm_server(rq, s, s.dl_d - s.dl_deadline + s.dl_period, self._server_replenish)
        return Resched.NOW if was_running else Resched.NONE

    def _server_zero_laxity(self, rq: Rq, s: FairServer) -> None:
        s.timer = None
        if not rq.fair:
            self._server_stop(rq, s)
            return
        curr = rq.curr
        if curr is not None and curr.sched_class is self.core.fair_class:
            self.core.update_curr(rq)  # may have used the budget up meanwhile
        if s.dl_throttled or s.dl_q <= 0:
            return
        s.nr_runs += 1
        rq.dl.append(s)
        s.dl_queued = True
        if (
            curr is None
            or curr.sched_class.rank > self.rank
            or (curr.sched_class is self and s.dl_d < curr.dl_d)
        ):
            self.core.resched(rq, Resched.NOW, Point.IRQ_EXIT)

    def _server_replenish(self, rq: Rq, s: FairServer) -> None:
        s.timer = None
        now = self.core.engine.now
        while s.dl_q <= 0:
            s.dl_d += s.dl_period
            s.dl_q += s.dl_runtime
        if s.dl_d < now:
            s.dl_d = now + s.dl_deadline
            s.dl_q = s.dl_runtime
        s.dl_throttled = False
        if rq.fair:
            self._arm_server(rq, s, s.dl_d - s.dl_q, self._server_zero_laxity)
        else:
            self._server_stop(rq, s)
