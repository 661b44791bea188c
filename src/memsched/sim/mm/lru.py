"""Page frames (``struct page``) and the per-(node, memcg) LRU lists that reclaim scans.

Models the frame-level state the reclaimer looks at — include/linux/mmzone.h (``enum lru_list``,
``struct lruvec``), include/linux/mm_inline.h (``add_page_to_lru_list``), mm/swap.c (``lru_cache_add``,
``rotate_reclaimable_page``) — as of Linux 3.7-4.x (the classic two-list LRU, before MGLRU):

* every frame of every node has a row in :class:`Frames`: which LRU list it is on, its memcg, what it backs
  (an anonymous page: the mm and page index; a page-cache page: the file and page offset, see
  ``sim/mm/filemap.py``), and the flags reclaim tests (``PG_referenced``/young PTE, ``PG_dirty``,
  ``PG_writeback``, ``PG_reclaim``, ``PG_swapcache``, anon vs file);
* each ``(node, memcg, list)`` lruvec list is a :class:`PageFifo`: pages enter at the head, reclaim isolates
  from the tail, and ``rotate_reclaimable_page()`` puts a page back at the tail;
* free frames sit on per-node stacks; the counts stay equal to ``PageAllocator.free_pages``.

Defense of design: a FIFO of ``(pfn, stamp)`` with lazy deletion. Moving or freeing a page re-stamps its
frame, which invalidates its old queue entry in O(1); isolating ``n`` pages pops entries from the tail and
drops stale ones, all in numpy. A list's size is kept in ``nr_pages``; the queue is compacted when stale
entries outnumber live ones. So LRU order is exact, and no operation walks pages one by one in Python.

Deviations from the kernel: one bit stands for both ``PG_referenced`` and the PTE young bits (which of the two
it is follows from the page: anonymous and mapped file pages have PTEs, ``read()``/``write()`` page cache has
not); no
unevictable/mlocked pages; no per-CPU pagevecs (pages reach their list at once).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from memsched.errors import SimulationError

__all__ = [
    "EVICTABLE_LRUS",
    "LRU_ACTIVE_ANON",
    "LRU_ACTIVE_FILE",
    "LRU_INACTIVE_ANON",
    "LRU_INACTIVE_FILE",
    "LRU_NAMES",
    "NR_LRU_LISTS",
    "Frames",
    "LruVecs",
    "PageFifo",
]

LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE, LRU_UNEVICTABLE = range(5)
NR_LRU_LISTS = 5
EVICTABLE_LRUS = (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")

I64 = npt.NDArray[np.int64]


class PageFifo:
    """One LRU list as a FIFO of ``(pfn, stamp)`` chunks: head on the right, tail on the left."""

    __slots__ = ("_chunks", "_pos", "entries")

    def __init__(self) -> None:
        self._chunks: deque[tuple[I64, I64]] = deque()
        self._pos = 0
        self.entries = 0

    def push_head(self, pfns: I64, stamps: I64) -> None:
        if pfns.size:
            self._chunks.append((pfns, stamps))
            self.entries += int(pfns.size)

    def push_tail(self, pfns: I64, stamps: I64) -> None:
        if not pfns.size:
            return
        if self._pos and self._chunks:
            p, s = self._chunks[0]
            self._chunks[0] = (p[self._pos :], s[self._pos :])
            self._pos = 0
        self._chunks.appendleft((pfns, stamps))
        self.entries += int(pfns.size)

    def pop_tail(self, n: int, stamp_of: I64) -> I64:
        """Remove and return up to ``n`` live pfns from the tail (oldest first), dropping stale entries."""
        out: list[I64] = []
        need = n
        while need > 0 and self._chunks:
            pfns, stamps = self._chunks[0]
            p = pfns[self._pos :]
            valid = stamp_of[p] == stamps[self._pos :]
            nvalid = int(np.count_nonzero(valid))
            if nvalid <= need:
                out.append(p[valid])
                need -= nvalid
                self.entries -= int(p.size)
                self._chunks.popleft()
                self._pos = 0
            else:
                cut = int(np.searchsorted(np.cumsum(valid), need)) + 1
                out.append(p[:cut][valid[:cut]])
                need = 0
                self.entries -= cut
                self._pos += cut
        if not out:
            return np.empty(0, dtype=np.int64)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def compact(self, stamp_of: I64) -> None:
        """Drop stale entries (keeps order)."""
        if not self._chunks:
            return
        p = np.concatenate([c[0] for c in self._chunks])[self._pos :]
        s = np.concatenate([c[1] for c in self._chunks])[self._pos :]
        keep = stamp_of[p] == s
        self._chunks = deque([(p[keep], s[keep])]) if keep.any() else deque()
        self._pos = 0
        self.entries = int(keep.sum())


class Frames:
    """``struct page`` for every frame of every node, the free lists, and each mm's page -> frame map."""

    def __init__(self, total_pages: I64) -> None:
        self.nr_nodes = int(total_pages.shape[0])
        self.total_pages = total_pages.astype(np.int64)
        nr = int(self.total_pages.sum())
        self.nr = nr
        self.base = np.concatenate([[0], np.cumsum(self.total_pages)[:-1]]).astype(np.int64)
        self.node = np.repeat(np.arange(self.nr_nodes, dtype=np.int64), self.total_pages)
        self.lru = np.full(nr, -1, dtype=np.int8)
        self.memcg = np.zeros(nr, dtype=np.int64)
        #: Anonymous pages: the mm and page index they back (-1: none). Page-cache pages: the file and offset.
        self.mm = np.full(nr, -1, dtype=np.int64)
        self.index = np.zeros(nr, dtype=np.int64)
        self.file = np.full(nr, -1, dtype=np.int64)
        self.pgoff = np.zeros(nr, dtype=np.int64)
        self.anon = np.zeros(nr, dtype=bool)
        self.referenced = np.zeros(nr, dtype=bool)
        self.dirty = np.zeros(nr, dtype=bool)
        self.writeback = np.zeros(nr, dtype=bool)
        self.reclaim = np.zeros(nr, dtype=bool)
        self.swapcache = np.zeros(nr, dtype=bool)
        #: A page-cache page some process has mapped (``page_mapped()``: its references are PTE references).
        self.mapped = np.zeros(nr, dtype=bool)
        #: LRU queue validity (-1 when not on a list) and dirty-queue validity (-1 when clean).
        self.stamp = np.full(nr, -1, dtype=np.int64)
        self.dirty_seq = np.full(nr, -1, dtype=np.int64)
        self.dirtied_at = np.zeros(nr, dtype=np.int64)
        self._next_stamp = 0
        # Free stacks: pop from the end; lower pfns first.
        self._free = [
            np.arange(b + t - 1, b - 1, -1, dtype=np.int64)
            for b, t in zip(self.base, self.total_pages, strict=True)
        ]
        self._free_top = [int(t) for t in self.total_pages]
        #: Per-mm view: page -> pfn of what the process sees there (-1 absent: an anonymous page never touched or
        #: swapped out, a file page not touched or evicted), and the anonymous pages that live in swap.
        self.mm_pfn: dict[int, I64] = {}
        self.mm_swapped: dict[int, npt.NDArray[np.bool_]] = {}

    def stamps(self, n: int) -> I64:
        s = np.arange(self._next_stamp, self._next_stamp + n, dtype=np.int64)
        self._next_stamp += n
        return s

    # ---- free lists ----------------------------------------------------------------------------------------
    def nr_free(self, node: int) -> int:
        return self._free_top[node]

    def take(self, node: int, n: int) -> I64:
        top = self._free_top[node]
        if n > top:
            raise SimulationError(f"frame table out of step: {n} frames wanted on node {node}, {top} free")
        self._free_top[node] = top - n
        return self._free[node][top - n : top][::-1].copy()

    def give_back(self, pfns: I64) -> None:
        if not pfns.size:
            return
        if self.nr_nodes == 1:
            groups: list[tuple[int, I64]] = [(0, pfns)]
        else:
            nodes = self.node[pfns]
            groups = [(int(n), pfns[nodes == n]) for n in np.unique(nodes)]
        for node, sel in groups:
            top = self._free_top[node]
            self._free[node][top : top + sel.size] = sel[::-1]
            self._free_top[node] = top + int(sel.size)
        self.mm[pfns] = -1
        self.file[pfns] = -1
        self.lru[pfns] = -1
        self.stamp[pfns] = -1
        self.dirty_seq[pfns] = -1
        for flag in (
            self.anon, self.referenced, self.dirty, self.writeback, self.reclaim, self.swapcache, self.mapped
        ):
            flag[pfns] = False

    # ---- per-mm maps ---------------------------------------------------------------------------------------
    def ensure_mm(self, mm_id: int, nr_pages: int) -> None:
        """Grow the per-mm arrays to the mm's current size (mmap appends pages)."""
        old = self.mm_pfn.get(mm_id)
        have = 0 if old is None else old.shape[0]
        if have >= nr_pages:
            return
        grow = nr_pages - have
        self.mm_pfn[mm_id] = np.concatenate(
            [old if old is not None else np.empty(0, np.int64), np.full(grow, -1, np.int64)]
        )
        prev = self.mm_swapped.get(mm_id)
        self.mm_swapped[mm_id] = np.concatenate(
            [prev if prev is not None else np.empty(0, bool), np.zeros(grow, bool)]
        )


