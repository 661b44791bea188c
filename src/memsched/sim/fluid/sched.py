"""The fluid machine's runqueues: enqueue, dequeue, migration, affinity and load balancing.

Each CPU has a runqueue of task ids; every task on it receives its fair share of the CPU
(``sim/fluid/progress.py``). Placement decisions — where a new task starts (``select_task_rq_fair`` with
``SD_BALANCE_FORK``), where a woken task goes (``select_idle_sibling``), what the load balancer moves — are
:class:`~memsched.sim.fluid.balance.Balancer`'s (kernel/sched/fair.c of Linux 3.7). Balancing runs once per
instant in which a runqueue changed (a deferred event), because between such changes the fluid state is
static and the kernel's periodic balancer would reach the same fixed point.

Attached instruments take part through two hooks: ``lb_score`` (a NUMA policy vetoes or steers moves,
``task_numa_hot()`` / ``can_migrate_task()``) and ``sched_changed`` (PSI's ``psi_task_change()``).

Deviations from the kernel: a move to another node costs the task a fixed cache refill
(``MachineConfig.cross_node_move_ns``, charged as system time) instead of cache misses over time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.sim.engine import Engine, Prio
from memsched.sim.fluid.balance import Balancer
from memsched.sim.fluid.instrument import InstrumentHooks
from memsched.sim.fluid.progress import FluidProgress
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.topology import Topology

__all__ = ["FluidScheduler"]


class FluidScheduler:
    """Runqueues of one fluid machine and the placement decisions on them."""

    def __init__(
        self,
        engine: Engine,
        topology: Topology,
        tasks: list[FluidTask],
        progress: FluidProgress,
        hooks: InstrumentHooks,
        *,
        cross_node_move_ns: int,
    ) -> None:
        self.engine = engine
        self.topology = topology
        self.tasks = tasks
        self.progress = progress
        self.hooks = hooks
        self.cross_node_move_ns = cross_node_move_ns
        self.nr_cpus = topology.nr_cpus
        self.cpu_node = topology.cpu_node()
        self.balancer = Balancer(topology)
        self.rq: list[list[int]] = [[] for _ in range(self.nr_cpus)]
        #: Tasks moved to another node (by the load balancer, a NUMA policy or a wake-up).
        self.task_node_moves = 0
        #: Kernel-lock wake-ups that ``wake_affine()`` pulled towards the waker.
        self.wakeups_affine = 0
        self._balance_pending = False

    # ---- queries -------------------------------------------------------------------------------------------
    def cpu_load(self) -> npt.NDArray[np.float64]:
        return np.array([sum(self.tasks[t].weight for t in q) for q in self.rq])

    def nr_running(self) -> npt.NDArray[np.int64]:
        return np.array([len(q) for q in self.rq], dtype=np.int64)

    def running_cpu_task(self, cpu: int) -> FluidTask | None:
        """The task the fluid scheduler would show as ``rq->curr``: the first queued on ``cpu``."""
        q = self.rq[cpu]
        return self.tasks[q[0]] if q else None

    # ---- placement -----------------------------------------------------------------------------------------
    def fork_cpu(self, task: FluidTask, parent_cpu: int) -> int:
        """``select_task_rq_fair(SD_BALANCE_FORK)``: where a new task starts."""
        return self.balancer.select_fork_cpu(parent_cpu, task.affinity, self.cpu_load())

    def wake(self, task: FluidTask, waker_cpu: int | None = None) -> None:
        """``try_to_wake_up()``: enqueue on the CPU ``select_task_rq_fair(SD_BALANCE_WAKE)`` picks: the waker's
        CPU if ``wake_affine()`` allows pulling the task there, then ``select_idle_sibling()``. ``waker_cpu``
        is given for wake-ups from a kernel lock; a move to another node then costs the cache refill."""
        prev = task.cpu if task.cpu >= 0 else 0
        if waker_cpu is None:
            cpu = self.balancer.select_wake_cpu(prev, task.affinity, self.nr_running())
            self.enqueue(task, cpu)
            return
        cpu = self.balancer.select_wake_cpu(
            prev, task.affinity, self.nr_running(), waker=waker_cpu, load=self.cpu_load(), weight=task.weight
        )
        self.wakeups_affine += int(cpu != prev and self.cpu_node[cpu] == self.cpu_node[waker_cpu])
        if task.cpu >= 0 and self.cpu_node[task.cpu] != self.cpu_node[cpu]:
            self.task_node_moves += 1
            self.progress.charge_system(task, self.cross_node_move_ns, "task_moves")
        self.enqueue(task, cpu)

    def enqueue(self, task: FluidTask, cpu: int) -> None:
        self.progress.sync()
        task.state = FluidTaskState.RUNNABLE
        task.cpu = cpu
        self.rq[cpu].append(task.id)
        self.progress.arrays.oncpu[task.id] = cpu
        self.progress.dirty = True
        self.request_balance()
        self._changed()

    def dequeue(self, task: FluidTask, state: FluidTaskState) -> None:
        self.progress.sync()
        if task.cpu >= 0 and task.id in self.rq[task.cpu]:
            self.rq[task.cpu].remove(task.id)
        self.progress.arrays.oncpu[task.id] = -1
        task.state = state
        self.progress.dirty = True
        self.request_balance()
        self._changed()

    def move_task(self, task: FluidTask, dst: int) -> None:
        """Move a runnable task to ``dst``'s runqueue (the caller has checked the affinity)."""
        self.progress.sync()
        self._charge_node_change(task, task.cpu, dst)
        self.rq[task.cpu].remove(task.id)
        self.rq[dst].append(task.id)
        task.cpu = dst
        self.progress.arrays.oncpu[task.id] = dst
        self.progress.dirty = True
        self.request_balance()
        self._changed()

    def set_affinity(self, task: FluidTask, cpus: tuple[int, ...] | None) -> None:
        """``sched_setaffinity(2)``: restrict ``task`` to ``cpus`` (``None``: all), moving it if needed."""
        mask = np.zeros(self.nr_cpus, dtype=bool)
        if cpus is None:
            mask[:] = True
        else:
            bad = [c for c in cpus if not 0 <= c < self.nr_cpus]
            if bad or not cpus:
                raise ConfigError("cpus", cpus, f"must be a non-empty set of CPUs in 0..{self.nr_cpus - 1}")
            mask[list(cpus)] = True
        task.affinity = mask
        if task.cpu >= 0 and not mask[task.cpu] and task.state is FluidTaskState.RUNNABLE:
            self.progress.sync()
            dst = self.balancer.select_wake_cpu(task.cpu, mask, self.nr_running())
            self.move_task(task, dst)

    def _charge_node_change(self, task: FluidTask, src: int, dst: int) -> None:
        if self.cpu_node[src] != self.cpu_node[dst]:
            self.task_node_moves += 1
            self.progress.charge_system(task, self.cross_node_move_ns, "task_moves")

    def _changed(self) -> None:
        for hook in self.hooks.sched_changed:
            hook()

    # ---- load balancing ------------------------------------------------------------------------------------
    def request_balance(self) -> None:
        """Balance once at this instant, after every wakeup of the instant has been handled."""
        if not self._balance_pending:
            self._balance_pending = True
            self.engine.at(self.engine.now, Prio.DEFERRED, self._balance)

    def _lb_score(self, tid: int, src: int, dst: int, dst_idle: bool) -> float | None:
        task = self.tasks[tid]
        if not task.affinity[dst]:
            return None
        hooks = self.hooks.lb_score
        if not hooks:
            return 0.0
        if len(hooks) == 1:
            return hooks[0](task, src, dst, dst_idle)  # type: ignore[no-any-return]
        total = 0.0
        for hook in hooks:
            score = hook(task, src, dst, dst_idle)
            if score is None:
                return None
            total += score
        return total

    def _balance(self) -> None:
        self._balance_pending = False
        moves = self.balancer.balance(self.rq, lambda t: self.tasks[t].weight, self._lb_score)
        if moves:
            self.progress.sync()
            oncpu = self.progress.arrays.oncpu
            for mv in moves:
                task = self.tasks[mv.task]
                self._charge_node_change(task, mv.src, mv.dst)
                task.cpu = mv.dst
                oncpu[mv.task] = mv.dst
            self.progress.dirty = True
            self._changed()
