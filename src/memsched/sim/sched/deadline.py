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
passed), and the dl_server / fair_server of v6.12+) and ``Documentation/scheduler/sched-deadline.rst``.
Parameter checks and admission control are *not* reimplemented here: they are
``memsched.admission.checkparam_dl`` and ``DlBandwidth``, shared with the live ``memsched rt admit``.

The rules that concern one ``struct sched_dl_entity`` (:func:`update_dl_entity`, :func:`dl_entity_overflow`,
:func:`replenish_dl_entity`, :func:`replenish_dl_new_period`, :func:`dl_next_period`) are functions of a
:class:`~memsched.sim.sched.sched.DlEntity` and the time, written once for deadline tasks and the
fair_server, which both embed one.

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

from memsched.admission import BW_SHIFT, BW_UNIT, DL_SCALE, DlBandwidth, to_ratio
from memsched.sim.engine import Prio
from memsched.sim.sched.preempt import Point, Resched
from memsched.sim.sched.sched import (
    DEQUEUE_SLEEP,
    ENQUEUE_INITIAL,
    ENQUEUE_REPLENISH,
    ENQUEUE_RESTORE,
    ENQUEUE_WAKEUP,
    CoreOps,
    DlEntity,
    FairServer,
    Rq,
    SchedClass,
    SchedTask,
    SchedTaskState,
    div_s64,
)
from memsched.uapi.sched import SchedFlag, SchedPolicy

__all__ = [
    "RATIO_SHIFT",
    "DlClass",
    "dl_entity_overflow",
    "dl_next_period",
    "replenish_dl_entity",
    "replenish_dl_new_period",
    "update_dl_entity",
]

RATIO_SHIFT = 8
RECLAIM = int(SchedFlag.RECLAIM)
DL_OVERRUN = int(SchedFlag.DL_OVERRUN)


def _completes_now(rq: Rq, now: int) -> bool:
    """Whether the running task's current phase completes at ``now`` (its completion event is still to run)."""
    ev = rq.complete_ev
    return ev is not None and not ev.cancelled and ev.time == now


# ---- the rules of one sched_dl_entity ----------------------------------------------------------------------
def replenish_dl_new_period(dl_se: DlEntity, now: int) -> None:
    """``replenish_dl_new_period()``: a new period starts now, with a full runtime."""
    dl_se.deadline = now + dl_se.dl_deadline
    dl_se.runtime = dl_se.dl_runtime


def dl_next_period(dl_se: DlEntity) -> int:
    """``dl_next_period()``: the start of the entity's next period."""
    return dl_se.deadline - dl_se.dl_deadline + dl_se.dl_period


def dl_entity_overflow(dl_se: DlEntity, t: int) -> bool:
    """``dl_entity_overflow()``: ``q/(d-t) > runtime/deadline`` at ~1 µs resolution."""
    if dl_se.runtime <= 0:
        return True
    left = (dl_se.dl_deadline >> DL_SCALE) * (dl_se.runtime >> DL_SCALE)
    right = ((dl_se.deadline - t) >> DL_SCALE) * (dl_se.dl_runtime >> DL_SCALE)
    return right < left


def update_dl_entity(dl_se: DlEntity, now: int) -> None:
    """``update_dl_entity()`` at a wakeup: keep (d, q), revise q (constrained deadline), or start afresh."""
    if dl_se.deadline < now or dl_entity_overflow(dl_se, now):
        if dl_se.dl_deadline != dl_se.dl_period and not dl_se.deadline < now:
            # update_dl_revised_wakeup(): q = dl_density·(d - t)
            dl_se.runtime = (dl_se.dl_density * (dl_se.deadline - now)) >> BW_SHIFT
            return
        replenish_dl_new_period(dl_se, now)


