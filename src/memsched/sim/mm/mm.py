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

**Units.** The page array has one entry per *unit* of ``page_size`` bytes. A run with transparent huge pages
that are never split uses 2 MiB units (one per huge page). A run on 4 KiB pages aggregates consecutive base
pages into fixed runs (``MachineConfig.run_kib``, 64 KiB by default for the NUMA workloads, 4 KiB exactly for
the memory-pressure scenarios): the pages of a run share their node and their NUMA hinting state, while every
counter and cost stays per 4 KiB page. A THP run under a design that splits huge pages on a hinting fault uses
such runs too and remembers, per 2 MiB block of ``thp_units`` units, whether the block is still mapped by a
huge PMD (``huge``).

**Per-node bytes of a region** (``region_node_bytes``) are cached per region and updated incrementally by
``set_nodes``, so a migration of a few pages does not re-count a multi-GiB buffer. The regions' versions and
page spans are arrays, so a migration finds the regions it touches in one pass over small lists, and the pages'
weights in a region it holds part of are summed by a kernel once the process uses the kernels.

Deviations from the kernel: no page tables (placement is per page, not per PTE); base pages of one run share
their placement; VMAs of a huge-page mm start on a 2 MiB boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.sim.fluid import jit

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

    def page_edges(self, page_size: int) -> tuple[int, int, int, int]:
        """``page_span``, and the bytes of its first page before the range and of its last page after it."""
        p0, p1 = self.page_span(page_size)
        return p0, p1, self.start - p0 * page_size, p1 * page_size - (self.start + self.nbytes)

    def page_weights(self, page_size: int) -> npt.NDArray[np.float64]:
        """Bytes of the range in each page of ``page_span`` (edge pages are partial)."""
        p0, p1, lead, tail = self.page_edges(page_size)
        w = np.full(p1 - p0, float(page_size))
        if p1 > p0:
            w[0] -= lead
            w[-1] -= tail
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
    #: Units per 2 MiB huge page when huge pages are tracked below their size (they may be split), else 0.
    thp_units: int = 0
    #: Per 2 MiB block (with ``thp_units``): still mapped by a huge PMD.
    huge: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: Bumped on every change of ``huge`` (write it through :meth:`set_huge`); the small-page fraction cache
    #: keys on it.
    huge_version: int = 0
    _small_cache: dict[Region, tuple[int, float]] = field(default_factory=dict, repr=False)
    #: The cached bytes per node of the regions asked for (:meth:`region_node_bytes`), a row per region: the
    #: placement version its bytes are of; its page span and edges (first page, one past the last, the bytes of
    #: the first page before the region and of the last page after it); its bytes, a new array whenever they
    #: change (callers keep them and compare them by identity).
    _region_row: dict[Region, int] = field(default_factory=dict, repr=False)
    _region_ver: list[int] = field(default_factory=list, repr=False)
    _region_span: list[tuple[int, int, int, int]] = field(default_factory=list, repr=False)
    _region_bytes: list[npt.NDArray[np.float64]] = field(default_factory=list, repr=False)

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
        if self.thp_units:
            start = -(-start // self.thp_units) * self.thp_units
            npages = -(-npages // self.thp_units) * self.thp_units
        grow = start + npages - self.nr_pages
        self.page_node = np.concatenate([self.page_node, np.full(grow, -1, dtype=np.int16)])
        if self.thp_units:
            self.huge = np.concatenate([self.huge, np.zeros(grow // self.thp_units, dtype=bool)])
            self.huge_version += 1
        self.vmas.append(Vma(start, npages, name))
        return Region(self.id, start * self.page_size + header, nbytes)

    def region_small_fraction(self, region: Region) -> float:
        """Share of ``region``'s pages mapped by 4 KiB pages (not by a huge PMD)."""
        if self.page_size >= 2 * 1024 * 1024:
            return 0.0
        if not self.thp_units:
            return 1.0
        hit = self._small_cache.get(region)
        if hit is not None and hit[0] == self.huge_version:
            return hit[1]
        p0, p1 = region.page_span(self.page_size)
        blocks = self.huge[p0 // self.thp_units : (p1 - 1) // self.thp_units + 1]
        small = float(1.0 - blocks.mean()) if blocks.size else 0.0
        self._small_cache[region] = (self.huge_version, small)
        return small

    def set_huge(self, blocks: npt.NDArray[np.int64], huge: bool | npt.NDArray[np.bool_]) -> None:
        """Map ``blocks`` by a huge PMD (``True``) or by 4 KiB pages (``False``: split)."""
        self.huge[blocks] = huge
        self.huge_version += 1

    def vma_of(self, page: int) -> Vma:
        for vma in self.vmas:
            if vma.start <= page < vma.start + vma.npages:
                return vma
        raise ConfigError("page", page, f"must be inside a VMA of mm {self.name}")

    def region_node_bytes(self, region: Region) -> npt.NDArray[np.float64]:
        """Bytes of ``region`` resident on each node (pages not yet present are not counted). The result is
        cached and must not be modified."""
        row = self._region_row.get(region)
        if row is not None and self._region_ver[row] == self.placement_version:
            return self._region_bytes[row]
        psz = self.page_size
        p0, p1 = region.page_span(psz)
        nodes = self.page_node[p0:p1].astype(np.int64) + 1  # -1 (absent) -> bin 0
        out = np.bincount(nodes, weights=region.page_weights(psz), minlength=self.nr_nodes + 1)
        result = np.asarray(out[1:], dtype=np.float64)
        if row is None:
            self._region_row[region] = len(self._region_bytes)
            self._region_bytes.append(result)
            self._region_span.append(region.page_edges(psz))
            self._region_ver.append(self.placement_version)
        else:
            self._region_bytes[row] = result
            self._region_ver[row] = self.placement_version
        return result

    def set_nodes(
        self,
        pages: npt.NDArray[np.int64],
        nodes: npt.NDArray[np.int64],
        old: npt.NDArray[np.int64] | None = None,
        *,
        counts: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
    ) -> None:
        """Record new placement for ``pages`` (first touch or migration) and keep ``node_pages`` in step. ``old``:
        the pages' nodes now (``page_node[pages]`` as int64), when the caller has them. ``counts``: with ``old``
        all present (a migration), ``np.bincount`` of ``old`` and of ``nodes`` with ``minlength=nr_nodes``."""
        nr = self.nr_nodes
        if counts is not None:
            old_count: npt.NDArray[np.int64] | None = counts[0]
            new_count = counts[1]
            assert old is not None
        else:
            if old is None:
                old = self.page_node[pages].astype(np.int64)
            present = old >= 0
            old_count = np.bincount(old[present], minlength=nr) if np.count_nonzero(present) else None
            new_count = np.bincount(nodes, minlength=nr)
        # node_pages -= old_count, then += new_count, in one step (integers: the same values)
        change = new_count if old_count is None else new_count - old_count
        self.node_pages += change
        self.page_node[pages] = nodes.astype(np.int16)
        if pages.size == 0 or not self._region_bytes:
            self.placement_version += 1
            return
        # (pages.min() and .max() + 1, by the values at argmin/argmax: cheaper than the ufunc reductions)
        self.placed(pages, nodes, old, change, int(pages.item(pages.argmin())), int(pages.item(pages.argmax())) + 1)

    def placed(
        self,
        pages: npt.NDArray[np.int64],
        nodes: npt.NDArray[np.int64],
        old: npt.NDArray[np.int64],
        change: npt.NDArray[np.int64],
        lo: int,
        hi: int,
    ) -> None:
        """The rest of :meth:`set_nodes` once ``page_node`` and ``node_pages`` hold the new placement (``change``:
        what ``node_pages`` gained per node; ``lo``/``hi``: the least page and one past the greatest of the
        non-empty ``pages``): a new placement version, and the cached region bytes brought to it."""
        version = self.placement_version
        self.placement_version += 1
        n = len(self._region_bytes)
        if not n:
            return
        # The regions whose bytes are of this placement (the others are stale already, placement having changed
        # behind set_nodes: recomputed on next use) are brought to the new one; of those, the regions holding
        # pages that moved change their bytes.
        ver = self._region_ver
        now = self.placement_version
        whole: list[int] = []
        part: list[int] = []
        for r, (p0, p1, lead, tail) in enumerate(self._region_span):
            if ver[r] != version:
                continue
            ver[r] = now
            if p1 <= lo or p0 >= hi:
                continue
            if p0 <= lo and hi <= p1 and (lo > p0 or lead == 0) and (hi < p1 or tail == 0):
                whole.append(r)
            else:
                part.append(r)
        cached = self._region_bytes
        if whole:
            # Every page is inside the region and weighs a whole page: the weighted bincounts of _partial_gains'
            # pure form add ``psz`` count times from 0.0, exactly (integers below 2**53), which is count * psz; and
            # new * psz - old * psz of such integers is exactly (new - old) * psz, ``change`` * psz (with no old
            # count, the bincount is zeros, and x - 0.0 is x).
            delta = np.multiply(change, float(self.page_size), dtype=np.float64)
            for r in whole:
                cached[r] = cached[r] + delta
        if part:
            spans = np.array([self._region_span[r] for r in part], dtype=np.int64)
            gains = _partial_gains(pages, nodes, old, spans, self.page_size, self.nr_nodes)
            for r, gain in zip(part, gains, strict=True):
                cached[r] = cached[r] + gain


@jit.compiled_as("partial_gains")
def _partial_gains(
    pages: npt.NDArray[np.int64],
    nodes: npt.NDArray[np.int64],
    old: npt.NDArray[np.int64],
    spans: npt.NDArray[np.int64],
    page_size: int,
    nr_nodes: int,
) -> npt.NDArray[np.float64]:
    """What the bytes per node of each region (``spans``: rows of :class:`MmStruct`'s ``_region_span``) gain when
    ``pages`` move from nodes ``old`` (-1: not present) to ``nodes``: a row per region. The pages inside a region
    weigh ``page_size`` bytes, less the bytes of its first page before it and of its last page after it; the
    gain is what the new nodes' bincount of those weights has over the present old nodes'. (The weights are
    integers, so each bincount is an exact sum below 2**53, and the gain the exact integer difference: the
    kernel sums them as integers.)"""
    out = np.zeros((spans.shape[0], nr_nodes))
    for k, (p0, p1, lead, tail) in enumerate(spans.tolist()):
        sel = (pages >= p0) & (pages < p1)
        w = np.full(int(np.count_nonzero(sel)), float(page_size))
        inside = pages[sel]
        w[inside == p0] -= lead
        w[inside == p1 - 1] -= tail
        delta = np.bincount(nodes[sel], weights=w, minlength=nr_nodes)
        o = old[sel]
        gone = o >= 0
        delta -= np.bincount(o[gone], weights=w[gone], minlength=nr_nodes)
        out[k] = delta
    return out
