"""The flusher woken by reclaim, and dirty page cache met by memcg reclaim.

``wakeup_flusher_threads(WB_REASON_VMSCAN)`` → ``wb_start_writeback()`` sets ``WB_start_all`` unless it is
set; the flusher's ``wb_check_start_all()`` then writes as many pages as ``get_nr_dirty_pages()`` counts when
it starts, and clears the bit (fs/fs-writeback.c 6.18). A page reclaim meets dirty is tagged ``PG_reclaim``
and activated (mm/vmscan.c ``shrink_folio_list()``, 4.12+), and rotated to the inactive tail when its
writeback ends (mm/swap.c ``folio_rotate_reclaimable()``): it is scanned twice. When the flusher, once woken,
writes faster than the writer dirties, reclaim finds the pages already clean and frees each at first scan.
"""

from __future__ import annotations

import numpy as np

from helpers.pressure_programs import writer
from memsched.units import MIB, ms, s


def test_a_vmscan_wakeup_writes_the_pages_dirty_when_the_flusher_starts(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    m, r = pressure_machine(64, disk_write_bytes_per_s=2 * MIB)  # 10 pages per 20 ms flusher tick
    wb = r.writeback
    assert wb.pages_per_tick == 10
    pages = np.arange(100, dtype=np.int64)
    wb.mark_dirty(pages[:60])
    wb.wakeup_flusher()
    m.run(until=ms(30))
    wb.mark_dirty(pages[60:])  # dirtied after the flush started: not in its count
    wb.wakeup_flusher()  # WB_start_all is still set: ignored
    m.run(until=s(1))
    assert m.vmstat["nr_written"] == 60
    assert wb.nr_dirty == 40 and wb.nr_writeback == 0
    wb.wakeup_flusher()  # the bit was cleared: a new flush of the 40 now dirty
    m.run(until=s(2))
    assert m.vmstat["nr_written"] == 100 and wb.nr_dirty == 0


def _writer_in_memcg(pressure_machine, disk_mib_s: int):  # type: ignore[no-untyped-def]
    m, r = pressure_machine(256, disk_write_bytes_per_s=disk_mib_s * MIB, flusher_tick_ns=ms(1))
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    task = writer(m, r, 96, chunk_kib=1024)
    r.memcgs.attach(task.tgid, "/box")
    m.run(until=s(3))
    assert not task.killed
    bg, _ = r.writeback.thresholds()
    assert 16 * MIB // m.page_size < bg  # never above the background threshold: only reclaim wakes the flusher
    return m.vmstat


def test_a_flusher_faster_than_the_writer_cleans_pages_before_reclaim_reaches_them(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    vs = _writer_in_memcg(pressure_machine, 4096)
    scanned, stolen = vs["pgscan_file"], vs["pgsteal_file"]
    assert stolen >= (96 - 16) * MIB // 4096
    # Only pages of the first fill, all dirty when reclaim first woke the flusher, are met dirty (scanned
    # twice); every later page is freed at its first scan.
    assert scanned - stolen < 16 * MIB // 4096 < 0.25 * stolen
    assert vs["nr_written"] >= stolen


def test_a_flusher_slower_than_the_writer_leaves_reclaim_meeting_dirty_pages(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    vs = _writer_in_memcg(pressure_machine, 64)
    scanned, stolen = vs["pgscan_file"], vs["pgsteal_file"]
    assert stolen >= (96 - 16) * MIB // 4096
    assert scanned > 1.5 * stolen  # met dirty, activated, rotated back when written, scanned again
    assert vs["pgrotated"] > 0.3 * stolen


def test_reclaim_judges_dirty_pages_in_the_kernels_batches(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """``shrink_inactive_list()`` takes SWAP_CLUSTER_MAX pages (at least a folio) at a time: the first batch
    that is all dirty and not queued ends the pages judged before the flusher is woken and the reclaimer
    throttled; the rest are judged after."""
    _m, r = pressure_machine(64, page_cache_folio_kib=4)
    vmscan, fr = r.vmscan, r.frames
    pages = np.arange(100, dtype=np.int64)
    fr.dirty[pages] = False
    fr.writeback[pages] = False
    fr.dirty[40:100] = True
    assert vmscan.file_folio == 1
    assert vmscan._all_dirty_cut(pages) == (96, True)  # [32, 64) has clean pages; [64, 96) is all dirty
    fr.writeback[64:70] = True  # queued for I/O already: not "unqueued dirty"
    assert vmscan._all_dirty_cut(pages) == (100, True)  # the short last batch [96, 100)
    fr.dirty[98] = False
    assert vmscan._all_dirty_cut(pages) == (100, False)
