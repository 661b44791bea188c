"""Topology.from_sysfs: nodes, CPUs, SMT siblings, SLIT and memory from a sysfs tree."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from helpers.live_fixtures import FIXTURES
from memsched.errors import ConfigError, KernelError, UnsupportedError
from memsched.topology.sysfs import SYSFS_HARDWARE_DEFAULTS, topology_from_sysfs
from memsched.units import GIB


def test_four_node_fixture() -> None:
    """4 nodes x 2 cores x 2 threads: node CPU lists, siblings N and N+8, packages, ring SLIT, 16 GiB each."""
    t = topology_from_sysfs(FIXTURES / "numa-4node" / "sys")
    assert t.nr_nodes == 4 and t.nr_cpus == 16 and t.nr_cores == 8 and t.threads_per_core == 2
    assert [n.cpus for n in t.nodes] == [(0, 1, 8, 9), (2, 3, 10, 11), (4, 5, 12, 13), (6, 7, 14, 15)]
    assert t.siblings(5) == (5, 13) and t.cpus_by_id[13].thread == 1
    assert [t.cpus_by_id[c].socket for c in (0, 2, 4, 6)] == [0, 1, 2, 3]
    assert t.distance.tolist()[0] == [10, 16, 22, 16] and not t.distance.flags.writeable
    assert [n.memory_bytes for n in t.nodes] == [16 * GIB] * 4
    assert t.cpu_node().tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3]
    assert "defaults" in t.description and t.latency_local_ns == SYSFS_HARDWARE_DEFAULTS["latency_local_ns"]
    assert t.hops().max() == 1  # sysfs says nothing of links: taken as fully connected


def test_two_node_fixture_and_hardware_override() -> None:
    """Given hardware figures replace the defaults and the description says they were given."""
    t = topology_from_sysfs(FIXTURES / "numa-2node" / "sys", hardware={"controller_gibps": 12.5})
    assert t.siblings(1) == (1, 5) and t.distance.tolist() == [[10, 20], [20, 10]]
    assert t.nodes[1].controller_gibps == 12.5 and "given" in t.description
    with pytest.raises(ConfigError, match="'hardware'"):
        topology_from_sysfs(FIXTURES / "numa-2node" / "sys", hardware={"bogus": 1.0})
    with pytest.raises(ConfigError, match="'smt_yield' must be in"):
        topology_from_sysfs(FIXTURES / "numa-2node" / "sys", hardware={"smt_yield": 2.0})


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    shutil.copytree(FIXTURES / "numa-2node" / "sys", root)
    return root


def test_missing_file_names_it(tmp_path: Path) -> None:
    """An unreadable sysfs file is a KernelError naming the path, not a default."""
    root = _copy(tmp_path)
    (root / "devices/system/node/node1/distance").unlink()
    with pytest.raises(KernelError, match=r"node1/distance") as e:
        topology_from_sysfs(root)
    assert e.value.errno == errno.ENOENT


def test_holes_in_node_numbering_are_refused(tmp_path: Path) -> None:
    """Online nodes 0 and 2 (no 1): the policies index by node id, so this is refused with the reason."""
    root = _copy(tmp_path)
    (root / "devices/system/node/online").write_text("0,2\n")
    with pytest.raises(UnsupportedError, match=r"\[0, 2\] are not numbered 0..1"):
        topology_from_sysfs(root)


def test_malformed_distance_row(tmp_path: Path) -> None:
    """A distance row with the wrong number of entries, or a bad SLIT, is malformed kernel output."""
    root = _copy(tmp_path)
    (root / "devices/system/node/node0/distance").write_text("10\n")
    with pytest.raises(KernelError, match="has 1 entries for 2 online nodes"):
        topology_from_sysfs(root)
    (root / "devices/system/node/node0/distance").write_text("10 5\n")
    with pytest.raises(KernelError, match="SLIT must have 10 on the diagonal"):
        topology_from_sysfs(root)


def test_offline_cpu_and_memoryless_node(tmp_path: Path) -> None:
    """CPU 7 offline: kept out of node 1 and of the CPU table; a node with MemTotal 0 is kept with 0 bytes."""
    root = _copy(tmp_path)
    (root / "devices/system/cpu/online").write_text("0-6\n")
    meminfo = root / "devices/system/node/node1/meminfo"
    meminfo.write_text(meminfo.read_text().replace("MemTotal:       33554432 kB", "MemTotal:              0 kB"))
    t = topology_from_sysfs(root)
    assert t.nodes[1].cpus == (2, 3, 6) and 7 not in t.cpus_by_id
    assert t.siblings(3) == (3,) and t.nodes[1].memory_bytes == 0
