"""First touch: anonymous page faults that give a task's untouched pages their frames.

Models ``do_anonymous_page()`` / ``do_huge_pmd_anonymous_page()`` (mm/memory.c, mm/huge_memory.c, Linux 3.7):
the first access to an absent page allocates a frame under the faulting task's memory policy
(``alloc_pages_vma()`` → ``mm/mempolicy.c``), starting from the node of the CPU it runs on, zeroes it, and
maps it. Attached instruments see the fault before (``before_fault``: watermarks, reclaim, memcg charge, the
OOM killer may refuse or kill) and after (``after_fault``: LRU lists, page state).

A task that starts streaming over a buffer with absent pages registers a first touch; all first touches of
one instant are resolved together by a deferred event, after every wakeup of that instant, so threads that
start touching a buffer at the same moment race for its pages.

With huge pages tracked below their size (``MmStruct.thp_units``, a design that may split them), a first
touch allocates the whole 2 MiB block on one node and marks it huge. Faults, ``pgfault`` and
``thp_fault_alloc`` count pages of the mapping's size (2 MiB with THP, else 4 KiB), whatever the size of the
page-array units.

Deviations from the kernel: a first touch places a whole buffer at once, page by page split among the
threads that start touching it at the same instant (each page goes to one of them at random, the one "that
got there first"), instead of page by page as a sweep advances; page zeroing is charged as system time at
the core's local streaming rate but does not add memory traffic.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from memsched.sim.engine import Engine, Prio
from memsched.sim.fluid.instrument import InstrumentHooks
from memsched.sim.fluid.progress import FluidProgress
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.mm.page_alloc import PageAllocator
from memsched.sim.mm.vmstat import VmStat
from memsched.topology import Topology
from memsched.units import PAGE_SIZE_THP

__all__ = ["Memory"]

IntArray = npt.NDArray[np.int64]


class Memory:
    """The anonymous-fault path of one fluid machine."""

    def __init__(
        self,
        engine: Engine,
        topology: Topology,
        mms: list[MmStruct],
        page_alloc: PageAllocator,
        vmstat: VmStat,
        progress: FluidProgress,
        hooks: InstrumentHooks,
        *,
        page_size: int,
        page_fault_ns: int,
        kernel_page_size: int | None = None,
    ) -> None:
        self.engine = engine
        self.topology = topology
        self.mms = mms
        self.page_alloc = page_alloc
        self.vmstat = vmstat
        self.progress = progress
        self.hooks = hooks
        self.page_size = page_size
        self.page_fault_ns = page_fault_ns
        self.kernel_page_size = kernel_page_size or page_size
        self.cpu_node = topology.cpu_node()
        self._pending: list[tuple[FluidTask, Region]] = []
        self._event_pending = False

    def touch(self, task: FluidTask, region: Region) -> None:
        """``task`` starts streaming over ``region``: absent pages fault at the end of this instant."""
        p0, p1 = region.page_span(self.page_size)
        if (task.mm.page_node[p0:p1] < 0).any():
            self._pending.append((task, region))
            if not self._event_pending:
                self._event_pending = True
                self.engine.at(self.engine.now, Prio.DEFERRED, self._first_touch)

    def _first_touch(self) -> None:
        """Allocate the absent pages of every region first-touched at this instant.

        Each absent page goes to one of the tasks touching it, chosen uniformly (the first to get there),
        and is placed under that task's memory policy from the node of the CPU it runs on.
        """
        self._event_pending = False
        pending, self._pending = self._pending, []
        rng = self.engine.rng("first_touch")
        by_mm: dict[int, list[tuple[FluidTask, Region]]] = {}
        for task, region in pending:
            if task.state is FluidTaskState.RUNNABLE:
                by_mm.setdefault(region.mm_id, []).append((task, region))
        for mm_id, touchers in by_mm.items():
            mm = self.mms[mm_id]
            spans = [r.page_span(self.page_size) for _, r in touchers]
            cuts = sorted({p for span in spans for p in span})
            base = cuts[0]  # owner covers only the touched span (mm-sized arrays made small touches O(mm))
            owner = np.full(cuts[-1] - base, -1, dtype=np.int64)
            for lo, hi in itertools.pairwise(cuts):
                covering = [k for k, (s0, s1) in enumerate(spans) if s0 <= lo and hi <= s1]
                if not covering:
                    continue
                absent = np.flatnonzero(mm.page_node[lo:hi] < 0) + lo
                if absent.size:
                    if mm.thp_units:  # one toucher per huge page: the block is allocated by one fault
                        blocks, first = np.unique(absent // mm.thp_units, return_inverse=True)
                        pick = rng.integers(len(covering), size=blocks.size)[first]
                    else:
                        pick = rng.integers(len(covering), size=absent.size)
                    owner[absent - base] = np.asarray(covering)[pick]
            for k, (task, _) in enumerate(touchers):
                pages = np.flatnonzero(owner == k) + base
                if pages.size:
                    self.fault_in(task, pages)
        self.progress.dirty = True

    def fault_in(self, task: FluidTask, pages: IntArray) -> None:
        """First-touch faults of ``task`` on ``pages`` of its mm: allocate under its policy, charge the faults."""
        for before in self.hooks.before_fault:
            pages = before(task, pages)  # watermarks, reclaim, memcg charge, OOM
            if pages.size == 0:
                return
        mm = task.mm
        cpu_node = int(self.cpu_node[task.cpu])
        policy = task.mempolicy
        vma_start = mm.vma_of(int(pages[0])).start
        pa = self.page_alloc
        index = pages - vma_start
        if mm.thp_units:  # a huge page's frames come from one node: the policy decides per huge page
            index = index // mm.thp_units
        target = policy.target_nodes(cpu_node, index, pa.zonelists[cpu_node])
        got = pa.alloc(
            target,
            policy.allowed(self.topology.nr_nodes),
            np.full(pages.shape[0], cpu_node, dtype=np.int64),
            interleaved=policy.mode.name == "INTERLEAVE",
        )
        mm.set_nodes(pages, got)
        if mm.thp_units:
            blocks = pages // mm.thp_units
            ub, first = np.unique(blocks, return_index=True)
            one_node = np.ones(ub.size, dtype=bool)
            inv = np.searchsorted(ub, blocks)
            np.logical_and.at(one_node, inv, got == got[first][inv])
            mm.set_huge(ub, one_node)
        for after in self.hooks.after_fault:
            after(task, pages, got)
        nbytes = pages.size * self.page_size
        faults = -(-nbytes // self.kernel_page_size)
        self.vmstat.inc("pgfault", faults)
        if self.kernel_page_size == PAGE_SIZE_THP:
            self.vmstat.inc("thp_fault_alloc", faults)
        clear_rate = self.topology.core_mlp_bytes / self.topology.latency_local_ns  # bytes/ns
        self.progress.charge_system(task, faults * self.page_fault_ns + nbytes / clear_rate, "page_faults")
