"""Per-node page frames and the allocation path of a page fault.

Models the parts of ``mm/page_alloc.c`` (Linux 3.7/3.8) that decide *where* a page comes from: each node has
a fixed number of frames; an allocation asks for a target node (from the memory policy) and, when that node
is full, walks the target's zonelist (nodes by SLIT distance) limited to the nodes the policy allows.
``zone_statistics()`` then counts ``numa_hit`` / ``numa_miss`` / ``numa_foreign`` / ``numa_local`` /
``numa_other`` per node, and ``numa_interleave`` for interleaved pages that landed where intended.

Allocation is vectorised: one call places a whole batch of pages (the first touch of a buffer), with the
fallback applied per target node, not per page.

Watermarks (:func:`watermarks`) follow ``init_per_zone_wmark_min()`` and ``__setup_per_zone_wmarks()``: they
are used only when reclaim is attached (``sim/mm/reclaim.py``), which checks them before each batch of
faults, wakes kswapd below ``low`` and reclaims directly below ``min``.

Frames are counted in units of the page arrays (``sim/mm/mm.py``: a huge page, or a run of 4 KiB pages);
``zone_statistics()`` counts allocations of the mapping's page size (``allocs_per_page`` per unit).

Deviations from the kernel: no zones (one "zone" per node, so no lowmem reserves); without reclaim attached
a node that cannot satisfy a request falls back at once instead of first waking kswapd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsched.errors import SimulationError
from memsched.sim.mm.mempolicy import zonelists
from memsched.sim.mm.vmstat import VmStat
from memsched.topology import Topology

__all__ = ["OutOfMemory", "PageAllocator", "Watermarks", "watermarks"]


@dataclass(frozen=True, slots=True)
class Watermarks:
    """Per-node ``WMARK_MIN`` / ``WMARK_LOW`` / ``WMARK_HIGH`` in pages, and the ``min_free_kbytes`` used."""

    min: npt.NDArray[np.int64]
    low: npt.NDArray[np.int64]
    high: npt.NDArray[np.int64]
    min_free_kbytes: int


def watermarks(
    total_pages: npt.NDArray[np.int64],
    page_size: int,
    *,
    min_free_kbytes: int | None = None,
    watermark_scale_factor: int = 10,
) -> Watermarks:
    """Watermarks of each node as Linux 4.6+ sets them (mm/page_alloc.c).

    ``min_free_kbytes = int_sqrt(lowmem_kbytes * 16)`` clamped to [128, 262144]; each node's ``min`` is its
    share of it; ``low = min + max(min / 4, managed * watermark_scale_factor / 10000)`` and ``high = min +
    2 * that distance`` (3.x used min/4 and min/2, the same for machines up to ~40 GiB per node).
    """
    managed = total_pages.astype(np.int64)
    if min_free_kbytes is None:
        lowmem_kbytes = int(managed.sum()) * page_size // 1024
        min_free_kbytes = min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)
    min_pages_total = min_free_kbytes * 1024 // page_size
    share = managed * min_pages_total // max(int(managed.sum()), 1)
    dist = np.maximum(share // 4, managed * watermark_scale_factor // 10000)
    return Watermarks(share, share + dist, share + 2 * dist, min_free_kbytes)


class OutOfMemory(SimulationError):  # noqa: N818  (the kernel's name for the condition)
    """No allowed node has a free frame (the simulated kernel would invoke the OOM killer)."""


class PageAllocator:
    """Free frames per node, and the fallback walk of ``get_page_from_freelist()``."""

    def __init__(self, topology: Topology, page_size: int, vmstat: VmStat, *, allocs_per_page: float = 1.0) -> None:
        self.page_size = page_size
        #: Kernel page allocations one unit stands for (16 for a 64 KiB run of 4 KiB pages, 1/32 for a
        #: 64 KiB piece of a huge page), for the allocator counters.
        self.allocs_per_page = allocs_per_page
        self.nr_nodes = topology.nr_nodes
        self.total_pages = np.array([n.memory_bytes // page_size for n in topology.nodes], dtype=np.int64)
        self.free_pages = self.total_pages.copy()
        self.zonelists = zonelists(topology.distance)
        self.vmstat = vmstat

    def alloc(
        self,
        target: npt.NDArray[np.int64],
        allowed: npt.NDArray[np.bool_],
        cpu_node: npt.NDArray[np.int64],
        *,
        interleaved: bool = False,
    ) -> npt.NDArray[np.int64]:
        """Allocate one frame per entry of ``target`` (the policy's node for each page).

        ``allowed`` is the policy's node mask; ``cpu_node`` the node of the CPU that faulted each page (for
        ``numa_local``). Returns the node each page got. Raises :class:`OutOfMemory` if the allowed nodes
        cannot hold the batch; nothing is allocated in that case.
        """
        n = target.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if self.free_pages[allowed].sum() < n:
            raise OutOfMemory(
                f"out of memory: cannot allocate {n} pages of {self.page_size // 1024} KiB on nodes "
                f"{np.flatnonzero(allowed).tolist()} ({int(self.free_pages[allowed].sum())} free); the workload "
                "needs more memory than the machine (or its memory policy) allows"
            )
        got = target.copy()
        free = self.free_pages.copy()
        want = np.bincount(target, minlength=self.nr_nodes)
        for node in np.flatnonzero(want):
            idx = np.flatnonzero(target == node)
            for fallback in self.zonelists[node]:
                if idx.size == 0:
                    break
                if not allowed[fallback] or free[fallback] == 0:
                    continue
                take = min(idx.size, int(free[fallback]))
                got[idx[:take]] = fallback
                free[fallback] -= take
                idx = idx[take:]
            if idx.size:  # pragma: no cover - guarded by the total check above
                raise OutOfMemory(f"fallback from node {node} exhausted")
        self.free_pages = free
        self._count(target, got, cpu_node, interleaved)
        return got

    def free(self, nodes: npt.NDArray[np.int64]) -> None:
        """Return frames (pages unmapped or migrated away)."""
        self.free_pages += np.bincount(nodes[nodes >= 0], minlength=self.nr_nodes)

    def _count(
        self,
        target: npt.NDArray[np.int64],
        got: npt.NDArray[np.int64],
        cpu_node: npt.NDArray[np.int64],
        interleaved: bool,
    ) -> None:
        nr = self.nr_nodes
        hit = got == target
        vs = self.vmstat
        scale = self.allocs_per_page

        def count(nodes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            c = np.bincount(nodes, minlength=nr)
            return c if scale == 1.0 else np.rint(c * scale).astype(np.int64)

        vs.inc_node("numa_hit", count(got[hit]))
        vs.inc_node("numa_miss", count(got[~hit]))
        vs.inc_node("numa_foreign", count(target[~hit]))
        local = got == cpu_node
        vs.inc_node("numa_local", count(got[local]))
        vs.inc_node("numa_other", count(got[~local]))
        if interleaved:
            vs.inc_node("numa_interleave", count(got[hit]))
