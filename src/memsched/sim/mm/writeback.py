"""Dirty page cache, the flusher, and dirty throttling of writers.

Models what reclaim depends on from mm/page-writeback.c and fs/fs-writeback.c (Linux 3.x; the ratios are
still the defaults today):

* ``vm.dirty_background_ratio`` (10) and ``vm.dirty_ratio`` (20) percent of *dirtyable* memory — free pages
  plus file LRU pages, minus the high watermarks (``global_dirtyable_memory()``);
* the flusher writes dirty pages back, oldest first, at the disk's write bandwidth, once dirty pages exceed
  the background threshold, when reclaim asks, and periodically (every ``dirty_writeback_centisecs``, 5 s)
  for pages dirty for longer than ``dirty_expire_centisecs`` (30 s). Reclaim asks when a batch it isolated
  was all dirty and not yet queued (``wakeup_flusher_threads(WB_REASON_VMSCAN)``, mm/vmscan.c
  ``shrink_inactive_list()``): ``wb_start_writeback()`` sets ``WB_start_all`` unless it is set already, and
  the flusher's ``wb_check_start_all()`` writes as many pages as ``get_nr_dirty_pages()`` counts when it
  starts — pages dirtied meanwhile are written within that count, oldest first (``range_cyclic``), not
  beyond it — then clears the bit (fs/fs-writeback.c 6.18). A writer that the flusher outruns finds its
  pages clean when reclaim reaches them; one it does not meets them dirty (below);
* a page under writeback cannot be freed; when its I/O completes and reclaim had tagged it ``PG_reclaim``,
  ``end_page_writeback()`` -> ``rotate_reclaimable_page()`` moves it to the tail of the inactive list so the
  next scan frees it (``pgrotated``; 4.12+ also from the active list, where reclaim put it, clearing
  ``PG_active``: ``lru_move_tail()``);
* reclaim that met only dirty pages not yet queued for I/O sleeps in ``reclaim_throttle(pgdat,
  VMSCAN_THROTTLE_WRITEBACK)`` (5.16+, cgroup-v1 memcg reclaim: mm/vmscan.c ``shrink_inactive_list()``) until
  more than ``SWAP_CLUSTER_MAX`` pages have been written since it started waiting
  (``__acct_reclaim_writeback()``), or for ``HZ/10``;
* ``balance_dirty_pages()``: a writer that pushed dirty + writeback pages above the dirty threshold blocks
  until the flusher brings them back below (a :class:`~memsched.sim.fluid.task.Wait` on :attr:`Writeback.throttle`);
* swap-out (``pageout()`` of an anon page) goes through the same completion path.

Deviations from the kernel: the disk is a fixed-bandwidth pipeline of ``flusher_tick_ns`` batches (a page's
I/O completes at the end of the tick after it was submitted); throttling is a hard stop at the threshold
instead of the proportional pacing between the "freerun" point and the limit; one global writeback domain
(memcg v1 had no per-cgroup dirty limits); swap I/O does not take disk bandwidth from file writeback. The
disk's bandwidth is the one the flusher gets (many requests in flight), not that of one synchronous
request at a time. The ``WB_start_all`` rule (one flush-everything request at a time, 4.14+) applies to
every simulated version; before 4.14 each wakeup queued its own work item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.pressure.index import SWAP_CLUSTER_MAX
from memsched.sim.engine import Engine, Event, Prio
from memsched.sim.mm.lru import LRU_INACTIVE_ANON, LRU_INACTIVE_FILE, Frames, LruVecs, PageFifo
from memsched.sim.mm.vmstat import VmStat

if TYPE_CHECKING:
    from memsched.sim.fluid.task import FluidTask

__all__ = ["DirtyThrottle", "Writeback"]

I64 = npt.NDArray[np.int64]


class DirtyThrottle:
    """The wait queue of ``balance_dirty_pages()``: ready while dirty + writeback <= the dirty threshold."""

    def __init__(self, wb: Writeback) -> None:
        self._wb = wb
        self._waiters: list[tuple[FluidTask, Callable[[FluidTask], None]]] = []

    def poll_ready(self, task: FluidTask) -> bool:
        return not self._wb.over_dirty_limit()

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self._wb.throttled += 1
        self._waiters.append((task, wake))
        for hook in self._wb.on_task_sleep:  # io_schedule_timeout(): the writer leaves its CPU
            hook(task)

    def wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for task, wake in waiters:
            wake(task)

    def __len__(self) -> int:
        return len(self._waiters)


class Writeback:
    """Dirty and writeback page accounting, the flusher thread and the disk pipeline."""

    def __init__(
        self,
        engine: Engine,
        frames: Frames,
        lru: LruVecs,
        vmstat: VmStat,
        *,
        page_size: int,
        dirtyable: Callable[[], int],
        dirty_ratio: int,
        dirty_background_ratio: int,
        dirty_expire_ns: int,
        dirty_writeback_ns: int,
        disk_write_bytes_per_s: int,
        flusher_tick_ns: int,
        rotate_active: bool = True,
    ) -> None:
        self.engine = engine
        self.frames = frames
        self.lru = lru
        self.vmstat = vmstat
        self.dirtyable = dirtyable
        self.dirty_ratio = dirty_ratio
        self.dirty_background_ratio = dirty_background_ratio
        self.dirty_expire_ns = dirty_expire_ns
        self.dirty_writeback_ns = dirty_writeback_ns
        self.tick_ns = flusher_tick_ns
        self.rotate_active = rotate_active
        #: Times reclaim slept in ``reclaim_throttle(VMSCAN_THROTTLE_WRITEBACK)``.
        self.throttled_reclaim = 0
        self.pages_per_tick = max(1, disk_write_bytes_per_s * flusher_tick_ns // (page_size * 1_000_000_000))
        self.nr_dirty = 0
        self.nr_writeback = 0
        self.throttled = 0
        self._fifo = PageFifo()
        self._inflight: list[I64] = []
        self._tick: Event | None = None
        self._last_run: int | None = None
        #: The ``WB_start_all`` flush that reclaim asked for: 0 none (the bit clear), -1 asked for but not yet
        #: started (the flusher reads ``get_nr_dirty_pages()`` when it runs), else the pages it still has to write.
        self._start_all_left = 0
        self.throttle = DirtyThrottle(self)
        #: Called with a task that starts sleeping in ``balance_dirty_pages()``.
        self.on_task_sleep: list[Callable[[FluidTask], None]] = []

    # ---- thresholds ----------------------------------------------------------------------------------------
    def thresholds(self) -> tuple[int, int]:
        """``global_dirty_limits()``: (background threshold, dirty threshold) in pages."""
        avail = max(self.dirtyable(), 0)
        return avail * self.dirty_background_ratio // 100, avail * self.dirty_ratio // 100

    def over_dirty_limit(self) -> bool:
        return self.nr_dirty + self.nr_writeback > self.thresholds()[1]

    # ---- page state changes --------------------------------------------------------------------------------
    def mark_dirty(self, pfns: I64) -> None:
        """``set_page_dirty()`` on newly written page-cache pages."""
        if not pfns.size:
            return
        fr = self.frames
        fresh = pfns[~fr.dirty[pfns]]
        fr.dirty[fresh] = True
        seq = fr.stamps(int(fresh.size))
        fr.dirty_seq[fresh] = seq
        fr.dirtied_at[fresh] = self.engine.now
        self._fifo.push_head(fresh, seq)
        self.nr_dirty += int(fresh.size)
        self.vmstat.inc("nr_dirtied", int(fresh.size))
        if self.nr_dirty > self.thresholds()[0]:
            self._kick(self.engine.now)
        else:
            self._kick(self.engine.now + self.dirty_writeback_ns)

    def forget(self, pfns: I64) -> None:
        """Pages leaving the page cache (freed): drop them from the dirty and writeback counts."""
        fr = self.frames
        self.nr_dirty -= int(np.count_nonzero(fr.dirty[pfns]))
        self.nr_writeback -= int(np.count_nonzero(fr.writeback[pfns]))
        fr.dirty_seq[pfns] = -1

    def submit_swap(self, pfns: I64) -> None:
        """``pageout()`` of anon pages just added to the swap cache: they go under writeback now."""
        fr = self.frames
        fr.writeback[pfns] = True
        fr.reclaim[pfns] = True
        self.nr_writeback += int(pfns.size)
        self._inflight.append(pfns)
        self._kick(self.engine.now)

    def wakeup_flusher(self) -> None:
        """``wakeup_flusher_threads(WB_REASON_VMSCAN)`` → ``wb_start_writeback()``: set ``WB_start_all`` unless
        it is set already (one flush-everything request at a time); the flusher then writes as many pages as
        were dirty when it starts (``wb_check_start_all()``: ``get_nr_dirty_pages()``), not more, and clears
        the bit (fs/fs-writeback.c, 4.15+ to 6.18)."""
        if self.nr_dirty and not self._start_all_left:
            self._start_all_left = -1
            self._kick(self.engine.now)

    def _start_all_wrote(self, n: int) -> None:
        """``n`` pages of the ``WB_start_all`` flush were written; at its count, ``clear_bit(WB_start_all)``."""
        if not self._start_all_left:
            return
        self._start_all_left -= n
        if self._start_all_left <= 0 or self.nr_dirty == 0:
            self._start_all_left = 0

    def wait_on_writeback(self, pfns: I64) -> int:
        """``wait_on_page_writeback()`` for pages memcg reclaim waits on: ns until their I/O completes (their
        batch's tick); the pages are completed now, on the waiter's behalf."""
        if not pfns.size:
            return 0
        left = self.tick_ns if self._tick is None else max(self._tick.time - self.engine.now, 0)
        left = max(left, 1)
        self._complete(pfns)
        return left

    def expedite(self, wait_ns: int) -> int:
        """A reclaimer that made no progress waits ``wait_ns`` for I/O (``congestion_wait(HZ/10)`` in
        ``should_reclaim_retry``): what the disk would finish in that time finishes now, on its behalf —
        the batch in flight, then as many dirty pages (oldest first) as the disk writes in ``wait_ns`` (at least
        ``SWAP_CLUSTER_MAX``)."""
        for batch in self._inflight:
            self._complete(batch)
        self._inflight = []
        budget = max(SWAP_CLUSTER_MAX, wait_ns * self.pages_per_tick // self.tick_ns)
        fr = self.frames
        pfns = self._fifo.pop_tail(budget, fr.dirty_seq)
        if pfns.size:
            fr.dirty[pfns] = False
            fr.dirty_seq[pfns] = -1
            self.nr_dirty -= int(pfns.size)
            self.vmstat.inc("nr_written", int(pfns.size))
            fr.writeback[pfns] = True
            self.nr_writeback += int(pfns.size)
            fr.reclaim[pfns] = True
            self._complete(pfns)
            if self._start_all_left > 0:
                self._start_all_wrote(int(pfns.size))
        if len(self.throttle) and not self.over_dirty_limit():
            self.throttle.wake_all()
        return wait_ns

    def reclaim_throttle(self, timeout_ns: int = 100_000_000) -> int:
        """``reclaim_throttle(VMSCAN_THROTTLE_WRITEBACK)``: ns the reclaimer sleeps — until more than
        ``SWAP_CLUSTER_MAX`` pages have been written since it started waiting, that is until the first batch of
        I/O completes (the flusher was just woken), or ``timeout_ns`` (HZ/10) when too little is left to write.
        What the disk writes meanwhile completes now, on the sleeper's behalf."""
        self.throttled_reclaim += 1
        if self.nr_dirty + self.nr_writeback <= SWAP_CLUSTER_MAX:
            return self.expedite(timeout_ns)  # too little left to write to wake it early
        # The first I/O to complete wakes it: the batch in flight, else the one the woken flusher submits now.
        wait = self.tick_ns
        if self._inflight and self._tick is not None:
            wait = max(1, self._tick.time - self.engine.now)
        return self.expedite(min(timeout_ns, wait))

    @property
    def write_pending(self) -> int:
        """``NR_ZONE_WRITE_PENDING``: dirty + writeback pages."""
        return self.nr_dirty + self.nr_writeback

    # ---- the flusher ---------------------------------------------------------------------------------------
    def _kick(self, at: int) -> None:
        """Make the flusher run at ``at`` (not sooner than a tick after its last run: the disk is busy)."""
        if self._last_run is not None:
            at = max(at, self._last_run + self.tick_ns)
        if self._tick is not None:
            if self._tick.time <= at:
                return
            self._tick.cancel()
        self._tick = self.engine.at(max(at, self.engine.now), Prio.TIMER, self._run)

    def _complete(self, pfns: I64) -> None:
        """``end_page_writeback()``: clear PG_writeback; rotate PG_reclaim pages to their inactive tail."""
        fr = self.frames
        pfns = pfns[fr.writeback[pfns]]
        if not pfns.size:
            return
        fr.writeback[pfns] = False
        self.nr_writeback -= int(pfns.size)
        tagged = pfns[fr.reclaim[pfns]]
        fr.reclaim[tagged] = False
        lru = fr.lru[tagged]
        on_lru = lru >= 0
        if not self.rotate_active:
            on_lru &= (lru == LRU_INACTIVE_FILE) | (lru == LRU_INACTIVE_ANON)
        rot = tagged[on_lru & ~fr.dirty[tagged]]
        if rot.size:
            lists = fr.lru[rot].astype(np.int64) & ~1  # LRU_ACTIVE_* -> LRU_INACTIVE_* (folio_clear_active)
            self.lru.remove(rot)
            self.lru.add(rot, lists, tail=True)
            self.vmstat.inc("pgrotated", int(rot.size))

    def _run(self) -> None:
        self._tick = None
        now = self.engine.now
        self._last_run = now
        inflight, self._inflight = self._inflight, []
        for batch in inflight:
            self._complete(batch)
        bg, thresh = self.thresholds()
        fr = self.frames
        budget = self.pages_per_tick
        if self._start_all_left < 0:  # wb_check_start_all(): get_nr_dirty_pages()
            self._start_all_left = self.nr_dirty
        if self.nr_dirty > bg:  # background writeback: until below the background threshold
            pfns = self._fifo.pop_tail(budget, fr.dirty_seq)
        elif self._start_all_left:  # the WB_start_all flush: its count, oldest first (range_cyclic)
            pfns = self._fifo.pop_tail(min(budget, self._start_all_left), fr.dirty_seq)
        else:  # kupdate: only pages dirty for longer than dirty_expire
            pfns = self._fifo.pop_tail(budget, fr.dirty_seq)
            young = fr.dirtied_at[pfns] > now - self.dirty_expire_ns
            if young.any():
                self._fifo.push_tail(pfns[young], fr.dirty_seq[pfns[young]])
                pfns = pfns[~young]
        if pfns.size:
            fr.dirty[pfns] = False
            fr.dirty_seq[pfns] = -1
            fr.writeback[pfns] = True
            self.nr_dirty -= int(pfns.size)
            self.nr_writeback += int(pfns.size)
            self.vmstat.inc("nr_written", int(pfns.size))
            self._inflight.append(pfns)
        self._start_all_wrote(int(pfns.size))
        if len(self.throttle) and self.nr_dirty + self.nr_writeback <= thresh:
            self.throttle.wake_all()
        if self._inflight or self.nr_dirty > bg or self._start_all_left or len(self.throttle):
            self._kick(now + self.tick_ns)
        elif self.nr_dirty:
            self._kick(now + self.dirty_writeback_ns)
