"""Carrying out a NUMA policy's actions in the simulated kernel, with their cost and their refusal rules.

:class:`SimActuator` is the simulator's :class:`~memsched.policies.numa.driver.Actuator`; every action ends in
an :class:`~memsched.policies.numa.driver.ActionResult` that says what happened and, when the kernel would
not (fully) do it, why:

``MigratePages``
    ``sync``: ``migrate_misplaced_page()`` from the hinting fault, under the rate limit and
    ``migrate_balanced_pgdat()`` (``sim/mm/migrate.py``); the faulting task pays the copy. ``async``:
    queued on the destination node's ``knuma_migratedN`` thread (AutoNUMA), which migrates up to
    ``ratelimit_mb`` per ``migrate_interval_ms`` and pays with its own CPU time. ``syscall``: a daemon's
    ``move_pages(2)``, not rate limited, paid on a CPU of the source node.
``MigrateMmNodes``
    ``migrate_pages(2)`` (``do_migrate_pages()``: the i-th source node maps to the (i mod n)-th destination).
``MigrateTask`` / ``SwapTasks``
    ``migrate_task_to()`` / ``migrate_swap()``: only a runnable task, to a CPU its affinity allows; each
    move costs ``task_migrate_ns``.
``SetAffinity``
    ``sched_setaffinity(2)``. ``SetPreferredNode`` / ``SetScanPeriod``: recorded in :class:`NumaState`.

Kernel threads' CPU time (``knuma_scand``, ``knuma_migratedN``) is taken from the task running on the CPU
they use (nothing, when one of those CPUs is idle) and counted in system time.
"""

from __future__ import annotations

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
from memsched.policies.numa.base import MigrationRules
from memsched.policies.numa.driver import ActionHandlers, ActionResult
from memsched.sim.engine import Prio
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.migrate import MigrationCosts, MigrationResult, Migrator
from memsched.sim.numa.context import NumaState
from memsched.units import MIB, NSEC_PER_MSEC

__all__ = ["SimActuator"]

IntArray = npt.NDArray[np.int64]