def replenish_dl_entity(dl_se: DlEntity, now: int) -> bool:
    """``replenish_dl_entity()``: repay an overrun by whole periods; True if it lagged behind ``now``."""
    if dl_se.yielded and dl_se.runtime > 0:
        dl_se.runtime = 0
    while dl_se.runtime <= 0:
        dl_se.deadline += dl_se.dl_period
        dl_se.runtime += dl_se.dl_runtime
    lagged = dl_se.deadline < now
    if lagged:  # "DL replenish lagged too much"
        replenish_dl_new_period(dl_se, now)
    dl_se.yielded = False
    dl_se.throttled = False
    return lagged


class DlClass(SchedClass):
    """``dl_sched_class``."""

    rank = 1
    name = "deadline"

    def __init__(self, core: CoreOps) -> None:
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
                rq.dl_this_bw += s.dl.dl_bw
                self.update_extra_bw(-s.dl.dl_bw)

    # ---- bandwidth bookkeeping -----------------------------------------------------------------------------
    def update_extra_bw(self, delta_bw: int) -> None:
        """``__dl_update()``: spread an admitted (negative) or released (positive) bandwidth over the CPUs."""
        share = div_s64(delta_bw, self.core.nr_cpus)
        for rq in self.core.rqs:
            rq.dl_extra_bw += share

    def _running_bw(self, rq: Rq, delta: int) -> None:
        curr = rq.curr
        reclaiming = curr is not None and curr.sched_class is self and curr.dl.flags & RECLAIM
        if reclaiming:
            self.core.update_curr(rq)  # charge what ran at the old rate first
        rq.dl_running_bw += delta
        if reclaiming:
            self.core.rearm_budget(rq)

    def _task_contending(self, rq: Rq, p: SchedTask) -> None:
        dl_se = p.dl
        if dl_se.non_contending:
            dl_se.non_contending = False
            if dl_se.inactive_timer is not None:
                dl_se.inactive_timer.cancel()
                dl_se.inactive_timer = None
        else:
            self._running_bw(rq, dl_se.dl_bw)

    def _task_non_contending(self, rq: Rq, p: SchedTask) -> None:
        dl_se = p.dl
        now = self.core.engine.now
        zerolag = dl_se.deadline - div_s64(dl_se.runtime * dl_se.dl_period, dl_se.dl_runtime) - now
        if zerolag < 0 or dl_se.inactive_timer is not None:
            self._running_bw(rq, -dl_se.dl_bw)
            if p.state == SchedTaskState.EXITED:
                self._release_dead(rq, p)
            return
        dl_se.non_contending = True
        dl_se.inactive_timer = self.core.at(now + zerolag, Prio.TIMER, self._inactive_timer, p)

    def _inactive_timer(self, p: SchedTask) -> None:
        dl_se = p.dl
        dl_se.inactive_timer = None
        if not dl_se.non_contending:
            return
        dl_se.non_contending = False
        rq = self.core.rqs[p.cpu]
        self._running_bw(rq, -dl_se.dl_bw)
        if p.state == SchedTaskState.EXITED:
            self._release_dead(rq, p)

    def _release_dead(self, rq: Rq, p: SchedTask) -> None:
        """``TASK_DEAD`` at the 0-lag time: ``sub_rq_bw()``, ``__dl_sub()`` (total_bw and extra_bw)."""
        dl_se = p.dl
        rq.dl_this_bw -= dl_se.dl_bw
        self.dl_b.sub(dl_se.dl_bw)
        self.update_extra_bw(dl_se.dl_bw)
        if dl_se.dl_timer is not None:
            dl_se.dl_timer.cancel()
            dl_se.dl_timer = None

    # ---- CBS --------------------------------------------------------------------------------------------------
    def _replenish(self, dl_se: DlEntity) -> None:
        """:func:`replenish_dl_entity` now, counting lagged replenishments."""
        if replenish_dl_entity(dl_se, self.core.engine.now):
            self.nr_replenish_lagged += 1

    def _start_dl_timer(self, p: SchedTask) -> bool:
        """``start_dl_timer()``: arm the replenishment at the next period; False if that is already past."""
        dl_se = p.dl
        act = dl_next_period(dl_se)
        if act < self.core.engine.now:
            return False
        if dl_se.dl_timer is None:
            dl_se.dl_timer = self.core.at(act, Prio.TIMER, self._dl_timer, p)
        return True

    def _dl_timer(self, p: SchedTask) -> None:
        """``dl_task_timer()``: replenish a throttled task and enqueue it again."""
        dl_se = p.dl
        dl_se.dl_timer = None
        core = self.core
        if p.policy != SchedPolicy.DEADLINE or not dl_se.throttled:
            return
        if not p.on_rq:
            self._replenish(dl_se)  # throttled during sched-out: the next wakeup enqueues normally
            return
        rq = core.rqs[p.cpu]
        self._insert(rq, dl_se, replenish=True)
        core.tick_dep(rq)  # enqueue_task_dl(ENQUEUE_REPLENISH) → add_nr_running()
        core.check_preempt(rq, p, Point.IRQ_EXIT)
        self._push_tasks(rq)

    def _dl_check_constrained(self, p: SchedTask) -> None:
        """``dl_check_constrained_dl()``: woken after its deadline, before its next period: throttle."""
        dl_se = p.dl
        now = self.core.engine.now
        if dl_se.deadline < now < dl_next_period(dl_se):
            if not self._start_dl_timer(p):
                return
            dl_se.throttled = True
            dl_se.runtime = min(dl_se.runtime, 0)

    def _insert(self, rq: Rq, dl_se: DlEntity, replenish: bool = False) -> None:
        if replenish:
            self._replenish(dl_se)
        if not dl_se.queued:
            rq.dl.append(dl_se)
            dl_se.queued = True

    # ---- struct sched_class ------------------------------------------------------------------------------------
    def enqueue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        dl_se = p.dl
        if not dl_se.throttled and dl_se.dl_deadline != dl_se.dl_period:
            self._dl_check_constrained(p)
        wake = flags & (ENQUEUE_WAKEUP | ENQUEUE_INITIAL)
        if dl_se.throttled and not flags & ENQUEUE_REPLENISH:
            if wake:
                self._task_contending(rq, p)
            elif p.on_rq:
                self._running_bw(rq, dl_se.dl_bw)  # a migrating queued task brings its running_bw
            return
        if wake:
            self._task_contending(rq, p)
            update_dl_entity(dl_se, self.core.engine.now)
            self._insert(rq, dl_se)
        elif flags & ENQUEUE_REPLENISH:
            self._insert(rq, dl_se, replenish=True)
        else:  # queued migration (push/pull) or a sched_setattr() change (ENQUEUE_RESTORE)
            self._running_bw(rq, dl_se.dl_bw)
            now = self.core.engine.now
            if flags & ENQUEUE_RESTORE and dl_se.deadline < now:
                replenish_dl_new_period(dl_se, now)  # setup_new_dl_entity()
            self._insert(rq, dl_se)

    def dequeue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        dl_se = p.dl
        if dl_se.queued:
            rq.dl.remove(dl_se)
            dl_se.queued = False
        if flags & DEQUEUE_SLEEP:
            self._task_non_contending(rq, p)
        else:  # queued migration: running_bw leaves with it
            self._running_bw(rq, -dl_se.dl_bw)

    def migrate_task_rq(self, p: SchedTask, src: Rq, dst: Rq) -> None:
        dl_se = p.dl
        if not p.on_rq and dl_se.non_contending:  # waking on another CPU while ActiveNonContending
            dl_se.non_contending = False
            if dl_se.inactive_timer is not None:
                dl_se.inactive_timer.cancel()
                dl_se.inactive_timer = None
            self._running_bw(src, -dl_se.dl_bw)
        src.dl_this_bw -= dl_se.dl_bw
        dst.dl_this_bw += dl_se.dl_bw

    def pick_task(self, rq: Rq) -> SchedTask | None:
        dl = rq.dl
        while dl:
            best = dl[0]
            for e in dl:
                if e.deadline < best.deadline:
                    best = e
            p = best.task
            if p is not None:
                return p
            # the fair_server's entity: it runs whatever the fair class picks
            p = self.core.fair_class.pick_task(rq)
            if p is not None:
                return p
            self._server_stop(rq, best)
        return None

    def put_prev_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def set_next_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def grub_reclaim(self, delta: int, rq: Rq, dl_se: DlEntity) -> int:
        """``grub_reclaim()`` (v6.6+): ``delta · max{u_i, U_max − U_inact − U_extra} / U_max``."""
        u_inact = rq.dl_this_bw - rq.dl_running_bw
        if u_inact + rq.dl_extra_bw > self.max_bw - dl_se.dl_bw:
            u_act = dl_se.dl_bw
        else:
            u_act = self.max_bw - u_inact - rq.dl_extra_bw
        u_act = (u_act * self.bw_ratio) >> RATIO_SHIFT
        return (delta * u_act) >> BW_SHIFT

    def update_curr(self, rq: Rq, p: SchedTask, delta: int) -> int:
        dl_se = p.dl
        if dl_se.flags & RECLAIM:
            delta = self.grub_reclaim(delta, rq, dl_se)
        dl_se.runtime -= delta
        if dl_se.runtime <= 0 or dl_se.yielded:
            if dl_se.runtime == 0 and not dl_se.yielded and _completes_now(rq, self.core.engine.now):
                # The running phase ends at this instant with the last of the runtime: the completion goes
                # first (as against the task's own budget hrtick, core.PRIO_BUDGET), also when another event
                # of this instant (a timer's wakeup) brings the accounting forward; if the task runs on, the
                # budget hrtick right after the completion throttles it.
                return Resched.NONE
            return self._throttle(rq, p)
        return Resched.NONE

    def _throttle(self, rq: Rq, p: SchedTask) -> int:
        dl_se = p.dl
        if dl_se.throttled:
            return Resched.NONE
        dl_se.throttled = True
        self.nr_throttled += 1
        if dl_se.runtime <= 0 and not dl_se.yielded and dl_se.flags & DL_OVERRUN:
            dl_se.overruns += 1  # SIGXCPU
        if dl_se.queued:
            rq.dl.remove(dl_se)
            dl_se.queued = False
        if not self._start_dl_timer(p):
            self._insert(rq, dl_se, replenish=True)
        return Resched.NOW

    def yield_task(self, rq: Rq, p: SchedTask) -> None:
        p.dl.yielded = True
        lvl = self._throttle(rq, p)
        if lvl:
            rq.need_resched = Resched.NOW

    def task_tick(self, rq: Rq, p: SchedTask) -> int:
        return Resched.NONE  # update_curr_dl already ran from the core's tick

    def wakeup_preempt(self, rq: Rq, p: SchedTask) -> int:
        curr = rq.curr
        if curr is not None and p.dl.deadline < curr.dl.deadline:
            return Resched.NOW
        return Resched.NONE

    def budget_wall_ns(self, rq: Rq, t: SchedTask) -> int | None:
        """Wall time until the running entity's budget runs out (for the DL hrtick), or ``None``."""
        if t.sched_class is self:
            dl_se = t.dl
        else:
            s = rq.fair_server
            if s is None or not s.dl.queued or t.sched_class is not self.core.fair_class:
                return None
            dl_se = s.dl
        q = dl_se.runtime
        if q <= 0:
            return 0
        if dl_se.flags & RECLAIM:
            u_act = self.grub_reclaim(BW_UNIT, rq, dl_se)
            return -((-q << BW_SHIFT) // u_act) if u_act else None
        return int(q)

    # ---- global EDF: placement, push, pull ----------------------------------------------------------------------
    @staticmethod
    def _earliest(rq: Rq) -> int | None:
        """The earliest deadline queued on ``rq`` (cpudl's key for that CPU), or ``None``."""
        dl = rq.dl
        if not dl:
            return None
        # a plain loop: min() over a comprehension costs 2.5x as much on these few-entity queues
        d = dl[0].deadline
        for e in dl:
            if e.deadline < d:  # noqa: PLR1730
                d = e.deadline
        return d

    def _find_later_rq(self, p: SchedTask) -> int | None:
        """``find_later_rq()`` via cpudl: a CPU without DL work, else the one with the latest deadline."""
        rqs = self.core.rqs
        free = None
        latest = None
        latest_d = p.dl.deadline
        for c in p.affinity:
            e = self._earliest(rqs[c])
            if e is None:
                if free is None or c == p.cpu:
                    free = c
            elif e > latest_d:
                latest, latest_d = c, e
        return free if free is not None else latest

    def select_task_rq(self, p: SchedTask, prev_cpu: int, waker_cpu: int) -> int:
        aff = p.affinity
        if prev_cpu not in aff:
            prev_cpu = aff[0]
        curr = self.core.rqs[prev_cpu].curr
        if (
            curr is not None
            and curr.sched_class is self
            and (len(curr.affinity) < 2 or not p.dl.deadline < curr.dl.deadline)
            and len(aff) > 1
        ):
            target = self._find_later_rq(p)
            if target is not None:
                return target
        return prev_cpu

    @staticmethod
    def _pushable(rq: Rq, cpu: int) -> SchedTask | None:
        """The queued, not running, migratable DL task of ``rq`` with the earliest deadline (that may run on
        ``cpu``; -1: anywhere)."""
        curr = rq.curr
        best: DlEntity | None = None
        for e in rq.dl:
            p = e.task
            if p is None or p is curr or len(p.affinity) < 2 or (cpu >= 0 and cpu not in p.affinity):
                continue
            if best is None or e.deadline < best.deadline:
                best = e
        return None if best is None else best.task

    def _push_tasks(self, rq: Rq) -> None:
        core = self.core
        while len(rq.dl) > 1:
            curr = rq.curr
            p = self._pushable(rq, -1)
            if p is None:
                return
            if (
                curr is not None
                and curr.sched_class is self
                and p.dl.deadline < curr.dl.deadline
                and len(curr.affinity) > 1
            ):
                core.resched(rq, Resched.NOW, Point.ASYNC)  # it would preempt here: reschedule instead
                return
            target = self._find_later_rq(p)
            if target is None or target == rq.cpu:
                return
            dst = core.rqs[target]
            core.move_queued(p, rq, dst)
            core.check_preempt(dst, p, Point.ASYNC)

    def balance(self, rq: Rq, prev: SchedTask) -> bool:
        """``balance_dl()``: pull if ``prev`` was a DL task that left the DL queue (blocked, throttled)."""
        if prev.sched_class is self and not prev.dl.queued:
            self._pull(rq)
        return bool(rq.dl) or self.core.stop_class.pick_task(rq) is not None

    def task_woken(self, rq: Rq, p: SchedTask) -> None:
        """``task_woken_dl()``: push if ``p`` waits behind a DL task it cannot preempt (or a pinned one)."""
        curr = rq.curr
        if (
            curr is not None
            and curr is not p
            and not rq.need_resched
            and len(p.affinity) > 1
            and curr.sched_class is self
            and (len(curr.affinity) < 2 or not p.dl.deadline < curr.dl.deadline)
        ):
            self._push_tasks(rq)

    def post_switch(self, rq: Rq) -> None:
        """``set_next_task_dl()`` → ``deadline_queue_push_tasks()``: push what now waits here."""
        if len(rq.dl) > 1:
            self._push_tasks(rq)

    def _pull(self, rq: Rq) -> None:
        """``pull_dl_task()``: take queued DL tasks from overloaded CPUs that would run earlier here."""
        core = self.core
        dmin = self._earliest(rq)
        cpu = rq.cpu
        for src in core.rqs:
            if src is rq or len(src.dl) < 2:
                continue
            p = self._pushable(src, cpu)
            if p is None or (dmin is not None and not p.dl.deadline < dmin):
                continue
            scurr = src.curr
            if scurr is not None and scurr.sched_class is self and p.dl.deadline < scurr.dl.deadline:
                continue  # it preempts there; that CPU will push
            core.move_queued(p, src, rq)
            dmin = p.dl.deadline

    # ---- fair_server (dl_server, deferred) -------------------------------------------------------------------------
    def server_start(self, rq: Rq) -> None:
        """``dl_server_start()``: a fair task is queued; arm the zero-laxity timer of a new period."""
        s = rq.fair_server
        if s is None or s.active:
            return
        dl_se = s.dl
        s.active = True
        replenish_dl_new_period(dl_se, self.core.engine.now)
        dl_se.throttled = False
        self._running_bw(rq, dl_se.dl_bw)
        self._arm_server(rq, s, dl_se.deadline - dl_se.runtime, self._server_zero_laxity)

    def _arm_server(self, rq: Rq, s: FairServer, when: int, fn: Callable[[Rq, FairServer], None]) -> None:
        dl_se = s.dl
        if dl_se.dl_timer is not None:
            dl_se.dl_timer.cancel()
        now = self.core.engine.now
        dl_se.dl_timer = self.core.at(max(when, now), Prio.TIMER, fn, rq, s)

    def _server_stop(self, rq: Rq, dl_se: DlEntity) -> None:
        """``dl_server_stop()``: dequeue the server and give back its running bandwidth."""
        s = rq.fair_server
        assert s is not None and s.dl is dl_se
        if dl_se.queued:
            rq.dl.remove(dl_se)
            dl_se.queued = False
        if dl_se.dl_timer is not None:
            dl_se.dl_timer.cancel()
            dl_se.dl_timer = None
        if s.active:
            s.active = False
            self._running_bw(rq, -dl_se.dl_bw)

    def server_charge(self, rq: Rq, delta: int) -> int:
        """``dl_server_update()``: fair execution consumes the server's runtime, running or not."""
        s = rq.fair_server
        if s is None or not s.active:
            return Resched.NONE
        dl_se = s.dl
        if dl_se.throttled:
            return Resched.NONE
        dl_se.runtime -= delta
        if dl_se.runtime > 0:
            return Resched.NONE
        dl_se.throttled = True
        was_running = dl_se.queued
        if dl_se.queued:
            rq.dl.remove(dl_se)
            dl_se.queued = False
        self._arm_server(rq, s, dl_next_period(dl_se), self._server_replenish)
        return Resched.NOW if was_running else Resched.NONE

    def _server_zero_laxity(self, rq: Rq, s: FairServer) -> None:
        dl_se = s.dl
        dl_se.dl_timer = None
        if not rq.fair:
            self._server_stop(rq, dl_se)
            return
        curr = rq.curr
        if curr is not None and curr.sched_class is self.core.fair_class:
            self.core.update_curr(rq)  # may have used the budget up meanwhile
        if dl_se.throttled or dl_se.runtime <= 0:
            return
        s.nr_runs += 1
        rq.dl.append(dl_se)
        dl_se.queued = True
        if (
            curr is None
            or curr.sched_class.rank > self.rank
            or (curr.sched_class is self and dl_se.deadline < curr.dl.deadline)
        ):
            self.core.resched(rq, Resched.NOW, Point.IRQ_EXIT)

    def _server_replenish(self, rq: Rq, s: FairServer) -> None:
        dl_se = s.dl
        dl_se.dl_timer = None
        self._replenish(dl_se)
        if rq.fair:
            self._arm_server(rq, s, dl_se.deadline - dl_se.runtime, self._server_zero_laxity)
        else:
            self._server_stop(rq, dl_se)
