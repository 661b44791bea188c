"""Reclaim in the simulated kernel: watermarks, kswapd, direct reclaim, dirty pages, swap, OOM killer."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.pressure_programs import allocator as _allocator
from helpers.pressure_programs import writer as _writer
from memsched.errors import ConfigError
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Compute, Touch
from memsched.sim.mm.lru import LRU_ACTIVE_ANON, LRU_INACTIVE_FILE
from memsched.sim.mm.page_alloc import watermarks
from memsched.sim.mm.reclaim import Reclaim
from memsched.sim.mm.vmscan import ScanControl
from memsched.topology import load_topology
from memsched.units import GIB, MIB, ms, s


def _consistent(m: FluidMachine, r: Reclaim) -> None:
    """Frames are conserved: free frames + LRU pages == all frames, and the allocator agrees."""
    fr = r.frames
    on_lru = int(r.lru.nr_pages.sum())
    free = int(m.page_alloc.free_pages.sum())
    assert free == sum(fr.nr_free(n) for n in range(fr.nr_nodes))
    assert free + on_lru == fr.nr
    assert int(np.count_nonzero(fr.lru >= 0)) == on_lru
    assert int(r.memcgs.usage[0]) == on_lru
    assert r.writeback.nr_dirty == int(np.count_nonzero(fr.dirty))
    assert r.writeback.nr_writeback == int(np.count_nonzero(fr.writeback))


def test_watermarks_follow_the_kernel_formula() -> None:
    """1 GiB: min_free_kbytes = sqrt(1 GiB in kB * 16) = 4096 kB -> min 1024, low 1286, high 1548 pages."""
    w = watermarks(np.array([GIB // 4096]), 4096)
    assert (w.min_free_kbytes, int(w.min[0]), int(w.low[0]), int(w.high[0])) == (4096, 1024, 1286, 1548)


def test_attach_refuses_thp_machines() -> None:
    """Pressure runs need 4 KiB pages; a THP machine is refused with the reason."""
    m = FluidMachine(load_topology("pressure-1n4"), config=MachineConfig(thp=True))
    with pytest.raises(ConfigError, match="thp"):
        Reclaim(m)


def test_kswapd_keeps_a_slow_writer_out_of_direct_reclaim(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A disk-paced writer filling RAM with page cache is served by kswapd alone: no allocstall."""
    m, r = pressure_machine(64)
    _writer(m, r, 160)
    m.run(until=s(3))
    vs = m.vmstat
    assert vs["pgscan_kswapd"] > 0 and vs["pgsteal_kswapd"] > 0 and vs["pageoutrun"] > 0
    assert vs["allocstall"] == 0 and vs["pgscan_direct"] == 0
    assert vs["pgscan_anon"] == 0  # no swap: anon lists are never scanned
    assert int(m.page_alloc.free_pages[0]) >= int(r.wmark.min[0])
    _consistent(m, r)


