"""Routing between nodes: which directed interconnect links carry the traffic from one node to another.

Two routing disciplines, chosen per topology by its ``routing`` key (``docs/topology.md``):

``fixed`` (the default)
    One shortest path per (source, destination), ties broken towards the lower-numbered intermediate node:
    a fixed routing table. On a fully connected machine every pair is one hop apart and both disciplines
    agree; the default keeps every such preset exactly as before.
``spread``
    The traffic from a source to a destination is split evenly over **all** shortest paths (each path
    carries ``1 / number_of_shortest_paths`` of it), so a directed link carries the fraction of the paths
    that use it. This is the steady state of a router that sends a node's lines over every minimal next hop
    in turn, and the average over sources of routing tables that break ties differently.

What it models: Intel QuickPath routing is table-driven. Every packet carries a destination NodeID and each
router looks the NodeID up in a table that firmware fills at boot, one output port per entry; the
architecture allows several paths to a destination with load balancing between them ("QuickPath Interconnect:
Rules of the Revolution", Dr. Dobb's, 2009, section "The Routing Layer"). A Xeon 7500 / E7
socket has two home agents with their own NodeIDs, and consecutive cache lines of a socket's memory
alternate between them ("hemisphere" interleave: Intel Xeon Processor 7500 Series Datasheet vol. 2, §3.1
"NodeID Generation"; HP ProLiant DL580 G7 user guide, "Memory subsystem architecture"), so the lines of
one remote socket reach a requester under two or more table entries that firmware may route differently.
Which routes the firmware of a given box programs is not published; ``spread`` is the even-split
idealisation of that, ``fixed`` the single-table one.

Deviations from real hardware: the split is static and even (no adaptive routing around a congested link);
a path's length is counted in hops only (link capacities do not steer the routes); both directions of a
link route independently by the same rule.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["ROUTING_MODES", "Shares", "link_shares", "shortest_routes"]

#: The values of a topology's ``routing`` key.
ROUTING_MODES = ("fixed", "spread")


class _Link(Protocol):
    @property
    def a(self) -> int: ...

    @property
    def b(self) -> int: ...


def _adjacency(nr_nodes: int, links: Sequence[_Link]) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(nr_nodes)]
    for link in links:
        adj[link.a].append(link.b)
        adj[link.b].append(link.a)
    for lst in adj:
        lst.sort()
    return adj


def shortest_routes(nr_nodes: int, links: Sequence[_Link]) -> tuple[npt.NDArray[np.int64], list[list[list[int]]]]:
    """Hop counts (``-1``: unreachable) and the fixed route ``[src, ..., dst]`` of every pair (BFS over the
    links, each node's neighbours in increasing order, so ties go to the lower-numbered intermediate node)."""
    adj = _adjacency(nr_nodes, links)
    hops = np.full((nr_nodes, nr_nodes), -1, dtype=np.int64)
    paths: list[list[list[int]]] = [[[] for _ in range(nr_nodes)] for _ in range(nr_nodes)]
    for src in range(nr_nodes):
        prev = [-1] * nr_nodes
        hops[src, src] = 0
        queue = deque([src])
        while queue:
            u = queue.popleft()
            for v in adj[u]:
                if hops[src, v] < 0:
                    hops[src, v] = hops[src, u] + 1
                    prev[v] = u
                    queue.append(v)
        for dst in range(nr_nodes):
            if hops[src, dst] < 0:
                continue
            path = [dst]
            while path[-1] != src:
                path.append(prev[path[-1]])
            paths[src][dst] = path[::-1]
    return hops, paths


Shares = dict[tuple[int, int], dict[tuple[int, int], float]]


def link_shares(nr_nodes: int, links: Sequence[_Link], routing: str) -> Shares:
    """``shares[(src, dst)][(u, v)]``: the fraction of the traffic from ``src`` to ``dst`` that the directed
    link ``u -> v`` carries (pairs with ``src == dst`` are absent). Under ``fixed`` every link of the fixed
    route carries 1.0; under ``spread`` a link carries the fraction of the shortest paths through it."""
    if routing not in ROUTING_MODES:
        raise ValueError(f"unknown routing {routing!r}")
    hops, paths = shortest_routes(nr_nodes, links)
    shares: Shares = {}
    if routing == "fixed":
        for src in range(nr_nodes):
            for dst in range(nr_nodes):
                path = paths[src][dst]
                if len(path) > 1:
                    shares[(src, dst)] = {(u, v): 1.0 for u, v in itertools.pairwise(path)}
        return shares
    adj = _adjacency(nr_nodes, links)
    # count[s, t]: number of shortest paths from s to t (1 on the diagonal), by increasing distance from s.
    count = np.zeros((nr_nodes, nr_nodes), dtype=np.float64)
    for s in range(nr_nodes):
        count[s, s] = 1.0
        for t in sorted(range(nr_nodes), key=lambda n: int(hops[s, n])):
            if hops[s, t] > 0:
                count[s, t] = sum(count[s, k] for k in adj[t] if hops[s, k] == hops[s, t] - 1)
    for src in range(nr_nodes):
        for dst in range(nr_nodes):
            h = int(hops[src, dst])
            if src == dst or h < 0:
                continue
            out: dict[tuple[int, int], float] = {}
            for u in range(nr_nodes):
                for v in adj[u]:
                    if hops[src, u] >= 0 and hops[src, u] + 1 + hops[v, dst] == h:
                        out[(u, v)] = float(count[src, u] * count[v, dst] / count[src, dst])
            shares[(src, dst)] = out
    return shares
