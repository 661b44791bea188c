"""Page reclaim: kswapd, direct reclaim and memcg-limit reclaim over the per-(node, memcg) LRU lists.

Models mm/vmscan.c of Linux 3.7-4.x (the classic LRU the vmpressure_fd RFC was written against, with the
4.5+ ``shrink_node`` / ``tree`` vmpressure hooks of mainline):

``do_try_to_free_pages()``
    Direct reclaim (an allocating task, ``allocstall``) and memcg-limit reclaim loop ``priority`` from
    ``DEF_PRIORITY`` = 12 down to 0, calling ``vmpressure_prio()`` at each step, shrinking every allowed
    node, and stopping once ``nr_to_reclaim`` pages are freed.
``shrink_node()``
    Shrinks the lruvec of each memcg of the target's subtree (``mem_cgroup_iter``), then reports the pass to
    ``vmpressure(tree=true)`` of the target and ``tree=false`` of each memcg; the RFC's hook sits at the end
    of each ``shrink_lruvec()`` instead (and ignores memcg-limit reclaim).
``get_scan_count()`` / ``shrink_lruvec()``
    Each evictable list is scanned ``lru_size >> priority`` pages (on 3.10 memcg reclaim scans at least
    ``SWAP_CLUSTER_MAX`` of a non-empty list, ``force_scan``; 4.12 dropped that, see ``sim/mm/version.py``).
    Without swap (the default) anon lists are not scanned at all; with swap, ``SCAN_EQUAL`` at priority 0,
    ``SCAN_ANON`` when file + free pages are under the high watermark, ``SCAN_FILE`` while the inactive file
    list is not low, else ``SCAN_FRACT`` with swappiness 60.
    The loop stops early once ``nr_to_reclaim`` is met below ``DEF_PRIORITY``; afterwards the active anon
    list is aged when the inactive anon list is low.
``shrink_active_list()``
    Moves pages from the active to the inactive list, clearing their referenced bits (``pgrefill``,
    ``pgdeactivate``). Active-list scans do not count in ``sc->nr_scanned``.
``shrink_inactive_list()`` / ``shrink_page_list()``
    Isolated pages count as scanned (``pgscan_*``). Under writeback: tagged ``PG_reclaim`` and kept; memcg
    reclaim waits for pages it has already tagged (``wait_on_page_writeback``, legacy memcg has no dirty
    throttling). Referenced: activated (``pgactivate``). Anon: added to swap and paged out if swap has room,
    otherwise activated. Dirty file: tagged ``PG_reclaim``, kept, and the flusher is woken (reclaim never
    writes file pages itself). Clean and unreferenced: freed (``pgsteal_*``), unmapped from their mm.
``balance_pgdat()`` (kswapd)
    Woken when an allocation finds a node below its low watermark; reclaims at ``DEF_PRIORITY`` and raises
    the priority while it scans less than ``nr_to_reclaim`` (= the high watermark) or frees nothing, until
    the node is above high; gives up at priority 1, and after ``MAX_RECLAIM_RETRIES`` fruitless runs stops
    being woken until some reclaim succeeds (``kswapd_failures``).

Counters follow /proc/vmstat: ``pgscan_kswapd``, ``pgscan_direct``, ``pgsteal_kswapd``, ``pgsteal_direct``
(global reclaim only: memcg-limit reclaim does not count there — the counts are taken only under
``global_reclaim(sc)``, 3.x–4.x mm/vmscan.c, ``!cgroup_reclaim(sc)`` from 5.x; on 6.18 a memcg-limited
writer leaves them at 0),
``pgscan_anon``/``_file``, ``pgsteal_anon``/``_file``, ``pgrefill``, ``pgactivate``, ``pgdeactivate``,
``pgrotated``, ``pageoutrun``, ``allocstall``, ``pswpout``, ``nr_vmscan_write``, ``kswapd_failures`` (as a
count of failed runs).

Time. Reclaim work costs CPU time per page (``reclaim_scan_ns`` per page isolated, ``reclaim_free_ns`` per
page freed, ``reclaim_move_ns`` per page moved between lists, ``shrink_node_ns`` per pass); a direct
reclaimer pays it in its own context (system time, and a memory stall for PSI); kswapd's passes are spaced
by their cost.

Deviations from the kernel: pages are scanned in batches of up to 1024 (not ``SWAP_CLUSTER_MAX`` = 32) per
list and round, so a pass can overshoot ``nr_to_reclaim`` by up to one batch (dirty pages are still judged
per kernel batch: the flusher is woken, and v1 reclaim throttled, at the first batch of ``SWAP_CLUSTER_MAX``
pages or one folio that is all dirty and unqueued, and the pages after it are judged after that sleep);
``SCAN_FRACT`` ignores the recent-rotation feedback; no slab shrinking, compaction, ``congestion_wait``
throttling or MGLRU; dirty file pages stay on the inactive list with ``PG_reclaim`` (3.x; since 4.12 they are
activated instead); memcg protection (``memory.low``/``min``) and soft limits are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.pressure.index import DEF_PRIORITY, SWAP_CLUSTER_MAX
from memsched.sim.engine import Engine, Prio
from memsched.sim.mm.filemap import PageCache
from memsched.sim.mm.lru import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    Frames,
    LruVecs,
)
from memsched.sim.mm.memcontrol import ROOT_MEMCG, MemcgTree
from memsched.sim.mm.page_alloc import PageAllocator, Watermarks
from memsched.sim.mm.sysctl import MAX_RECLAIM_RETRIES
from memsched.sim.mm.version import KERNELS, MmBehaviour
from memsched.sim.mm.vmpressure import SimVmpressure, VmpressureOp
from memsched.sim.mm.vmstat import VmStat
from memsched.sim.mm.writeback import Writeback

if TYPE_CHECKING:
    from memsched.sim.fluid.machine import FluidMachine

__all__ = ["RECLAIM_COUNTERS", "Kswapd", "ReclaimCosts", "ScanControl", "Swap", "Vmscan"]

I64 = npt.NDArray[np.int64]

#: /proc/vmstat names this module (and reclaim.py) count; registered at attach so they print even at 0.
RECLAIM_COUNTERS: tuple[str, ...] = (
    "allocstall",
    "kswapd_failures",
    "nr_dirtied",
    "nr_vmscan_write",
    "nr_written",
    "oom_kill",
    "pageoutrun",
    "pgactivate",
    "pgdeactivate",
    "pgmajfault",
    "pgrefill",
    "pgrotated",
    "pgscan_anon",
    "pgscan_direct",
    "pgscan_file",
    "pgscan_kswapd",
    "pgsteal_anon",
    "pgsteal_direct",
    "pgsteal_file",
    "pgsteal_kswapd",
    "pswpin",
    "pswpout",
    "workingset_refault_anon",
    "workingset_refault_file",
)

#: Pages one shrink round takes from a list at most (the kernel's batch is SWAP_CLUSTER_MAX).
_BATCH = 1024
#: Swappiness (``vm.swappiness`` default 60): anon vs file scan weight is 60 : 140.
_SWAPPINESS = 60


@dataclass(frozen=True, slots=True)
class ReclaimCosts:
    """CPU nanoseconds of reclaim work (estimates: a core frees ~2-3 GB/s of clean page cache)."""

    reclaim_scan_ns: int = 400
    reclaim_free_ns: int = 1_000
    reclaim_move_ns: int = 200
    shrink_node_ns: int = 5_000


@dataclass
class Swap:
    """The swap device: slots in pages (0 = no swap, the default) and how many are in use."""

    total: int = 0
    used: int = 0

    @property
    def free(self) -> int:
        return self.total - self.used


@dataclass
class ScanControl:
    """``struct scan_control``."""

    nr_to_reclaim: int
    target_memcg: int = ROOT_MEMCG
    priority: int = DEF_PRIORITY
    may_swap: bool = True
    kswapd: bool = False
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    #: CPU time spent so far (ns) and time waited on writeback (ns): a pass's offset in the stall.
    cost_ns: float = 0.0
    wait_ns: float = 0.0
    total_scanned: int = 0
    nr_dirty_seen: int = 0
    nodes: list[int] = field(default_factory=list)
    #: Where this reclaim starts inside the caller's stall (earlier rounds of the same fault), ns.
    t0_ns: float = 0.0

    @property
    def global_reclaim(self) -> bool:
        return self.target_memcg == ROOT_MEMCG

    @property
    def elapsed_ns(self) -> float:
        return self.cost_ns + self.wait_ns

    @property
    def at_ns(self) -> float:
        """Offset from now of the reclaimer's current point in simulated time."""
        return self.t0_ns + self.cost_ns + self.wait_ns


