"""mempolicy: the node each policy asks for, and validation."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.errors import ConfigError
from memsched.sim.mm.mempolicy import Mempolicy, zonelists
from memsched.topology import load_topology
from memsched.uapi.mempolicy import MpolMode

ZL = zonelists(load_topology("x86-8n64").distance)


def test_zonelist_orders_by_distance_round_robin() -> None:
    """Fallback goes by distance; equal distances rotate "to the next node" as build_zonelists() does: on the
    flat 8-node table node n falls back to n+1, n+2, ..."""
    assert ZL[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert ZL[5].tolist() == [5, 6, 7, 0, 1, 2, 3, 4]
    two_levels = np.array([[10, 20, 30], [20, 10, 20], [30, 20, 10]])
    assert zonelists(two_levels).tolist() == [[0, 1, 2], [1, 2, 0], [2, 1, 0]]
    dist = load_topology("x86-8n64").distance
    for row in ZL:
        assert sorted(row.tolist()) == list(range(8))
        assert (np.diff(dist[row[0], row]) >= 0).all()
    wsm = zonelists(load_topology("westmere-ex-4n48").distance)
    assert wsm.tolist() == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]


def test_default_is_local_and_preferred_is_fixed() -> None:
    """DEFAULT asks for the faulting CPU's node; PREFERRED for its node."""
    idx = np.arange(4)
    assert Mempolicy().target_nodes(3, idx, ZL[3]).tolist() == [3] * 4
    assert Mempolicy.preferred(6).target_nodes(3, idx, ZL[3]).tolist() == [6] * 4


def test_bind_is_local_within_mask_else_nearest() -> None:
    """MPOL_BIND allocates locally when the CPU's node is in the mask, else on the nearest node of the mask."""
    pol = Mempolicy.bind((2, 5))
    idx = np.arange(2)
    assert pol.target_nodes(5, idx, ZL[5]).tolist() == [5, 5]
    assert pol.target_nodes(0, idx, ZL[0]).tolist() == [2, 2]
    assert pol.allowed(8).tolist() == [False, False, True, False, False, True, False, False]


def test_interleave_by_page_offset() -> None:
    """MPOL_INTERLEAVE places page i on the (i mod n)-th node of the mask."""
    pol = Mempolicy.interleave((1, 3, 4))
    assert pol.target_nodes(0, np.arange(7), ZL[0]).tolist() == [1, 3, 4, 1, 3, 4, 1]


@pytest.mark.parametrize(
    ("mode", "nodes"),
    [
        (MpolMode.DEFAULT, (1,)),
        (MpolMode.PREFERRED, ()),
        (MpolMode.PREFERRED, (1, 2)),
        (MpolMode.BIND, ()),
        (MpolMode.PREFERRED_MANY, (1,)),
    ],
)
def test_invalid_policies(mode: MpolMode, nodes: tuple[int, ...]) -> None:
    """Node sets that do not fit the mode are refused."""
    with pytest.raises(ConfigError):
        Mempolicy(mode, nodes)


def test_node_range_checked_and_parse() -> None:
    """Nodes beyond the machine are refused; modes parse by name or number."""
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        Mempolicy.bind((9,)).validate_nodes(4)
    assert MpolMode.parse("bind") is MpolMode.BIND
    assert MpolMode.parse("MPOL_INTERLEAVE") is MpolMode.INTERLEAVE
    assert MpolMode.parse("1") is MpolMode.PREFERRED
    with pytest.raises(ConfigError):
        MpolMode.parse("spread")
