"""The one way to attach a mechanism or an observer to the fluid machine: an :class:`Instrument`.

Modelled on trio's ``Instrument``: a base class whose methods do nothing, and a machine that calls only the
methods a subclass overrides. NUMA balancing (``sim/numa/balancing.py``), the memory-pressure subsystem
(``sim/mm/reclaim.py``) and a workload's samplers are instruments, added with
:meth:`~memsched.sim.fluid.machine.FluidMachine.add_instrument`. An instrument that overrides nothing costs
nothing: the machine's paths loop over per-hook lists that stay empty.

Hooks, and where the kernel has the same call-out:

``task_created(task)``
    ``sched_fork()`` / ``init_numa_balancing()``: a new task exists (not yet placed on a CPU).
``before_fault(task, pages) -> pages``
    ``__alloc_pages()`` and ``mem_cgroup_charge()`` for a batch of first-touch faults: may reclaim, charge,
    kill, and returns the pages that are allocated (possibly none).
``after_fault(task, pages, nodes)``
    the pages got frames on ``nodes`` (``lru_cache_add`` and friends).
``touch_started(task, region)``
    a task started streaming over ``region`` (its accesses set the pages' referenced bits).
``mm_exit(mm)``
    the last user of ``mm`` exited, before its frames are freed (``exit_mmap()``).
``sched_changed()``
    a runqueue changed (enqueue, dequeue, migration): ``psi_task_change()``'s call sites.
``lb_score(task, src_cpu, dst_cpu, dst_idle) -> float | None``
    the load balancer asks whether (``None``: no) and how much it wants to move ``task``
    (``can_migrate_task()`` / ``task_numa_hot()``). With several instruments, one ``None`` vetoes and the
    scores add up.
``timeline_sample() -> dict``
    a figure for each timeline sample (a workload's throughput so far, for instance).
``vmpressure_fd(config)``
    the ``vmpressure_fd(2)`` system call, for the instrument that implements it.

Defense of design: one interface instead of five attach points (a hook list, a score callback, an ``Any``
slot, another hook list and a hooks object) means one place to look for what can change the machine's
behaviour, and one rule for what happens when two mechanisms want the same call-out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from memsched.sim.fluid.task import FluidTask
    from memsched.sim.mm.mm import MmStruct, Region

__all__ = ["HOOKS", "Instrument", "InstrumentHooks"]

IntArray = npt.NDArray[np.int64]

HOOKS = (
    "task_created",
    "before_fault",
    "after_fault",
    "touch_started",
    "mm_exit",
    "sched_changed",
    "lb_score",
    "timeline_sample",
    "vmpressure_fd",
)


class Instrument:
    """Base class of everything attached to a fluid machine; override the hooks you need."""

    def wants(self, hook: str) -> bool:
        """Whether a hook this instrument's class overrides is wanted on this instance (asked once, when it is
        added): a NUMA balancing instrument whose policy has no ``lb_score`` declines that hook."""
        return True

    def task_created(self, task: FluidTask) -> None:
        return None

    def before_fault(self, task: FluidTask, pages: IntArray) -> IntArray:
        return pages

    def after_fault(self, task: FluidTask, pages: IntArray, nodes: IntArray) -> None:
        return None

    def touch_started(self, task: FluidTask, region: Region) -> None:
        return None

    def mm_exit(self, mm: MmStruct) -> None:
        return None

    def sched_changed(self) -> None:
        return None

    def lb_score(self, task: FluidTask, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        return 0.0

    def timeline_sample(self) -> dict[str, Any]:
        return {}

    def vmpressure_fd(self, config: Any) -> Any:
        return None


class InstrumentHooks:
    """The bound hook methods of the attached instruments, one list per hook, in the order they were added."""

    def __init__(self) -> None:
        self.instruments: list[Instrument] = []
        self.task_created: list[Any] = []
        self.before_fault: list[Any] = []
        self.after_fault: list[Any] = []
        self.touch_started: list[Any] = []
        self.mm_exit: list[Any] = []
        self.sched_changed: list[Any] = []
        self.lb_score: list[Any] = []
        self.timeline_sample: list[Any] = []
        self.vmpressure_fd: list[Any] = []

    def add(self, instrument: Instrument) -> None:
        if not isinstance(instrument, Instrument):
            raise TypeError(f"{instrument!r} is not a memsched.sim.fluid.instrument.Instrument")
        self.instruments.append(instrument)
        cls = type(instrument)
        for name in HOOKS:
            if getattr(cls, name) is not getattr(Instrument, name) and instrument.wants(name):
                getattr(self, name).append(getattr(instrument, name))

    def find(self, kind: type[Any]) -> Any | None:
        """The first attached instrument of class ``kind`` (or a subclass), if any."""
        return next((i for i in self.instruments if isinstance(i, kind)), None)
