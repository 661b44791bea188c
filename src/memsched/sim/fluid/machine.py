"""The fluid NUMA machine: topology, memory, tasks and runqueues wired to one engine, plus its "syscalls".

The machine is assembled from parts, as the kernel is split:

============================  =================================================================================
part                          what it does
============================  =================================================================================
``progress`` (FluidProgress)  per-task progress as a struct of arrays; the engine's :class:`Source` that
                              advances every task between events and knows the next phase completion
``sched`` (FluidScheduler)    runqueues, fork/wake placement, migration, affinity, load balancing
``memory`` (Memory)           first touch and fault-in (``do_anonymous_page()``), ``sim/mm/memory.py``
``lifecycle`` (Lifecycle)     fork, exit, wakeup, kill, and the operations task programs run through
``timeline`` (Timeline)       periodic samples for reports
instruments                   attached mechanisms and observers (NUMA balancing, reclaim, workload samplers),
                              see ``sim/fluid/instrument.py``
============================  =================================================================================

Only the engine moves simulated time (``sim/engine.py``); :meth:`FluidMachine.run` asks it to run, and the
progress part tells it when the next phase completes.

Deviations from the kernel: see the parts' modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memsched.errors import ConfigError, SimulationError, UnsupportedError
from memsched.sim.engine import Engine
from memsched.sim.fluid.instrument import Instrument, InstrumentHooks
from memsched.sim.fluid.lifecycle import Lifecycle
from memsched.sim.fluid.memmodel import MemModel
from memsched.sim.fluid.progress import FluidProgress
from memsched.sim.fluid.sched import FluidScheduler
from memsched.sim.fluid.task import FluidTask, FluidTaskState, Phase
from memsched.sim.fluid.timeline import Timeline
from memsched.sim.mm.memory import Memory
from memsched.sim.mm.mm import MmStruct
from memsched.sim.mm.page_alloc import PageAllocator
from memsched.sim.mm.vmstat import VmStat
from memsched.topology import Topology
from memsched.units import NSEC_PER_SEC, PAGE_SIZE_4K, PAGE_SIZE_THP

__all__ = ["FluidMachine", "MachineConfig"]


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """Knobs of the simulated machine (not of a policy)."""

    #: Transparent huge pages: 2 MiB pages (on, as in the benchmarks of the debate) or 4 KiB.
    thp: bool = True
    #: 4 KiB pages are tracked in runs of this many KiB that share placement and hinting state (every count
    #: and cost stays per 4 KiB page; ``sim/mm/mm.py``). 4 = exact.
    run_kib: int = 4
    #: With THP: track huge pages at ``run_kib`` granularity so a NUMA hinting fault can split them (the
    #: 2012 patch sets that split instead of migrating a huge page).
    thp_split: bool = False
    #: Page walk after a TLB miss, paid once per 4 KiB page a stream touches where memory is mapped by 4 KiB
    #: pages (none, 0, by default; the NUMA runs use an estimate): the TLB reach a split huge page loses.
    page_walk_ns: int = 0
    #: Paying off a kernel debt is an event of its own (exact and slower), or folded into the task's next
    #: completion (``False``; the NUMA runs, where every fault and scan charges a small debt).
    debt_events: bool = True
    #: Trap, entry/exit and bookkeeping of one page fault, excluding zeroing (estimate: about 1 µs).
    page_fault_ns: int = 1_000
    #: Interval of the timeline samples (local access fraction, pages per node) in reports.
    sample_interval_ns: int = NSEC_PER_SEC
    #: Cost to a task of moving to another node: its cache contents (a few MB) refilled from memory there
    #: (estimate; the reason the load balancer resists cross-node moves). Charged as system time.
    cross_node_move_ns: int = 1_000_000

    def __post_init__(self) -> None:
        if self.page_fault_ns < 0:
            raise ConfigError("page_fault_ns", self.page_fault_ns, "must be >= 0")
        if self.cross_node_move_ns < 0:
            raise ConfigError("cross_node_move_ns", self.cross_node_move_ns, "must be >= 0")
        if self.sample_interval_ns <= 0:
            raise ConfigError("sample_interval_ns", self.sample_interval_ns, "must be > 0")
        if self.page_walk_ns < 0:
            raise ConfigError("page_walk_ns", self.page_walk_ns, "must be >= 0")
        kib = self.run_kib
        if kib < 4 or kib > PAGE_SIZE_THP // 1024 or kib & (kib - 1):
            raise ConfigError("run_kib", kib, "must be a power of two from 4 to 2048")

    @property
    def page_size(self) -> int:
        """Bytes per entry of the page arrays (a 2 MiB huge page, or a run of 4 KiB pages)."""
        return PAGE_SIZE_THP if self.thp and not self.thp_split else self.run_kib * 1024

    @property
    def kernel_page_size(self) -> int:
        """The page size of the mappings (what one page fault maps): 2 MiB with THP, else 4 KiB."""
        return PAGE_SIZE_THP if self.thp else PAGE_SIZE_4K

    @property
    def thp_units(self) -> int:
        """Page-array entries per huge page when huge pages may be split, else 0."""
        return PAGE_SIZE_THP // self.page_size if self.thp and self.thp_split else 0


class FluidMachine:
    """One simulated NUMA machine and everything running on it."""

    def __init__(self, topology: Topology, *, seed: int = 0, config: MachineConfig | None = None) -> None:
        self.topology = topology
        self.config = config or MachineConfig()
        self.engine = Engine(seed)
        self.page_size = self.config.page_size
        self.kernel_page_size = self.config.kernel_page_size
        self.nr_nodes = topology.nr_nodes
        self.nr_cpus = topology.nr_cpus
        self.cpu_node = topology.cpu_node()
        self.cpu_core = topology.cpu_core()
        self.vmstat = VmStat(self.nr_nodes)
        self.page_alloc = PageAllocator(
            topology, self.page_size, self.vmstat, allocs_per_page=self.page_size / self.kernel_page_size
        )
        self.memmodel = MemModel(topology)
        self.tasks: list[FluidTask] = []
        self.mms: list[MmStruct] = []
        self.instruments = InstrumentHooks()
        self.progress = FluidProgress(
            self.engine,
            topology,
            self.memmodel,
            self.tasks,
            self.mms,
            page_walk_ns=self.config.page_walk_ns,
            debt_events=self.config.debt_events,
        )
        self.sched = FluidScheduler(
            self.engine,
            topology,
            self.tasks,
            self.progress,
            self.instruments,
            cross_node_move_ns=self.config.cross_node_move_ns,
        )
        self.memory = Memory(
            self.engine,
            topology,
            self.mms,
            self.page_alloc,
            self.vmstat,
            self.progress,
            self.instruments,
            page_size=self.page_size,
            page_fault_ns=self.config.page_fault_ns,
            kernel_page_size=self.kernel_page_size,
        )
        self.lifecycle = Lifecycle(
            self.engine,
            self.tasks,
            self.mms,
            self.page_alloc,
            self.progress,
            self.sched,
            self.memory,
            self.instruments,
            machine=self,
        )
        self.progress.on_complete = self.lifecycle.next_phase
        self.timeline = Timeline(
            self.engine,
            self.tasks,
            self.mms,
            self.progress,
            self.sched,
            self.instruments,
            interval_ns=self.config.sample_interval_ns,
        )
        self.engine.add_source(self.progress)

    # ---- attaching ---------------------------------------------------------------------------------------
    def add_instrument(self, instrument: Instrument) -> None:
        """Attach a mechanism or an observer; only the hooks it overrides are ever called."""
        self.instruments.add(instrument)

    # ---- setup "syscalls" --------------------------------------------------------------------------------
    def new_mm(self, name: str) -> MmStruct:
        mm = MmStruct(
            id=len(self.mms),
            name=name,
            page_size=self.page_size,
            nr_nodes=self.nr_nodes,
            thp_units=self.config.thp_units,
        )
        self.mms.append(mm)
        return mm

    def spawn_process(
        self,
        name: str,
        program: tuple[Phase, ...],
        *,
        mm: MmStruct | None = None,
        parent_cpu: int = 0,
        nice: int = 0,
    ) -> FluidTask:
        """``fork()`` + run ``program`` as the new process's main thread (placed by fork balancing)."""
        mm = mm if mm is not None else self.new_mm(name)
        task = self.lifecycle.new_task(name, program, mm, tgid=-1, nice=nice, parent=None)
        task.tgid = task.id
        self.lifecycle.start(task, parent_cpu)
        return task

    def set_affinity(self, task: FluidTask, cpus: tuple[int, ...] | None) -> None:
        """``sched_setaffinity(2)``: restrict ``task`` to ``cpus`` (``None``: all), moving it if needed."""
        self.sched.set_affinity(task, cpus)

    def kill_process(self, task: FluidTask) -> list[FluidTask]:
        """SIGKILL to ``task``'s thread group (as the OOM killer sends it); returns the threads killed."""
        return self.lifecycle.kill_process(task)

    def wake_task(self, task: FluidTask) -> None:
        """Wake a task blocked in a ``Wait`` phase; it continues with its next phase."""
        self.lifecycle.wake_task(task)

    def charge_system(self, task: FluidTask, ns: float, cause: str = "other") -> None:
        """Kernel work of ``ns`` CPU nanoseconds in ``task``'s context (delays its user work)."""
        self.progress.charge_system(task, ns, cause)

    def vmpressure_fd(self, config: Any) -> Any:
        """``vmpressure_fd(2)`` of the 2012 RFC: a system-wide :class:`~memsched.pressure.VmpressureFile`."""
        for hook in self.instruments.vmpressure_fd:
            return hook(config)
        raise UnsupportedError("vmpressure_fd", "reclaim is not attached (add a sim.mm.reclaim.Reclaim instrument)")

    # ---- running -----------------------------------------------------------------------------------------
    def run(self, until: int | None = None, *, progress: Callable[[int], None] | None = None) -> None:
        """Run until every task has exited (or until ``until`` ns). ``progress(now)`` is called per sample."""
        self.timeline.start(progress)
        self.engine.run(until)
        stuck = [t.name for t in self.tasks if t.state is not FluidTaskState.EXITED]
        if until is None and stuck:
            raise SimulationError(f"no runnable work left but tasks have not exited: {stuck[:5]}")

    # ---- results -----------------------------------------------------------------------------------------
    @property
    def elapsed_ns(self) -> int:
        ends = [t.exit_ns for t in self.tasks if t.exit_ns is not None]
        return max(ends) if ends else self.engine.now

    def user_ns(self) -> float:
        return self.progress.user_ns()

    def system_ns(self) -> float:
        return self.progress.system_ns()

    def task_times(self, task: FluidTask) -> tuple[float, float]:
        """User and system CPU nanoseconds of one task."""
        return self.progress.task_times(task)

    def local_fraction(self) -> float | None:
        return self.progress.local_fraction()
