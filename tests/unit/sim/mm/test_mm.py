"""mm: glibc-style buffers straddle pages; placement is counted per node."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from memsched.errors import ConfigError
from memsched.sim.mm import mm as mm_module
from memsched.sim.mm.mm import GLIBC_MMAP_CHUNK_HEADER, MmStruct


def test_mmap_adds_header_and_an_extra_page() -> None:
    """A 1 MiB buffer starts 16 bytes into its mapping and needs 257 4 KiB pages."""
    mm = MmStruct(0, "p", 4096, 2)
    r = mm.mmap(1 << 20, "buf")
    assert r.start == GLIBC_MMAP_CHUNK_HEADER
    assert mm.nr_pages == 257
    assert (mm.page_node == -1).all()


def test_slices_straddle_pages_and_weights_sum_to_bytes() -> None:
    """Slice boundaries are not page aligned; page weights add up to the slice size."""
    mm = MmStruct(0, "p", 4096, 2)
    r = mm.mmap(3 * 4096, "buf")
    s = r.slice(1, 3)
    p0, p1 = s.page_span(4096)
    assert (p0, p1) == (1, 3)
    w = s.page_weights(4096)
    assert w.sum() == s.nbytes == 4096
    assert w.tolist() == [4096 - 16, 16]


def test_region_node_bytes_follows_placement() -> None:
    """Bytes per node follow page placement; absent pages count nowhere."""
    mm = MmStruct(0, "p", 4096, 2)
    r = mm.mmap(4 * 4096, "buf")
    mm.set_nodes(np.array([0, 1]), np.array([0, 1]))
    nb = mm.region_node_bytes(r)
    assert nb.tolist() == [4096 - 16, 4096]
    assert mm.node_pages.tolist() == [1, 1]
    v = mm.placement_version
    mm.set_nodes(np.array([0]), np.array([1]))
    assert mm.node_pages.tolist() == [0, 2]
    assert mm.placement_version == v + 1


def test_bad_region_requests() -> None:
    """Zero-sized maps and out-of-range sub-regions are refused."""
    mm = MmStruct(0, "p", 4096, 1)
    with pytest.raises(ConfigError):
        mm.mmap(0, "x")
    r = mm.mmap(100, "x")
    with pytest.raises(ConfigError):
        r.sub(50, 60)


def test_small_page_fraction_follows_every_split_and_collapse() -> None:
    """The small-page fraction is cached per region, and every change of the huge map through ``set_huge``
    (first touch, splits) is seen at once."""
    mm = MmStruct(0, "p", 4096, 1, thp_units=512)
    buf = mm.mmap(4 * 2 * 1024 * 1024 - 4096, "buf", header=0)
    assert mm.region_small_fraction(buf) == 1.0  # nothing mapped huge yet
    mm.set_huge(np.arange(4), True)
    assert mm.region_small_fraction(buf) == 0.0
    mm.set_huge(np.array([1, 3]), False)
    assert mm.region_small_fraction(buf) == 0.5
    assert mm.region_small_fraction(buf.sub(0, 2 * 1024 * 1024)) == 0.0
    mm.set_huge(np.array([0]), False)
    assert mm.region_small_fraction(buf) == 0.75
    assert mm.region_small_fraction(buf.sub(0, 2 * 1024 * 1024)) == 1.0


@pytest.mark.parametrize("compiled", [False, True])
def test_cached_region_bytes_are_a_fresh_count_after_every_placement(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes per node of the cached regions, brought along by every ``set_nodes`` (first touches and moves
    of pages inside, across and outside the regions, regions that straddle pages, share a page, lie inside one
    page, hold no byte or cover the whole mapping; pages freed behind it, as reclaim does), are bit for bit a
    fresh count of the placement; a region whose span the moved pages do not reach keeps its array, and one
    holding a moved page gets a new one. Both with the gains' pure form and with its kernel."""
    gains = inspect.unwrap(mm_module._partial_gains)
    if compiled:
        gains = pytest.importorskip("memsched.sim.fluid._kernels").partial_gains
    monkeypatch.setattr(mm_module, "_partial_gains", gains)
    rng = np.random.default_rng(7)
    for trial in range(40):
        psz = 4096
        mm = MmStruct(0, "p", psz, 4)
        buf = mm.mmap(int(rng.integers(1, 40)) * psz - int(rng.integers(0, 3000)), "buf")
        regions = [buf]
        for _ in range(int(rng.integers(1, 12))):
            off = int(rng.integers(0, buf.nbytes))
            regions.append(buf.sub(off, int(rng.integers(0, buf.nbytes - off + 1)) if rng.random() < 0.8 else 0))
        npages = mm.nr_pages
        for step in range(25):
            k = int(rng.integers(1, npages + 1)) if rng.random() < 0.9 else 0  # (no page: a placement without one)
            pages = rng.choice(npages, k, replace=False).astype(np.int64)
            nodes = rng.integers(0, 4, k).astype(np.int64)
            # (every fifth step, one more region is asked for, and so cached, from then on)
            before = {r: mm.region_node_bytes(r) for r in regions[: 1 + step // 5]}
            stale = not k or rng.random() < 0.2
            if stale:  # pages freed behind set_nodes, as reclaim does: the cached rows are stale before the move
                mm.page_node[rng.choice(npages, int(rng.integers(0, npages + 1)), replace=False)] = -1
                mm.placement_version += 1
            mm.set_nodes(pages, nodes)
            for r, was in before.items():
                got = mm.region_node_bytes(r)
                p0, p1 = r.page_span(psz)
                node = mm.page_node[p0:p1].astype(np.int64) + 1
                fresh = np.bincount(node, weights=r.page_weights(psz), minlength=5)[1:]
                assert got.tobytes() == fresh.tobytes(), (trial, step, r)
                if stale:
                    continue
                if p1 <= int(pages.min()) or p0 > int(pages.max()):  # no page moved in the region's span
                    assert got is was, (trial, step, r)
                elif np.count_nonzero((pages >= p0) & (pages < p1)):
                    assert got is not was, (trial, step, r)
