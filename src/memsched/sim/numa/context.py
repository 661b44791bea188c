"""What a NUMA policy sees of the simulated machine: the :class:`~memsched.policies.numa.views.PolicyContext`.

Every array handed out is read-only; the policy-visible per-task state the mechanism keeps for policies
(``numa_scan_period``, the preferred node, ``mm->numa_scan_seq``) lives in :class:`NumaState`, shared with
the scanners (``balancing.py``) and the actuator (``actuator.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.policies.numa.views import MempolicyView, readonly
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import FluidTaskState

__all__ = ["NumaState", "SimContext"]

IntArray = npt.NDArray[np.int64]


@dataclass
class NumaState:
    """Per-task and per-mm state of NUMA balancing that policies read back through the context."""

    #: The period a task's scans start with (``numa_scan_period_min`` or one second for other scanners).
    default_period_ns: int
    #: ``p->numa_scan_period`` by task id (set by ``SetScanPeriod`` and the scanner's clamping).
    period: dict[int, int] = field(default_factory=dict)
    #: The node last set with ``SetPreferredNode`` by task id.
    preferred: dict[int, int] = field(default_factory=dict)
    #: ``mm->numa_scan_seq`` by mm id: completed scan passes.
    scan_seq: dict[int, int] = field(default_factory=dict)

    def scan_period(self, task: int) -> int:
        return self.period.get(task, self.default_period_ns)


class SimContext:
    """The :class:`~memsched.policies.numa.views.PolicyContext` of the simulated machine."""

    def __init__(self, machine: FluidMachine, state: NumaState) -> None:
        self._m = machine
        self._state = state
        self._cpu_node = readonly(machine.cpu_node)
        self._distance = readonly(machine.topology.distance)
        self._node_cpus = tuple(n.cpus for n in machine.topology.nodes)

    @property
    def now_ns(self) -> int:
        return self._m.engine.now

    @property
    def nr_nodes(self) -> int:
        return self._m.nr_nodes

    @property
    def nr_cpus(self) -> int:
        return self._m.nr_cpus

    @property
    def cpu_node(self) -> IntArray:
        return self._cpu_node  # type: ignore[return-value]

    @property
    def distance(self) -> IntArray:
        return self._distance  # type: ignore[return-value]

    @property
    def node_cpus(self) -> tuple[tuple[int, ...], ...]:
        return self._node_cpus

    @property
    def cpu_nr_running(self) -> IntArray:
        arr = self._m.sched.nr_running()
        arr.flags.writeable = False
        return arr

    @property
    def node_free_pages(self) -> IntArray:
        return readonly(self._m.page_alloc.free_pages)  # type: ignore[return-value]

    @property
    def node_total_pages(self) -> IntArray:
        return readonly(self._m.page_alloc.total_pages)  # type: ignore[return-value]

    @property
    def page_size(self) -> int:
        return self._m.page_size

    def rng(self, name: str) -> np.random.Generator:
        return self._m.engine.rng("policy." + name)

    def tasks(self) -> IntArray:
        arr = np.array([t.id for t in self._m.tasks if t.state is not FluidTaskState.EXITED], dtype=np.int64)
        arr.flags.writeable = False
        return arr

    def task_tgid(self, task: int) -> int:
        return self._m.tasks[task].tgid

    def task_mm(self, task: int) -> int:
        return self._m.tasks[task].mm.id

    def task_cpu(self, task: int) -> int:
        t = self._m.tasks[task]
        return t.cpu if t.state is FluidTaskState.RUNNABLE else -1

    def task_runnable(self, task: int) -> bool:
        return self._m.tasks[task].state is FluidTaskState.RUNNABLE

    def task_allowed(self, task: int) -> npt.NDArray[np.bool_]:
        return readonly(self._m.tasks[task].affinity)  # type: ignore[return-value]

    def task_preferred_node(self, task: int) -> int:
        return int(self._state.preferred.get(task, -1))

    def task_scan_period_ns(self, task: int) -> int:
        return self._state.scan_period(task)

    def task_runtime_ns(self, task: int) -> int:
        user, sys = self._m.task_times(self._m.tasks[task])
        return int(user + sys)

    def cpu_tasks(self, cpu: int) -> tuple[int, ...]:
        return tuple(self._m.sched.rq[cpu])

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        return tuple(t.id for t in self._m.tasks if t.mm.id == mm and t.state is not FluidTaskState.EXITED)

    def mm_node_pages(self, mm: int) -> IntArray:
        return readonly(self._m.mms[mm].node_pages)  # type: ignore[return-value]

    def mm_scan_seq(self, mm: int) -> int:
        return self._state.scan_seq.get(mm, 0)

    def task_mempolicy(self, task: int) -> MempolicyView:
        return self._m.tasks[task].mempolicy.view()

    def mm_vma_mempolicies(self, mm: int) -> tuple[tuple[int, MempolicyView], ...]:
        return ()  # no mbind(2) in the simulator: VMAs have no policy of their own
