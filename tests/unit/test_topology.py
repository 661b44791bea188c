"""topology: the presets are the machines of the debate, and user TOML files are validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsched.cli import main
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
    """The Opteron's SLIT is 10 on the diagonal and 16 elsewhere, as `numactl --hardware` prints it on a 4-node
    Opteron-class box."""
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
        ('routing = "adaptive"', "routing"),
        ("routing = 1", "routing"),
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


RING4 = GOOD.replace("sockets = 2", "sockets = 4") + "links = [[0, 1], [1, 2], [2, 3], [3, 0]]\n"


def test_fixed_routing_is_one_route_per_pair(tmp_path: Path) -> None:
    """By default (routing = "fixed") every link of the one route carries all of a pair's traffic, ties broken
    towards the lower-numbered intermediate node; on x86-8n64 that is also what a destination-indexed table
    that picks the lowest-numbered next hop gives."""
    t = load_topology(write(tmp_path, RING4))
    assert t.routing == "fixed"
    assert t.link_shares()[(0, 2)] == {(0, 1): 1.0, (1, 2): 1.0}
    x = load_topology("x86-8n64")
    adj = {n: {v for link in x.links for u, v in ((link.a, link.b), (link.b, link.a)) if u == n} for n in range(8)}
    hops = x.hops()
    for src in range(8):
        for dst in range(8):
            path = [src]
            while path[-1] != dst:
                path.append(min(v for v in adj[path[-1]] if hops[v, dst] == hops[path[-1], dst] - 1))
            assert x.routes()[src][dst] == path


def test_spread_routing_splits_over_every_shortest_route(tmp_path: Path) -> None:
    """routing = "spread": the traffic of a pair is split evenly over all its shortest routes, so a link
    carries the fraction of those routes through it; what leaves the source sums to the whole."""
    t = load_topology(write(tmp_path, RING4 + 'routing = "spread"\n'))
    assert t.link_shares()[(0, 2)] == {(0, 1): 0.5, (1, 2): 0.5, (0, 3): 0.5, (3, 2): 0.5}
    assert t.link_shares()[(0, 1)] == {(0, 1): 1.0}
    assert t.to_mapping()["routing"] == "spread"
    x = load_topology(write(tmp_path, RING4.replace("sockets = 4", "sockets = 8").replace(
        "links = [[0, 1], [1, 2], [2, 3], [3, 0]]",
        "links = [[0, 1], [1, 3], [3, 2], [2, 0], [4, 5], [5, 7], [7, 6], [6, 4], [0, 4], [1, 5], [2, 6], [3, 7]]",
    ) + 'routing = "spread"\n'))
    shares = x.link_shares()
    # node 0 to the far corner 7: six three-hop routes, two over each of the cables 0-4 and 3-7, one over 1-5, 2-6
    far = shares[(0, 7)]
    assert (far[(0, 4)], far[(3, 7)], far[(1, 5)], far[(2, 6)]) == pytest.approx((1 / 3, 1 / 3, 1 / 6, 1 / 6))
    for (src, _dst), links in shares.items():
        assert sum(f for (u, _v), f in links.items() if u == src) == pytest.approx(1.0)
    assert "routing" not in load_topology("x86-8n64").to_mapping()


def test_bad_routing_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line refuses an unknown routing with one line naming the key and the file, exit status 2."""
    path = write(tmp_path, GOOD + 'routing = "adaptive"\n')
    assert main(["run", "numa02", "--topology", str(path), "--policy", "none"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "routing" in err and "t.toml" in err and '"spread"' in err
