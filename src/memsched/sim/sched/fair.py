"""SCHED_OTHER: the fluid ideal for long NUMA runs, and EEVDF / CFS exactly for the realtime machine.

**Fluid mode** (``fluid_shares``): every runnable task on a CPU gets its weighted share of that CPU.

This is CFS's ideal (kernel/sched/fair.c): over a scheduling period each task receives
``weight / sum(weights)`` of its CPU, with weights from ``sched_prio_to_weight`` (kernel/sched/core.c).
Long NUMA runs (hundreds of simulated seconds, tens of threads) use this ideal directly instead of simulating
every slice: between two events each task progresses at its share, which is exact in the limit CFS aims for
and costs one numpy call per change instead of one event per 3 ms slice.

Deviations of the fluid mode: no slices, no wakeup preemption, no vruntime.

**Exact mode** (:class:`FairClass`, used by ``core.py``) follows ``kernel/sched/fair.c`` as of v6.12/6.13
for EEVDF (checked with the search tool: ``avg_vruntime``, ``entity_lag``, ``vruntime_eligible``,
``pick_eevdf`` with RUN_TO_PARITY, ``update_deadline``, ``place_entity`` with PLACE_LAG and
PLACE_DEADLINE_INITIAL, ``check_preempt_wakeup_fair`` with PREEMPT_SHORT and ``resched_curr_lazy``) and v6.5
for CFS (``sched_slice``, ``check_preempt_tick``, ``wakeup_preempt_entity``, ``place_entity`` with
GENTLE_FAIR_SLEEPERS and START_DEBIT). Constants: realtime.md §3.

Deviations of the exact mode: ``calc_delta_fair`` divides exactly (``delta * 1024 // weight``) instead of
the kernel's 32-bit inverse-weight multiply (differences of at most a nanosecond of vruntime); V is kept as
an exact ``Σ w·v`` with Python integers instead of relative to ``min_vruntime``; no DELAY_DEQUEUE (a sleeping
task leaves the queue at once, keeping its clamped lag), no group scheduling, no NEXT_BUDDY; wake placement
is ``select_idle_sibling`` reduced to "previous CPU if idle, else any idle allowed CPU, else the less loaded
of previous and waker CPU"; load balancing pulls one task when a CPU goes idle and, every
``balance_interval_ms``, when the busiest CPU has two or more fair tasks more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.sim.sched.preempt import Resched
from memsched.sim.sched.sched_class import ENQUEUE_INITIAL, SchedClass
from memsched.uapi.sched import SchedPolicy

if TYPE_CHECKING:
    from memsched.sim.sched.core import Rq, SchedCore, Task

__all__ = [
    "NICE_0_LOAD",
    "SCHED_PRIO_TO_WEIGHT",
    "WEIGHT_IDLEPRIO",
    "FairClass",
    "fluid_shares",
    "nice_to_weight",
]

#: ``sched_prio_to_weight[40]``, nice -20 .. 19 (kernel/sched/core.c).
SCHED_PRIO_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_0_LOAD = 1024
#: SCHED_IDLE tasks' weight (kernel/sched/sched.h).
WEIGHT_IDLEPRIO = 3


def nice_to_weight(nice: int) -> int:
    if not -20 <= nice <= 19:
        raise ConfigError("nice", nice, "must be in -20..19")
    return SCHED_PRIO_TO_WEIGHT[nice + 20]


def fluid_shares(
    cpu: npt.NDArray[np.int64], weight: npt.NDArray[np.float64], nr_cpus: int
) -> npt.NDArray[np.float64]:
    """CPU share of each runnable task: its weight over the total weight queued on its CPU."""
    if cpu.shape[0] == 0:
        return np.empty(0)
    per_cpu = np.bincount(cpu, weights=weight, minlength=nr_cpus)
    return weight / per_cpu[cpu]


# ---------------------------------------------------------------------------------------------------------
# Exact mode: the fair scheduling class


def _trunc_div(a: int, b: int) -> int:
    """``div_s64``: C division truncates toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _ilog2(n: int) -> int:
    return n.bit_length() - 1