class LruVecs:
    """The lruvec lists of every ``(node, memcg)`` and their sizes (``lruvec->lru_zone_size``)."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames
        self.nr_memcg = 1
        self.nr_pages = np.zeros((frames.nr_nodes, 1, NR_LRU_LISTS), dtype=np.int64)
        self._fifos: dict[tuple[int, int, int], PageFifo] = {}

    def grow_memcgs(self, nr_memcg: int) -> None:
        if nr_memcg <= self.nr_memcg:
            return
        extra = np.zeros((self.frames.nr_nodes, nr_memcg - self.nr_memcg, NR_LRU_LISTS), dtype=np.int64)
        self.nr_pages = np.concatenate([self.nr_pages, extra], axis=1)
        self.nr_memcg = nr_memcg

    def fifo(self, node: int, memcg: int, lru: int) -> PageFifo:
        key = (node, memcg, lru)
        f = self._fifos.get(key)
        if f is None:
            f = self._fifos[key] = PageFifo()
        return f

    def add(self, pfns: I64, lru: I64 | int, *, tail: bool = False) -> None:
        """``add_page_to_lru_list`` (head) or ``..._tail``: put pages on list ``lru`` of their lruvec."""
        if not pfns.size:
            return
        fr = self.frames
        lrus = np.broadcast_to(np.asarray(lru, dtype=np.int64), pfns.shape)
        stamps = fr.stamps(int(pfns.size))
        fr.lru[pfns] = lrus
        fr.stamp[pfns] = stamps
        key = (fr.node[pfns] * self.nr_memcg + fr.memcg[pfns]) * NR_LRU_LISTS + lrus
        k0 = int(key[0])
        if (key == k0).all():
            groups: list[tuple[int, I64, I64]] = [(k0, pfns, stamps)]
        else:
            keys, inv = np.unique(key, return_inverse=True)
            groups = [(int(k), pfns[inv == i], stamps[inv == i]) for i, k in enumerate(keys.tolist())]
        for k, sel_pfns, sel_stamps in groups:
            node, rest = divmod(k, self.nr_memcg * NR_LRU_LISTS)
            memcg, lr = divmod(rest, NR_LRU_LISTS)
            f = self.fifo(node, memcg, lr)
            if tail:
                f.push_tail(sel_pfns, sel_stamps)
            else:
                f.push_head(sel_pfns, sel_stamps)
            self.nr_pages[node, memcg, lr] += int(sel_pfns.size)
            if f.entries > 2 * self.nr_pages[node, memcg, lr] + 4096:
                f.compact(fr.stamp)

    def remove(self, pfns: I64) -> None:
        """Take pages off whatever list they are on (freeing, or isolating outside a scan)."""
        fr = self.frames
        on = pfns[fr.lru[pfns] >= 0]
        if not on.size:
            return
        key = (fr.node[on] * self.nr_memcg + fr.memcg[on]) * NR_LRU_LISTS + fr.lru[on]
        np.subtract.at(self.nr_pages.reshape(-1), key, 1)
        fr.lru[on] = -1
        fr.stamp[on] = -1

    def isolate(self, node: int, memcg: int, lru: int, n: int) -> I64:
        """``isolate_lru_pages``: up to ``n`` pages from the tail of one list."""
        if n <= 0:
            return np.empty(0, dtype=np.int64)
        f = self._fifos.get((node, memcg, lru))
        if f is None:
            return np.empty(0, dtype=np.int64)
        pfns = f.pop_tail(n, self.frames.stamp)
        if pfns.size:
            self.nr_pages[node, memcg, lru] -= int(pfns.size)
            self.frames.lru[pfns] = -1
            self.frames.stamp[pfns] = -1
        return pfns

    def size(self, node: int, memcg: int, lru: int) -> int:
        return int(self.nr_pages[node, memcg, lru])