@dataclass
class Kswapd:
    """``pgdat->kswapd`` state of one node."""

    node: int
    cpu: int
    running: bool = False
    priority: int = DEF_PRIORITY
    reclaimed: int = 0
    failures: int = 0
    runs: int = 0
    busy_ns: float = 0.0


class Vmscan:
    """The reclaimer of one simulated machine."""

    def __init__(
        self,
        machine: FluidMachine,
        frames: Frames,
        lru: LruVecs,
        memcgs: MemcgTree,
        writeback: Writeback,
        vmpressure: SimVmpressure,
        wmark: Watermarks,
        swap: Swap,
        costs: ReclaimCosts,
        *,
        kswapd_wakeup_ns: int = 20_000,
        cache: PageCache | None = None,
        behaviour: MmBehaviour | None = None,
        cgroup_v2: bool = False,
        file_folio: int = 1,
    ) -> None:
        self.machine = machine
        self.engine: Engine = machine.engine
        self.vmstat: VmStat = machine.vmstat
        self.page_alloc: PageAllocator = machine.page_alloc
        self.frames = frames
        self.lru = lru
        self.memcgs = memcgs
        self.writeback = writeback
        self.vmpressure = vmpressure
        self.wmark = wmark
        self.swap = swap
        self.costs = costs
        self.kswapd_wakeup_ns = kswapd_wakeup_ns
        self.cache = cache if cache is not None else PageCache()
        self.b = behaviour or KERNELS["6.18"]
        #: Pages of one page-cache folio: reclaim isolates file pages in these units.
        self.file_folio = file_folio
        #: ``cgroup_subsys_on_dfl(memory_cgrp_subsys)``: memcg reclaim throttles like global reclaim
        #: (``writeback_throttling_sane()``) and computes socket pressure; on v1 neither.
        self.cgroup_v2 = cgroup_v2
        self.kswapd = [Kswapd(n, machine.topology.nodes[n].cpus[-1]) for n in range(frames.nr_nodes)]
        #: Called with (kswapd, running) when a kswapd starts or stops (PSI counts it as a stalled task).
        self.on_kswapd: list[Callable[[Kswapd, bool], None]] = []
        #: Called with (offset in the reclaimer's stall, ns) when the reclaimer sleeps (set by ``Reclaim``).
        self.on_sleep: Callable[[float, float], None] = _no_sleep_hook

    # ---- freeing -------------------------------------------------------------------------------------------
    def free_frames(
        self,
        pfns: I64,
        *,
        unmap: bool = True,
        count_free: bool = True,
        swapped: bool = False,
        shadow: bool = True,
    ) -> None:
        """Release frames: off the LRU, uncharged, out of the page cache, back to the free lists.

        ``unmap``: anonymous pages disappear from their mm (reclaim, ``MADV_DONTNEED``); not on exit, where the
        machine frees the whole mm. ``count_free``: also return them to ``PageAllocator`` (not on exit, which
        the machine does itself). ``swapped``: anon pages that now live in swap. ``shadow``: page-cache pages
        leave a shadow entry (reclaim; not ``POSIX_FADV_DONTNEED``). Page-cache pages always leave every
        process view."""
        if not pfns.size:
            return
        fr = self.frames
        self.writeback.forget(pfns)
        self.lru.remove(pfns)
        self.memcgs.uncharge(fr.memcg[pfns])
        if not swapped:  # swap-cache pages dropped with their mapping: their swap slots go too
            self.swap.used -= int(np.count_nonzero(fr.swapcache[pfns]))
        cached = fr.file[pfns] >= 0
        if cached.any():  # page cache: out of its file (a shadow entry if reclaim evicted it) and every view
            self.cache.remove(fr, self.machine.mms, pfns[cached], shadow=shadow)
        anon = pfns[~cached]
        if unmap and anon.size:
            mms = fr.mm[anon]
            m0 = int(mms[0])
            groups = [(m0, anon)] if (mms == m0).all() else [(int(i), anon[mms == i]) for i in np.unique(mms)]
            for mm_id, sel in groups:
                idx = fr.index[sel]
                mm = self.machine.mms[int(mm_id)]
                old = mm.page_node[idx].astype(np.int64)
                mm.node_pages -= np.bincount(old, minlength=mm.nr_nodes)
                mm.page_node[idx] = -1
                mm.placement_version += 1
                self.frames.mm_pfn[int(mm_id)][idx] = -1
                if swapped:
                    self.frames.mm_swapped[int(mm_id)][idx] = True
        if count_free:
            self.page_alloc.free(fr.node[pfns])
        fr.give_back(pfns)

    # ---- helpers -------------------------------------------------------------------------------------------
    def node_free(self, node: int) -> int:
        return int(self.page_alloc.free_pages[node])

    def balanced(self, node: int) -> bool:
        return self.node_free(node) >= int(self.wmark.high[node])

    def _inactive_is_low(self, node: int, memcg: int, file: bool) -> bool:
        """``inactive_list_is_low()`` (4.10+ ratio for both types): inactive * sqrt(10 * GB) < active."""
        if not file and self.swap.total == 0:
            return False
        inactive = self.lru.size(node, memcg, LRU_INACTIVE_FILE if file else LRU_INACTIVE_ANON)
        active = self.lru.size(node, memcg, LRU_ACTIVE_FILE if file else LRU_ACTIVE_ANON)
        gb = ((inactive + active) * self.page_alloc.page_size) >> 30
        ratio = math.isqrt(10 * gb) if gb else 1
        return inactive * ratio < active

    def _can_swap(self, sc: ScanControl) -> bool:
        return sc.may_swap and self.swap.free > 0

    # ---- the scan ------------------------------------------------------------------------------------------
    def get_scan_count(self, node: int, memcg: int, sc: ScanControl) -> dict[int, int]:
        sizes = self.lru.nr_pages[node, memcg]
        scan = {lru: int(sizes[lru]) >> sc.priority for lru in (0, 1, 2, 3)}
        if not sc.global_reclaim and self.b.memcg_force_scan:  # 3.10 force_scan: small memcgs still progress
            for lru, n in scan.items():
                if n == 0 and sizes[lru]:
                    scan[lru] = min(int(sizes[lru]), SWAP_CLUSTER_MAX)
        anon_lists, file_lists = (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON), (LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)
        if not self._can_swap(sc):
            balance = "file"
        elif sc.priority == 0:
            balance = "equal"
        elif sc.global_reclaim and int(sizes[2] + sizes[3]) + self.node_free(node) <= int(
            self.wmark.high[node]
        ):
            balance = "anon"
        elif not self._inactive_is_low(node, memcg, file=True):
            balance = "file"
        else:
            balance = "fract"
        if balance == "file":
            for lru in anon_lists:
                scan[lru] = 0
        elif balance == "anon":
            for lru in file_lists:
                scan[lru] = 0
        elif balance == "fract":
            denom = 200 + 1
            for lru in anon_lists:
                scan[lru] = scan[lru] * _SWAPPINESS // denom
            for lru in file_lists:
                scan[lru] = scan[lru] * (200 - _SWAPPINESS) // denom
        return scan

    def shrink_node(self, node: int, sc: ScanControl) -> None:
        """Shrink every memcg lruvec of the target's subtree on ``node``; report to vmpressure."""
        s0, r0 = sc.nr_scanned, sc.nr_reclaimed
        ops: list[VmpressureOp] = []
        memcg_reclaim = not sc.global_reclaim
        for memcg in self.memcgs.subtree(sc.target_memcg):
            ms, mr = sc.nr_scanned, sc.nr_reclaimed
            self.shrink_lruvec(node, memcg, sc)
            ds, dr = sc.nr_scanned - ms, sc.nr_reclaimed - mr
            if ds:
                ops.append(VmpressureOp("lruvec", memcg, ds, dr, memcg_reclaim=memcg_reclaim))
                if self.cgroup_v2:  # vmpressure(tree=false) returns at once on a v1 memcg (4.5+)
                    ops.append(VmpressureOp("memcg", memcg, ds, dr))
        sc.cost_ns += self.costs.shrink_node_ns
        if sc.nr_scanned - s0:
            ops.append(VmpressureOp("tree", sc.target_memcg, sc.nr_scanned - s0, sc.nr_reclaimed - r0))
        self.vmpressure.account(self.engine.now + round(sc.at_ns), ops)
        if sc.nr_reclaimed - r0:
            self.kswapd[node].failures = 0

    def shrink_lruvec(self, node: int, memcg: int, sc: ScanControl) -> None:
        nr = self.get_scan_count(node, memcg, sc)
        start = sc.nr_reclaimed
        # Global direct reclaim at DEF_PRIORITY scans the lists proportionally to the end (scan_adjusted /
        # proportional_reclaim); memcg reclaim and kswapd stop once they have what they came for.
        proportional = sc.global_reclaim and not sc.kswapd and sc.priority == DEF_PRIORITY
        while nr[LRU_INACTIVE_ANON] or nr[LRU_ACTIVE_FILE] or nr[LRU_INACTIVE_FILE]:
            left = sc.nr_to_reclaim - (sc.nr_reclaimed - start)
            batch = min(_BATCH, max(SWAP_CLUSTER_MAX, left))
            for lru in (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE):
                if nr[lru]:
                    k = min(nr[lru], batch)
                    nr[lru] -= k
                    if lru >= LRU_INACTIVE_FILE:  # isolate_lru_folios() takes whole folios
                        k = max(k, self.file_folio)
                    self.shrink_list(lru, k, node, memcg, sc)
            if sc.nr_reclaimed - start >= sc.nr_to_reclaim and not proportional:
                break
        if self._inactive_is_low(node, memcg, file=False):
            self.shrink_active_list(SWAP_CLUSTER_MAX, node, memcg, LRU_ACTIVE_ANON, sc)

    def shrink_list(self, lru: int, n: int, node: int, memcg: int, sc: ScanControl) -> None:
        if lru in (LRU_ACTIVE_ANON, LRU_ACTIVE_FILE):
            if self._inactive_is_low(node, memcg, file=lru == LRU_ACTIVE_FILE):
                self.shrink_active_list(n, node, memcg, lru, sc)
            return
        self.shrink_inactive_list(n, node, memcg, lru, sc)

    def shrink_active_list(self, n: int, node: int, memcg: int, lru: int, sc: ScanControl) -> None:
        pfns = self.lru.isolate(node, memcg, lru, n)
        if not pfns.size:
            return
        k = int(pfns.size)
        self.frames.referenced[pfns] = False  # page_referenced() clears the young bits
        self.lru.add(pfns, lru - 1)  # LRU_ACTIVE_* - 1 == LRU_INACTIVE_*
        sc.cost_ns += k * (self.costs.reclaim_scan_ns + self.costs.reclaim_move_ns)
        self.vmstat.inc("pgrefill", k)
        self.vmstat.inc("pgdeactivate", k)
        self.memcgs.add_stat(memcg, "pgrefill", k)
        self.memcgs.add_stat(memcg, "pgdeactivate", k)

    def shrink_inactive_list(self, n: int, node: int, memcg: int, lru: int, sc: ScanControl) -> None:
        pfns = self.lru.isolate(node, memcg, lru, n)
        if not pfns.size:
            return
        k = int(pfns.size)
        file = lru == LRU_INACTIVE_FILE
        sc.nr_scanned += k
        sc.total_scanned += k
        sc.cost_ns += k * self.costs.reclaim_scan_ns
        vs = self.vmstat
        if sc.global_reclaim:
            vs.inc("pgscan_kswapd" if sc.kswapd else "pgscan_direct", k)
        vs.inc("pgscan_file" if file else "pgscan_anon", k)
        self.memcgs.add_stat(memcg, "pgscan", k)
        rest = pfns
        while rest.size:  # the kernel's batches, up to the first all-dirty one, then the rest after it
            cut, all_dirty = self._all_dirty_cut(rest) if file else (int(rest.size), False)
            self._shrink_isolated(rest[:cut], memcg, lru, sc, all_dirty=all_dirty)
            rest = rest[cut:]

    def _all_dirty_cut(self, pfns: I64) -> tuple[int, bool]:
        """Where the kernel's first all-dirty batch among ``pfns`` (oldest first) ends, and whether there is one.

        The kernel isolates ``SWAP_CLUSTER_MAX`` pages at a time (at least one folio) and judges each batch:
        one whose pages are all dirty and not yet queued for I/O (``nr_unqueued_dirty == nr_taken``) wakes the
        flusher, and on v1 sleeps in ``reclaim_throttle()`` before the next batch is taken. The pages after it
        are judged after that sleep, when the flusher may have written them."""
        fr = self.frames
        unit = max(SWAP_CLUSTER_MAX, self.file_folio)
        k = int(pfns.size)
        unqueued = fr.dirty[pfns] & ~fr.writeback[pfns]
        if not unqueued.any():
            return k, False
        nb = -(-k // unit)
        padded = np.ones(nb * unit, dtype=bool)
        padded[:k] = unqueued
        full = np.flatnonzero(padded.reshape(nb, unit).all(axis=1))
        if not full.size:
            return k, False
        return min(k, (int(full[0]) + 1) * unit), True

    def _shrink_isolated(self, pfns: I64, memcg: int, lru: int, sc: ScanControl, *, all_dirty: bool) -> None:
        """``shrink_folio_list()`` on isolated pages; ``all_dirty``: their last kernel batch was all dirty."""
        fr = self.frames
        vs = self.vmstat
        k = int(pfns.size)
        file = lru == LRU_INACTIVE_FILE
        b = self.b
        legacy_memcg = not sc.global_reclaim and not self.cgroup_v2  # !writeback_throttling_sane(sc)
        wb = fr.writeback[pfns]
        if legacy_memcg:  # wait on pages already tagged for immediate reclaim (shrink_folio_list case 3)
            waiting = wb & fr.reclaim[pfns]
            if waiting.any():
                at = sc.at_ns
                w = self.writeback.wait_on_writeback(pfns[waiting])
                self.on_sleep(at, w)
                sc.wait_ns += w
                wb = fr.writeback[pfns]
        fr.reclaim[pfns[wb]] = True
        # Under writeback: tagged PG_reclaim, and (4.12+) activated out of the way until written.
        keep = np.zeros(k, dtype=bool) if b.dirty_file_activate else wb.copy()
        ref = fr.referenced[pfns] & ~wb
        fr.referenced[pfns] = False
        if file:  # folio_check_references(): PTE references activate; PG_referenced alone is RECLAIM_CLEAN
            ref &= fr.mapped[pfns]
        activate = ref | wb if b.dirty_file_activate else ref.copy()
        rest = ~wb & ~ref
        free = np.zeros(k, dtype=bool)
        if file:
            dirty = rest & fr.dirty[pfns]
            if dirty.any():
                fr.reclaim[pfns[dirty]] = True
                if b.dirty_file_activate:
                    activate |= dirty
                else:
                    keep |= dirty
                nd = int(dirty.sum())
                sc.nr_dirty_seen += nd
                if all_dirty or not b.dirty_file_activate:  # nr_unqueued_dirty == nr_taken: nudge the flusher
                    self.writeback.wakeup_flusher()
                    if all_dirty and legacy_memcg and b.v1_writeback_throttle:
                        at = sc.at_ns
                        w = self.writeback.reclaim_throttle()
                        self.on_sleep(at, w)  # schedule_timeout(): the task leaves its CPU
                        sc.wait_ns += w
            free = rest & ~dirty
        else:
            in_swap = rest & fr.swapcache[pfns]
            free = in_swap  # written out (clean, off writeback): reclaimable now
            new = rest & ~in_swap
            if new.any():
                room = min(int(new.sum()), self.swap.free) if self._can_swap(sc) else 0
                idx = np.flatnonzero(new)
                out, no_room = idx[:room], idx[room:]
                if out.size:
                    pages = pfns[out]
                    fr.swapcache[pages] = True
                    self.swap.used += int(out.size)
                    self.writeback.submit_swap(pages)
                    keep[out] = True
                    vs.inc("pswpout", int(out.size))
                    vs.inc("nr_vmscan_write", int(out.size))
                activate[no_room] = True

        to_free = pfns[free]
        if to_free.size:
            nfree = int(to_free.size)
            self.free_frames(to_free, swapped=not file)  # anon: the page now lives in its swap slot
            sc.nr_reclaimed += nfree
            sc.cost_ns += nfree * self.costs.reclaim_free_ns
            if sc.global_reclaim:
                vs.inc("pgsteal_kswapd" if sc.kswapd else "pgsteal_direct", nfree)
            vs.inc("pgsteal_file" if file else "pgsteal_anon", nfree)
            self.memcgs.add_stat(memcg, "pgsteal", nfree)
        act = pfns[activate]
        if act.size:
            self.lru.add(act, lru + 1)
            vs.inc("pgactivate", int(act.size))
            self.memcgs.add_stat(memcg, "pgactivate", int(act.size))
        kept = pfns[keep & ~activate]
        if kept.size:
            self.lru.add(kept, lru)
        sc.cost_ns += int(act.size + kept.size) * self.costs.reclaim_move_ns

    # ---- do_try_to_free_pages -----------------------------------------------------------------------------
    def do_try_to_free_pages(self, sc: ScanControl) -> ScanControl:
        """The priority loop of direct and memcg-limit reclaim (6.11+: a fruitless loop is run once more with
        a full walk of the cgroup tree, ``memcg_full_walk``)."""
        if sc.global_reclaim:
            self.vmstat.inc("allocstall")
        for sweep in range(2 if self.b.full_walk_retry else 1):
            if sweep and sc.nr_reclaimed:
                break
            for prio in range(DEF_PRIORITY, -1, -1):
                sc.priority = prio
                self.vmpressure.account(
                    self.engine.now + round(sc.at_ns),
                    [VmpressureOp("prio", sc.target_memcg, priority=prio, memcg_reclaim=not sc.global_reclaim)],
                )
                sc.nr_scanned = 0
                for node in sc.nodes:
                    self.shrink_node(node, sc)
                if sc.nr_reclaimed >= sc.nr_to_reclaim:
                    break
        return sc

    def try_to_free_pages(self, nodes: list[int], nr_pages: int, *, t0_ns: float = 0.0) -> ScanControl:
        """Direct reclaim by an allocating task (``__perform_reclaim``)."""
        sc = ScanControl(nr_to_reclaim=max(SWAP_CLUSTER_MAX, nr_pages), nodes=nodes, t0_ns=t0_ns)
        return self.do_try_to_free_pages(sc)

    def try_to_free_mem_cgroup_pages(self, memcg: int, nr_pages: int, *, t0_ns: float = 0.0) -> ScanControl:
        sc = ScanControl(
            nr_to_reclaim=max(SWAP_CLUSTER_MAX, nr_pages),
            target_memcg=memcg,
            nodes=list(range(self.frames.nr_nodes)),
            t0_ns=t0_ns,
        )
        return self.do_try_to_free_pages(sc)

    # ---- kswapd --------------------------------------------------------------------------------------------
    def wakeup_kswapd(self, node: int) -> None:
        """``wakeup_kswapd()``: unless the node is hopeless, already balanced, or kswapd runs."""
        k = self.kswapd[node]
        if k.running or k.failures >= MAX_RECLAIM_RETRIES or self.balanced(node):
            return
        k.running = True
        self._kswapd_state(k, True)
        self.engine.after(self.kswapd_wakeup_ns, Prio.DEFERRED, self._balance_pgdat, k)

    def _kswapd_state(self, k: Kswapd, running: bool) -> None:
        for fn in self.on_kswapd:
            fn(k, running)

    def _balance_pgdat(self, k: Kswapd) -> None:
        """One ``balance_pgdat()`` run, computed at once; kswapd is then busy for its cost.

        Priority steps follow each other at their cost offsets (their vmpressure calls land there); the
        pages they free are free from the start of the run (deviation: up to one run, ~1 ms, early)."""
        node = k.node
        k.priority = DEF_PRIORITY
        k.reclaimed = 0
        k.runs += 1
        self.vmstat.inc("pageoutrun")
        t = 0.0
        while not self.balanced(node) and k.priority >= 1:
            sc = ScanControl(
                nr_to_reclaim=max(SWAP_CLUSTER_MAX, int(self.wmark.high[node])),
                priority=k.priority,
                kswapd=True,
                nodes=[node],
                t0_ns=t,
            )
            if self.swap.total:  # age_active_anon()
                for memcg in self.memcgs.subtree(ROOT_MEMCG):
                    if self._inactive_is_low(node, memcg, file=False):
                        self.shrink_active_list(SWAP_CLUSTER_MAX, node, memcg, LRU_ACTIVE_ANON, sc)
            self.shrink_node(node, sc)
            k.reclaimed += sc.nr_reclaimed
            t += sc.elapsed_ns
            if sc.nr_scanned < sc.nr_to_reclaim or sc.nr_reclaimed == 0:  # raise_priority
                k.priority -= 1
        k.busy_ns += t
        self.engine.after(max(1, round(t)), Prio.DEFERRED, self._balance_pgdat_end, k)

    def _balance_pgdat_end(self, k: Kswapd) -> None:
        if k.reclaimed == 0 and not self.balanced(k.node):
            k.failures += 1
            self.vmstat.inc("kswapd_failures")
            self._kswapd_sleep(k)
        elif self.balanced(k.node) or k.failures >= MAX_RECLAIM_RETRIES:
            self._kswapd_sleep(k)
        else:  # kswapd_try_to_sleep() finds work left: another balance_pgdat()
            self._balance_pgdat(k)

    def _kswapd_sleep(self, k: Kswapd) -> None:
        k.running = False
        self._kswapd_state(k, False)


def _no_sleep_hook(at_ns: float, ns: float) -> None:
    """No task to put to sleep (a Vmscan without a ``Reclaim``)."""
