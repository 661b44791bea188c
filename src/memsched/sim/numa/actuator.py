"""Carrying out a NUMA policy's actions in the simulated kernel, with their cost and their refusal rules.

:class:`SimActuator` is the simulator's :class:`~memsched.policies.numa.driver.Actuator`; every action ends in
an :class:`~memsched.policies.numa.driver.ActionResult` that says what happened and, when the kernel would
not (fully) do it, why:

``MigratePages``
    ``sync``: ``migrate_misplaced_page()`` from the hinting fault, under the rate limit and
    ``migrate_balanced_pgdat()`` (``sim/mm/migrate.py``); refused for a faulting task whose memory policy
    lacks ``MPOL_F_MOF`` (``mpol_misplaced()`` never asks, mm/mempolicy.c 3.8); the faulting task pays: the
    fixed CPU part, then the copy at the memory model's rate (``FluidProgress.charge_copy``), and its lock
    holds and TLB flushes are queued for ``sim/numa/contention.py``. ``async``: queued on the destination
    node's ``knuma_migratedN`` thread (the old AutoNUMA), which migrates up to ``ratelimit_mb`` per
    ``migrate_interval_ms``. ``syscall``: a daemon's ``migrate_pages(2)``/``move_pages(2)``, not rate
    limited, splitting the huge pages it moves (``unmap_and_move()``), copied on a CPU of the source node.
``MigrateMmNodes``
    ``migrate_pages(2)`` (``do_migrate_pages()``: the i-th source node maps to the (i mod n)-th destination).
``MigrateTask`` / ``SwapTasks``
    ``migrate_task_to()`` / ``migrate_swap()``: only a runnable task, to a CPU its affinity allows; each
    move costs ``task_migrate_ns``.
``SetAffinity``
    ``sched_setaffinity(2)``. ``SetPreferredNode`` / ``SetScanPeriod``: recorded in :class:`NumaState`.

Kernel threads' CPU time (``knuma_scand``, ``knuma_migratedN``) is taken from the task running on the CPU
they use (nothing, when one of those CPUs is idle) and counted in system time; their copies run on an idle
CPU of the node as a copy of their own, or in the time of the task they displace.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.policies.numa.actions import (
    Action,
    MigrateMmNodes,
    MigratePages,
    MigrateTask,
    SetAffinity,
    SetPreferredNode,
    SetScanPeriod,
    SwapTasks,
)
from memsched.policies.numa.base import MigrateMisplaced, MigrationRules
from memsched.policies.numa.driver import ActionHandlers, ActionRangeError, ActionResult
from memsched.sim.engine import Prio
from memsched.sim.fluid import jit
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.migrate import MigrationCosts, MigrationResult, Migrator
from memsched.sim.mm.mm import MmStruct
from memsched.sim.numa.contention import Contention
from memsched.sim.numa.context import NumaState
from memsched.units import MIB, NSEC_PER_MSEC, PAGE_SIZE_THP

__all__ = ["SimActuator"]

IntArray = npt.NDArray[np.int64]
#: No flags (``_kernels.migrate_misplaced``'s ``mof_task`` where every faulting task's policy has ``MPOL_F_MOF``).
_NO_FLAGS = np.zeros(0, dtype=bool)


class SimActuator(ActionHandlers):
    """Applies actions to one simulated machine."""

    def __init__(
        self,
        machine: FluidMachine,
        rules: MigrationRules,
        costs: MigrationCosts,
        state: NumaState,
        contention: Contention | None = None,
    ) -> None:
        self.machine = machine
        self.rules = rules
        self.costs = costs
        self.state = state
        self.contention = contention
        #: Migrations refused because the faulting task's policy has no MPOL_F_MOF.
        self.refused_mof = 0
        self.migrator = Migrator(machine, rules, costs)
        self.stats: dict[str, int | float] = {"numa_task_migrations": 0, "numa_task_swaps": 0, "kthread_ns": 0.0}
        self.async_queue: list[list[tuple[int, IntArray]]] = [[] for _ in range(machine.nr_nodes)]
        self._async_pending = [False] * machine.nr_nodes

    def set_preferred_node(self, action: SetPreferredNode) -> ActionResult:
        self._task(action.task)
        _within("node", action.node, self.machine.nr_nodes, "node ids", lowest=-1)
        self.state.preferred[action.task] = action.node
        return _result(action, f"task {action.task}", f"preferred node {action.node}", "recorded")

    def set_scan_period(self, action: SetScanPeriod) -> ActionResult:
        self._task(action.task)
        self.state.period[action.task] = action.period_ns
        return _result(action, f"task {action.task}", f"scan period {action.period_ns} ns", "recorded")

    def set_affinity(self, action: SetAffinity) -> ActionResult:
        task = self._task(action.task)
        for cpu in action.cpus or ():
            _within("cpus", cpu, self.machine.nr_cpus, "CPU ids")
        detail = f"affinity {'all' if action.cpus is None else list(action.cpus)}"
        if task.state is FluidTaskState.EXITED:
            return _result(action, task.name, detail, "skipped", "the task exited")
        self.machine.set_affinity(task, action.cpus)
        return _result(action, task.name, detail, "applied")

    def _task(self, task: int, field: str = "task") -> FluidTask:
        """Task ``task`` of this machine; :class:`ActionRangeError` when it has none of that id."""
        tasks = self.machine.tasks
        _within(field, task, len(tasks), "task ids")
        return tasks[task]

    def _mm(self, mm: int) -> MmStruct:
        """The mm ``mm`` of this machine; :class:`ActionRangeError` when it has none of that id."""
        mms = self.machine.mms
        _within("mm", mm, len(mms), "mm ids")
        return mms[mm]

    # ---- tasks ---------------------------------------------------------------------------------------------
    def _movable(self, task: FluidTask, dst_cpu: int) -> str | None:
        if task.state is not FluidTaskState.RUNNABLE or task.cpu < 0:
            return "the task is not runnable"
        if not task.affinity[dst_cpu]:
            return f"CPU {dst_cpu} is outside its affinity"
        return None

    def migrate_task(self, action: MigrateTask) -> ActionResult:
        m = self.machine
        task = self._task(action.task)
        _within("dst_cpu", action.dst_cpu, m.nr_cpus, "CPU ids")
        detail = f"CPU {task.cpu} -> CPU {action.dst_cpu}"
        if task.cpu == action.dst_cpu and task.state is FluidTaskState.RUNNABLE:
            return _result(action, task.name, detail, "no-op", "already there")
        why = self._movable(task, action.dst_cpu)
        if why is not None:
            return _result(action, task.name, detail, "skipped", why)
        m.sched.move_task(task, action.dst_cpu)
        m.charge_system(task, self.costs.task_migrate_ns, "task_moves")
        self.stats["numa_task_migrations"] += 1
        return _result(action, task.name, detail, "applied")

    def swap_tasks(self, action: SwapTasks) -> ActionResult:
        m = self.machine
        a, b = self._task(action.a, "a"), self._task(action.b, "b")
        target, detail = f"{a.name} <-> {b.name}", f"CPU {a.cpu} <-> CPU {b.cpu}"
        why = self._movable(a, b.cpu) if b.cpu >= 0 else "the task is not runnable"
        why = why or (self._movable(b, a.cpu) if a.cpu >= 0 else "the task is not runnable")
        if why is not None:
            return _result(action, target, detail, "skipped", why)
        if a.cpu == b.cpu:
            return _result(action, target, detail, "no-op", "both on the same CPU")
        ca, cb = a.cpu, b.cpu
        m.sched.move_task(a, cb)
        m.sched.move_task(b, ca)
        m.charge_system(a, self.costs.task_migrate_ns, "task_moves")
        m.charge_system(b, self.costs.task_migrate_ns, "task_moves")
        self.stats["numa_task_swaps"] += 1
        return _result(action, target, detail, "applied")

    # ---- pages ---------------------------------------------------------------------------------------------
    def migrate_pages(self, action: MigratePages) -> ActionResult:
        m = self.machine
        mm = self._mm(action.mm)
        if action.pages.shape[0]:  # (ids >= 0: MigratePages checks)
            for field, ids, count, what in (
                ("pages", action.pages, mm.nr_pages, f"pages of mm {action.mm}"),
                ("dst", action.dst, m.nr_nodes, "node ids"),
                ("payer", action.payer, len(m.tasks), "task ids"),
            ):
                if ids is not None:
                    _within(field, ids.item(ids.argmax()), count, what)
        target = f"mm {action.mm}"
        detail = f"{action.pages.shape[0]} page(s), {action.mode}"
        if action.mode == "async":
            for node in np.unique(action.dst):
                sel = action.dst == node
                self.async_queue[int(node)].append((action.mm, action.pages[sel].copy()))
                if not self._async_pending[int(node)]:
                    self._async_pending[int(node)] = True
                    m.engine.after(0, Prio.DEFERRED, self._knuma_migrated, int(node))
            return _result(action, target, detail, "queued", "on the destination nodes' knuma_migrated threads")
        pages, dst, payer = action.pages, action.dst, action.payer
        refused_mof = 0
        if action.mode == "sync":
            assert payer is not None
            # the distinct payers (payer ids are >= 0: MigratePages checks)
            tasks = m.tasks
            bad = [t for t in np.bincount(payer).nonzero()[0].tolist() if not tasks[t].mempolicy.mof]
            if bad:  # (then some record is refused)
                mof = ~np.isin(payer, bad)
                refused_mof = int((~mof).sum())
                self.refused_mof += refused_mof
                pages, dst, payer = pages[mof], dst[mof], payer[mof]
        if action.mode == "sync":
            assert payer is not None
            res = self._migrate_sync(action.mm, pages, dst, payer)
        else:  # syscall (migrate reads pages and dst and returns new arrays or these read-only ones)
            res = self.migrator.migrate(action.mm, pages, dst, apply_ratelimit=False, split_huge=True)
        if res.moved.size:
            assert res.src_count is not None and res.dst_count is not None
            if action.mode == "syscall":  # a daemon's migrate_pages(2): copied on a CPU of the source node, no
                # task of the mm pays
                node = int(res.moved_src[0])
                units = int(res.moved.size)
                src_b, dst_b = self.migrator.count_bytes(res.src_count, res.dst_count)  # (copy_bytes of the pages)
                self.kthread_work(node, self.migrator.fixed_ns(action.mm, units))
                self.kthread_copy(node, src_b, dst_b)
                self._flushes(action.mm, -1, self.migrator.kernel_pages(action.mm, units), splits=res.splits)
        elif res.splits:
            self._flushes(action.mm, -1, 0, splits=res.splits)
        result = _migration_result(action, target, detail, res)
        if refused_mof:
            why = f"{refused_mof} refused: the faulting task's memory policy has no MPOL_F_MOF (mpol_misplaced)"
            status = "partial" if res.moved.size else "skipped"
            msg = f"{result.message}; {why}" if result.message and res.moved.size else why
            result = ActionResult(result.action, target, detail, status, msg, moved_pages=res.moved)  # type: ignore[arg-type]
        return result

    def migrate_misplaced_cols(
        self, mm_id: int, cols: IntArray, mof_task: npt.NDArray[np.bool_] | None
    ) -> str | None:
        """``MigrateMisplaced``'s rule over a fault batch's columns (``cols``: ``_fault_rows``' rows; ``mof_task``:
        per task id, its memory policy has ``MPOL_F_MOF``; None: every faulting task's has), then the sync migration
        of the misplaced pages (:meth:`_misplaced_numpy`). Once the process uses the kernels and the progress is
        synced to now (the kernel charges without syncing), as one compiled kernel (``_kernels.migrate_misplaced``:
        the same migration, placement, payments, counts and lock holds), else through numpy
        (:meth:`_misplaced_numpy`). Returns the migration's status, None when no fault is misplaced."""
        kernels = jit.loaded()
        args = self.misplaced_args(mm_id, mof_task)
        if kernels is None or args is None:
            return self._misplaced_numpy(mm_id, cols, mof_task)
        out, total = kernels.migrate_misplaced(cols, *args)
        if out[7]:  # a page or node out of range, nothing changed: numpy's path raises as numpy indexing does
            return self._misplaced_numpy(mm_id, cols, mof_task)
        return self.misplaced_done(mm_id, out, total, paid=False)

    def misplaced_args(self, mm_id: int, mof_task: npt.NDArray[np.bool_] | None) -> tuple[Any, ...] | None:
        """The arguments of ``_kernels.migrate_misplaced`` after the batch's columns, when it may run now: the
        process uses the kernels and the progress is synced to now (the kernel charges without syncing); else
        None."""
        m = self.machine
        progress = m.progress
        if jit.loaded() is None or not progress.synced():
            return None
        mm = m.mms[mm_id]
        migrator = self.migrator
        return (
            _NO_FLAGS if mof_task is None else mof_task, mof_task is None, migrator.rows_state(mm, True),
            mm.node_pages, float(m.page_size), migrator.kernel_pages(mm_id, 1) * self.costs.migrate_fixed_ns,
            progress.system_by_cause.get("migration", 0.0), progress.charge_arrays(),
        )  # fmt: skip

    def lock_args(self, mm_id: int) -> tuple[bool, bool, int, float]:
        """How a sync migration of ``mm_id`` pays its locks (:meth:`_pay_locks`, and a kernel that holds them as it
        does): whether it does (a contention model), natively (a THP migration's page table lock) or by rmap walks
        and flushes, the pages per page-array entry and the hold of one (a float: the costs' products with the
        counts stay below 2**53, so the same values as the int's)."""
        contention = self.contention
        if contention is None:
            return False, False, 1, 0.0
        native = self.machine.page_size == PAGE_SIZE_THP and not self.machine.mms[mm_id].thp_units
        costs = contention.costs
        each = costs.ptl_thp_migrate_ns if native else costs.rmap_walk_ns
        return True, native, self.migrator.kernel_pages(mm_id, 1), float(each)

    def misplaced_done(self, mm_id: int, out: IntArray, total: float, *, paid: bool) -> str | None:
        """What ``_kernels.migrate_misplaced``'s results (``out``, in range, and the ``migration`` cause's new sum)
        leave to do: the region bytes of the new placement, the cause's sum and the rates to compute again, the
        locks (unless ``paid``: a kernel held them), the counts. Returns the migration's status, None when no fault
        was misplaced."""
        n_mis, n, refused_rl, refused_bal, failed, charged, copied, _, nids, lo, hi = out[:11].tolist()
        if not n_mis:
            return None
        m = self.machine
        if n:  # (after the head: moved, their destinations, their sources, node_pages' change, payers, their pages)
            rest, nr = out[11:], m.nr_nodes
            m.mms[mm_id].placed(rest[:n], rest[n : 2 * n], rest[2 * n : 3 * n], rest[3 * n : 3 * n + nr], lo, hi)
            m.progress.rows_charged("migration", total, bool(charged), bool(copied))
            if not paid:
                payers = rest[3 * n + nr :]
                self._pay_locks(mm_id, payers[:nids], payers[nids:])
        self.migrator.counted(n, refused_rl, failed)
        return _migration_status(n, bool(refused_rl or refused_bal or failed))

    def _misplaced_numpy(self, mm_id: int, cols: IntArray, mof_task: npt.NDArray[np.bool_] | None) -> str | None:
        """:meth:`migrate_misplaced_cols` through numpy: the rule's mask (``MigrateMisplaced.misplaced``), then
        :meth:`migrate_pages` of ``MigratePages(mm_id, pages, dst, payer=tasks, mode="sync")`` of the misplaced
        faults from the simulator's own records (ids in range, every payer's memory policy with ``MPOL_F_MOF``),
        without the action: the same migration and payments (:meth:`_migrate_sync`), and its status."""
        pages, task_ids, cpu_node = cols[0], cols[1], cols[3]
        misplaced = MigrateMisplaced.misplaced(cols[4], cpu_node, None if mof_task is None else mof_task[task_ids])
        if not np.count_nonzero(misplaced):
            return None
        res = self._migrate_sync(mm_id, pages[misplaced], cpu_node[misplaced], task_ids[misplaced])
        return _migration_outcome(res)[0]

    def _migrate_sync(self, mm_id: int, pages: IntArray, dst: IntArray, payer: IntArray) -> MigrationResult:
        """``migrate_misplaced_page()`` of each page in its faulting task's context, under the rate limit: the
        migration, then what the tasks that faulted on moved pages pay (:meth:`_pay_sync`)."""
        # (migrate reads pages and dst and returns new arrays or these read-only ones)
        res = self.migrator.migrate(mm_id, pages, dst, apply_ratelimit=True)
        if res.moved.size:
            self._pay_sync(mm_id, pages, payer, res)
        return res

    def _pay_sync(self, mm_id: int, pages: IntArray, payer: IntArray, res: MigrationResult) -> None:
        """The faulting tasks migrate in their own context: the CPU part, then the copy, and their locks and
        flushes. ``payer[i]`` faulted on ``pages[i]``; each task that faulted on a page that moved pays for it
        (:func:`_payments`), in increasing id order."""
        m = self.machine
        per_unit = self.migrator.kernel_pages(mm_id, 1)  # (kernel_pages(mm_id, n) is n times this)
        ids, units, fixed_ns, src_b, dst_b = _payments(
            pages, payer, res.moved, res.moved is pages, res.moved_src, res.moved_dst, m.nr_nodes,
            float(m.page_size), per_unit * self.costs.migrate_fixed_ns,
        )  # fmt: skip
        # charge_system of each payer's CPU part in turn, then its copy (FluidProgress.charge_rows)
        m.progress.charge_rows(ids, fixed_ns, src_b, dst_b, "migration")
        self._pay_locks(mm_id, ids, units)

    def _pay_locks(self, mm_id: int, tids: IntArray, counts: IntArray) -> None:
        """The locks and flushes of :meth:`_pay_sync`: the payers ``tids``, in order, moved ``counts`` page-array
        entries (int64 arrays), as :meth:`lock_args` says."""
        pays, native, per_unit, each_ns = self.lock_args(mm_id)
        contention = self.contention
        if not pays or contention is None:
            return
        if native:  # native THP migration: no rmap walk
            contention.hold_each(mm_id, tids, "ptl", counts, each_ns)
        else:
            # try_to_unmap() + remove_migration_ptes(); ptep_clear_flush() of a PTE the hinting fault made present
            # again (every payer's hold, then its flush: the same slots and sums as one payer after another)
            base = counts * per_unit
            contention.hold_each(mm_id, tids, "anon", 2 * base, each_ns, base)

    def _flushes(self, mm_id: int, task: int, base_pages: int, *, splits: int = 0) -> None:
        if self.contention is not None:
            self.contention.flush(mm_id, task, base_pages + splits)

    def migrate_mm_nodes(self, action: MigrateMmNodes) -> ActionResult:
        """``migrate_pages(2)``: the i-th source node's pages go to the (i mod n)-th destination node."""
        mm = self._mm(action.mm)
        for field, nodes in (("from_nodes", action.from_nodes), ("to_nodes", action.to_nodes)):
            for node in nodes:
                _within(field, node, self.machine.nr_nodes, "node ids")
        target = f"mm {action.mm}"
        detail = f"nodes {list(action.from_nodes)} -> {list(action.to_nodes)}"
        if mm.users == 0:
            return _result(action, target, detail, "skipped", "the process exited")
        to = np.asarray(action.to_nodes, dtype=np.int64)
        pages_l, dst_l = [], []
        for i, src in enumerate(action.from_nodes):
            if src in action.to_nodes:
                continue
            pages = (mm.page_node == src).nonzero()[0]
            if pages.size:
                pages_l.append(pages)
                dst_l.append(np.full(pages.size, to[i % to.size], dtype=np.int64))
        if not pages_l:
            return _result(action, target, detail, "no-op", "no resident page on a node that would move")
        inner = self.migrate_pages(
            MigratePages(action.mm, np.concatenate(pages_l), np.concatenate(dst_l), mode="syscall")
        )
        return ActionResult(
            type(action).__name__, target, detail, inner.status, inner.message, moved_pages=inner.moved_pages
        )

    def _knuma_migrated(self, node: int) -> None:
        """``knuma_migratedN``: migrate up to ``pages_to_migrate`` from node N's queue, then sleep."""
        m = self.machine
        budget = self.rules.ratelimit_mb * MIB // m.page_size
        queue = self.async_queue[node]
        done = 0
        while queue and done < budget:
            mm_id, pages = queue[0]
            take = pages[: budget - done]
            rest = pages[budget - done :]
            if rest.size:
                queue[0] = (mm_id, rest)
            else:
                queue.pop(0)
            if m.mms[mm_id].users == 0:
                continue
            dst = np.full(take.shape[0], node, dtype=np.int64)
            res = self.migrator.migrate(mm_id, take, dst, apply_ratelimit=False)
            done += take.shape[0]
            if res.moved.size:
                assert res.src_count is not None and res.dst_count is not None
                src_b, dst_b = self.migrator.count_bytes(res.src_count, res.dst_count)  # (copy_bytes of the pages)
                self.kthread_work(node, self.migrator.fixed_ns(mm_id, int(res.moved.size)))
                self.kthread_copy(node, src_b, dst_b)
                if not (m.page_size == PAGE_SIZE_THP and not m.mms[mm_id].thp_units):
                    self._flushes(mm_id, -1, self.migrator.kernel_pages(mm_id, int(res.moved.size)))
        if queue:
            m.engine.after(self.rules.migrate_interval_ms * NSEC_PER_MSEC, Prio.TICK, self._knuma_migrated, node)
        else:
            self._async_pending[node] = False

    def kthread_copy(self, node: int, src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]) -> None:
        """A kernel thread's page copy on a CPU of ``node``: on an idle one as a copy of its own, else in the time
        of the task running on the first CPU of the node."""
        m = self.machine
        cpus = m.topology.node_cpus(node)
        idle = [c for c in cpus if not m.sched.rq[c]]
        if idle:
            m.progress.start_kernel_copy(idle[0], src, dst)
            return
        victim = m.sched.running_cpu_task(min(cpus))
        if victim is not None:
            m.progress.charge_copy(victim, src, dst)

    def kthread_work(self, node: int | None, ns: float) -> None:
        """A kernel thread's CPU time: taken from the task running on the CPU it uses (an idle one if any)."""
        if ns <= 0:
            return
        m = self.machine
        cpus = range(m.nr_cpus) if node is None else m.topology.node_cpus(node)
        idle = [c for c in cpus if not m.sched.rq[c]]
        self.stats["kthread_ns"] += ns
        if idle:
            return
        victim = m.sched.running_cpu_task(min(cpus))
        if victim is not None:
            m.charge_system(victim, ns, "kthreads")


