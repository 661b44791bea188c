"""What a NUMA policy may look at: read-only views of tasks, address spaces, nodes and hinting faults.

Every array a view hands out is a read-only numpy array (``flags.writeable == False``): a policy that tries to
write through one gets ``ValueError``, and the conformance checker verifies that no hook changes what it
was shown. Views carry ids and numbers only, so the same policy object runs against the simulated kernel
(``memsched.sim.numa.balancing``) and the live backend (``memsched.live``).

Fault records follow ``task_numa_fault()`` and the page-flag state of the kernels of the debate: each fault
says which task took it, on which CPU and node, which page and where that page lives, and what the page
remembered of its previous fault (``last_nid`` of 3.8, AutoNUMA's ``last_nid``, numa/core's ``last_cpu``,
3.13's ``last_cpupid``, here as separate fields), with ``private`` decided as 3.13 does it
(``cpupid_match_pid``: the same task as last time, or no previous fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "FaultBatch", "IntArray", "MempolicyView", "PolicyContext", "parse_mpol_str", "readonly"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def readonly(arr: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """A read-only view of ``arr`` (no copy)."""
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True)
class MempolicyView:
    """A memory policy as a policy may see it (``mpol_to_str()`` terms).

    ``mode`` is ``default``, ``local``, ``preferred``, ``bind`` or ``interleave``; ``nodes`` its node set.
    ``mof`` is whether the policy carries ``MPOL_F_MOF`` ("migrate on fault"): only the default policy does
    (``preferred_node_policy[]`` of mm/mempolicy.c, 3.8), so only pages faulted under it may be moved by a
    NUMA hinting fault (``mpol_misplaced()``).
    """

    mode: str
    nodes: tuple[int, ...] = ()
    mof: bool = False


_MPOL_MODES = {
    "default": "default", "local": "local", "prefer": "preferred", "bind": "bind", "interleave": "interleave"
}


def parse_mpol_str(text: str) -> MempolicyView:
    """A policy as ``mpol_to_str()`` prints it in ``numa_maps`` (``default``, ``local``, ``prefer:1``,
    ``bind=static:0-3``, ``interleave:0,2``; mm/mempolicy.c). Unknown modes read as ``default``-less views
    of their own name; only ``default`` carries ``MPOL_F_MOF``."""
    head, _, nodelist = text.strip().partition(":")
    mode_word = head.split("=")[0].split(" ")[0]
    mode = _MPOL_MODES.get(mode_word, mode_word)
    nodes: list[int] = []
    for part in filter(None, nodelist.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            nodes.extend(range(int(lo), int(hi or lo) + 1))
    return MempolicyView(mode, tuple(nodes), mof=mode == "default")


@dataclass(frozen=True, eq=False)
class FaultBatch:
    """NUMA hinting faults on pages of one mm, taken since the last batch, in time order.

    Each field is an array with one entry per record. ``last_*`` are the page's state *before* this fault
    (-1: never faulted); the mechanism records the new state after the policy has seen the batch.
    ``base_pages`` is the number of 4 KiB pages one fault stands for (512 under THP), the ``pages``
    argument of ``task_numa_fault()``. ``nr_faults`` is the number of faults one record stands for: the
    simulator tracks 4 KiB pages in runs that share their state, and one record is the run's faults (1 for a
    huge page and for the live backend). A policy that counts pages weighs a record by
    ``pages_per_record`` (``base_pages * nr_faults``); one that counts faults, by ``nr_faults``.
    ``mof`` says, per record, whether the faulting task's (or the VMA's) memory policy carries
    ``MPOL_F_MOF``: ``mpol_misplaced()`` never asks to migrate a page faulted without it (``None``: all do).
    """

    mm: int
    time_ns: IntArray
    task: IntArray
    tgid: IntArray
    cpu: IntArray
    cpu_node: IntArray
    page: IntArray
    page_node: IntArray
    last_nid: IntArray
    last_pid: IntArray
    last_cpu: IntArray
    base_pages: int
    nr_faults: int = 1
    mof: BoolArray | None = None

    @property
    def size(self) -> int:
        return int(self.task.shape[0])

    @property
    def pages_per_record(self) -> int:
        """4 KiB pages one record accounts for: ``base_pages * nr_faults``."""
        return self.base_pages * self.nr_faults

    @property
    def migratable(self) -> BoolArray:
        """Records whose memory policy lets a hinting fault migrate the page (``MPOL_F_MOF``)."""
        if self.mof is None:
            return np.ones(self.size, dtype=np.bool_)
        return np.asarray(self.mof, dtype=np.bool_)

    @property
    def local(self) -> BoolArray:
        """``page_node == cpu_node``: the fault counts in ``numa_hint_faults_local``."""
        return np.asarray(self.page_node == self.cpu_node, dtype=np.bool_)

    @property
    def private(self) -> BoolArray:
        """3.13's rule: private if the last fault was by the same task or the page never faulted."""
        return np.asarray((self.last_pid < 0) | (self.last_pid == self.task), dtype=np.bool_)


class PolicyContext(Protocol):
    """Read-only state of the machine a policy decides on (implemented by each backend)."""

    @property
    def now_ns(self) -> int: ...
    @property
    def nr_nodes(self) -> int: ...
    @property
    def nr_cpus(self) -> int: ...
    @property
    def cpu_node(self) -> IntArray:
        """Node of each CPU."""

    @property
    def distance(self) -> IntArray:
        """SLIT distances between nodes."""

    @property
    def node_cpus(self) -> tuple[tuple[int, ...], ...]: ...
    @property
    def cpu_nr_running(self) -> IntArray:
        """Runnable SCHED_OTHER tasks queued on each CPU."""

    @property
    def node_free_pages(self) -> IntArray: ...
    @property
    def node_total_pages(self) -> IntArray: ...
    @property
    def page_size(self) -> int: ...

    def rng(self, name: str) -> np.random.Generator:
        """A seeded random stream private to the policy (same seed, same decisions)."""

    def tasks(self) -> IntArray:
        """Ids of all live user tasks."""

    def task_tgid(self, task: int) -> int: ...
    def task_mm(self, task: int) -> int: ...
    def task_cpu(self, task: int) -> int:
        """CPU the task is queued on, or -1 while it sleeps."""

    def task_runnable(self, task: int) -> bool: ...
    def task_allowed(self, task: int) -> BoolArray:
        """The task's CPU affinity mask."""

    def task_preferred_node(self, task: int) -> int:
        """The node last set with ``SetPreferredNode`` (-1 if none)."""

    def task_scan_period_ns(self, task: int) -> int: ...
    def task_runtime_ns(self, task: int) -> int:
        """CPU time used so far (user + system), as ``/proc/<pid>/stat`` utime + stime."""

    def cpu_tasks(self, cpu: int) -> tuple[int, ...]:
        """Tasks queued on ``cpu``."""

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        """Live tasks of an address space."""

    def mm_node_pages(self, mm: int) -> IntArray:
        """Resident pages of ``mm`` per node (``numa_maps`` ``N<node>=`` totals)."""

    def mm_scan_seq(self, mm: int) -> int:
        """``mm->numa_scan_seq``: completed passes of the NUMA scanner over ``mm``."""

    def task_mempolicy(self, task: int) -> MempolicyView:
        """The task's memory policy (``set_mempolicy(2)``; ``default`` when it has none)."""

    def mm_vma_mempolicies(self, mm: int) -> tuple[tuple[int, MempolicyView], ...]:
        """``(first page, policy)`` of each VMA of ``mm`` that has a policy of its own (``mbind(2)``)."""