def test_fast_anonymous_growth_enters_direct_reclaim(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """An allocator faulting 4 MiB at once on a full machine crosses the min watermark: direct reclaim."""
    m, r = pressure_machine(64)
    _writer(m, r, 80)
    m.run(until=s(1))
    _allocator(m, 32, chunk_mib=4, think_ms=0.1)
    m.run(until=s(2))
    assert m.vmstat["allocstall"] > 0 and m.vmstat["pgscan_direct"] > 0
    assert r.stall_ns and max(r.stall_ns.values()) > 0
    _consistent(m, r)


def test_dirty_pages_are_scanned_but_not_freed_until_written(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A writer in a 16 MiB memcg (the global dirty limit is far above it): memcg reclaim meets dirty and
    writeback pages it cannot free at once (pgscan > pgsteal), tags them PG_reclaim, and they rotate to the
    tail when written."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=32 * MIB)  # global dirty limit >> the memcg
    r.memcgs.mkdir("/w")
    r.memcgs.set_limit("/w", 16 * MIB, m.page_size)
    _writer(m, r, 40)
    r.memcgs.attach(m.tasks[-1].tgid, "/w")
    m.run(until=s(4))
    st = r.memcgs.memcgs[1].stat
    assert st["pgscan"] > st["pgsteal"] > 0
    assert m.vmstat["pgrotated"] > 0
    assert m.vmstat["oom_kill"] == 0  # memcg reclaim waits for write-back instead of killing
    assert int(r.memcgs.usage[1]) <= 16 * MIB // m.page_size
    _consistent(m, r)


def test_scan_count_is_lru_size_shifted_by_priority(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """get_scan_count: each list is scanned lru_size >> priority; without swap, anon lists are skipped."""
    m, r = pressure_machine(64)
    _writer(m, r, 40)
    _allocator(m, 8)
    m.run(until=s(1))
    sizes = r.lru.nr_pages[0, 0]
    assert sizes[LRU_INACTIVE_FILE] > 0 and sizes[LRU_ACTIVE_ANON] > 0
    for prio in (12, 6, 1, 0):
        nr = r.vmscan.get_scan_count(0, 0, ScanControl(nr_to_reclaim=32, priority=prio))
        assert nr[LRU_INACTIVE_FILE] == int(sizes[LRU_INACTIVE_FILE]) >> prio
        assert nr[LRU_ACTIVE_ANON] == 0


@pytest.mark.parametrize(("kernel", "forced"), [("3.10", True), ("5.10", False), ("6.18", False)])
def test_memcg_reclaim_forces_a_minimum_scan_only_before_4_12(pressure_machine, kernel: str, forced: bool) -> None:  # type: ignore[no-untyped-def]
    """A small list gives nothing at a high priority (size >> priority == 0): memcg limit reclaim on 3.10 scans
    min(size, SWAP_CLUSTER_MAX) of it anyway (force_scan); from 4.12 on it does not, and walks down the
    priorities (Johannes Weiner, "mm: don't avoid high-priority reclaim on memcg limit reclaim", 2017)."""
    m, r = pressure_machine(64, kernel=kernel)
    r.memcgs.mkdir("/w")
    box = r.memcgs.get("/w").id
    w = _writer(m, r, 8)
    r.memcgs.attach(w.tgid, "/w")
    m.run(until=s(1))
    size = int(r.lru.nr_pages[0, box][LRU_INACTIVE_FILE])
    assert 0 < size < 4096
    for prio in (12, 2):
        nr = r.vmscan.get_scan_count(0, box, ScanControl(nr_to_reclaim=32, priority=prio, target_memcg=box))
        want = size >> prio
        assert nr[LRU_INACTIVE_FILE] == (min(size, 32) if forced and not want else want)


def test_no_swap_anon_exhaustion_ends_in_oom_kill_of_largest(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Anonymous demand beyond RAM without swap: reclaim fails at priority 0 and the OOM killer picks the
    process with the largest RSS (the hog), not the small bystander."""
    m, r = pressure_machine(64)
    _allocator(m, 8, name="bystander")
    _allocator(m, 96, name="hog")
    m.run(until=s(3))
    assert m.vmstat["oom_kill"] == 1
    assert [k.victim for k in r.oom.kills] == ["hog"]
    hog = next(t for t in m.tasks if t.name == "hog")
    assert hog.killed
    assert m.vmstat["allocstall"] > 0
    assert m.vmstat["pgscan_direct"] == m.vmstat["pgscan_kswapd"] == 0  # nothing scannable: anon, no swap
    _consistent(m, r)


def test_oom_score_adj_minus_1000_exempts(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """oom_score_adj = -1000 exempts the largest process; the next one is killed instead."""
    m, r = pressure_machine(64)
    _allocator(m, 24, name="small")
    m.run(until=ms(50))
    _allocator(m, 44, name="protected")
    r.set_oom_score_adj(next(t for t in m.tasks if t.name == "protected"), -1000)
    m.run(until=s(3))
    assert [k.victim for k in r.oom.kills] == ["small"]
    assert not next(t for t in m.tasks if t.name == "protected").killed


def test_swap_lets_anon_pages_be_reclaimed_and_refaulted(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """With swap, cold anon pages are paged out (pswpout) and a later touch reads them back (pswpin)."""
    m, r = pressure_machine(64, swap_bytes=128 * MIB)
    mm = m.new_mm("cold")
    cold = mm.mmap(40 * MIB, "cold", header=0)
    m.spawn_process("cold", (Touch(cold), Compute(s(2)), Touch(cold), Compute(s(5))), mm=mm)
    _allocator(m, 40, name="warm", think_ms=5)
    m.run(until=s(4))
    vs = m.vmstat
    assert vs["pswpout"] > 0 and vs["pgscan_anon"] > 0 and vs["pgsteal_anon"] > 0
    assert vs["pswpin"] > 0
    assert vs["oom_kill"] == 0
    _consistent(m, r)


def test_reclaim_config_is_validated() -> None:
    """Bad sysctls name the field (dirty_background_ratio must stay below dirty_ratio)."""
    from memsched.sim.mm.reclaim import ReclaimConfig

    with pytest.raises(ConfigError, match="dirty_background_ratio"):
        ReclaimConfig(dirty_ratio=10, dirty_background_ratio=10)
    with pytest.raises(ConfigError, match="swap_bytes"):
        ReclaimConfig(swap_bytes=-1)


def test_numa_machine_unchanged_without_reclaim() -> None:
    """Without a Reclaim instrument the machine has no fault hooks and vmpressure_fd is unsupported."""
    from memsched.errors import UnsupportedError

    m = FluidMachine(load_topology("pressure-1n4"), config=MachineConfig(thp=False))
    assert m.instruments.find(Reclaim) is None
    assert not m.instruments.before_fault and not m.instruments.after_fault
    with pytest.raises(UnsupportedError):
        m.vmpressure_fd(None)
