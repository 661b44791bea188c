"""mm: glibc-style buffers straddle pages; placement is counted per node."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.errors import ConfigError
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