class SimActuator(ActionHandlers):
    """Applies actions to one simulated machine."""

    def __init__(
        self, machine: FluidMachine, rules: MigrationRules, costs: MigrationCosts, state: NumaState
    ) -> None:
        self.machine = machine
        self.rules = rules
        self.costs = costs
        self.state = state
        self.migrator = Migrator(machine, rules, costs)
        self.stats: dict[str, float] = {"numa_task_migrations": 0, "numa_task_swaps": 0, "kthread_ns": 0.0}
        self.async_queue: list[list[tuple[int, IntArray]]] = [[] for _ in range(machine.nr_nodes)]
        self._async_pending = [False] * machine.nr_nodes

    def set_preferred_node(self, action: SetPreferredNode) -> ActionResult:
        self.state.preferred[action.task] = action.node
        return _result(action, f"task {action.task}", f"preferred node {action.node}", "recorded")

    def set_scan_period(self, action: SetScanPeriod) -> ActionResult:
        self.state.period[action.task] = action.period_ns
        return _result(action, f"task {action.task}", f"scan period {action.period_ns} ns", "recorded")

    def set_affinity(self, action: SetAffinity) -> ActionResult:
        task = self.machine.tasks[action.task]
        detail = f"affinity {'all' if action.cpus is None else list(action.cpus)}"
        if task.state is FluidTaskState.EXITED:
            return _result(action, task.name, detail, "skipped", "the task exited")
        self.machine.set_affinity(task, action.cpus)
        return _result(action, task.name, detail, "applied")

    # ---- tasks ---------------------------------------------------------------------------------------------
    def _movable(self, task: FluidTask, dst_cpu: int) -> str | None:
        if task.state is not FluidTaskState.RUNNABLE or task.cpu < 0:
            return "the task is not runnable"
        if not task.affinity[dst_cpu]:
            return f"CPU {dst_cpu} is outside its affinity"
        return None

    def migrate_task(self, action: MigrateTask) -> ActionResult:
        m = self.machine
        task = m.tasks[action.task]
        detail = f"CPU {task.cpu} -> CPU {action.dst_cpu}"
        if task.cpu == action.dst_cpu and task.state is FluidTaskState.RUNNABLE:
            return _result(action, task.name, detail, "no-op", "already there")
        why = self._movable(task, action.dst_cpu)
        if why is not None:
            return _result(action, task.name, detail, "skipped", why)
        m.sched.move_task(task, action.dst_cpu)
        m.charge_system(task, self.costs.task_migrate_ns)
        self.stats["numa_task_migrations"] += 1
        return _result(action, task.name, detail, "applied")

    def swap_tasks(self, action: SwapTasks) -> ActionResult:
        m = self.machine
        a, b = m.tasks[action.a], m.tasks[action.b]
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
        m.charge_system(a, self.costs.task_migrate_ns)
        m.charge_system(b, self.costs.task_migrate_ns)
        self.stats["numa_task_swaps"] += 1
        return _result(action, target, detail, "applied")

    # ---- pages ---------------------------------------------------------------------------------------------
    def migrate_pages(self, action: MigratePages) -> ActionResult:
        m = self.machine
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
        mm = m.mms[action.mm]
        src_before = mm.page_node[action.pages].astype(np.int64)
        res = self.migrator.migrate(
            action.mm, action.pages.copy(), action.dst.copy(), apply_ratelimit=action.mode == "sync"
        )
        if res.moved.size:
            moved_src = _lookup(action.pages, src_before, res.moved)
            if action.mode == "sync":
                assert action.payer is not None
                payer = _lookup(action.pages, action.payer, res.moved)
                for tid in np.unique(payer):
                    sel = payer == tid
                    task = m.tasks[int(tid)]
                    cpu_node = int(m.cpu_node[task.cpu]) if task.cpu >= 0 else int(res.moved_dst[sel][0])
                    cost = float(self.migrator.copy_ns(cpu_node, moved_src[sel], res.moved_dst[sel]).sum())
                    m.charge_system(task, cost)
            else:  # a daemon's migrate_pages(2): its own time, on a CPU of the source node
                node = int(moved_src[0])
                self.kthread_work(node, float(self.migrator.copy_ns(node, moved_src, res.moved_dst).sum()))
        return _migration_result(action, target, detail, res)

    def migrate_mm_nodes(self, action: MigrateMmNodes) -> ActionResult:
        """``migrate_pages(2)``: the i-th source node's pages go to the (i mod n)-th destination node."""
        mm = self.machine.mms[action.mm]
        target = f"mm {action.mm}"
        detail = f"nodes {list(action.from_nodes)} -> {list(action.to_nodes)}"
        if mm.users == 0:
            return _result(action, target, detail, "skipped", "the process exited")
        to = np.asarray(action.to_nodes, dtype=np.int64)
        pages_l, dst_l = [], []
        for i, src in enumerate(action.from_nodes):
            if src in action.to_nodes:
                continue
            pages = np.flatnonzero(mm.page_node == src)
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
            src = m.mms[mm_id].page_node[take].astype(np.int64)
            dst = np.full(take.shape[0], node, dtype=np.int64)
            res = self.migrator.migrate(mm_id, take, dst, apply_ratelimit=False)
            done += take.shape[0]
            if res.moved.size:
                moved_src = _lookup(take, src, res.moved)
                self.kthread_work(node, float(self.migrator.copy_ns(node, moved_src, res.moved_dst).sum()))
        if queue:
            m.engine.after(self.rules.migrate_interval_ms * NSEC_PER_MSEC, Prio.TICK, self._knuma_migrated, node)
        else:
            self._async_pending[node] = False

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
            m.charge_system(victim, ns)


def _result(action: Action, target: str, detail: str, status: str, message: str = "") -> ActionResult:
    return ActionResult(type(action).__name__, target, detail, status, message)  # type: ignore[arg-type]


def _migration_result(action: MigratePages, target: str, detail: str, res: MigrationResult) -> ActionResult:
    moved = int(res.moved.shape[0])
    refused = []
    if res.refused_ratelimit:
        refused.append(f"{res.refused_ratelimit} refused by the rate limit")
    if res.refused_balance:
        refused.append(f"{res.refused_balance} refused by migrate_balanced_pgdat() (destination too full)")
    if res.failed:
        refused.append(f"{res.failed} failed (no free frame)")
    why = "; ".join(refused)
    if moved and not refused:
        status, message = "applied", f"moved {moved}"
    elif moved:
        status, message = "partial", f"moved {moved}; {why}"
    elif refused:
        status, message = "skipped", why
    else:
        status, message = "no-op", "already on the destination or not present"
    return ActionResult(type(action).__name__, target, detail, status, message, moved_pages=res.moved)  # type: ignore[arg-type]


def _lookup(keys: IntArray, values: npt.NDArray[np.int64], wanted: IntArray) -> npt.NDArray[np.int64]:
    """``values[i]`` for each ``wanted`` key (keys unique)."""
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], wanted)
    return np.asarray(values[order[pos]])
