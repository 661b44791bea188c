"""``mainline``: NUMA balancing as Linux 3.13+ merged it — preferred nodes, task swaps and NUMA groups.

Models kernel/sched/fair.c of 3.15–3.17 ("sched/numa: Basic scheduler support" V9 by Mel Gorman, Rik van
Riel and Peter Zijlstra, LKML, Oct 2013 on 3.12-rc3, merged in 3.13, and the group/active-node work of
3.14–3.15):

* **Scanning** (the mechanism's 3.13 ``TaskWorkScan``): ``scan_period_min`` 1000 ms, ``max`` 60000 ms, 256 MB
  per scan, and both bounds divided by the task's number of 256 MB scan windows (``task_scan_min/max``,
  floor 100 ms from ``MAX_SCAN_WINDOW`` = 2560 MB/s).
* **task_numa_fault()**: private if the page never faulted or the last fault came from the same task
  (``cpupid_match_pid``); a shared fault calls ``task_numa_group()``, which joins the group of the task
  currently running on the CPU recorded in ``last_cpupid`` (if it is the task that faulted there last) when
  that group is larger (ties by group id), always for threads of one process. Faults go into per-node,
  per-type buffers for memory (the page's node after migration) and CPU (the faulting CPU's node), and into
  ``numa_faults_locality[local]``; a shared fault between two of the group's active nodes counts as local.
* **task_numa_placement()** (each new ``numa_scan_seq``): ``faults = faults/2 + buffer`` (decay by half per
  scan), CPU faults weighted by the task's share of runtime; task and group totals; preferred node = the
  node with most faults (the group's when in a group); ``update_numa_active_node_mask()`` (a node enters
  the active set above 6/16 of the busiest node's CPU faults, leaves below 3/16); then
  ``update_task_scan_period()``; and if the task runs elsewhere, ``numa_migrate_preferred()``.
* **update_task_scan_period()**: ``NUMA_PERIOD_SLOTS`` = 10, ``NUMA_PERIOD_THRESHOLD`` = 7 (aim for 70 %
  local): at or above, the period grows by ``max(ratio - 7, 1)`` slots; below, it shrinks by ``7 - ratio``
  slots scaled by the private share; no faults at all double it.
* **task_numa_migrate()**: search the preferred node's CPUs, then other nodes where the task's or group's
  weight improves; for each CPU, moving to it if idle or swapping with its current task, scored by
  ``imp = (w_p(dst) - w_p(src)) + (w_cur(src) - w_cur(dst))`` (group weights for tasks in groups,
  ``imp -= imp/16`` inside one group), refused by ``load_too_imbalanced()`` with ``imbalance_pct`` 112. On
  success the preferred node becomes the destination and the scan period drops to its minimum.
  Retried every ``min(1 s, scan_period/16)`` while the task is off its preferred node.
* **should_numa_migrate_memory()**: (1) two-stage ``last_cpupid`` filter; (2) private faults migrate;
  (3) tasks without a group migrate; (4) never to a node outside the group's active set; (5) always from a
  node outside it; (6) otherwise only if ``group_faults(dst) < 3/4 * group_faults(src)``, which spreads a
  shared working set over the active nodes.
* **Load balancer**: ``migrate_improves_locality()`` (NUMA_FAVOUR_HIGHER) prefers moving tasks towards their
  preferred node; ``NUMA_RESIST_LOWER`` is off by default, so nothing is vetoed.

Deviations: group CPU-fault weighting uses the task's runtime fraction since its last placement; the
``numa_faults_locality[2]`` (failed migrations) slow-down of later kernels is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import (
    Action,
    MigratePages,
    MigrateTask,
    SetPreferredNode,
    SetScanPeriod,
    SwapTasks,
)
from memsched.policies.numa.base import (
    BASE_PAGE_SIZE,
    MAX_INTERVAL_MS,
    MAX_MEMORY_MB,
    SYSCTL_INT_MAX,
    MigrationRules,
    NumaPolicy,
    TaskWorkScan,
)
from memsched.policies.numa.views import BoolArray, FaultBatch, IntArray, PolicyContext

NSEC_PER_MSEC = 1_000_000
NUMA_PERIOD_SLOTS = 10
NUMA_PERIOD_THRESHOLD = 7
PRIV, SHARED = 1, 0


#: Shared faults up to which :func:`group_verdicts` maps the distinct triples through a dict (beyond it, numpy's
#: sort does it in less time: about 8.5 us, against 1.5 us plus 0.13 us a fault).
GROUP_VERDICT_LISTS_UP_TO = 56


def group_verdicts(
    task: IntArray,
    last_pid: IntArray,
    last_cpu: IntArray,
    verdict_of: Callable[[int, int, int], bool],
    lists_up_to: int = GROUP_VERDICT_LISTS_UP_TO,
) -> bool | list[bool] | BoolArray:
    """``verdict_of(task, last task, last CPU)`` for each fault (``task_numa_group()``'s new ``priv``), called once
    per distinct triple, in the triples' lexicographic order (Python's tuple order, the order ``np.unique(axis=0)``
    gives the integer rows). Up to ``lists_up_to`` faults through a dict of the triples; beyond it, each triple is
    one integer, its digits in mixed radix (the ids are >= 0 and the last task and CPU >= -1, so each digit is in
    its range and the integers sort as the triples do), whose distinct values a sort gives in order: the same
    calls and verdicts either way. Where every verdict is the same (in a 4 KiB numa01 under mainline on x86-8n64,
    every batch's: False), that one bool, for every fault."""
    if task.shape[0] <= lists_up_to:
        triples = list(zip(task.tolist(), last_pid.tolist(), last_cpu.tolist(), strict=True))
        verdict = {t: verdict_of(*t) for t in sorted(set(triples))}
        return [verdict[t] for t in triples]
    radix_pid, radix_cpu = int(last_pid.max()) + 2, int(last_cpu.max()) + 2
    key = (task * radix_pid + (last_pid + 1)) * radix_cpu + (last_cpu + 1)
    ordered = np.sort(key)
    distinct = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    verdicts = []
    for k in distinct.tolist():
        rest, cpu = divmod(k, radix_cpu)
        t, pid = divmod(rest, radix_pid)
        verdicts.append(verdict_of(t, pid - 1, cpu - 1))
    if not any(verdicts):
        return False
    if all(verdicts):
        return True
    return np.array(verdicts, dtype=bool)[np.searchsorted(distinct, key)]


def distinct_ids(ids: IntArray) -> tuple[list[int], IntArray]:
    """The distinct values of ``ids`` (>= 0, task ids) in ascending order, and each element's position among them:
    ``sorted(set(ids))`` and ``np.searchsorted`` of it, from one count per id (a quarter of their time on a fault
    batch)."""
    if not ids.shape[0]:
        return [], ids
    present = np.bincount(ids).nonzero()[0]
    slot = np.empty(present[-1] + 1, dtype=np.int64)
    slot[present] = np.arange(present.shape[0])
    return present.tolist(), slot[ids]


#: Product limit of ``imbalance_pct``: a destination node up to 100x busier than the source. The sched domains'
#: own ``imbalance_pct`` is 110-125 (kernel/sched/topology.c), 112 after task_numa_migrate() halves it.
MAX_IMBALANCE_PCT = 10_000


@dataclass(frozen=True)
class MainlineConfig:
    scan_delay_ms: int = knob(1000, "numa_balancing_scan_delay_ms", min=0, max=SYSCTL_INT_MAX, limit=True)
    scan_period_min_ms: int = knob(
        1000, "numa_balancing_scan_period_min_ms (3.13)", min=1, max=SYSCTL_INT_MAX, limit=True,
        at_most="scan_period_max_ms",
    )
    scan_period_max_ms: int = knob(
        60000, "numa_balancing_scan_period_max_ms (3.13)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    scan_size_mb: int = knob(256, "numa_balancing_scan_size_mb", min=1, max=SYSCTL_INT_MAX, limit=True)
    ratelimit_mb: int = knob(
        128, "migration rate limit per 100 ms and destination node (mm/migrate.c)", min=1, max=MAX_MEMORY_MB, limit=True
    )
    imbalance_pct: int = knob(
        112, "task_numa_migrate(): 100 + (sd->imbalance_pct - 100) / 2", min=100, max=MAX_IMBALANCE_PCT, limit=True
    )
    group_active_in: float = knob(
        6 / 16, "a node joins the group's active set above this share of the max", min=0.0, max=1.0
    )
    group_active_out: float = knob(
        3 / 16,
        "and leaves it below this share",
        min=0.0,
        max=1.0,
        at_most="group_active_in",
        why="update_numa_active_node_mask()'s hysteresis: a node between them would join and leave on every update",
    )
    migrate_check_ms: int = knob(
        250, "how often pending numa_migrate_preferred() retries are checked", min=1, max=MAX_INTERVAL_MS, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class NumaGroup:
    gid: int
    tasks: set[int]
    faults: np.ndarray  # [node, type] memory faults (decayed)
    faults_cpu: np.ndarray  # [node, type] CPU faults (decayed, runtime-weighted)
    active: set[int] = field(default_factory=set)

    def node_faults(self) -> np.ndarray:
        return np.asarray(self.faults.sum(axis=1))

    def node_faults_cpu(self) -> np.ndarray:
        return np.asarray(self.faults_cpu.sum(axis=1))


#: A candidate CPU of task_numa_migrate()'s search: the CPU, its current task (``None``: idle), that task's group
#: and its ``task_weight()`` and ``group_weight()`` lists (``None``: all 0).
_Cand = tuple[int, int | None, int | None, list[int] | None, list[int] | None]


class _RqView:
    """What ``task_numa_migrate()`` reads of the run queues, each read once: queue lengths, the current task of
    each CPU, affinities and node loads. Valid while no action is applied, i.e. within one hook call.

    ``cands`` and ``refused`` are filled by ``Mainline``: each node's CPUs with their current task's group and
    weights, and the ``load_too_imbalanced()`` verdicts per (source, destination) node. Neither the run queues
    nor any task's or group's faults change while a view lives (``task_numa_migrate()`` only returns actions;
    on_placement() makes its view after updating the faults), so they are the values each candidate's
    ``task_numa_compare()`` would read afresh.
    """

    __slots__ = ("_allowed", "_ctx", "_nr", "_stats", "cands", "refused")

    def __init__(self, ctx: PolicyContext) -> None:
        self._ctx = ctx
        self._nr: list[int] | None = None
        self._allowed: dict[int, list[bool]] = {}
        self._stats: dict[int, tuple[float, float, bool]] = {}
        self.cands: dict[int, list[_Cand]] = {}
        self.refused: dict[tuple[int, int], tuple[bool, bool]] = {}

    @property
    def nr(self) -> list[int]:
        """Each CPU's queue length, read at the first use (a search that finds no improvement never needs it;
        the queues do not change while the view lives, so a later read gives the same list)."""
        nr = self._nr
        if nr is None:
            nr = self._nr = self._ctx.cpu_nr_running.tolist()
        return nr

    def allowed(self, task: int) -> list[bool]:
        mask = self._allowed.get(task)
        if mask is None:
            mask = self._allowed[task] = self._ctx.task_allowed(task).tolist()
        return mask

    def node_stats(self, nid: int) -> tuple[float, float, bool]:
        """Load, capacity and ``has_free_capacity`` (fewer runnable tasks than CPUs) of a node."""
        stats = self._stats.get(nid)
        if stats is None:
            cpus = self._ctx.node_cpus[nid]
            running = sum(self.nr[c] for c in cpus)
            stats = self._stats[nid] = (float(running) * 1024, float(len(cpus)) * 1024, running < len(cpus))
        return stats


@dataclass
class _TaskNuma:
    faults: np.ndarray  # [node, type], decayed memory faults
    faults_cpu: np.ndarray
    buf: np.ndarray  # buffers since the last placement
    buf_cpu: np.ndarray
    locality: np.ndarray  # [remote, local]
    acc: np.ndarray  # buf, buf_cpu and locality are views of this one flat array, in that order
    group: int | None = None
    preferred: int = -1
    retry_ns: int | None = None
    runtime_seen: int = 0
    placed_ns: int = 0


class Mainline(NumaPolicy):
    def __init__(self, config: MainlineConfig) -> None:
        self.config = config
        self.task_scan = TaskWorkScan.from_knobs(config, scan_period_reset_ms=0, scale_by_rss=True)
        self.scan = self.task_scan
        self.migration = MigrationRules(rate_limit=True, ratelimit_mb=config.ratelimit_mb)
        self.tick_interval_ns = config.migrate_check_ms * NSEC_PER_MSEC
        self.tasks: dict[int, _TaskNuma] = {}
        self.groups: dict[int, NumaGroup] = {}
        self.group_history: list[tuple[int, int, int]] = []  # (time, task, gid) joins
        self.migrate_attempts = 0
        # task_weight()/group_weight() per node, cached until the task's or group's faults change
        # (task_numa_placement(), a group created or joined): the migration search asks for them per CPU.
        self._task_w: dict[int, list[int]] = {}
        self._group_w: dict[int, list[int]] = {}

    # ---- per-task state --------------------------------------------------------------------------------
    def _t(self, ctx: PolicyContext, task: int) -> _TaskNuma:
        st = self.tasks.get(task)
        if st is None:
            nr = ctx.nr_nodes
            z = np.zeros((nr, 2))
            acc = np.zeros(nr * 4 + 2)
            buf, buf_cpu = acc[: nr * 2].reshape(nr, 2), acc[nr * 2 : nr * 4].reshape(nr, 2)
            st = _TaskNuma(z.copy(), z.copy(), buf, buf_cpu, acc[nr * 4 :], acc)
            self.tasks[task] = st
        return st

    def task_faults(self, task: int, nid: int) -> float:
        st = self.tasks.get(task)
        return float(st.faults[nid].sum()) if st else 0.0

    def group_faults(self, task: int, nid: int) -> float:
        st = self.tasks.get(task)
        if st is None or st.group is None:
            return 0.0
        return float(self.groups[st.group].faults[nid].sum())

    def task_weight(self, task: int, nid: int) -> int:
        w = self._task_ws(task)
        return w[nid] if w is not None else 0

    def group_weight(self, task: int, nid: int) -> int:
        w = self._group_ws(task)
        return w[nid] if w is not None else 0

    def _task_ws(self, task: int) -> list[int] | None:
        """``task_weight()`` for every node (``None``: the task has no NUMA state, all weights 0)."""
        w = self._task_w.get(task)
        if w is None:
            st = self.tasks.get(task)
            if st is None:
                return None
            w = self._task_w[task] = self._weights(st.faults)
        return w

    def _group_ws(self, task: int) -> list[int] | None:
        """``group_weight()`` for every node (``None``: the task is in no group, all weights 0)."""
        st = self.tasks.get(task)
        if st is None or st.group is None:
            return None
        w = self._group_w.get(st.group)
        if w is None:
            w = self._group_w[st.group] = self._weights(self.groups[st.group].faults)
        return w

    @staticmethod
    def _weights(faults: np.ndarray) -> list[int]:
        """``1000 * faults[nid] // total`` for every node: the weights of one task or group.

        The two-column row sums are ``a + b`` in any order, so one ``sum(axis=1)`` equals the per-row sums.
        """
        total = float(faults.sum())
        if total <= 0:
            return [0] * faults.shape[0]
        return [int(1000 * f // total) for f in faults.sum(axis=1).tolist()]

    def _faults_changed(self, task: int | None, gid: int | None) -> None:
        """Forget the cached weights of a task and/or group whose fault counters just changed."""
        if task is not None:
            self._task_w.pop(task, None)
        if gid is not None:
            self._group_w.pop(gid, None)

    # ---- should_numa_migrate_memory() --------------------------------------------------------------------
    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        misplaced = batch.page_node != batch.cpu_node
        if batch.mof is not None:  # (without a mask every record is migratable: the & would change nothing)
            misplaced &= batch.migratable  # mpol_misplaced(): MPOL_F_MOF only
        stage1 = (batch.last_pid < 0) | (batch.last_nid == batch.cpu_node)
        private = batch.last_pid == batch.task  # cpupid_match_pid(): an unset pid does not match
        move = misplaced & stage1
        shared_idx = (move & ~private).nonzero()[0]
        if shared_idx.size:
            move = self._shared_rules(ctx, batch, move, shared_idx)
        if not move.any():
            return ()
        return (MigratePages.from_faults(batch, move),)

    def _shared_rules(
        self, ctx: PolicyContext, batch: FaultBatch, move: BoolArray, shared_idx: np.ndarray
    ) -> BoolArray:
        """``should_numa_migrate_memory()`` rules (4)-(6) for the shared faults ``shared_idx`` (all in ``move``)
        of tasks in a group: never to a node outside the group's active set, always from one, else only if
        ``group_faults(dst) < 3/4 * group_faults(src)``. Faults of tasks without a group keep ``move``.

        The faults are evaluated all at once, against one row of active mask and node faults per distinct group
        (one row in the usual batch: threads of one process); ``gf[dst] < gf[src] * 3 / 4`` is the same
        elementwise float expression the former per-task loop evaluated.
        """
        shared_tasks = batch.task[shared_idx]
        tasks, slot = distinct_ids(shared_tasks)
        first = self._group_of(tasks[0])
        if first is not None and all(self._group_of(t) is first for t in tasks[1:]):
            # The usual batch: every task in one group. Its row of the general case below, indexed directly:
            # the same elementwise values and float expression.
            active_row = np.zeros(ctx.nr_nodes, dtype=bool)
            active_row[list(first.active)] = True
            gf_row = first.faults.sum(axis=1)
            dst, src = batch.cpu_node[shared_idx], batch.page_node[shared_idx]
            move = move.copy()
            move[shared_idx] = active_row[dst] & (~active_row[src] | (gf_row[dst] < gf_row[src] * 3 / 4))
            return move
        rows: dict[int, int] = {}  # group id -> its row
        groups: list[NumaGroup] = []
        task_row = np.full(len(tasks), -1)  # each task's group row (-1: no group yet)
        for i, task in enumerate(tasks):
            g = self._group_of(task)
            if g is not None:
                if g.gid not in rows:
                    rows[g.gid] = len(groups)
                    groups.append(g)
                task_row[i] = rows[g.gid]
        if not groups:
            return move  # shared faults, but no group yet: migrate
        nr = ctx.nr_nodes
        active = np.zeros((len(groups), nr), dtype=bool)
        gf = np.zeros((len(groups), nr))
        for r, g in enumerate(groups):
            active[r, list(g.active)] = True
            gf[r] = g.faults.sum(axis=1)
        row = task_row[slot]
        sel = row >= 0
        at, dst, src = row[sel], batch.cpu_node[shared_idx[sel]], batch.page_node[shared_idx[sel]]
        move = move.copy()
        move[shared_idx[sel]] = active[at, dst] & (~active[at, src] | (gf[at, dst] < gf[at, src] * 3 / 4))
        return move

    def _group_of(self, task: int) -> NumaGroup | None:
        st = self.tasks.get(task)
        return None if st is None or st.group is None else self.groups[st.group]

    # ---- task_numa_fault() -------------------------------------------------------------------------------
    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: BoolArray) -> Sequence[Action]:
        task, cpu_node, last_pid = batch.task, batch.cpu_node, batch.last_pid
        mem_node = np.where(migrated, cpu_node, batch.page_node)
        priv = (last_pid < 0) | (last_pid == task)
        shared = (~priv).nonzero()[0]
        if shared.size:
            # Shared faults go through task_numa_group(), once per distinct (task, last task, last CPU), in
            # the lexicographic order of those triples (joins depend on it)
            verdicts = group_verdicts(
                task[shared], last_pid[shared], batch.last_cpu[shared],
                lambda t, p, c: self._task_numa_group(ctx, t, p, c),
            )  # fmt: skip
            if verdicts is not False:  # (all False: they stay shared, as priv has them)
                priv[shared] = verdicts
        kind = priv  # (PRIV = 1, SHARED = 0: the bools add as those integers below)
        local = mem_node == cpu_node
        pages = float(batch.pages_per_record)
        tasks, slot = distinct_ids(task)  # (slot: each fault's row in the per-task tables)
        states = [self._t(ctx, t) for t in tasks]
        nr, n = ctx.nr_nodes, len(tasks)
        active: np.ndarray | None = None
        for i, st in enumerate(states):
            if st.group is not None and len(self.groups[st.group].active) > 1:
                if active is None:
                    active = np.zeros((n, nr), dtype=bool)
                active[i, list(self.groups[st.group].active)] = True
        loc = local
        if active is not None:  # (some row has two active nodes: active.any())
            # A shared fault between two of the group's active nodes counts as local.
            loc = local | (~priv & active[slot, cpu_node] & active[slot, mem_node])
        # One count per (task, node, type) for both buffers and per (task, remote/local) for
        # numa_faults_locality, then one add per task: buf, buf_cpu and locality are zeroed by
        # task_numa_placement() and only ever receive whole multiples of ``pages`` here, so they hold
        # integer-valued floats far below 2**53, and adding count * pages at once gives the same bits as the
        # np.add.at of pages per fault it replaces. Each task's row is laid out as its ``acc`` (buf, buf_cpu,
        # locality), so one add per task does the three adds elementwise, each element getting the same sum.
        width = nr * 4 + 2
        base = slot * width
        counts = np.bincount(
            np.concatenate(
                [
                    base + mem_node * 2 + kind,
                    base + cpu_node * 2 + kind + nr * 2,
                    base + loc + nr * 4,
                ]
            ),
            minlength=n * width,
        ) * pages
        rows = counts.reshape(n, width)
        for i, st in enumerate(states):
            st.acc += rows[i]
        return ()

    def _task_numa_group(self, ctx: PolicyContext, task: int, last_pid: int, last_cpu: int) -> bool:
        """Join the group of the task now running where the page was last touched; return the new ``priv``."""
        st = self._t(ctx, task)
        if st.group is None:
            g = NumaGroup(task, {task}, st.faults.copy(), st.faults_cpu.copy(), {self._task_node(ctx, task)})
            self.groups[task] = g
            st.group = task
            self._faults_changed(None, task)
        if last_cpu < 0 or last_pid < 0:
            return False
        running = ctx.cpu_tasks(last_cpu)
        if not running or running[0] != last_pid:
            return False
        other = self.tasks.get(last_pid)
        if other is None or other.group is None or other.group == st.group:
            return False
        mine, theirs = self.groups[st.group], self.groups[other.group]
        if len(mine.tasks) > len(theirs.tasks):
            return False
        if len(mine.tasks) == len(theirs.tasks) and mine.gid > theirs.gid:
            return False
        # Threads of one process always join; tasks of other processes join on TNF_SHARED pages, i.e. when
        # the memory is mapped shared between them (processes sharing one simulated mm).
        join = ctx.task_mm(last_pid) == ctx.task_mm(task)
        if not join:
            return True
        mine.faults -= st.faults
        mine.faults_cpu -= st.faults_cpu
        theirs.faults += st.faults
        theirs.faults_cpu += st.faults_cpu
        self._faults_changed(None, mine.gid)
        self._faults_changed(None, theirs.gid)
        mine.tasks.discard(task)
        theirs.tasks.add(task)
        if not mine.tasks:
            del self.groups[mine.gid]
        st.group = theirs.gid
        self.group_history.append((ctx.now_ns, task, theirs.gid))
        return False

    @staticmethod
    def _task_node(ctx: PolicyContext, task: int) -> int:
        cpu = ctx.task_cpu(task)
        return int(ctx.cpu_node[cpu]) if cpu >= 0 else 0

    # ---- task_numa_placement() ---------------------------------------------------------------------------
    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        st = self._t(ctx, task)
        now = ctx.now_ns
        runtime = ctx.task_runtime_ns(task)
        period = max(now - st.placed_ns, 1)
        weight = min((runtime - st.runtime_seen) / period, 1.0)
        st.runtime_seen, st.placed_ns = runtime, now
        # (integer-valued floats, see after_faults(): their sums are exact in any order)
        remote, local = st.locality.tolist()
        total_faults = remote + local
        fault_types = st.buf.sum(axis=0).tolist()  # [shared, private]
        diff = st.buf - st.faults / 2
        # CPU faults count by CPU use, not raw numbers: (runtime << 16) / period * buffer / total faults.
        f_weight = (65536.0 * weight) * st.buf_cpu / (total_faults + 1)
        f_diff = f_weight - st.faults_cpu / 2
        st.faults += diff
        st.faults_cpu += f_diff
        self._faults_changed(task, st.group)
        if st.group is not None:
            g = self.groups[st.group]
            g.faults += diff
            g.faults_cpu += f_diff
        st.acc[:] = 0  # (buf, buf_cpu and locality)
        out: list[Action] = [self._update_task_scan_period(ctx, task, local, remote, fault_types)]
        node_faults = st.faults.sum(axis=1)
        has_faults = bool(node_faults.max() > 0)
        max_nid = int(np.argmax(node_faults)) if has_faults else -1
        if st.group is not None:
            g = self.groups[st.group]
            self._update_active_nodes(g)
            if has_faults:  # (the group's choice only matters then)
                gf = g.node_faults()
                if gf.max() > 0:
                    max_nid = int(np.argmax(gf))
        if max_nid >= 0 and has_faults:
            if max_nid != st.preferred:
                st.preferred = max_nid
                out.append(SetPreferredNode(task, max_nid))
            if self._task_node(ctx, task) != st.preferred:
                out += self._numa_migrate_preferred(ctx, task)
        return out

    def _update_active_nodes(self, g: NumaGroup) -> None:
        """``update_numa_active_node_mask()``: hysteresis between 6/16 and 3/16 of the busiest node."""
        faults = g.node_faults_cpu()
        top = float(faults.max())
        for nid, f in enumerate(faults.tolist()):  # (the same doubles as Python floats)
            if nid not in g.active:
                if f > top * self.config.group_active_in:
                    g.active.add(nid)
            elif f < top * self.config.group_active_out:
                g.active.discard(nid)

    def _update_task_scan_period(
        self, ctx: PolicyContext, task: int, local: float, remote: float, fault_types: list[float]
    ) -> Action:
        """``update_task_scan_period()`` from the locality counts since the last placement (``local``,
        ``remote``) and the buffered faults by type (``fault_types``: [shared, private])."""
        period = ctx.task_scan_period_ns(task)
        lo, hi = self._scan_bounds(ctx, task)
        if local + remote == 0:
            return SetScanPeriod(task, min(hi, period * 2))
        slot = -(-period // NUMA_PERIOD_SLOTS)
        ratio = int(local * NUMA_PERIOD_SLOTS // (local + remote))
        if ratio >= NUMA_PERIOD_THRESHOLD:
            diff = max(ratio - NUMA_PERIOD_THRESHOLD, 1) * slot
        else:
            diff = -(NUMA_PERIOD_THRESHOLD - ratio) * slot
            shared, private = fault_types[SHARED], fault_types[PRIV]
            scale = math.ceil(private * NUMA_PERIOD_SLOTS / (private + shared + 1))
            diff = int(diff * scale / NUMA_PERIOD_SLOTS)
        return SetScanPeriod(task, int(min(max(period + diff, lo), hi)))

    def _scan_bounds(self, ctx: PolicyContext, task: int) -> tuple[int, int]:
        """``task_scan_min()`` / ``task_scan_max()`` for the task's RSS: the scanner's own bounds."""
        rss_pages = int(sum(np.asarray(ctx.mm_node_pages(ctx.task_mm(task))).tolist()))  # (page counts: exact)
        return self.task_scan.period_bounds_ns(rss_pages * (ctx.page_size // BASE_PAGE_SIZE))

    # ---- numa_migrate_preferred() / task_numa_migrate() --------------------------------------------------
    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        out: list[Action] = []
        now = ctx.now_ns
        # One view of the run queues for the whole tick: the swaps are returned and applied after this call.
        view = _RqView(ctx)
        for task in sorted(self.tasks):
            st = self.tasks[task]
            if st.retry_ns is not None and now >= st.retry_ns and ctx.task_runnable(task):
                if self._task_node(ctx, task) == st.preferred:
                    st.retry_ns = None
                else:
                    out += self._numa_migrate_preferred(ctx, task, view)
        return out

    def _numa_migrate_preferred(self, ctx: PolicyContext, task: int, view: _RqView | None = None) -> list[Action]:
        st = self.tasks[task]
        if st.preferred < 0:
            return []
        src_cpu = ctx.task_cpu(task)
        if src_cpu < 0:
            return []
        period = ctx.task_scan_period_ns(task)
        st.retry_ns = ctx.now_ns + min(1000 * NSEC_PER_MSEC, period // 16)
        if int(ctx.cpu_node[src_cpu]) == st.preferred:  # _task_node() of a queued task
            return []
        self.migrate_attempts += 1
        return self._task_numa_migrate(ctx, task, view or _RqView(ctx), src_cpu)

    def _task_numa_migrate(self, ctx: PolicyContext, task: int, view: _RqView, src_cpu: int) -> list[Action]:
        st = self.tasks[task]
        src_nid = int(ctx.cpu_node[src_cpu])
        my_group = st.group
        # task_weight()/group_weight() of every node, read once: nothing here changes the task's or group's
        # faults, so these are the lists task_weight(task, nid) and group_weight(task, nid) index.
        task_w = self._task_ws(task) or [0] * ctx.nr_nodes
        group_w = self._group_ws(task) or [0] * ctx.nr_nodes
        taskweight = task_w[src_nid]
        groupweight = group_w[src_nid]
        allowed = view.allowed(task)
        cands_of = view.cands
        # task_numa_compare() per candidate, inlined. Every candidate it accepts has imp > 0 and replaces the
        # best only if strictly better, so ``best_imp`` starts at 0 and a candidate whose imp is not above it
        # is passed over before its (pure) affinity and load tests: the same winner, fewer tests. (The kernel
        # tests cur's affinity for src_cpu before it scores the swap; either test failing means no candidate.)
        best_imp = 0
        best: tuple[int, int | None, int] | None = None  # cpu, other, nid
        # The preferred node first; then, if it had no candidate, the other nodes where the task's or group's
        # weight does not drop, in order (the weights do not change during the search, so choosing these
        # nodes up front is the kernel's per-node test).
        nids = [st.preferred]
        for nid in nids:
            taskimp = task_w[nid] - taskweight
            groupimp = group_w[nid] - groupweight
            idle_imp = groupimp if groupimp > 0 else taskimp
            cross_imp = groupimp if my_group is not None else taskimp
            idle_seen = False
            refused: tuple[bool, bool] | None = None
            for cpu, cur, cur_group, cur_tw, cur_gw in cands_of.get(nid) or self._cands(ctx, view, nid):
                if not allowed[cpu]:
                    continue
                if cur is None:
                    # Every idle CPU of the node scores idle_imp against the same node loads: only the first
                    # can be strictly better than the best so far (which never decreases), so only it is tried.
                    if idle_seen:
                        continue
                    idle_seen = True
                    if idle_imp <= best_imp:
                        continue
                    if refused is None:
                        refused = view.refused.get((src_nid, nid)) or self._refused(view, src_nid, nid)
                    if refused[0]:
                        continue
                    best_imp, best = idle_imp, (cpu, None, nid)
                    continue
                if cur_group == my_group:
                    imp = taskimp + (cur_tw[src_nid] - cur_tw[nid] if cur_tw is not None else 0)
                    if cur_group is not None:
                        imp -= imp // 16
                else:
                    w = cur_gw if cur_group is not None else cur_tw
                    imp = cross_imp + (w[src_nid] - w[nid] if w is not None else 0)
                if imp <= best_imp:
                    continue
                if not view.allowed(cur)[src_cpu]:
                    continue
                nr = view.nr
                if not (nr[src_cpu] == 1 and nr[cpu] == 1):
                    if refused is None:
                        refused = view.refused.get((src_nid, nid)) or self._refused(view, src_nid, nid)
                    if refused[1]:
                        continue
                best_imp, best = imp, (cpu, cur, nid)
            if best is None and len(nids) == 1:
                pref = st.preferred
                nids += [
                    n
                    for n in range(ctx.nr_nodes)
                    if n not in (src_nid, pref) and (task_w[n] - taskweight >= 0 or group_w[n] - groupweight >= 0)
                ]
        if best is None:
            return []
        cpu, other, nid = best
        out: list[Action] = []
        if nid != st.preferred:
            st.preferred = nid
            out.append(SetPreferredNode(task, nid))
        lo, _ = self._scan_bounds(ctx, task)
        out.append(SetScanPeriod(task, lo))
        out.append(MigrateTask(task, cpu) if other is None else SwapTasks(task, other))
        return out

    def _cands(self, ctx: PolicyContext, view: _RqView, nid: int) -> list[_Cand]:
        """The node's CPUs in order, each with its current task, that task's group and its task and group
        weights (the values ``task_numa_compare()`` reads of ``cur``), made once per view."""
        cands: list[_Cand] = []
        tasks, task_w, group_w = self.tasks, self._task_w, self._group_w
        for cpu in ctx.node_cpus[nid]:
            queued = ctx.cpu_tasks(cpu)
            if not queued:
                cands.append((cpu, None, None, None, None))
                continue
            cur = queued[0]
            cur_st = tasks.get(cur)
            if cur_st is None:
                cands.append((cpu, cur, None, None, None))
                continue
            # (the cached lists, else computed: what _task_ws(cur) and _group_ws(cur) return)
            gid = cur_st.group
            tw = task_w.get(cur) or self._task_ws(cur)
            gw = None if gid is None else group_w.get(gid) or self._group_ws(cur)
            cands.append((cpu, cur, gid, tw, gw))
        view.cands[nid] = cands
        return cands

    def _refused(self, view: _RqView, src_nid: int, dst_nid: int) -> tuple[bool, bool]:
        """``task_numa_compare()``'s load verdicts between two nodes, made once per view: (moving to an idle CPU
        is refused, a swap that needs the load test is refused). Both depend on the two nodes' loads only."""
        src, dst = view.node_stats(src_nid), view.node_stats(dst_nid)
        load = 1024.0
        idle = (src[2] and not dst[2]) or self._load_too_imbalanced(src, dst, src[0] - load, dst[0] + load)
        # (the same float operations, in the same order, as moving one task each way)
        swap = self._load_too_imbalanced(src, dst, src[0] - load + load, dst[0] + load - load)
        verdict = view.refused[src_nid, dst_nid] = (idle, swap)
        return verdict

    def _load_too_imbalanced(
        self, src: tuple[float, float, bool], dst: tuple[float, float, bool], src_load: float, dst_load: float
    ) -> bool:
        src_cap, dst_cap = src[1], dst[1]
        hi, lo = max(dst_load, src_load), min(dst_load, src_load)
        imb = hi * src_cap * 100 - lo * dst_cap * self.config.imbalance_pct
        if imb <= 0:
            return False
        ohi, olo = max(dst[0], src[0]), min(dst[0], src[0])
        old_imb = ohi * src_cap * 100 - olo * dst_cap * self.config.imbalance_pct
        return imb > old_imb

    # ---- load balancer -----------------------------------------------------------------------------------
    def lb_score(self, ctx: PolicyContext, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        st = self.tasks.get(task)
        if st is None or st.preferred < 0:
            return 0.0
        return 1.0 if int(ctx.cpu_node[dst_cpu]) == st.preferred else 0.0

    def metrics(self) -> dict[str, object]:
        groups = {str(g.gid): sorted(g.tasks) for g in sorted(self.groups.values(), key=lambda g: g.gid)}
        return {
            "numa_groups": groups,
            "numa_group_active_nodes": {str(g.gid): sorted(g.active) for g in self.groups.values()},
            "numa_group_joins": len(self.group_history),
            "preferred_nodes": {str(t): st.preferred for t, st in sorted(self.tasks.items())},
            "numa_migrate_attempts": self.migrate_attempts,
        }