def _within(field: str, value: int, count: int, what: str, *, lowest: int = 0) -> None:
    """Raise :class:`ActionRangeError` unless ``lowest <= value < count`` (``count`` ``what`` on this machine)."""
    if not lowest <= value < count:
        allowed = f"{lowest} to {count - 1}" if count > lowest else "none"
        raise ActionRangeError(f"with {field} {value}: this machine has {what} {allowed}")


def _result(action: Action, target: str, detail: str, status: str, message: str = "") -> ActionResult:
    return ActionResult(type(action).__name__, target, detail, status, message)  # type: ignore[arg-type]


def _migration_result(action: MigratePages, target: str, detail: str, res: MigrationResult) -> ActionResult:
    status, message = _migration_outcome(res)
    return ActionResult(type(action).__name__, target, detail, status, message, moved_pages=res.moved)  # type: ignore[arg-type]


def _migration_outcome(res: MigrationResult) -> tuple[str, str]:
    """The status of a page migration that ended in ``res``, and its message."""
    moved = int(res.moved.shape[0])
    refused = []
    if res.refused_ratelimit:
        refused.append(f"{res.refused_ratelimit} refused by the rate limit")
    if res.refused_balance:
        refused.append(f"{res.refused_balance} refused by migrate_balanced_pgdat() (destination too full)")
    if res.failed:
        refused.append(f"{res.failed} failed (no free frame)")
    why = "; ".join(refused)
    status = _migration_status(moved, bool(refused))
    if status == "applied":
        message = f"moved {moved}"
    elif status == "partial":
        message = f"moved {moved}; {why}"
    elif status == "skipped":
        message = why
    else:
        message = "already on the destination or not present"
    return status, message


