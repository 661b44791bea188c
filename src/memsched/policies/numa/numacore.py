"""``numacore``: Peter Zijlstra's numa/core with adaptive affinity ("[PATCH 5/8] sched, numa, mm: Add adaptive
NUMA affinity support", 12 Nov 2012; numa/core v16+).

Models that posting's scheduler and fault paths:

* **Scanning**: every 5 s (``sysctl_sched_numa_scan_period_min = 5000``) the whole address space is made
  PROT_NONE (``change_prot_numa`` on every VMA), so every scan is a new ``numa_scan_seq``.
* **Private or shared** from ``page::last_cpu``: two consecutive faults on a page from the same CPU make the
  fault private, otherwise shared. Per-task ``numa_faults[2*node + priv]``, halved every scan.
* **Placement** (each scan): ``numa_max_node`` = the node with most faults; the task is *shared* when
  ``total_shared >= total_private / 2`` (the /2 stands in for an unknown 1/n). A new preferred node takes
  effect only after ``NUMA_SETTLE`` = 2 scans agreeing on it. No home node is imposed.
* **Memory follows the task**: a page migrates to the faulting CPU's node after two samples from that node
  (the ``last_nid`` two-stage check), only under a policy with ``MPOL_F_MOF`` (numa/core carries Lee
  Schermerhorn's "mm/mempolicy: Check for misplaced page", whose ``mpol_misplaced()`` has the check). No rate
  limit (Ingo Molnar ran with limits ten times larger).
* **The tree** (``kernel``): numa/core migrates huge pages natively (Peter Zijlstra's
  ``do_huge_pmd_numa_page()`` THP migration, in the tree since Oct 2012); its anon_vma lock is still 3.7's
  mutex (the rwsem conversion arrived on 2 Dec 2012).
* **Load-balancer preference** when choosing a task to move: (1) non-NUMA tasks and NUMA tasks moving
  towards more of their faults, (2) non-ideal tasks getting worse, (3) private tasks getting worse,
  (4) shared tasks getting worse — so memory locality improves first, and when something must get worse,
  private tasks spread before shared ones, which gather.
* **Adaptive affinity** (``on_tick``, the busy NUMA balance interval): a task running off its preferred node
  moves to an idle CPU there, or trades places with a task there that has more faults on this task's
  node than on its own.

Deviations: the "lateral" random perturbation that escapes fair-but-bad states is not modelled; the scan
period does not back off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigratePages, MigrateTask, SetPreferredNode, SwapTasks
from memsched.policies.numa.base import (
    MAX_INTERVAL_MS,
    SYSCTL_INT_MAX,
    KernelTree,
    MigrationRules,
    NumaPolicy,
    TaskWorkScan,
)
from memsched.policies.numa.stats import NodeCounters
from memsched.policies.numa.views import FaultBatch, PolicyContext

NSEC_PER_MSEC = 1_000_000


#: Product limit of ``numa_settle``: scans that must agree; beyond a thousand the preferred node never changes
#: within a run (one scan per ``scan_period_ms``, 5 s by default).
MAX_NUMA_SETTLE = 1000


@dataclass(frozen=True)
class NumacoreConfig:
    scan_delay_ms: int = knob(1000, "first scan after this delay", min=0, max=SYSCTL_INT_MAX, limit=True)
    scan_period_ms: int = knob(
        5000, "sysctl_sched_numa_scan_period_min: whole-address-space scan period",
        min=1, max=SYSCTL_INT_MAX, limit=True
    )
    numa_settle: int = knob(
        2, "NUMA_SETTLE: scans that must agree before the preferred node changes",
        min=1, max=MAX_NUMA_SETTLE, limit=True
    )
    balance_interval_ms: int = knob(
        1000, "adaptive-affinity cadence (busy NUMA load balance)", min=1, max=MAX_INTERVAL_MS, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


class Numacore(NumaPolicy):
    def __init__(self, config: NumacoreConfig) -> None:
        self.config = config
        period = config.scan_period_ms
        self.scan = TaskWorkScan.from_knobs(
            config,
            scan_period_min_ms=period,
            scan_period_max_ms=period,
            scan_period_reset_ms=0,
            whole_address_space=True,
        )
        self.migration = MigrationRules(rate_limit=False)
        self.kernel = KernelTree(thp_split=False, anon_vma_lock="mutex", base="3.7-rc")
        self.tick_interval_ns = config.balance_interval_ms * NSEC_PER_MSEC
        self.faults: NodeCounters | None = None
        self.preferred: dict[int, int] = {}
        self.shared: dict[int, bool] = {}
        self._candidate: dict[int, tuple[int, int]] = {}
        # Each task's faults per node and their sum, as the load balancer and on_tick ask for them, cached
        # until its counters change (a fault batch, a placement's halving).
        self._nf: dict[int, tuple[list[float], float]] = {}

    def _counters(self, ctx: PolicyContext) -> NodeCounters:
        if self.faults is None:
            self.faults = NodeCounters(2 * ctx.nr_nodes)
        return self.faults

    def _node_faults(self, ctx: PolicyContext, task: int) -> tuple[list[float], float]:
        nf = self._nf.get(task)
        if nf is None:
            row = self._counters(ctx).row(task)
            f = row[0::2] + row[1::2]
            nf = self._nf[task] = (f.tolist(), float(f.sum()))
        return nf

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        priv = (batch.last_cpu == batch.cpu).astype(np.int64)
        self._counters(ctx).add(batch.task, 2 * batch.page_node + priv, float(batch.pages_per_record))
        self._nf.clear()
        move = (batch.page_node != batch.cpu_node) & (batch.last_nid == batch.cpu_node) & batch.migratable
        if not move.any():
            return ()
        return (MigratePages.from_faults(batch, move),)

    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        counters = self._counters(ctx)
        row = counters.row(task)
        out: list[Action] = []
        total = float(row.sum())
        if total > 0:
            shared_total, private_total = float(row[0::2].sum()), float(row[1::2].sum())
            self.shared[task] = shared_total >= private_total / 2
            max_node = int(np.argmax(row[0::2] + row[1::2]))
            cand, seen = self._candidate.get(task, (-1, 0))
            seen = seen + 1 if cand == max_node else 1
            self._candidate[task] = (max_node, seen)
            if seen >= self.config.numa_settle and self.preferred.get(task, -1) != max_node:
                self.preferred[task] = max_node
                out.append(SetPreferredNode(task, max_node))
        counters.scale(task, 0.5)  # halved every scan
        self._nf.pop(task, None)
        return out

    def _category(self, ctx: PolicyContext, task: int, src_node: int, dst_node: int) -> float:
        f, total = self._node_faults(ctx, task)
        if total <= 0 or f[dst_node] > f[src_node]:
            return 3.0  # !numa, or towards more faults
        if src_node != self.preferred.get(task, src_node):
            return 2.0  # not ideal anyway
        if not self.shared.get(task, False):
            return 1.0  # private tasks spread first
        return 0.0  # shared tasks last

    def lb_score(self, ctx: PolicyContext, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        return self._category(ctx, task, int(ctx.cpu_node[src_cpu]), int(ctx.cpu_node[dst_cpu]))

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        out: list[Action] = []
        used: set[int] = set()
        busy = ctx.cpu_nr_running
        for task in (int(x) for x in ctx.tasks()):
            pref = self.preferred.get(task, -1)
            cpu = ctx.task_cpu(task)
            if pref < 0 or cpu < 0 or cpu in used:
                continue
            src = int(ctx.cpu_node[cpu])
            if src == pref:
                continue
            allowed = ctx.task_allowed(task)
            idle = [c for c in ctx.node_cpus[pref] if allowed[c] and busy[c] == 0 and c not in used]
            if idle:
                out.append(MigrateTask(task, idle[0]))
                used.update((cpu, idle[0]))
                continue
            for other_cpu in ctx.node_cpus[pref]:
                queued = ctx.cpu_tasks(other_cpu)
                if not queued or other_cpu in used or not allowed[other_cpu]:
                    continue
                other = queued[0]
                fo, _ = self._node_faults(ctx, other)
                if fo[src] > fo[pref] and ctx.task_allowed(other)[cpu]:
                    out.append(SwapTasks(task, other))
                    used.update((cpu, other_cpu))
                    break
        return out

    def metrics(self) -> dict[str, object]:
        return {
            "preferred_nodes": {str(k): v for k, v in sorted(self.preferred.items())},
            "shared_tasks": sum(1 for v in self.shared.values() if v),
        }
