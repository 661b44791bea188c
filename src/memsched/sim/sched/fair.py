"""SCHED_OTHER for the exact scheduler: EEVDF (6.6+) and CFS (<= 6.5), slice by slice.

(The fluid NUMA machine uses CFS's ideal instead — every runnable task receives ``weight / sum(weights)`` of
its CPU — in ``sim/fluid/progress.py``.)

:class:`FairClass` (used by ``core.py``) follows ``kernel/sched/fair.c`` as of v6.12/6.13
for EEVDF (checked with the search tool: ``avg_vruntime``, ``entity_lag``, ``vruntime_eligible``,
``pick_eevdf`` with RUN_TO_PARITY, ``update_curr`` → ``update_deadline`` and ``did_preempt_short``,
``place_entity`` with PLACE_LAG, PLACE_DEADLINE_INITIAL and PLACE_REL_DEADLINE (``dequeue_entity`` keeps
the relative deadline of an entity that is not going to sleep), ``check_preempt_wakeup_fair`` with
``do_preempt_short`` and ``resched_curr_lazy``; custom slices from ``__setscheduler_params`` in
kernel/sched/syscalls.c 6.12: ``sched_runtime`` on a fair policy sets ``se->custom_slice``, clamped to
0.1–100 ms, which ``place_entity`` / ``update_deadline`` then keep instead of the base slice) and v6.5 for
CFS (``sched_slice`` with the BASE_SLICE floor, ``check_preempt_tick`` with its ``sysctl_sched_latency``
cap, ``update_curr`` → ``update_min_vruntime``, ``wakeup_preempt_entity``, ``place_entity`` with
GENTLE_FAIR_SLEEPERS on wakeups only and START_DEBIT for new tasks; a migrating task keeps its vruntime
relative to ``min_vruntime``). Constants (fair.c 6.5/6.6): ``sysctl_sched_latency`` 6 ms,
``sysctl_sched_min_granularity`` 0.75 ms, ``sysctl_sched_wakeup_granularity`` 1 ms, ``sched_nr_latency`` 8,
``sysctl_sched_base_slice`` 0.75 ms, each scaled by ``1 + ilog2(min(ncpus, 8))`` (SCHED_TUNABLESCALING_LOG,
``update_sysctl()``).

Deviations of the exact mode: ``calc_delta_fair`` divides exactly (``delta * 1024 // weight``) instead of
the kernel's 32-bit inverse-weight multiply (differences of at most a nanosecond of vruntime); V is kept as
an exact ``Σ w·v`` with Python integers instead of relative to ``min_vruntime``; no DELAY_DEQUEUE (a sleeping
task leaves the queue at once, keeping its clamped lag), no group scheduling, no NEXT_BUDDY; under CFS a task
coming back to the fair class (``ENQUEUE_RESTORE``) gets at most the sleeper credit (what
``detach_task_cfs_rq`` / ``attach_task_cfs_rq`` amount to); wake placement
is ``select_idle_sibling`` reduced to "previous CPU if idle, else any idle allowed CPU, else the less loaded
of previous and waker CPU"; load balancing pulls one task when a CPU goes idle and, every
``balance_interval_ms``, when the busiest CPU has two or more fair tasks more.
"""

from __future__ import annotations

from memsched.sim.sched.deadline import DlClass
from memsched.sim.sched.preempt import Resched
from memsched.sim.sched.sched import (
    DEQUEUE_SLEEP,
    ENQUEUE_INITIAL,
    ENQUEUE_RESTORE,
    ENQUEUE_WAKEUP,
    NICE_0_LOAD,
    CoreOps,
    Rq,
    SchedClass,
    SchedTask,
    div_s64,
)
from memsched.uapi.sched import SchedPolicy
from memsched.units import NSEC_PER_MSEC

__all__ = [
    "SLICE_MAX_NS",
    "SLICE_MIN_NS",
    "FairClass",
]

#: Range of a custom slice (``__setscheduler_params``, syscalls.c 6.12: ``clamp_t(sched_runtime,
#: NSEC_PER_MSEC/10, NSEC_PER_MSEC*100)``).
SLICE_MIN_NS = NSEC_PER_MSEC // 10
SLICE_MAX_NS = NSEC_PER_MSEC * 100


def _ilog2(n: int) -> int:
    return n.bit_length() - 1


