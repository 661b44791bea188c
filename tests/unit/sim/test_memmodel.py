"""memmodel: rates come from controller, link and core capacities, and latency by distance."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.sim.fluid.memmodel import MemModel, _progressive_fill
from memsched.topology import load_topology
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


def test_two_hop_route_uses_both_links() -> None:
    """On x86-8n64, node 0 reaching node 7 loads links 0->3 and 3->7."""
    t = load_topology("x86-8n64")
    m = MemModel(t)
    res = m.rates(np.array([0]), np.array([0]), np.ones(1), np.array([[0] * 7 + [1.0]]), np.zeros(1))
    assert (res.link_util > 0).sum() == 2


def test_progressive_fill_is_max_min_fair() -> None:
    """A task not using the bottleneck keeps growing after the others freeze."""
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    cap = np.array([1.0, 10.0])
    demand = np.array([2.0, 2.0, 2.0])
    r = _progressive_fill(a, cap, demand)
    assert r[:2] == pytest.approx([0.5, 0.5])
    assert r[2] == pytest.approx(2.0)
    assert (r @ a <= cap + 1e-9).all()
