"""``numad``: Red Hat's user-space NUMA daemon (numad.c and numad.8 of release 20121015).

numad does not use hinting faults. It samples, every interval, what ``/proc/<pid>/stat`` and
``/proc/<pid>/numa_maps`` show, and binds the process that most deserves it:

1. **Interval**: it sleeps between ``MIN_INTERVAL`` (5 s) and ``MAX_INTERVAL`` (15 s): back to the minimum
   after it changed something, otherwise the maximum.
2. **Candidates**: processes using at least ``CPU_THRESHOLD`` (50 % of one CPU) over the last interval and
   at least ``MEMORY_THRESHOLD`` (300 MB) of memory, largest ``CPU x memory`` magnitude first.
3. **Node scores**: for each node, what the process needs against what the node has available at the
   target utilisation (``TARGET_UTILIZATION_PERCENT`` = 85 % of its memory and CPUs, counting the process's
   own current use there as available): ``(needed_mem*10 + excess_mem*4) * (needed_cpu*6 + excess_cpu*1)``,
   where ``needed`` is the part of the need the node can meet and ``excess`` what it has left over.
4. **Binding**: the smallest set of best-scoring nodes (nearest first when they tie) whose availability
   covers the need; if that improves the share of the process's memory and threads on its nodes by at least
   ``IMPROVEMENT_THRESHOLD_PERCENT`` (5 %), numad sets the threads' affinity to those nodes' CPUs
   (``sched_setaffinity``) and moves the memory there (``migrate_pages``). One process per interval.

Written against views and actions only, so ``memsched numa balance --policy numad`` runs the same object
on a real machine.

The kernel under it (``kernel``) is a vanilla 3.7: ``migrate_pages(2)`` splits every huge page it moves
(``unmap_and_move()``), and the anon_vma lock is a mutex.

A process already confined to the chosen nodes (its threads' affinity) with its memory there counts as
bound without an action; one whose threads merely happen to run there is bound (numad compares the best
nodes with the process's allowed nodes, not with where its threads last ran). The first version recorded a
binding for a JVM sampled while only its main thread ran, never bound it, and so gave specjbb exactly the
bops of no balancing with ``numad_bindings: 0``.

Deviations from numad: no cpusets (the later affinity + migrate_pages method), no ``-w`` advice mode, no
one-hour skip of interleaved processes (the simulated workloads never interleave on their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigrateMmNodes, SetAffinity
from memsched.policies.numa.base import MAX_MEMORY_MB, KernelTree, NumaPolicy
from memsched.policies.numa.views import PolicyContext

NSEC_PER_SEC = 1_000_000_000
MB = 1 << 20


#: Product limit of numad's intervals: one hour, the longest simulated run (numad's ``-i`` takes any int).
MAX_INTERVAL_S = 3600
#: Product limit of ``cpu_threshold`` (% of one CPU): all the CPUs of the largest machine a topology may have
#: (``MAX_CPUS`` = 1024, topology/bounds.py).
MAX_CPU_THRESHOLD = 100 * 1024


@dataclass(frozen=True)
class NumadConfig:
    min_interval_s: int = knob(5, "MIN_INTERVAL (numad 20121015; 2 in Feb 2012)", min=1, max=MAX_INTERVAL_S, limit=True)
    max_interval_s: int = knob(
        15, "MAX_INTERVAL (numad 20121015; 10 in Feb 2012)", min=1, max=MAX_INTERVAL_S, limit=True
    )
    cpu_threshold: int = knob(
        50, "CPU_THRESHOLD: % of one CPU a process must use to be managed", min=0, max=MAX_CPU_THRESHOLD, limit=True
    )
    memory_threshold_mb: int = knob(
        300, "MEMORY_THRESHOLD: MB a process must use to be managed", min=0, max=MAX_MEMORY_MB, limit=True
    )
    target_utilization: int = knob(85, "TARGET_UTILIZATION_PERCENT of each node's memory and CPUs", min=1, max=100)
    improvement_threshold: int = knob(5, "IMPROVEMENT_THRESHOLD_PERCENT needed before rebinding", min=0, max=100)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class _Process:
    tgid: int
    mm: int
    threads: tuple[int, ...]
    cpu_pct: float  # % of one CPU over the last interval
    mem_mb: float
    node_pages: np.ndarray
    thread_nodes: np.ndarray  # threads per node


class Numad(NumaPolicy):
    def __init__(self, config: NumadConfig) -> None:
        self.config = config
        self.kernel = KernelTree(thp_split=True, anon_vma_lock="mutex", base="3.7")
        self.tick_interval_ns = NSEC_PER_SEC
        self.next_run_ns = config.min_interval_s * NSEC_PER_SEC
        self.last_sample_ns = 0
        self.last_runtime: dict[int, int] = {}
        self.bound: dict[int, tuple[int, ...]] = {}
        self.bindings = 0

    # ---- sampling ------------------------------------------------------------------------------------------
    def _processes(self, ctx: PolicyContext) -> list[_Process]:
        elapsed = max(ctx.now_ns - self.last_sample_ns, 1)
        threads: dict[int, list[int]] = {}
        for task in (int(t) for t in ctx.tasks()):
            threads.setdefault(ctx.task_tgid(task), []).append(task)
        out = []
        runtimes: dict[int, int] = {}
        for tgid, tids in sorted(threads.items()):
            used = 0
            nodes = np.zeros(ctx.nr_nodes)
            for tid in tids:
                rt = ctx.task_runtime_ns(tid)
                runtimes[tid] = rt
                used += rt - self.last_runtime.get(tid, 0)
                cpu = ctx.task_cpu(tid)
                if cpu >= 0:
                    nodes[int(ctx.cpu_node[cpu])] += 1
            mm = ctx.task_mm(tids[0])
            pages = np.asarray(ctx.mm_node_pages(mm), dtype=np.float64)
            out.append(
                _Process(
                    tgid,
                    mm,
                    tuple(tids),
                    100.0 * used / elapsed,
                    float(pages.sum()) * ctx.page_size / MB,
                    pages,
                    nodes,
                )
            )
        self.last_runtime = runtimes
        self.last_sample_ns = ctx.now_ns
        return out

    # ---- the interval --------------------------------------------------------------------------------------
    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        if ctx.now_ns < self.next_run_ns:
            return ()
        procs = self._processes(ctx)
        cfg = self.config
        candidates = [p for p in procs if p.cpu_pct >= cfg.cpu_threshold and p.mem_mb >= cfg.memory_threshold_mb]
        candidates.sort(key=lambda p: (-(p.cpu_pct * p.mem_mb), p.tgid))
        for proc in candidates:
            actions = self._place(ctx, proc, procs)
            if actions:
                self.next_run_ns = ctx.now_ns + cfg.min_interval_s * NSEC_PER_SEC
                self.bindings += 1
                return actions
        self.next_run_ns = ctx.now_ns + cfg.max_interval_s * NSEC_PER_SEC
        return ()

    def _available(self, ctx: PolicyContext, proc: _Process, procs: list[_Process]) -> tuple[np.ndarray, np.ndarray]:
        """MB and CPU (% of one CPU) each node could give this process at the target utilisation."""
        target = self.config.target_utilization / 100.0
        mb_total = np.asarray(ctx.node_total_pages, dtype=np.float64) * ctx.page_size / MB
        mb_free = np.asarray(ctx.node_free_pages, dtype=np.float64) * ctx.page_size / MB
        mb_own = proc.node_pages * ctx.page_size / MB
        mb_avail = np.maximum(mb_free - (1 - target) * mb_total, 0) + mb_own
        cpus = np.array([len(c) for c in ctx.node_cpus], dtype=np.float64) * 100.0
        used = np.zeros(ctx.nr_nodes)
        for p in procs:
            if p.thread_nodes.sum() > 0:
                used += p.cpu_pct * p.thread_nodes / p.thread_nodes.sum()
        own = proc.cpu_pct * proc.thread_nodes / max(proc.thread_nodes.sum(), 1)
        cpu_avail = np.maximum(cpus * target - used, 0) + own
        return mb_avail, cpu_avail

    @staticmethod
    def _confined(ctx: PolicyContext, proc: _Process, nodes: tuple[int, ...]) -> bool:
        """Every thread of the process may run only on CPUs of ``nodes`` (its ``Cpus_allowed``). Where its
        threads happen to run now does not count: a process that is merely there, unbound, spreads out again
        (as each JVM's warehouses do once its main thread has committed the heap)."""
        on = np.zeros(ctx.nr_cpus, dtype=bool)
        for n in nodes:
            on[list(ctx.node_cpus[n])] = True
        return all(not (ctx.task_allowed(t) & ~on).any() for t in proc.threads)

    def _place(self, ctx: PolicyContext, proc: _Process, procs: list[_Process]) -> list[Action]:
        mb_avail, cpu_avail = self._available(ctx, proc, procs)
        need_mb, need_cpu = proc.mem_mb, proc.cpu_pct
        mem_part = np.minimum(mb_avail, need_mb)
        cpu_part = np.minimum(cpu_avail, need_cpu)
        score = (mem_part * 10 + (mb_avail - mem_part) * 4) * (cpu_part * 6 + (cpu_avail - cpu_part) * 1)
        order = sorted(range(ctx.nr_nodes), key=lambda n: (-score[n], n))
        chosen = [order[0]]
        for n in sorted(order[1:], key=lambda n: (ctx.distance[order[0], n], -score[n], n)):
            if mb_avail[chosen].sum() >= need_mb and cpu_avail[chosen].sum() >= need_cpu:
                break
            chosen.append(n)
        nodes = tuple(sorted(chosen))
        if self.bound.get(proc.tgid) == nodes:
            return []
        mem_on = float(proc.node_pages[list(nodes)].sum() / max(proc.node_pages.sum(), 1))
        thr_on = float(proc.thread_nodes[list(nodes)].sum() / max(proc.thread_nodes.sum(), 1))
        if min(mem_on, thr_on) >= 1.0 - self.config.improvement_threshold / 100.0 and proc.tgid in self.bound:
            return []
        if mem_on >= 0.999 and self._confined(ctx, proc, nodes):
            self.bound[proc.tgid] = nodes  # already bound there (numactl, or an earlier binding)
            return []
        self.bound[proc.tgid] = nodes
        cpus = tuple(sorted(c for n in nodes for c in ctx.node_cpus[n]))
        actions: list[Action] = [SetAffinity(t, cpus) for t in proc.threads]
        actions.append(MigrateMmNodes(proc.mm, tuple(range(ctx.nr_nodes)), nodes))
        return actions

    def metrics(self) -> dict[str, object]:
        return {
            "numad_bindings": self.bindings,
            "numad_bound": {str(k): list(v) for k, v in sorted(self.bound.items())},
        }
