"""``autonuma``: Andrea Arcangeli's AutoNUMA (v27/v28, autonuma tree of autumn 2012).

Models AutoNUMA27 ("[PATCH 00/33] AutoNUMA27", linux-mm, 4 Oct 2012, on 3.6) and its autonuma28fast branch,
after the documentation in that tree (``Documentation/vm/autonuma.txt``) and its code (mm/autonuma.c,
kernel/sched/numa.c):

* **knuma_scand** (the mechanism's ``KnumaScand`` driver): a kernel thread marks 128 MB per wake-up, every
  100 ms, walking every mm in turn, and sleeps 10 s after each full pass. While scanning it counts each mm's
  pages per node (``mm_autonuma``): the *memory weight* of a node is the share of the mm's memory there.
* **Hinting faults** update ``task_autonuma``: per-thread fault counts per node of the faulted page. All of a
  process's thread counts are halved when knuma_scand starts a new pass over it. ``numa_hinting_fault()``
  does nothing at all for a task with a memory policy of its own (``!current->mempolicy``), which the
  mechanism's ``MPOL_F_MOF`` flag says.
* **last_nid filter**: a local fault only records ``last_nid``; a remote fault queues the page for migration
  only when the page's previous fault also came from this node (a second fault on a later pass), otherwise
  it just resets ``last_nid`` (``AUTONUMA_MIGRATE_ALLOW_FIRST_FAULT`` is off by default).
* **Migrate on fault**: AutoNUMA27 changed "the page migration implementation to synchronous" (its cover
  letter): the faulting task migrates the page in ``autonuma_migrate_page()``, rate limited per destination
  node to ``pages_to_migrate`` = 128 MB per ``migrate_sleep_millisecs`` = 100 ms (``pgdat->
  autonuma_migrate_nr_pages``). The earlier ``knuma_migratedN`` queues are gone.
* **No native THP migration** (Rik van Riel, linux-mm, 20 Nov 2012: "AutoNUMA does not have native THP
  migration"): a huge page is split before it migrates (``sync_isolate_migratepages()``), so its 4 KiB pages
  then fault and migrate one by one; 3.6's anon_vma mutex.
* **sched_autonuma_balance()** from the (non-idle) load balancer, for the task current on each CPU: task
  weights ``w_t(nid)`` = share of the task's faults on ``nid``, memory weights ``w_m(nid)``; for every busy
  CPU of every other node (idle CPUs are skipped: "Offload the while IDLE balancing and physical / logical
  imbalances to CFS"), the other task's weight there (thread weight if it is a thread of the same process,
  memory weight otherwise). The CPU with the largest ``(w(nid) - w_other) + (w(nid) - w(this_nid))``, both
  terms positive, wins; the task's ``autonuma_node`` becomes that node and the two tasks are exchanged
  (``stop_one_cpu``).
* **sched_autonuma_can_migrate_task()**: the regular balancer may not move a task off its
  ``autonuma_node`` except in idle balancing, and then only if no CPU of that node is idle or runs a task
  that wants another node; idle balancing prefers tasks whose node is the idle CPU's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigratePages, SwapTasks
from memsched.policies.numa.base import (
    MAX_INTERVAL_MS,
    MAX_MEMORY_MB,
    KernelTree,
    KnumaScand,
    MigrationRules,
    NumaPolicy,
)
from memsched.policies.numa.stats import NodeCounters
from memsched.policies.numa.views import FaultBatch, PolicyContext

NSEC_PER_MSEC = 1_000_000
AUTONUMA_BALANCE_SCALE = 1000
LONG_MAX = 1 << 62


@dataclass(frozen=True)
class AutonumaConfig:
    scan_sleep_ms: int = knob(100, "knuma_scand scan_sleep_millisecs", min=1, max=MAX_INTERVAL_MS, limit=True)
    scan_sleep_pass_ms: int = knob(
        10000, "knuma_scand scan_sleep_pass_millisecs", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    pages_to_scan_mb: int = knob(
        128, "knuma_scand pages_to_scan per wake-up (MB)", min=1, max=MAX_MEMORY_MB, limit=True
    )
    pages_to_migrate_mb: int = knob(
        128, "pages_to_migrate: migrate-on-fault limit per destination node (MB)", min=1, max=MAX_MEMORY_MB, limit=True
    )
    migrate_sleep_ms: int = knob(
        100, "migrate_sleep_millisecs: the window of that limit", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    balance_interval_ms: int = knob(
        1000, "sched_autonuma_balance cadence (busy NUMA load balance)", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    load_balance_strict: bool = knob(True, "AUTONUMA_SCHED_LOAD_BALANCE_STRICT: busy balancing keeps tasks home")

    def __post_init__(self) -> None:
        validate(self)


class Autonuma(NumaPolicy):
    def __init__(self, config: AutonumaConfig) -> None:
        self.config = config
        self.scan = KnumaScand(config.scan_sleep_ms, config.scan_sleep_pass_ms, config.pages_to_scan_mb)
        self.migration = MigrationRules(
            rate_limit=True, ratelimit_mb=config.pages_to_migrate_mb, migrate_interval_ms=config.migrate_sleep_ms
        )
        self.kernel = KernelTree(thp_split=True, anon_vma_lock="mutex", base="3.6")
        self.tick_interval_ns = config.balance_interval_ms * NSEC_PER_MSEC
        self.faults: NodeCounters | None = None
        self.mm_pages: dict[int, np.ndarray] = {}
        self.node: dict[int, int] = {}  # autonuma_node / task_selected_nid

    def _counters(self, ctx: PolicyContext) -> NodeCounters:
        if self.faults is None:
            self.faults = NodeCounters(ctx.nr_nodes)
        return self.faults

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        ok = batch.migratable  # numa_hinting_fault() ignores tasks with a mempolicy of their own
        # add_whole is add's bits here: the counters only ever hold whole pages (adds of whole pages_per_record,
        # floor_halve), far below 2**53.
        self._counters(ctx).add_whole(batch.task[ok], batch.page_node[ok], float(batch.pages_per_record))
        move = ok & (batch.page_node != batch.cpu_node) & (batch.last_nid == batch.cpu_node)
        if not move.any():
            return ()
        return (MigratePages.from_faults(batch, move, mode="sync"),)

    def on_scan_pass(self, ctx: PolicyContext, mm: int, node_pages: Sequence[int]) -> Sequence[Action]:
        self.mm_pages[mm] = np.array(node_pages, dtype=np.float64)
        counters = self._counters(ctx)
        for task in ctx.mm_tasks(mm):
            counters.floor_halve(task)
        return ()

    # ---- sched_autonuma_balance ----------------------------------------------------------------------------
    def _weight_table(
        self, ctx: PolicyContext, tasks: list[int]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64], list[int]]:
        """The weights of every task of ``tasks`` at once: (valid, w_p, w_m, mm) with one row per task.

        A task's thread weights are ``faults * 1000 // sum(faults)``, its memory weights ``pages * 1000 //
        sum(pages)`` of its mm's pages per node; it has none (``valid`` False, its rows left at 0 and never
        read) without faults or without scanned pages. The same bits as the per-task numpy code before: every
        counter and page count is a whole number far below 2**53 (adds of whole pages, ``floor_halve``, page
        counts), so each row's sum is exact in any order, and ``*`` and ``//`` are the same element-wise
        float64 ufuncs on the same operands."""
        counters = self._counters(ctx)
        nr_nodes = ctx.nr_nodes
        data = counters.data
        ids = np.array(tasks, dtype=np.int64)
        # A task without a row yet has no faults (row() would give zeros, so None): no need to grow the table.
        have = ids < data.shape[0]
        p = np.zeros((ids.shape[0], nr_nodes))
        p[have] = data[ids[have]]
        p_t = p.sum(axis=1)
        mms = [ctx.task_mm(t) for t in tasks]
        m_w: dict[int, npt.NDArray[np.int64] | None] = {}  # mm -> its memory weight per node (None: no weight)
        w_m = np.zeros((ids.shape[0], nr_nodes), dtype=np.int64)
        valid = p_t > 0
        for i, mm in enumerate(mms):
            if mm not in m_w:
                m = self.mm_pages.get(mm)
                m_t = float(m.sum()) if m is not None else 0.0
                m_w[mm] = (m * AUTONUMA_BALANCE_SCALE // m_t).astype(np.int64) if m is not None and m_t > 0 else None
            row = m_w[mm]
            if row is None:
                valid[i] = False
            else:
                w_m[i] = row
        w_p = (p * AUTONUMA_BALANCE_SCALE // np.where(valid, p_t, 1.0)[:, None]).astype(np.int64)
        return valid, w_p, w_m, mms

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        out: list[Action] = []
        used: set[int] = set()
        nr_cpus = ctx.nr_cpus
        nr_running = ctx.cpu_nr_running.tolist()
        cpu_node = ctx.cpu_node.tolist()
        # Nothing a task's weights depend on (its fault counters, its mm's scanned pages) changes within one
        # call, nor do the run queues: the swaps are returned, not applied. So every run queue is read once,
        # every task's weights computed once, and the weight of every (this CPU, candidate CPU) pair at once
        # (integers: the same values as the per-pair loop); only the choices, which depend on ``used``, are
        # made one CPU after another.
        first = [q[0] if q else -1 for q in map(ctx.cpu_tasks, range(nr_cpus))]
        tasks = list(dict.fromkeys(t for t in first if t >= 0))
        if not tasks:
            return out
        index = {t: i for i, t in enumerate(tasks)}
        valid_a, w_p, w_m, mms = self._weight_table(ctx, tasks)
        valid = valid_a.tolist()

        # The candidates, in the loop's order (node by node, each node's CPUs in order): busy CPUs whose current
        # task has weights.
        c_cpu: list[int] = []
        c_nid: list[int] = []
        c_row: list[int] = []
        for nid in range(ctx.nr_nodes):
            for cpu in ctx.node_cpus[nid]:
                if nr_running[cpu] == 0:
                    continue  # "Offload the while IDLE balancing ... to CFS"
                other = first[cpu]
                if other < 0:  # (live: the CPU runs only threads of processes that are not balanced)
                    continue
                i = index[other]
                if valid[i]:
                    c_cpu.append(cpu)
                    c_nid.append(nid)
                    c_row.append(i)
        # The balancing CPUs, in order: those running a task with weights.
        r_cpu = [cpu for cpu in range(nr_cpus) if first[cpu] >= 0 and valid[index[first[cpu]]]]
        if not r_cpu:
            return out
        r_row = [index[first[cpu]] for cpu in r_cpu]
        r_nid = [cpu_node[cpu] for cpu in r_cpu]
        nr_cands = len(c_cpu)
        cc = np.array(c_cpu, dtype=np.int64)
        c_used = np.zeros(nr_cands, dtype=bool)  # the candidates whose CPU is in ``used``
        if nr_cands:
            cn, cr = np.array(c_nid), np.array(c_row)
            rr, rn = np.array(r_row), np.array(r_nid)
            mm_ids = np.array(mms)
            same = mm_ids[rr][:, None] == mm_ids[cr][None, :]  # a thread of the same process: thread weights
            w_other = np.where(same, w_p[cr, cn], w_m[cr, cn])
            w_nid = np.where(same, w_p[rr][:, cn], w_m[rr][:, cn])
            w_cpu_nid = np.where(same, w_p[rr, rn][:, None], w_m[rr, rn][:, None])
            allowed = np.array([ctx.task_allowed(first[cpu]) for cpu in r_cpu])[:, cc]
            ok = allowed & (cn[None, :] != rn[:, None]) & (w_nid > w_other) & (w_nid > w_cpu_nid)
            # Both terms positive where ok, so a weight > 0 marks exactly the pairs the loop would weigh.
            weight = np.where(ok, w_nid - w_other + w_nid - w_cpu_nid, 0)
            # ``weight > best`` from best = 0 keeps the first largest positive weight in candidate order: argmax's
            # first maximum, when that maximum is > 0.
            best_k = weight.argmax(axis=1).tolist()
            best_w = weight.max(axis=1).tolist()
        for r, this_cpu in enumerate(r_cpu):
            if this_cpu in used:
                continue
            p = first[this_cpu]
            sel_cpu, sel_nid, sel_other = this_cpu, r_nid[r], -1
            if nr_cands:
                k, w = best_k[r], best_w[r]
                if used and c_used[k]:
                    # Skipping the used candidates only lowers weights (to 0): while the first maximum is not
                    # among them it stays the first maximum; otherwise look again without them.
                    masked = np.where(c_used, 0, weight[r])
                    k = int(masked.argmax())
                    w = int(masked[k])
                if w > 0:
                    sel_cpu, sel_nid, sel_other = c_cpu[k], c_nid[k], tasks[c_row[k]]
            self.node[p] = sel_nid
            if sel_cpu == this_cpu or sel_other < 0 or not ctx.task_allowed(sel_other)[this_cpu]:
                continue
            out.append(SwapTasks(p, sel_other))
            used.update((this_cpu, sel_cpu))
            c_used |= (cc == this_cpu) | (cc == sel_cpu)
        return out

    def lb_score(self, ctx: PolicyContext, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        """``sched_autonuma_can_migrate_task()`` plus the idle balancer's preference."""
        node = self.node.get(task, -1)
        dst_node = int(ctx.cpu_node[dst_cpu])
        if node < 0 or node == dst_node:
            return 1.0 if node == dst_node else 0.0
        if self.config.load_balance_strict and not dst_idle:
            return None
        allowed = ctx.task_allowed(task)
        for cpu in ctx.node_cpus[node]:
            if not allowed[cpu]:
                continue
            queued = ctx.cpu_tasks(cpu)
            if not queued:
                return None  # an idle CPU on its own node: it should go there instead
            if self.node.get(queued[0], -1) != node:
                return None
        return 0.0

    def metrics(self) -> dict[str, object]:
        return {"autonuma_nodes": {str(k): v for k, v in sorted(self.node.items())}}
