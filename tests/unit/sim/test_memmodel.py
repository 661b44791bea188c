"""memmodel: rates come from controller, link and core capacities, and latency by distance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memsched.sim.fluid.memmodel import MemModel, _progressive_fill
from memsched.topology import Topology, load_topology
from memsched.units import GIB

GIBPS = GIB / 1e9  # bytes per ns in one GiB/s


def rates(
    model: MemModel, cpu_nodes: list[int], cores: list[int], frac: list[list[float]], write: float = 1.0
) -> np.ndarray:
    n = len(cpu_nodes)
    return model.rates(
        np.array(cpu_nodes), np.array(cores), np.ones(n), np.array(frac, dtype=float), np.full(n, write)
    ).rate


def test_lone_task_is_latency_bound() -> None:
    """Alone, a task streams at core_mlp_bytes / latency: local faster than remote by the latency ratio."""
    t = load_topology("westmere-ex-4n48")
    m = MemModel(t)
    local = rates(m, [0], [0], [[1, 0, 0, 0]])[0]
    remote = rates(m, [0], [0], [[0, 1, 0, 0]])[0]
    assert local == pytest.approx(640 / 135)
    assert remote == pytest.approx(640 / 198)


def test_saturated_controller_caps_total_bzero_rate() -> None:
    """Many writers on one node share its controller: bzero total = controller / 2 (RFO + write-back)."""
    t = load_topology("westmere-ex-4n48")
    m = MemModel(t)
    n = 24
    r = rates(m, [0] * n, list(range(n)), [[1, 0, 0, 0]] * n)
    assert r.sum() == pytest.approx(9.2 / 2 * GIBPS, rel=1e-6)
    # Reads cost one byte of traffic per byte: twice the throughput.
    r_read = rates(m, [0] * n, list(range(n)), [[1, 0, 0, 0]] * n, write=0.0)
    assert r_read.sum() == pytest.approx(9.2 * GIBPS, rel=1e-6)


def test_interconnect_link_bounds_remote_traffic() -> None:
    """Two nodes streaming from each other are limited by the link, not by their controllers."""
    t = load_topology("opteron-4n32")
    m = MemModel(t)
    # 8 threads on node 0 writing node 1, 8 on node 1 writing node 0: each direction carries both flows.
    cpu = [0] * 8 + [1] * 8
    frac = [[0, 1, 0, 0]] * 8 + [[1, 0, 0, 0]] * 8
    res = m.rates(np.array(cpu), np.arange(16), np.ones(16), np.array(frac, float), np.ones(16))
    assert res.rate.sum() == pytest.approx(7.35 * GIBPS, rel=1e-6)
    assert res.link_util.max() == pytest.approx(1.0)
    assert res.controller_util.max() < 1.0


def test_smt_siblings_share_a_core() -> None:
    """Two threads on one core share its memory-level parallelism."""
    t = load_topology("westmere-ex-4n48")
    m = MemModel(t)
    one = rates(m, [0], [0], [[1, 0, 0, 0]])
    two = rates(m, [0, 0], [0, 0], [[1, 0, 0, 0]] * 2)
    assert two.sum() == pytest.approx(one[0])


def test_multi_hop_route_uses_every_link_on_it() -> None:
    """On x86-8n64 (two rings joined by cables), node 0 reaching node 7 loads one directed link per hop."""
    t = load_topology("x86-8n64")
    m = MemModel(t)
    res = m.rates(np.array([0]), np.array([0]), np.ones(1), np.array([[0] * 7 + [1.0]]), np.zeros(1))
    assert (res.link_util > 0).sum() == int(t.hops()[0, 7]) == 3


def test_spread_routing_shares_the_links_of_every_shortest_route() -> None:
    """Under routing = "spread", a stream from the opposite corner of a four-node ring loads both two-hop
    routes at half the rate each, so with the links as the bottleneck it runs twice as fast as over the one
    fixed route; nothing changes for a neighbour (one route either way)."""
    base = {"name": "ring", "sockets": 4, "cores_per_socket": 8, "node_memory": "4GiB", "controller_gibps": 100.0,
            "link_gibps": 2.0, "latency_local_ns": 100, "latency_hop_ns": 0, "core_mlp_bytes": 1e6,
            "links": [[0, 1], [1, 2], [2, 3], [3, 0]]}
    fixed = MemModel(Topology.from_mapping(base))
    spread = MemModel(Topology.from_mapping(base | {"routing": "spread"}))
    # directed links: 0->1, 1->0, 1->2, 2->1, 2->3, 3->2, 0->3, 3->0; 2 -> 0 goes 2-1-0 and 2-3-0
    assert spread.path[2, 0].tolist() == [0.0, 0.5, 0.0, 0.5, 0.5, 0.0, 0.0, 0.5]
    cpu, read = np.zeros(8, dtype=np.int64), np.zeros(8)
    far, near = np.tile([0.0, 0.0, 1.0, 0.0], (8, 1)), np.tile([0.0, 1.0, 0.0, 0.0], (8, 1))
    res = spread.rates(cpu, np.arange(8), np.ones(8), far, read)
    assert res.rate.sum() == pytest.approx(4.0 * GIBPS)
    assert fixed.rates(cpu, np.arange(8), np.ones(8), far, read).rate.sum() == pytest.approx(2.0 * GIBPS)
    assert sorted(res.link_util.round(6)) == [0.0] * 4 + [1.0] * 4
    for m in (fixed, spread):
        assert m.rates(cpu, np.arange(8), np.ones(8), near, read).rate.sum() == pytest.approx(2.0 * GIBPS)


def test_a_narrow_link_is_its_own_bottleneck() -> None:
    """A link given its own capacity ([a, b, gibps]) caps the traffic over it, not the topology-wide figure."""
    base = {"name": "t", "sockets": 2, "cores_per_socket": 8, "node_memory": "4GiB", "controller_gibps": 100.0,
            "link_gibps": 50.0, "latency_local_ns": 100, "latency_hop_ns": 0, "core_mlp_bytes": 1e6}
    wide = MemModel(Topology.from_mapping(base))
    narrow = MemModel(Topology.from_mapping(base | {"links": [[0, 1, 2.0]]}))
    cpu, frac = np.zeros(8, dtype=np.int64), np.tile([0.0, 1.0], (8, 1))
    read = np.zeros(8)
    assert narrow.rates(cpu, np.arange(8), np.ones(8), frac, read).rate.sum() == pytest.approx(2.0 * GIBPS)
    assert wide.rates(cpu, np.arange(8), np.ones(8), frac, read).rate.sum() == pytest.approx(50.0 * GIBPS)


def test_coherence_resource_charges_remote_bytes_more() -> None:
    """With snoop_gibps, local streams share the machine-wide resource at 1 byte per byte, remote ones at
    1 + snoop_hop_cost per hop, so the same threads stream less when their memory is remote."""
    base = {"name": "t", "sockets": 2, "cores_per_socket": 8, "node_memory": "4GiB", "controller_gibps": 100.0,
            "link_gibps": 100.0, "latency_local_ns": 100, "latency_hop_ns": 0, "core_mlp_bytes": 1e6,
            "snoop_gibps": 10.0, "snoop_hop_cost": 1.5}
    m = MemModel(Topology.from_mapping(base))
    cpu, read = np.zeros(8, dtype=np.int64), np.zeros(8)
    local = m.rates(cpu, np.arange(8), np.ones(8), np.tile([1.0, 0.0], (8, 1)), read).rate.sum()
    remote = m.rates(cpu, np.arange(8), np.ones(8), np.tile([0.0, 1.0], (8, 1)), read).rate.sum()
    assert local == pytest.approx(10.0 * GIBPS)
    assert remote == pytest.approx(10.0 * GIBPS / 2.5)


def test_copy_row_loads_both_controllers_and_the_link() -> None:
    """A page copy from node 1 to node 0 by a CPU of node 0 reads node 1 (over the link 1->0) and reads for
    ownership and writes back node 0: per byte copied, 1 byte at node 1's controller and 2 at node 0's."""
    t = load_topology("opteron-4n32")
    m = MemModel(t)
    src, dst = np.array([[0.0, 1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0, 0.0]])
    res = m.rates_rw(np.array([0]), np.array([0]), np.ones(1), src, dst)
    r = float(res.rate[0])
    cap = t.nodes[0].controller_gibps * GIBPS
    assert res.controller_util[0] == pytest.approx(2 * r / cap)
    assert res.controller_util[1] == pytest.approx(r / cap)
    assert (res.link_util > 0).sum() == 1


def test_progressive_fill_is_max_min_fair() -> None:
    """A task not using the bottleneck keeps growing after the others freeze."""
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    cap = np.array([1.0, 10.0])
    demand = np.array([2.0, 2.0, 2.0])
    r = _progressive_fill(a, cap, demand)
    assert r[:2] == pytest.approx([0.5, 0.5])
    assert r[2] == pytest.approx(2.0)
    assert (r @ a <= cap + 1e-9).all()


# ---- the same bits on every machine --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 7), (3, 40), (48, 40), (131, 19), (17, 1), (33, 2), (200, 81)])
def test_weighted_rows_adds_row_after_row(shape: tuple[int, int]) -> None:
    """The fill's sums are an explicit row-after-row loop, bit for bit (a numpy whose ``einsum`` added in another
    order would fail here, not move results silently)."""
    from memsched.sim.fluid.memmodel import _weighted_rows

    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for _ in range(20):
        w = rng.random(shape[0]) * 10.0 ** rng.integers(-6, 6, shape[0])
        a = rng.random(shape) * (rng.random(shape) < 0.6)
        expect = np.zeros(shape[1])
        for i in range(shape[0]):
            expect = expect + w[i] * a[i]
        assert _weighted_rows(w, a).tobytes() == expect.tobytes()


_FILL_DIGEST = """
import hashlib, numpy as np
from memsched.sim.fluid.memmodel import _progressive_fill
rng = np.random.default_rng(7)
h = hashlib.sha256()
for _ in range(200):
    a = rng.random((48, 40)) * (rng.random((48, 40)) < 0.5)
    cap = rng.random(40) * 30.0 + 1.0
    demand = rng.random(48) * 10.0 ** rng.integers(-3, 3, 48)
    h.update(_progressive_fill(a, cap, demand).tobytes())
