"""topology: the presets are the machines of the debate, and user TOML files are validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsched.errors import ConfigError, UnknownNameError
from memsched.topology import list_presets, load_topology
from memsched.units import GIB


def test_preset_names() -> None:
    """The five machines of the debate exist under exactly the names the issue gives (plus a small one-node
    box for memory-pressure scenarios)."""
    presets = list_presets()
    assert {"laptop-1n8", "opteron-4n32", "sandybridge-2n32", "westmere-ex-4n48", "x86-8n64"} <= set(presets)
    assert set(presets) - {"laptop-1n8", "opteron-4n32", "sandybridge-2n32", "westmere-ex-4n48", "x86-8n64"} == {
        "pressure-1n4"
    }


@pytest.mark.parametrize(
    ("name", "nodes", "cpus", "cores", "tpc", "mem_gib"),
    [
        ("westmere-ex-4n48", 4, 48, 24, 2, 64),
        ("opteron-4n32", 4, 32, 32, 1, 64),
        ("x86-8n64", 8, 64, 64, 1, 320),
        ("sandybridge-2n32", 2, 32, 16, 2, 64),
        ("laptop-1n8", 1, 8, 4, 2, 16),
    ],
)
def test_preset_shapes(name: str, nodes: int, cpus: int, cores: int, tpc: int, mem_gib: int) -> None:
    """Each preset has the node, CPU, core, SMT and memory counts of the machine it models."""
    t = load_topology(name)
    assert (t.nr_nodes, t.nr_cpus, t.nr_cores, t.threads_per_core) == (nodes, cpus, cores, tpc)
    assert t.memory_bytes == mem_gib * GIB
    assert sorted(c for n in t.nodes for c in n.cpus) == list(range(cpus))


def test_x86_8n64_memory_layout_and_hops() -> None:
    """Six 32 GiB nodes and two 64 GiB nodes behind a flat SLIT; two chassis whose four sockets form a ring,
    joined socket to socket by narrower cables: the far corner is three hops away."""
    t = load_topology("x86-8n64")
    assert sorted(n.memory_bytes // GIB for n in t.nodes) == [32] * 6 + [64] * 2
    assert (t.distance[~np.eye(8, dtype=bool)] == 20).all()
    assert t.hops().max() == 3
    assert t.routes()[0][4] == [0, 4]
    assert t.routes()[0][7] == [0, 1, 3, 7]


def test_westmere_smt_siblings_and_latency() -> None:
    """CPU n and n+24 are SMT siblings on one core of one node; remote latency is 198 ns."""
    t = load_topology("westmere-ex-4n48")
    assert t.siblings(5) == (5, 29)
    assert t.cpus_by_id[5].node == t.cpus_by_id[29].node == 0
    assert t.node_cpus(1) == (6, 7, 8, 9, 10, 11, 30, 31, 32, 33, 34, 35)
    lat = t.latency_ns()
    assert lat[0, 0] == 135 and lat[0, 3] == 198


def test_opteron_slit() -> None:
    """The Opteron's SLIT is 10 on the diagonal and 16 elsewhere (numa.md §6.1)."""
    t = load_topology("opteron-4n32")
    assert (np.diag(t.distance) == 10).all()
    assert (t.distance[~np.eye(4, dtype=bool)] == 16).all()


def test_unknown_preset_lists_valid_names() -> None:
    """An unknown name raises with the valid presets listed."""
    with pytest.raises(UnknownNameError, match="westmere-ex-4n48"):
        load_topology("cray-1")


GOOD = """
name = "mine"
sockets = 2
cores_per_socket = 4
threads_per_core = 2
node_memory = "8GiB"
controller_gibps = 20
link_gibps = 10
latency_local_ns = 90
latency_hop_ns = 40
core_mlp_bytes = 512
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.toml"
    p.write_text(text)
    return p


def test_toml_file_loads(tmp_path: Path) -> None:
    """A valid TOML file loads with derived SLIT 10/20."""
    t = load_topology(write(tmp_path, GOOD))
    assert t.name == "mine" and t.nr_cpus == 16
    assert t.distance.tolist() == [[10, 20], [20, 10]]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ('colour = "red"', "colour"),
        ("distance = [[10, 20], [21, 10]]", "distance"),
        ("distance = [[10, 5], [5, 10]]", "distance"),
        ("distance = [[10]]", "distance"),
        ("links = [[0, 0]]", "links"),
        ("links = []", "links"),
        ('links = "ring"', "links"),
        ("smt_yield = 2", "smt_yield"),
        ("nodes_per_socket = 3", "cores_per_socket"),
    ],
)
def test_toml_errors_name_the_field(tmp_path: Path, patch: str, field: str) -> None:
    """Each malformed field gives a ConfigError naming it and the file."""
    with pytest.raises(ConfigError) as exc:
        load_topology(write(tmp_path, GOOD + patch + "\n"))
    assert exc.value.field == field
    assert "t.toml" in str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('node_memory = "8GiB"', 'node_memory = "8 bananas"', "node_memory"),
        ('node_memory = "8GiB"', 'node_memory = ["8GiB"]', "node_memory"),
        ("sockets = 2", "sockets = 0", "sockets"),
        ("sockets = 2", 'sockets = "two"', "sockets"),
        ("controller_gibps = 20", "controller_gibps = -1", "controller_gibps"),
        ('name = "mine"', "", "name"),
    ],
)
def test_toml_value_errors(tmp_path: Path, old: str, new: str, field: str) -> None:
    """Missing or wrongly typed required fields are named in the error."""
    with pytest.raises(ConfigError) as exc:
        load_topology(write(tmp_path, GOOD.replace(old, new)))
    assert exc.value.field == field


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    """Broken TOML and missing files are ConfigErrors, not tracebacks."""
    with pytest.raises(ConfigError, match="valid TOML"):
        load_topology(write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="readable"):
        load_topology(tmp_path / "absent.toml")