class FairClass(SchedClass):
    """``fair_sched_class`` for the exact scheduler: EEVDF (6.6+) or CFS (<= 6.5), per ``SchedConfig.fair``.

    ``dl`` is the deadline class whose per-CPU fair_server this class starts and charges (``dl_server_start``
    and ``dl_server_update``, called from fair.c in the kernel).
    """

    rank = 3
    name = "fair"

    def __init__(self, core: CoreOps, dl: DlClass) -> None:
        super().__init__(core)
        cfg = core.cfg
        self.dl = dl
        factor = 1 + _ilog2(min(core.nr_cpus, 8))  # SCHED_TUNABLESCALING_LOG
        self.eevdf = cfg.fair == "eevdf"
        self.base_slice = cfg.base_slice_ns or 750_000 * factor
        self.latency = 6_000_000 * factor
        self.min_gran = 750_000 * factor
        #: sysctl_sched_idle_min_granularity (6.5): 0.75 ms, not scaled by update_sysctl().
        self.idle_min_gran = 750_000
        self.wakeup_gran = 1_000_000 * factor
        self.nr_latency = 8
        self.run_to_parity = cfg.run_to_parity
        self.preempt_short = cfg.preempt_short
        self.LAZY = int(Resched.LAZY)
        self.NOW = int(Resched.NOW)

    # ---- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def calc_delta_fair(delta: int, weight: int) -> int:
        return delta if weight == NICE_0_LOAD else delta * NICE_0_LOAD // weight

    def avg_vruntime(self, rq: Rq) -> int:
        """V = Σ w·v / Σ w over the queued entities, curr included (floored, like the kernel)."""
        if rq.sum_w:
            return rq.sum_wv // rq.sum_w
        return rq.min_vruntime

    @staticmethod
    def eligible(rq: Rq, p: SchedTask) -> bool:
        """``vruntime_eligible``: lag >= 0, i.e. ``v * W <= Σ w·v``."""
        return p.se.vruntime * rq.sum_w <= rq.sum_wv

    # ---- struct sched_class --------------------------------------------------------------------------------
    def _account_curr(self, rq: Rq, p: SchedTask) -> None:
        """``enqueue_entity`` / ``dequeue_entity`` start with ``update_curr(cfs_rq)``: V and min_vruntime must
        include what the running fair task has consumed before another entity is placed or removed."""
        curr = rq.curr
        if curr is not None and curr is not p and curr.sched_class is self and curr.on_rq:
            self.core.update_curr(rq)

    def enqueue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        self._account_curr(rq, p)
        if self.eevdf:
            self._place_eevdf(rq, p, flags)  # enqueue_entity() places every entity (6.6+)
        elif flags & (ENQUEUE_WAKEUP | ENQUEUE_INITIAL | ENQUEUE_RESTORE):
            self._place_cfs(rq, p, flags)  # a queued migration keeps its vruntime (migrate_task_rq)
        se = p.se
        w = se.weight
        rq.fair.append(p)
        rq.sum_w += w
        rq.sum_wv += w * se.vruntime
        dl = self.dl
        if dl.servers:
            dl.server_start(rq)

    def dequeue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        self._account_curr(rq, p)
        se = p.se
        if self.eevdf:
            v_avg = self.avg_vruntime(rq)
            # update_entity_lag(): vlag = clamp(V - v, ±calc_delta_fair(max(2*slice, TICK_NSEC)))
            limit = self.calc_delta_fair(max(2 * se.slice, self.core.tick_ns), se.weight)
            vlag = v_avg - se.vruntime
            se.vlag = -limit if vlag < -limit else (limit if vlag > limit else vlag)
            if not flags & DEQUEUE_SLEEP:  # PLACE_REL_DEADLINE: a migration or setattr keeps its deadline
                se.vdeadline -= se.vruntime
                se.rel_deadline = True
        w = se.weight
        rq.fair.remove(p)
        rq.sum_w -= w
        rq.sum_wv -= w * se.vruntime
        if self.eevdf:
            if not rq.fair:
                rq.min_vruntime = v_avg
        else:
            # dequeue_entity(): update_curr() (done by the caller for curr) already folded curr's vruntime
            # in; now the remaining queue
            self._update_min_vruntime(rq)

    def _place_eevdf(self, rq: Rq, p: SchedTask, flags: int) -> None:
        se = p.se
        v_avg = self.avg_vruntime(rq)
        if not se.custom_slice:
            se.slice = self.base_slice
        vslice = self.calc_delta_fair(se.slice, se.weight)
        lag = 0
        if rq.fair and se.vlag and not flags & ENQUEUE_INITIAL:  # PLACE_LAG
            load = rq.sum_w
            lag = div_s64(se.vlag * (load + se.weight), load)
        se.vruntime = v_avg - lag
        if se.rel_deadline:
            se.vdeadline += se.vruntime
            se.rel_deadline = False
            return
        if flags & ENQUEUE_INITIAL:  # PLACE_DEADLINE_INITIAL
            vslice //= 2
        se.vdeadline = se.vruntime + vslice

    def _sched_slice(self, rq: Rq, p: SchedTask, extra: int = 0) -> int:
        """``sched_slice()`` (6.5), with the BASE_SLICE floor; ``extra`` = p's weight if p is not queued."""
        nr = len(rq.fair) + (1 if extra else 0)
        period = nr * self.min_gran if nr > self.nr_latency else self.latency
        load = rq.sum_w + extra
        slice_ = period * p.se.weight // load if load else period
        # se_is_idle(p) && !sched_idle_cfs_rq(): a SCHED_IDLE task among non-idle ones (or on an empty queue)
        idle_rq = bool(rq.fair) and all(t.policy == SchedPolicy.IDLE for t in rq.fair)
        if p.policy == SchedPolicy.IDLE and not idle_rq:
            floor = self.idle_min_gran
        else:
            floor = self.min_gran
        return slice_ if slice_ > floor else floor

    def _place_cfs(self, rq: Rq, p: SchedTask, flags: int) -> None:
        self._update_min_vruntime(rq)
        mv = rq.min_vruntime
        se = p.se
        if flags & ENQUEUE_INITIAL:  # START_DEBIT
            se.vruntime = mv + self.calc_delta_fair(self._sched_slice(rq, p, se.weight), se.weight)
        else:  # GENTLE_FAIR_SLEEPERS: at most half a latency of sleeper credit
            thresh = mv - self.latency // 2
            se.vruntime = max(se.vruntime, thresh)

    def _update_min_vruntime(self, rq: Rq) -> None:
        """``update_min_vruntime()`` (6.5): the smallest vruntime of curr and the queue, never going back."""
        if rq.fair:
            lo = min(t.se.vruntime for t in rq.fair)
            rq.min_vruntime = max(rq.min_vruntime, lo)

    def migrate_task_rq(self, p: SchedTask, src: Rq, dst: Rq) -> None:
        if not self.eevdf:  # CFS normalises vruntime against the queues' min_vruntime
            p.se.vruntime += dst.min_vruntime - src.min_vruntime

    def pick_task(self, rq: Rq) -> SchedTask | None:
        fair = rq.fair
        if not fair:
            return None
        if len(fair) == 1:
            return fair[0]
        if not self.eevdf:
            leftmost = fair[0]
            left_v = leftmost.se.vruntime
            for t in fair:
                v = t.se.vruntime
                if v < left_v:
                    leftmost, left_v = t, v
            return leftmost
        w_sum = rq.sum_w
        wv_sum = rq.sum_wv
        curr = rq.curr
        curr_se = None
        if curr is not None:
            curr_se = curr.se
            if curr.sched_class is not self or not curr.on_rq or curr_se.vruntime * w_sum > wv_sum:
                curr = curr_se = None
        if curr_se is not None and self.run_to_parity and curr_se.vlag == curr_se.vdeadline:
            return curr
        best: SchedTask | None = None
        best_d = 0
        for t in fair:
            if t is curr:
                continue
            se = t.se
            if se.vruntime * w_sum <= wv_sum and (best is None or se.vdeadline < best_d):
                best, best_d = t, se.vdeadline
        if best is None or (curr_se is not None and curr_se.vdeadline < best_d):
            best = curr
        return best

    def set_next_task(self, rq: Rq, p: SchedTask) -> None:
        se = p.se
        if self.eevdf:
            se.vlag = se.vdeadline  # RUN_TO_PARITY: stash the deadline at pick time
        else:
            se.prev_sum_exec_runtime = p.sum_exec

    def put_prev_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def update_curr(self, rq: Rq, p: SchedTask, delta: int) -> int:
        se = p.se
        w = se.weight
        dv = delta if w == NICE_0_LOAD else delta * NICE_0_LOAD // w
        se.vruntime += dv
        rq.sum_wv += w * dv
        dl = self.dl
        res = dl.server_charge(rq, delta) if dl.servers else 0
        if not self.eevdf:
            if p.on_rq:
                self._update_min_vruntime(rq)
            return res
        resched = False
        if se.vruntime >= se.vdeadline:
            # update_deadline(): the request is used up; a new slice (unless custom) and deadline
            if not se.custom_slice:
                se.slice = self.base_slice
            se.vdeadline = se.vruntime + self.calc_delta_fair(se.slice, w)
            resched = True
        # nr_running > 1: the request is used up, or did_preempt_short(): curr's slice protection is gone
        # (a shorter-slice wakee cancelled it, or a new deadline replaced it) and curr is no longer eligible
        if (
            len(rq.fair) > 1
            and res < self.LAZY
            and (
                resched
                or (self.preempt_short and se.vlag != se.vdeadline and se.vruntime * rq.sum_w > rq.sum_wv)
            )
        ):
            return self.LAZY
        return res

    def task_tick(self, rq: Rq, p: SchedTask) -> int:
        if self.eevdf or len(rq.fair) < 2:
            return 0
        # CFS check_preempt_tick(): the ideal slice is capped at sysctl_sched_latency
        ideal = min(self._sched_slice(rq, p), self.latency)
        ran = p.sum_exec - p.se.prev_sum_exec_runtime
        if ran > ideal:
            return self.LAZY
        if ran < self.min_gran:
            return 0
        left = min((t for t in rq.fair if t is not p), key=lambda t: t.se.vruntime)
        if p.se.vruntime - left.se.vruntime > ideal:
            return self.LAZY
        return 0

    def wakeup_preempt(self, rq: Rq, p: SchedTask) -> int:
        curr = rq.curr
        if curr is None or rq.need_resched == self.NOW:
            return 0
        if curr.policy == SchedPolicy.IDLE and p.policy != SchedPolicy.IDLE:
            return self.LAZY
        if p.policy in (SchedPolicy.BATCH, SchedPolicy.IDLE):
            return 0
        se, cse = p.se, curr.se
        if not self.eevdf:
            gran = self.calc_delta_fair(self.wakeup_gran, se.weight)
            return self.LAZY if cse.vruntime - se.vruntime > gran else 0
        # do_preempt_short(): a shorter-slice eligible wakee with an earlier deadline, or a curr that is no
        # longer eligible, cancels curr's slice protection (even if the wakee is not picked now)
        if (
            self.preempt_short
            and cse.vlag == cse.vdeadline
            and se.slice < cse.slice
            and self.eligible(rq, p)
            and (se.vdeadline < cse.vdeadline or not self.eligible(rq, curr))
        ):
            cse.vlag = cse.vdeadline + 1
        return self.LAZY if self.pick_task(rq) is p else 0

    def yield_task(self, rq: Rq, p: SchedTask) -> None:
        if self.eevdf:
            se = p.se
            se.vdeadline += self.calc_delta_fair(se.slice, se.weight)  # yield_task_fair(): skip a request

    # ---- placement and balancing ----------------------------------------------------------------------------
    def select_task_rq(self, p: SchedTask, prev_cpu: int, waker_cpu: int) -> int:
        aff = p.affinity
        if len(aff) == 1:
            return aff[0]
        rqs = self.core.rqs
        if prev_cpu in aff and rqs[prev_cpu].nr_running == 0:
            return prev_cpu
        n = len(aff)
        start = aff.index(prev_cpu) if prev_cpu in aff else 0
        for i in range(1, n + 1):
            c = aff[(start + i) % n]
            if rqs[c].nr_running == 0:
                return c
        if prev_cpu not in aff:
            prev_cpu = aff[0]
        if waker_cpu in aff and rqs[waker_cpu].nr_running < rqs[prev_cpu].nr_running:
            return waker_cpu
        return prev_cpu

    def _pull_one(self, rq: Rq, min_diff: int) -> bool:
        core = self.core
        if rq.isolated:
            return False
        mine = len(rq.fair)
        busiest = None
        for other in core.rqs:
            if other is rq or other.isolated:
                continue
            if len(other.fair) - mine >= min_diff and (
                busiest is None or len(other.fair) > len(busiest.fair)
            ):
                busiest = other
        if busiest is None:
            return False
        cpu = rq.cpu
        for t in busiest.fair:
            if t is not busiest.curr and cpu in t.affinity:
                core.move_queued(t, busiest, rq)
                return True
        return False

    def newidle_balance(self, rq: Rq) -> bool:
        """``sched_balance_newidle()``: a CPU about to idle pulls one queued fair task."""
        return self._pull_one(rq, 1)

    def balance(self, rq: Rq, prev: SchedTask) -> bool:
        """``balance_fair()``: if nothing at all is runnable here, newidle balance."""
        if rq.fair or rq.dl or (rq.rt and not rq.rt_throttled):
            return True
        return self.newidle_balance(rq)

    def periodic_balance(self, rq: Rq) -> None:
        """``sched_balance_rq()`` from the tick: pull when the busiest CPU has >= 2 fair tasks more."""
        if self._pull_one(rq, 2):
            curr = rq.curr
            if curr is not None and curr.sched_class is self:
                self.core.update_curr(rq)