print(h.hexdigest())
"""


def _openblas_core_types() -> list[str]:
    """OpenBLAS kernels this CPU can run, when numpy's BLAS is an OpenBLAS that picks them at run time."""
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        return []
    dynamic = "DYNAMIC_ARCH" in str(cfg.get("openblas configuration", ""))
    if "openblas" not in str(cfg.get("name", "")).lower() or not dynamic:
        return []
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    kinds = ["Nehalem"] if "sse4_2" in flags else []
    if "avx" in flags:
        kinds.append("Sandybridge")
    if {"avx2", "fma"} <= flags:
        kinds.append("Haswell")
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        kinds.append("SkylakeX")
    return kinds


def _stdout_per_kernel(argv: list[str]) -> dict[str, str]:
    """``argv``'s standard output under each OpenBLAS kernel this CPU can run (``OPENBLAS_CORETYPE`` picks one,
    as another CPU would); skips where there are fewer than two."""
    kinds = _openblas_core_types()
    if len(kinds) < 2:
        pytest.skip("numpy's BLAS is not a run-time-dispatching OpenBLAS, or this CPU runs one kernel only")
    outs = {}
    for kind in kinds:
        env = {**os.environ, "OPENBLAS_CORETYPE": kind}
        out = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        outs[kind] = out.stdout
    return outs


def test_fill_gives_the_same_bits_under_every_openblas_kernel() -> None:
    """Rates do not depend on which BLAS kernel the machine's CPU selects (OpenBLAS's ``dgemv`` adds in a
    different order per kernel)."""
    digests = _stdout_per_kernel([sys.executable, "-c", _FILL_DIGEST])
    assert len(set(digests.values())) == 1, digests


def test_a_whole_run_gives_the_same_record_under_every_openblas_kernel() -> None:
    """End to end: a run whose record depended on the BLAS kernel (before the sums were fixed, this one's
    ``--json`` differed under OpenBLAS's Sandybridge kernel) is byte-identical under each."""
    run = ["memsched", "run", "numa02", "-t", "sandybridge-2n32", "--policy", "balancenuma", "--seed", "0", "--json"]
    records = _stdout_per_kernel([sys.executable, "-m", *run])
    assert len(set(records.values())) == 1, sorted(records)
