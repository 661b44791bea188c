"""``homenode``: balancenuma V2/V3's home node with "CPU follows memory".

Models Mel Gorman's "[RFC PATCH 00/43] Automatic NUMA Balancing V3" (linux-mm, 16 Nov 2012, on 3.7-rc4), the
"cpuone" kernel of its cover letter (patches 1-42; patch 43 adapts the scan rate):

* Memory placement as ``balancenuma``: MORON behind the two-stage ``last_nid`` filter (patches 31-32),
  rate-limited per node (patches 27-29), only under a policy with ``MPOL_F_MOF``.
* **Per-task and per-mm fault statistics** (patches 40-41, "CPU follows memory", ported from AutoNUMA's
  ``task_autonuma`` / ``mm_autonuma``): every hinting fault adds its pages to ``task_numa_fault[nid]`` and
  ``mm_numa_fault[nid]`` of the node the page ends up on.
  ``reset_ptenuma_scan()`` halves the totals at the end of each pass.
* **task_numa_placement()** (once per ``numa_scan_seq``): with weights ``faults[nid] * 1000 / total``, the
  task's and the mm's busiest nodes are found (and each call halves ``mm_numa_fault[]``, as the patch
  does). If both are the node the task runs on, the task's home node becomes that node and its scan period
  doubles; otherwise the scan period drops to the minimum and ``task_numa_find_placement()`` looks at the
  task running on every CPU of the other nodes: using thread weights for threads of the same process and
  mm weights otherwise, ``other_diff = w_p(nid) - w_other(nid)`` and ``this_diff = w_p(nid) -
  w_p(this_nid)``; for the best positive sum the two tasks swap home nodes (``sched_setnode()``).
* **Home-node awareness in the load balancer** (V3 patches 36-39, first posted as V2's "[PATCH 28/31] sched:
  numa: Implement home-node awareness"): ``task_numa_hot()`` keeps a task from being pulled away from its home
  node by busy balancing unless the move brings it closer; off-node tasks are pulled first; and when the system is
  balanced, ``NUMA_PULL_BIAS`` moves a task off its home node back there through active balancing, trading
  places with an off-node or home-less task (``on_tick`` here, every busy NUMA balance interval).

The tree (``kernel``): V3 has no native THP migration (its cover letter lists it as a TODO and says patch 14
splits transparent huge pages on a fault; it arrived in V4, 21 Nov 2012), so huge pages are split on a hinting
fault; 3.7's anon_vma mutex.

Mel Gorman's V5 of the series (linux-mm, late Nov 2012) removed all of this as too heavy and prone to
bouncing tasks between nodes; the report shows where.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigratePages, MigrateTask, SetPreferredNode, SetScanPeriod, SwapTasks
from memsched.policies.numa.base import (
    MAX_INTERVAL_MS,
    MAX_MEMORY_MB,
    SYSCTL_INT_MAX,
    KernelTree,
    MigrationRules,
    NumaPolicy,
    TaskWorkScan,
)
from memsched.policies.numa.stats import NodeCounters
from memsched.policies.numa.views import BoolArray, FaultBatch, PolicyContext

NSEC_PER_MSEC = 1_000_000
BALANCENUMA_SCALE = 1000


@dataclass(frozen=True)
class HomenodeConfig:
    scan_delay_ms: int = knob(1000, "numa_balancing_scan_delay_ms", min=0, max=SYSCTL_INT_MAX, limit=True)
    scan_period_min_ms: int = knob(
        100, "scan period when placement is wrong (V3: scan_period_min)", min=1, max=SYSCTL_INT_MAX, limit=True,
        at_most="scan_period_max_ms",
    )
    scan_period_max_ms: int = knob(
        5000, "scan period cap when placement is right", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    scan_size_mb: int = knob(256, "numa_balancing_scan_size_mb", min=1, max=SYSCTL_INT_MAX, limit=True)
    ratelimit_mb: int = knob(
        128, "migration rate limit per window and destination node", min=1, max=MAX_MEMORY_MB, limit=True
    )
    balance_interval_ms: int = knob(
        1000, "busy NUMA-level load balance (3.7: sd_weight ms x busy_factor 32)",
        min=1, max=MAX_INTERVAL_MS, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


class Homenode(NumaPolicy):
    def __init__(self, config: HomenodeConfig) -> None:
        self.config = config
        self.scan = TaskWorkScan.from_knobs(config, scan_period_reset_ms=0)
        self.migration = MigrationRules(rate_limit=True, ratelimit_mb=config.ratelimit_mb)
        self.kernel = KernelTree(thp_split=True, anon_vma_lock="mutex", base="3.7-rc4")
        self.tick_interval_ns = config.balance_interval_ms * NSEC_PER_MSEC
        self.task_faults: NodeCounters | None = None
        self.task_tot: dict[int, float] = {}
        self.mm_faults: dict[int, np.ndarray] = {}
        self.mm_tot: dict[int, float] = {}
        self.home: dict[int, int] = {}
        self._halved_seq: dict[int, int] = {}
        self.home_changes = 0

    def _counters(self, ctx: PolicyContext) -> NodeCounters:
        if self.task_faults is None:
            self.task_faults = NodeCounters(ctx.nr_nodes)
        return self.task_faults

    # ---- memory: MORON + two-stage filter ----------------------------------------------------------------
    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        move = (batch.page_node != batch.cpu_node) & (batch.last_nid == batch.cpu_node)
        if batch.mof is not None:  # (migratable is all True without it)
            move &= batch.migratable
        idx = np.flatnonzero(move)  # the same records, in the same order, as indexing by the mask
        if idx.shape[0] == 0:
            return ()
        return (MigratePages.from_faults(batch, idx),)

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: BoolArray) -> Sequence[Action]:
        nid = np.where(migrated, batch.cpu_node, batch.page_node)
        counters = self._counters(ctx)
        pages = float(batch.pages_per_record)
        # task_numa_fault() per record, summed once per (task, node): every counter here holds whole pages (adds
        # of whole ``pages``, ``>> 1`` halvings), so each sum is exact in any order and one add of count * pages
        # gives the bits of one add per record; the per-task and per-mm totals are sums of the same counts.
        per_task = counters.add_whole(batch.task, nid, pages)
        counts = per_task.tolist()  # (Python ints: ``count * pages`` converts each to the float float() gave)
        task_tot = self.task_tot
        for task in np.flatnonzero(per_task).tolist():  # ascending, as np.unique's order was
            task_tot[task] = task_tot.get(task, 0.0) + counts[task] * pages
        nr_nodes = ctx.nr_nodes
        mm = self.mm_faults.get(batch.mm)
        if mm is None:
            mm = self.mm_faults[batch.mm] = np.zeros(nr_nodes)
        mm += np.bincount(nid, minlength=nr_nodes) * pages
        self.mm_tot[batch.mm] = self.mm_tot.get(batch.mm, 0.0) + batch.size * pages
        return ()

    # ---- CPU follows memory --------------------------------------------------------------------------------
    def _weights(self, faults: list[float], total: float) -> list[int]:
        """Every node's weight ``int(min(faults, total) * 1000 // total)`` (0 if ``total <= 0``), of one
        ``tolist()`` of a counter row.

        The counters and totals are whole numbers far below 2**53 (see ``after_faults``), so ``faults * 1000`` is
        exact and ``//`` (Python's and numpy's: both fmod-based divmod) gives the exact floor of the quotient:
        these Python floats give the bits the numpy scalars gave. One comprehension (no call per node): ``f if f
        <= total else total`` is ``min(f, total)`` (equal values are the same float; nothing here is NaN)."""
        if total <= 0:
            return [0] * len(faults)
        return [int((f if f <= total else total) * BALANCENUMA_SCALE // total) for f in faults]

    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        mm = ctx.task_mm(task)
        seq = ctx.mm_scan_seq(mm)
        counters = self._counters(ctx)
        if self._halved_seq.get(mm) != seq:  # reset_ptenuma_scan(): once per pass
            self._halved_seq[mm] = seq
            self.mm_tot[mm] = float(int(self.mm_tot.get(mm, 0.0)) >> 1)
        row = counters.row(task)
        total = self.task_tot.get(task, 0.0)
        mm_row = self.mm_faults.get(mm)
        mm_total = self.mm_tot.get(mm, 0.0)
        cpu = ctx.task_cpu(task)
        out: list[Action] = []
        if mm_row is not None and mm_total > 0 and total > 0 and cpu >= 0:
            this_nid = int(ctx.cpu_node[cpu])
            mm_w = self._weights(mm_row.tolist(), mm_total)
            t_w = self._weights(row.tolist(), total)
            mm_sel = _argmax_positive(mm_w)
            t_sel = _argmax_positive(t_w)
            mm_row //= 2  # "Decay the stats by a factor of 2" (each call, as in the patch)
            period = ctx.task_scan_period_ns(task)
            if t_sel == this_nid and mm_sel == this_nid:
                out.append(SetScanPeriod(task, min(self.config.scan_period_max_ms * NSEC_PER_MSEC, period * 2)))
                out += self._set_home(task, this_nid)
            else:
                out.append(SetScanPeriod(task, self.config.scan_period_min_ms * NSEC_PER_MSEC))
                out += self._find_placement(ctx, task, this_nid, cpu, t_w, mm, mm_row, mm_total)
        counters.floor_halve(task)  # reset_ptenuma_scan() halves the per-task statistics each pass
        self.task_tot[task] = float(int(total) >> 1)
        return out

    def _set_home(self, task: int, node: int) -> list[Action]:
        if self.home.get(task, -1) != node:
            self.home[task] = node
            self.home_changes += 1
        return [SetPreferredNode(task, node)]

    def _find_placement(
        self, ctx: PolicyContext, task: int, this_nid: int, this_cpu: int, own_w: list[int],
        mm: int, mm_row: np.ndarray, mm_total: float,
    ) -> list[Action]:
        """``task_numa_find_placement()``: swap home nodes with the task that gains most from it.

        ``own_w`` is the task's own weight per node (``on_placement``'s: its faults and total have not changed
        since); ``mm_row`` and ``mm_total`` are its mm's (halved) fault row and total, as ``on_placement`` read
        them (it saw both totals > 0)."""
        data = self._counters(ctx).data
        # Within one call nothing changes: the weights that depend only on the node (and the other task's mm)
        # are computed once, for every node.
        own_mm_w = self._weights(mm_row.tolist(), mm_total)  # its mm's weight per node
        p_task_w = own_w[this_nid]
        p_mm_w = own_mm_w[this_nid]
        other_mm_w: dict[int, list[int]] = {}  # other mm -> its weight per node
        allowed = ctx.task_allowed(task).tolist()
        task_tot, mm_tot, mm_faults = self.task_tot, self.mm_tot, self.mm_faults
        cpu_tasks, task_mm, node_cpus = ctx.cpu_tasks, ctx.task_mm, ctx.node_cpus
        best, best_nid, best_other = 0, -1, -1
        for nid in range(ctx.nr_nodes):
            # A swap needs this_diff = this_w - p_w > 0, with this_w the thread weight for a thread of the same
            # process and the mm weight otherwise: a node where neither exceeds the task's own weight here
            # (this_nid among them: there this_w == p_w) has no candidate, so its CPUs are not looked at.
            thread_gain = own_w[nid] > p_task_w
            mm_gain = own_mm_w[nid] > p_mm_w
            if not (thread_gain or mm_gain):
                continue
            # Every weight is >= 0, so a candidate's other_diff + this_diff = 2 * this_w - other_w - p_w is at
            # most 2 * this_w - p_w: a node whose bound does not beat ``best`` cannot change the choice.
            bound = max(
                2 * own_w[nid] - p_task_w if thread_gain else 0, 2 * own_mm_w[nid] - p_mm_w if mm_gain else 0
            )
            if bound <= best:
                continue
            for cpu in node_cpus[nid]:
                if not allowed[cpu]:
                    continue
                queued = cpu_tasks(cpu)
                if not queued:
                    continue  # idle CPUs are skipped
                other = queued[0]
                if other == task:
                    continue
                o_total = task_tot.get(other, 0.0)
                if o_total <= 0:
                    continue
                o_mm = task_mm(other)
                if o_mm == mm:
                    # (mm_tot[mm] > 0: the caller saw it)
                    if not thread_gain:
                        continue  # this_diff <= 0
                    this_w = own_w[nid]
                    # (data has a row for other: its faults were added, as o_total > 0 says.) Its weight here
                    # written out as in _weights, on the Python float item() gives: the bits the numpy scalar's
                    # arithmetic gave (see _weights).
                    f = data.item(other, nid)
                    other_w = int((f if f <= o_total else o_total) * BALANCENUMA_SCALE // o_total)
                    p_w = p_task_w
                else:
                    if mm_tot.get(o_mm, 0.0) <= 0:
                        continue
                    if not mm_gain:
                        continue  # this_diff <= 0
                    this_w = own_mm_w[nid]
                    o_mm_w = other_mm_w.get(o_mm)
                    if o_mm_w is None:
                        o_mm_w = other_mm_w[o_mm] = self._weights(mm_faults[o_mm].tolist(), mm_tot[o_mm])
                    other_w = o_mm_w[nid]
                    p_w = p_mm_w
                other_diff = this_w - other_w
                this_diff = this_w - p_w
                # The other task must be allowed on this CPU; asked only of a task that would win (a read, so
                # asking later skips exactly the candidates the earlier check skipped).
                if (
                    other_diff > 0 and this_diff > 0 and other_diff + this_diff > best
                    and ctx.task_allowed(other)[this_cpu]
                ):
                    best, best_nid, best_other = other_diff + this_diff, nid, other
        if best_nid not in (-1, this_nid):
            return self._set_home(task, best_nid) + self._set_home(best_other, this_nid)
        return []

    # ---- load balancer -------------------------------------------------------------------------------------
    def lb_score(self, ctx: PolicyContext, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        home = self.home.get(task, -1)
        if home < 0:
            return 0.0
        src_node, dst_node = int(ctx.cpu_node[src_cpu]), int(ctx.cpu_node[dst_cpu])
        closer = ctx.distance[dst_node, home] < ctx.distance[src_node, home]
        if not dst_idle and not closer:
            return None  # task_numa_hot(): stick to the home node
        return 2.0 if closer else (1.0 if src_node != home else 0.0)

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        """NUMA_PULL_BIAS: bring tasks that sit off their home node back, by idle CPU or by trade."""
        out: list[Action] = []
        busy = ctx.cpu_nr_running.tolist()
        cpu_node = ctx.cpu_node.tolist()
        node_cpus, cpu_tasks, home_of = ctx.node_cpus, ctx.cpu_tasks, self.home
        used: set[int] = set()
        for task in ctx.tasks().tolist():
            # (Reads only: a task without a home is passed over before its CPU is asked for.)
            home = home_of.get(task, -1)
            if home < 0:
                continue
            cpu = ctx.task_cpu(task)
            if cpu < 0 or cpu_node[cpu] == home or cpu in used:
                continue
            allowed = ctx.task_allowed(task)
            idle = [c for c in node_cpus[home] if allowed[c] and busy[c] == 0 and c not in used]
            if idle:
                out.append(MigrateTask(task, idle[0]))
                used.update((cpu, idle[0]))
                continue
            for other_cpu in node_cpus[home]:
                # (The run queue is read only for a CPU the other tests leave: the same CPUs are passed over.)
                if other_cpu in used or not allowed[other_cpu]:
                    continue
                queued = cpu_tasks(other_cpu)
                if not queued:
                    continue
                other = queued[0]
                # Trade only with a task that has no home or is itself off its home node here.
                if home_of.get(other, -1) != home and ctx.task_allowed(other)[cpu]:
                    out.append(SwapTasks(task, other))
                    used.update((cpu, other_cpu))
                    break
        return out

    def metrics(self) -> dict[str, object]:
        return {"home_node_changes": self.home_changes, "home_nodes": {str(k): v for k, v in sorted(self.home.items())}}


def _argmax_positive(weights: list[int]) -> int:
    best, sel = 0, -1
    for nid, w in enumerate(weights):
        if w > best:
            best, sel = w, nid
    return sel
