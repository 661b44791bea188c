"""Address spaces: ``struct mm_struct``, its VMAs, and where every page of them lives.

A simulated process owns one :class:`MmStruct`. Its virtual memory is a set of VMAs laid out back to back;
each page has one entry in ``page_node`` (the node holding its frame, or -1 while it has never been touched).
This array is the single source of truth for placement: the page allocator fills it on first touch, page
migration rewrites it, and the memory model reads per-node fractions out of it with ``numpy.bincount``.

``mmap`` mimics what ``malloc`` of a large buffer does under glibc: a fresh page-aligned mapping with a small
chunk header before the returned pointer (16 bytes on x86-64: ``chunk2mem()`` adds 2 * ``SIZE_SZ``, glibc
malloc/malloc.c).
So a buffer carved into per-thread slices has slice boundaries that straddle pages, and neighbouring threads
share the straddling page, as in the real autonuma-benchmark runs.

Kernel counterparts: ``include/linux/mm_types.h`` (``mm_struct``, ``vm_area_struct``), ``mm/mmap.c``.

Deviations from the kernel: no page tables (placement is per page, not per PTE); huge pages are modelled by
using a 2 MiB page size for the whole run rather than mixing THP and base pages in one VMA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError

__all__ = ["GLIBC_MMAP_CHUNK_HEADER", "MmStruct", "Region", "Vma"]

#: Bytes between the start of a glibc mmap'd chunk and the pointer malloc returns (x86-64).
GLIBC_MMAP_CHUNK_HEADER = 16


@dataclass(frozen=True, slots=True)
class Vma:
    """A mapping: pages ``[start, start + npages)`` of its mm's page array."""

    start: int
    npages: int
    name: str


@dataclass(frozen=True, slots=True)
class Region:
    """A byte range ``[start, start + nbytes)`` of one mm (a buffer or a slice of one)."""

    mm_id: int
    start: int
    nbytes: int

    def slice(self, index: int, count: int) -> Region:
        """The ``index``-th of ``count`` equal parts (the benchmark's ``p + i * THREAD_SIZE``)."""
        size = self.nbytes // count
        return Region(self.mm_id, self.start + index * size, size)

    def sub(self, offset: int, nbytes: int) -> Region:
        if offset < 0 or nbytes < 0 or offset + nbytes > self.nbytes:
            raise ConfigError("region", (offset, nbytes), f"must lie inside the {self.nbytes}-byte region")
        return Region(self.mm_id, self.start + offset, nbytes)

    def page_span(self, page_size: int) -> tuple[int, int]:
        """First page and one past the last page the range touches."""
        if self.nbytes == 0:
            first = self.start // page_size
            return first, first
        return self.start // page_size, (self.start + self.nbytes - 1) // page_size + 1

    def page_weights(self, page_size: int) -> npt.NDArray[np.float64]:
        """Bytes of the range in each page of ``page_span`` (edge pages are partial)."""
        p0, p1 = self.page_span(page_size)
        w = np.full(p1 - p0, float(page_size))
        if p1 > p0:
            w[0] -= self.start - p0 * page_size
            w[-1] -= p1 * page_size - (self.start + self.nbytes)
        return w


@dataclass(eq=False)
class MmStruct:
    """One address space and the placement of its pages."""

    id: int
    name: str
    page_size: int
    nr_nodes: int
    page_node: npt.NDArray[np.int16] = field(default_factory=lambda: np.empty(0, dtype=np.int16))
    vmas: list[Vma] = field(default_factory=list)
    #: Pages resident on each node (kept in step with ``page_node``; numa_maps' N<node>= fields).
    node_pages: npt.NDArray[np.int64] = field(init=False)
    #: Bumped on every placement change; caches of per-node fractions key on it.
    placement_version: int = 0
    users: int = 0
    #: Pages per node when the last user exited (frames are freed then; reports keep the picture).
    final_node_pages: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        self.node_pages = np.zeros(self.nr_nodes, dtype=np.int64)

    @property
    def nr_pages(self) -> int:
        return int(self.page_node.shape[0])

    @property
    def rss_pages(self) -> int:
        return int(self.node_pages.sum())

    def mmap(self, nbytes: int, name: str, *, header: int = GLIBC_MMAP_CHUNK_HEADER) -> Region:
        """Map a fresh anonymous buffer of ``nbytes`` (not yet touched) and return it as a region."""
        if nbytes <= 0:
            raise ConfigError("nbytes", nbytes, "must be > 0")
        npages = -(-(nbytes + header) // self.page_size)
        start = self.nr_pages
        self.page_node = np.concatenate([self.page_node, np.full(npages, -1, dtype=np.int16)])
        self.vmas.append(Vma(start, npages, name))
        return Region(self.id, start * self.page_size + header, nbytes)

    def vma_of(self, page: int) -> Vma:
        for vma in self.vmas:
            if vma.start <= page < vma.start + vma.npages:
                return vma
        raise ConfigError("page", page, f"must be inside a VMA of mm {self.name}")

    def region_node_bytes(self, region: Region) -> npt.NDArray[np.float64]:
        """Bytes of ``region`` resident on each node (pages not yet present are not counted)."""
        p0, p1 = region.page_span(self.page_size)
        nodes = self.page_node[p0:p1].astype(np.int64) + 1  # -1 (absent) -> bin 0
        out = np.bincount(nodes, weights=region.page_weights(self.page_size), minlength=self.nr_nodes + 1)
        return np.asarray(out[1:], dtype=np.float64)

    def set_nodes(self, pages: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64]) -> None:
        """Record new placement for ``pages`` (first touch or migration) and keep ``node_pages`` in step."""
        old = self.page_node[pages].astype(np.int64)
        present = old >= 0
        if present.any():
            self.node_pages -= np.bincount(old[present], minlength=self.nr_nodes)
        self.node_pages += np.bincount(nodes, minlength=self.nr_nodes)
        self.page_node[pages] = nodes.astype(np.int16)
        self.placement_version += 1