class FairClass(SchedClass):
    """``fair_sched_class`` for the exact scheduler: EEVDF (6.6+) or CFS (<= 6.5), per ``SchedConfig.fair``."""

    rank = 3
    name = "fair"

    def __init__(self, core: SchedCore) -> None:
        super().__init__(core)
        cfg = core.cfg
        factor = 1 + _ilog2(min(core.nr_cpus, 8))  # SCHED_TUNABLESCALING_LOG
        self.eevdf = cfg.fair == "eevdf"
        self.base_slice = cfg.base_slice_ns or 750_000 * factor
        self.latency = 6_000_000 * factor
        self.min_gran = 750_000 * factor
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
    def eligible(rq: Rq, se: Task) -> bool:
        """``vruntime_eligible``: lag >= 0, i.e. ``v * W <= Σ w·v``."""
        return se.vruntime * rq.sum_w <= rq.sum_wv

    # ---- struct sched_class --------------------------------------------------------------------------------
    def enqueue_task(self, rq: Rq, p: Task, flags: int) -> None:
        if flags:
            if self.eevdf:
                self._place_eevdf(rq, p, flags)
            else:
                self._place_cfs(rq, p, flags)
        w = p.weight
        rq.fair.append(p)
        rq.sum_w += w
        rq.sum_wv += w * p.vruntime
        core = self.core
        if core.dl_class.servers:
            core.dl_class.server_start(rq)
        if rq.nohz_full and rq.nr_running > 1:
            core.restart_tick(rq)

    def dequeue_task(self, rq: Rq, p: Task, flags: int) -> None:
        v_avg = self.avg_vruntime(rq)
        if self.eevdf:
            # update_entity_lag(): vlag = clamp(V - v, ±calc_delta_fair(max(2*slice, TICK_NSEC)))
            limit = self.calc_delta_fair(max(2 * p.slice, self.core.tick_ns), p.weight)
            vlag = v_avg - p.vruntime
            p.vlag = -limit if vlag < -limit else (limit if vlag > limit else vlag)
        w = p.weight
        rq.fair.remove(p)
        rq.sum_w -= w
        rq.sum_wv -= w * p.vruntime
        if not rq.fair:
            if self.eevdf:
                rq.min_vruntime = v_avg
            elif p.vruntime > rq.min_vruntime:
                rq.min_vruntime = p.vruntime

    def _place_eevdf(self, rq: Rq, p: Task, flags: int) -> None:
        v_avg = self.avg_vruntime(rq)
        p.slice = self.base_slice
        vslice = self.calc_delta_fair(p.slice, p.weight)
        lag = 0
        if rq.fair and not flags & ENQUEUE_INITIAL:  # PLACE_LAG
            load = rq.sum_w
            lag = _trunc_div(p.vlag * (load + p.weight), load)
        p.vruntime = v_avg - lag
        if flags & ENQUEUE_INITIAL:  # PLACE_DEADLINE_INITIAL
            vslice //= 2
        p.vdeadline = p.vruntime + vslice

    def _sched_slice(self, rq: Rq, p: Task, extra: int = 0) -> int:
        nr = len(rq.fair) + (1 if extra else 0)
        period = nr * self.min_gran if nr > self.nr_latency else self.latency
        load = rq.sum_w + extra
        return period * p.weight // load if load else period

    def _place_cfs(self, rq: Rq, p: Task, flags: int) -> None:
        self._update_min_vruntime(rq)
        mv = rq.min_vruntime
        if flags & ENQUEUE_INITIAL:  # START_DEBIT
            p.vruntime = mv + self.calc_delta_fair(self._sched_slice(rq, p, p.weight), p.weight)
        else:  # GENTLE_FAIR_SLEEPERS: at most half a latency of sleeper credit
            thresh = mv - self.latency // 2
            p.vruntime = max(p.vruntime, thresh)

    def _update_min_vruntime(self, rq: Rq) -> None:
        if rq.fair:
            lo = min(se.vruntime for se in rq.fair)
            rq.min_vruntime = max(rq.min_vruntime, lo)

    def migrate_task_rq(self, p: Task, src: Rq, dst: Rq) -> None:
        if not self.eevdf:  # CFS normalises vruntime against the queues' min_vruntime
            p.vruntime += dst.min_vruntime - src.min_vruntime

    def pick_task(self, rq: Rq) -> Task | None:
        fair = rq.fair
        if not fair:
            return None
        if len(fair) == 1:
            return fair[0]
        if not self.eevdf:
            leftmost = fair[0]
            for se in fair:
                if se.vruntime < leftmost.vruntime:
                    leftmost = se
            return leftmost
        w_sum = rq.sum_w
        wv_sum = rq.sum_wv
        curr = rq.curr
        if curr is not None and (curr.sched_class is not self or not curr.on_rq or curr.vruntime * w_sum > wv_sum):
            curr = None
        if curr is not None and self.run_to_parity and curr.vlag == curr.vdeadline:
            return curr
        best: Task | None = None
        for se in fair:
            if se is curr:
                continue
            if se.vruntime * w_sum <= wv_sum and (best is None or se.vdeadline < best.vdeadline):
                best = se
        if best is None or (curr is not None and curr.vdeadline < best.vdeadline):
            best = curr
        return best

    def set_next_task(self, rq: Rq, p: Task) -> None:
        if self.eevdf:
            p.vlag = p.vdeadline  # RUN_TO_PARITY: stash the deadline at pick time
        else:
            p.fair_start_exec = p.sum_exec

    def put_prev_task(self, rq: Rq, p: Task) -> None:
        return None

    def update_curr(self, rq: Rq, p: Task, delta: int) -> int:
        dv = delta if p.weight == NICE_0_LOAD else delta * NICE_0_LOAD // p.weight
        p.vruntime += dv
        rq.sum_wv += p.weight * dv
        dl = self.core.dl_class
        res = dl.server_charge(rq, delta) if dl.servers else 0
        if self.eevdf and p.vruntime >= p.vdeadline:
            # update_deadline(): the request is used up; a new slice and deadline
            p.slice = self.base_slice
            p.vdeadline = p.vruntime + self.calc_delta_fair(p.slice, p.weight)
            if len(rq.fair) > 1 and res < self.LAZY:
                return self.LAZY
        return res

    def task_tick(self, rq: Rq, p: Task) -> int:
        if self.eevdf or len(rq.fair) < 2:
            return 0
        # CFS check_preempt_tick()
        ideal = self._sched_slice(rq, p)
        ran = p.sum_exec - p.fair_start_exec
        if ran > ideal:
            return self.LAZY
        if ran < self.min_gran:
            return 0
        left = min((se for se in rq.fair if se is not p), key=lambda se: se.vruntime)
        if p.vruntime - left.vruntime > ideal:
            return self.LAZY
        return 0

    def wakeup_preempt(self, rq: Rq, p: Task) -> int:
        curr = rq.curr
        if curr is None or rq.need_resched == self.NOW:
            return 0
        if curr.policy == SchedPolicy.IDLE and p.policy != SchedPolicy.IDLE:
            return self.LAZY
        if p.policy in (SchedPolicy.BATCH, SchedPolicy.IDLE):
            return 0
        if not self.eevdf:
            gran = self.calc_delta_fair(self.wakeup_gran, p.weight)
            return self.LAZY if curr.vruntime - p.vruntime > gran else 0
        if (
            self.preempt_short
            and p.slice < curr.slice
            and self.eligible(rq, p)
            and p.vdeadline < curr.vdeadline
            and curr.vlag == curr.vdeadline
        ):
            curr.vlag = curr.vdeadline + 1  # cancel curr's slice protection
        return self.LAZY if self.pick_task(rq) is p else 0

    def yield_task(self, rq: Rq, p: Task) -> None:
        if self.eevdf:
            p.vdeadline += self.calc_delta_fair(p.slice, p.weight)  # yield_task_fair(): skip a request

    # ---- placement and balancing ----------------------------------------------------------------------------
    def select_task_rq(self, p: Task, prev_cpu: int, waker_cpu: int) -> int:
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

    def balance(self, rq: Rq) -> None:
        """``sched_balance_newidle()``: a CPU about to idle pulls one queued fair task."""
        self._pull_one(rq, 1)

    def periodic_balance(self, rq: Rq) -> None:
        """``sched_balance_rq()`` from the tick: pull when the busiest CPU has >= 2 fair tasks more."""
        if self._pull_one(rq, 2):
            curr = rq.curr
            if curr is not None and curr.sched_class is self:
                self.core.update_curr(rq)