def _migration_status(moved: int, refused: bool) -> str:
    """The status of a page migration that moved ``moved`` pages and refused some or none (``refused``)."""
    if moved:
        return "partial" if refused else "applied"
    return "skipped" if refused else "no-op"


@jit.compiled_as("payments")
def _payments(
    pages: IntArray,
    payer: IntArray,
    moved: IntArray,
    kept_all: bool,
    src: IntArray,
    dst: IntArray,
    nr: int,
    page_size: float,
    unit_ns: int,
) -> tuple[IntArray, IntArray, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Who pays for a sync migration and for what. ``payer[i]`` faulted on ``pages[i]``; ``moved`` are the pages
    that moved (``pages`` itself when ``kept_all``), from the nodes ``src`` to ``dst``. A page the action names
    twice is paid for by its first record's payer. Returns the distinct payers (ids in increasing order), the
    pages each moved, the CPU time of each (``unit_ns`` a page: ``Migrator.fixed_ns``), and the bytes its copies
    read from and write to each node, one row per payer (``Migrator.copy_bytes`` of its pages)."""
    payers = _lookup(pages, payer, moved, kept_all)
    per_payer = np.bincount(payers)  # (payer ids are >= 0)
    ids = per_payer.nonzero()[0]
    k = per_payer.shape[0]
    # Row t of each table is np.bincount(src or dst of payer t's pages, minlength=nr): the same integer
    # counts as copy_bytes of payers == t, in one bincount (every node id is below nr).
    row = payers * nr
    src_c = np.bincount(row + src, minlength=k * nr).reshape(k, nr)[ids]
    dst_c = np.bincount(row + dst, minlength=k * nr).reshape(k, nr)[ids]
    # (copy_bytes' cast and multiply, row by row)
    src_b = np.multiply(src_c, page_size, dtype=np.float64)
    dst_b = np.multiply(dst_c, page_size, dtype=np.float64)
    units = per_payer[ids]
    return ids, units, (units * unit_ns).astype(np.float64), src_b, dst_b


def _lookup(keys: IntArray, values: npt.NDArray[np.int64], wanted: IntArray, every: bool) -> npt.NDArray[np.int64]:
    """``values[i]`` for each ``wanted`` key, the value of its first occurrence for a key ``keys`` repeats
    (``every``: ``wanted`` is ``keys``)."""
    if every:  # (Migrator.migrate moved every page)
        # With no key twice, each key's value is its own: ``values`` itself. Else the general lookup below.
        ordered = np.sort(keys)
        if not np.count_nonzero(ordered[1:] == ordered[:-1]):
            return values
    order = keys.argsort(kind="stable")
    pos = keys[order].searchsorted(wanted)
    return np.asarray(values[order[pos]])
