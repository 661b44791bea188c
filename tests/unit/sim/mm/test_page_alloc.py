"""page_alloc: fallback along the zonelist within the allowed nodes, zone_statistics counters."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.sim.mm.page_alloc import OutOfMemory, PageAllocator
from memsched.sim.mm.vmstat import VmStat
from memsched.topology import Topology
from memsched.units import MIB


def small_topology() -> Topology:
    return Topology.from_mapping(
        {
            "name": "tiny",
            "sockets": 3,
            "cores_per_socket": 1,
            "node_memory": "64MiB",
            "controller_gibps": 10,
            "link_gibps": 5,
            "links": [[0, 1], [1, 2]],
            "latency_local_ns": 100,
            "latency_hop_ns": 50,
            "core_mlp_bytes": 512,
        }
    )


def make() -> PageAllocator:
    return PageAllocator(small_topology(), 1 * MIB, VmStat(3))


def test_fits_on_target() -> None:
    """Pages land on their target node and count as numa_hit/numa_local."""
    pa = make()
    got = pa.alloc(np.zeros(10, dtype=np.int64), np.ones(3, bool), np.zeros(10, dtype=np.int64))
    assert got.tolist() == [0] * 10
    assert pa.free_pages.tolist() == [54, 64, 64]
    assert pa.vmstat["numa_hit"] == 10 and pa.vmstat["numa_local"] == 10


def test_fallback_to_nearest_node() -> None:
    """When node 0 is full, pages go to node 1 (one hop) before node 2 (two hops): numa_miss/foreign."""
    pa = make()
    got = pa.alloc(np.zeros(100, dtype=np.int64), np.ones(3, bool), np.zeros(100, dtype=np.int64))
    assert np.bincount(got, minlength=3).tolist() == [64, 36, 0]
    vs = pa.vmstat
    assert vs["numa_miss"] == 36 and vs["numa_foreign"] == 36
    assert vs.per_node["numa_miss"].tolist() == [0, 36, 0]
    assert vs.per_node["numa_foreign"].tolist() == [36, 0, 0]
    assert vs["numa_other"] == 36


def test_bind_never_leaves_its_mask_and_oom_is_all_or_nothing() -> None:
    """A bound allocation that does not fit fails whole, leaving free counts untouched."""
    pa = make()
    allowed = np.array([True, False, False])
    with pytest.raises(OutOfMemory):
        pa.alloc(np.zeros(65, dtype=np.int64), allowed, np.zeros(65, dtype=np.int64))
    assert pa.free_pages.tolist() == [64, 64, 64]
    got = pa.alloc(np.full(64, 0, dtype=np.int64), allowed, np.zeros(64, dtype=np.int64))
    assert set(got.tolist()) == {0}


def test_free() -> None:
    """Freed frames come back."""
    pa = make()
    got = pa.alloc(np.zeros(4, dtype=np.int64), np.ones(3, bool), np.zeros(4, dtype=np.int64))
    pa.free(got)
    assert pa.free_pages.tolist() == [64, 64, 64]
