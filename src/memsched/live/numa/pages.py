"""Which node a process's pages are on, page by page: the live stand-in for the NUMA scanner.

The kernel's scanner (``task_numa_work``) marks a window of ``numa_balancing_scan_size_mb`` of an address
space per period and learns, from the hinting faults that follow, which task touches which page and where the
page is. User space cannot take hinting faults, but it can ask where pages are:

* :class:`KernelPageProbe` — ``move_pages(pid, n, pages, NULL, status, 0)``, the documented status query:
  the node of each page, ``-ENOENT`` when it is not present. Real, per page, and changes nothing.
* :class:`NumaMapsLayoutProbe` — for trees that are not the running kernel (fixtures, copies of ``/proc``):
  each VMA's ``numa_maps`` counts laid out from the VMA's start in node order (all of node 0's pages, then
  node 1's, ...), the rest not present. It has the right totals per VMA but invents the order within one.

:func:`sample_window` walks a process's anonymous VMAs (``anon=`` in ``numa_maps``: heap, stacks, ``malloc``
arenas, copied-on-write file pages; shared file pages and libraries are left alone, as a user-space balancer
must not move memory other processes use) window by window, like the scanner's ``numa_scan_offset``, and picks
evenly spaced pages in the window: at most ``max_samples``, one every ``stride`` pages. Each sampled page
stands for the ``stride`` pages that start at it (the ``base_pages`` of a :class:`FaultBatch`), and a
migration of that page moves that block. When the window reaches the end of the address space the pass is
complete (the scanner's ``numa_scan_seq`` increment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from memsched.live.numa.snapshot import ProcessSample
from memsched.live.numa.syscalls import NumaSyscalls

__all__ = [
    "KernelPageProbe",
    "NumaMapsLayoutProbe",
    "PageProbe",
    "Regions",
    "Window",
    "anon_regions",
    "sample_window",
]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Regions:
    """The sampled VMAs of a process in base pages: ``[start[i], end[i])`` virtual page numbers, and each
    VMA's resident base pages per node (``layout[i, node]``)."""

    start: IntArray
    end: IntArray
    layout: IntArray

    @property
    def total(self) -> int:
        return int((self.end - self.start).sum())

    def region_of(self, vpns: IntArray) -> IntArray:
        """Index of the region holding each page, -1 outside every region."""
        idx = np.searchsorted(self.start, vpns, side="right") - 1
        ok = (idx >= 0) & (vpns < self.end[np.maximum(idx, 0)])
        return np.where(ok, idx, -1)


def anon_regions(process: ProcessSample, page_size: int, nr_nodes: int) -> Regions:
    """The VMAs with anonymous pages, joined with ``maps`` for their ends (a VMA missing from ``maps`` is a
    race with munmap/mmap between the two reads and is skipped)."""
    ends = {m.start: m.end for m in process.maps}
    rows = []
    for vma in process.vmas:
        if vma.anon <= 0 or vma.start not in ends:
            continue
        layout = np.zeros(nr_nodes, dtype=np.int64)
        for node, nbytes in vma.node_bytes().items():
            if 0 <= node < nr_nodes:
                layout[node] = nbytes // page_size
        rows.append((vma.start // page_size, ends[vma.start] // page_size, layout))
    rows.sort(key=lambda r: int(r[0]))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return Regions(empty, empty, np.zeros((0, nr_nodes), dtype=np.int64))
    return Regions(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.stack([r[2] for r in rows]),
    )


@dataclass(frozen=True, eq=False)
class Window:
    """One scan window: the sampled pages, the block each stands for, and where the next window starts."""

    vpns: IntArray
    block_end: IntArray
    stride: int
    next_offset: int
    wrapped: bool


def sample_window(regions: Regions, offset: int, window_pages: int, max_samples: int) -> Window:
    """Pages ``[offset, offset + window_pages)`` of the concatenated regions, one every ``stride``."""
    lengths = regions.end - regions.start
    total = int(lengths.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Window(empty, empty, 1, 0, True)
    if offset >= total:
        offset = 0
    hi = min(total, offset + window_pages)
    stride = max(1, -(-(hi - offset) // max_samples))
    pos = np.arange(offset, hi, stride, dtype=np.int64)
    cum_end = np.cumsum(lengths)
    region = np.searchsorted(cum_end, pos, side="right")
    cum_start = cum_end - lengths
    vpns = regions.start[region] + (pos - cum_start[region])
    block_end = np.minimum(vpns + stride, regions.end[region])
    wrapped = hi >= total
    return Window(vpns, block_end, stride, 0 if wrapped else hi, wrapped)


class PageProbe(Protocol):
    """Where pages are: a node id per page, -1 when the page is not present."""

    source: str

    def page_nodes(self, process: ProcessSample, vpns: IntArray, page_size: int) -> IntArray: ...


class KernelPageProbe:
    source = "move_pages(2) status query"

    def __init__(self, syscalls: NumaSyscalls) -> None:
        self.syscalls = syscalls

    def page_nodes(self, process: ProcessSample, vpns: IntArray, page_size: int) -> IntArray:
        status = self.syscalls.move_pages(process.pid, vpns * page_size, None)
        return np.where(status >= 0, status, -1).astype(np.int64)


class NumaMapsLayoutProbe:
    source = "numa_maps counts laid out in node order within each VMA (not the running kernel: no per-page view)"

    def __init__(self, nr_nodes: int) -> None:
        self.nr_nodes = nr_nodes

    def page_nodes(self, process: ProcessSample, vpns: IntArray, page_size: int) -> IntArray:
        regions = anon_regions(process, page_size, self.nr_nodes)
        out = np.full(vpns.shape[0], -1, dtype=np.int64)
        if regions.start.shape[0] == 0:
            return out
        region = regions.region_of(vpns)
        inside = region >= 0
        offset = vpns[inside] - regions.start[region[inside]]
        cum = np.cumsum(regions.layout[region[inside]], axis=1)
        node = (offset[:, None] >= cum).sum(axis=1)
        out[inside] = np.where(node < self.nr_nodes, node, -1)
        return out
