"""Page sampling windows and page-placement probes (the live stand-in for the NUMA scanner)."""

from __future__ import annotations

import numpy as np

from helpers.numa_live import PAGE, FakeNumaSyscalls, numa4
from memsched.live.numa.pages import (
    KernelPageProbe,
    NumaMapsLayoutProbe,
    Regions,
    anon_regions,
    sample_window,
)
from memsched.live.numa.snapshot import take_snapshot
from memsched.topology.sysfs import topology_from_sysfs


def stream_regions() -> tuple[Regions, object]:
    roots = numa4()
    topo = topology_from_sysfs(roots.sys_root)
    s = take_snapshot(roots, topo, page_size=PAGE, clk_tck=100)
    return anon_regions(s.processes[4100], PAGE, 4), s.processes[4100]


def test_anon_regions_are_the_private_anonymous_vmas() -> None:
    """Binary text and shared library text are left out; heap, data, the 768 MiB buffer and stack are in."""
    regions, _ = stream_regions()
    assert (regions.start * PAGE).tolist() == [
        0x55D0C8A04000,
        0x55D0C9000000,
        0x7F3A00000000,
        0x7F3A401CF000,
        0x7FFD5A000000,
    ]
    assert regions.total == 1 + 33 + 196608 + 4 + 33
    assert regions.layout[2].tolist() == [4096, 0, 192512, 0]


def test_windows_walk_the_address_space_and_wrap() -> None:
    """256 MiB windows of 65536 pages, 4096 samples each (stride 16), across VMA boundaries; the pass ends
    in the fourth window, which restarts at 0."""
    regions, _ = stream_regions()
    w1 = sample_window(regions, 0, 65536, 4096)
    assert (w1.stride, w1.next_offset, w1.wrapped, w1.vpns.shape[0]) == (16, 65536, False, 4096)
    assert w1.vpns[0] == regions.start[0] and w1.block_end[0] == regions.end[0]  # a 1-page VMA: block clipped
    assert w1.vpns[2] == regions.start[1] + 31  # position 32: page 31 of the heap (the 1-page VMA came first)
    offsets = [0]
    while True:
        w = sample_window(regions, offsets[-1], 65536, 4096)
        offsets.append(w.next_offset)
        if w.wrapped:
            break
    assert offsets == [0, 65536, 131072, 196608, 0]
    last = sample_window(regions, 196608, 65536, 4096)
    assert last.stride == 1 and last.vpns.shape[0] == regions.total - 196608
    assert np.all(last.vpns < regions.end[regions.region_of(last.vpns)])


def test_small_process_is_one_window_sampled_densely() -> None:
    """A process smaller than the window is sampled one page in ceil(size / max_samples)."""
    regions = Regions(np.array([100, 1000]), np.array([110, 1005]), np.zeros((2, 2), dtype=np.int64))
    w = sample_window(regions, 0, 65536, 4)
    assert w.wrapped and w.stride == 4 and w.vpns.tolist() == [100, 104, 108, 1002]
    assert w.block_end.tolist() == [104, 108, 110, 1005]
    empty = sample_window(Regions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.int64)), 5, 10, 4)
    assert empty.wrapped and empty.vpns.shape[0] == 0


def test_layout_probe_follows_numa_maps_counts() -> None:
    """Fixture trees: each VMA's pages in node order (4096 on node 0, then 192512 on node 2); none past them."""
    regions, process = stream_regions()
    probe = NumaMapsLayoutProbe(4)
    base = int(regions.start[2])
    vpns = np.array([base, base + 4095, base + 4096, base + 196607, base - 1, 0], dtype=np.int64)
    assert probe.page_nodes(process, vpns, PAGE).tolist() == [0, 0, 2, 2, -1, -1]  # type: ignore[arg-type]


def test_kernel_probe_asks_move_pages_and_maps_errors_to_absent() -> None:
    """The status query's -ENOENT (not present) becomes -1; node numbers pass through."""
    fake = FakeNumaSyscalls(pages={(4100, 10): 3, (4100, 11): 0})
    _, process = stream_regions()
    got = KernelPageProbe(fake).page_nodes(process, np.array([10, 11, 12], dtype=np.int64), PAGE)  # type: ignore[arg-type]
    assert got.tolist() == [3, 0, -1] and fake.calls == [("query", 4100, 3)]
