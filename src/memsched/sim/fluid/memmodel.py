"""From page placement to progress: how fast each running task gets through its memory work.

The autonuma-benchmark workloads are bandwidth-bound (their no-balancing times give the same GiB/s per node
whatever the thread count: 4.4–4.9 on Mel Gorman's E7-4807, 13.4–14.4 on Ingo Molnar's Opteron): a node's
memory controller saturates,
and remote traffic also crosses interconnect links. This module turns *where a task runs* and *where the
pages it is touching live* into a progress rate per task, for all running tasks at once, with numpy.

Model
-----
A task streaming over a region touches node ``m`` for a fraction ``f[m]`` of its bytes (read straight out of
the page array by ``MmStruct.region_node_bytes``). Per byte of progress it consumes:

* controller ``m``: ``f[m] * (1 + w)`` bytes of DRAM traffic (a write costs a read-for-ownership plus a
  write-back; ``w`` is the write fraction of the phase);
* every directed link on the route ``m -> cpu node``: ``f[m]`` (data coming back), and every directed link on
  ``cpu node -> m``: ``f[m] * w`` (write-backs going out);
* its core's memory-level parallelism: ``lat / core_mlp_bytes`` nanoseconds, where ``lat = sum f[m] *
  latency(cpu node, m)``. A core keeps ``core_mlp_bytes`` in flight, so alone it streams at
  ``core_mlp_bytes / lat``; SMT siblings share that budget. This is where distance (latency) enters.

A task's demand is ``u = share * core_mlp_bytes / lat`` (its CPU share from the scheduler times its latency-
bound rate). Rates are then the **weighted max-min fair** allocation: every task scales its demand by the same
factor until some controller, link or core saturates; the tasks using a saturated resource are frozen at that
rate and the others keep growing (progressive filling). Contention therefore lowers everyone's rate in
proportion to demand, which is how queueing at a saturated controller behaves to first order.

On a topology with a machine-wide coherence resource (``snoop_gibps``), every byte of DRAM traffic also
consumes ``1 + snoop_hop_cost * hops`` bytes of that resource, so remote streaming costs more of it than local
streaming (the 8-node preset, ``docs/calibration.md``).

Kernel copies (page migration, ``sim/mm/migrate.py``) are rows of their own, given directly as the bytes a
copied byte reads from (``reads``) and writes back to (``writes``) each node: a copy reads the source page,
reads the destination line for ownership and writes it back (``copy_page()`` uses ordinary stores), so it
loads both controllers and the links between them while the applications stream
(:meth:`MemModel.rates_rw`).

Compute phases progress at ``share`` (times ``smt_yield`` when the SMT sibling is busy).

Deviations from real hardware: no caches (the benchmarks stream over GiB-sized buffers), no prefetchers, no
DRAM page/bank effects, symmetric links; contention raises latency only through the shared capacities.
The hardware figures behind every preset are derived in ``docs/calibration.md``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsched.topology import Topology
from memsched.units import GIB

__all__ = ["MemModel", "RateResult"]

#: ``mask.any()`` of a small boolean mask at a quarter of the cost (no ufunc reduction): the hot loop calls it
#: several times per event.
_nonzero = np.count_nonzero

_BYTES_PER_NS_PER_GIBPS = GIB / 1e9
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class RateResult:
    """Progress rates (bytes/ns) and the utilisation of each resource class."""

    rate: npt.NDArray[np.float64]
    controller_util: npt.NDArray[np.float64]
    link_util: npt.NDArray[np.float64]


class MemModel:
    """Precomputed hardware matrices of one topology; :meth:`rates` is called whenever something changes."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        nr = topology.nr_nodes
        self.nr_nodes = nr
        self.latency = topology.latency_ns()
        self.mlp = float(topology.core_mlp_bytes)
        self.controller_cap = np.array([n.controller_gibps for n in topology.nodes]) * _BYTES_PER_NS_PER_GIBPS
        # Directed links: 2*l is a->b, 2*l+1 is b->a.
        index: dict[tuple[int, int], int] = {}
        caps = []
        for i, link in enumerate(topology.links):
            index[(link.a, link.b)] = 2 * i
            index[(link.b, link.a)] = 2 * i + 1
            caps += [link.gibps, link.gibps]
        self.link_cap = np.array(caps, dtype=np.float64) * _BYTES_PER_NS_PER_GIBPS
        nd = len(caps)
        # path[src, dst, d] = 1 if directed link d carries data from node src to node dst.
        self.path = np.zeros((nr, nr, nd), dtype=np.float64)
        routes = topology.routes()
        for src in range(nr):
            for dst in range(nr):
                hops = routes[src][dst]
                for u, v in itertools.pairwise(hops):
                    self.path[src, dst, index[(u, v)]] = 1.0
        self._path_to_cpu = self.path.transpose(1, 0, 2).copy()  # [cpu, mem, d]: data mem -> cpu
        # Coherence resource: weight of a byte between a CPU on node i and memory on node j.
        self.snoop_cap = (
            float(topology.snoop_gibps) * _BYTES_PER_NS_PER_GIBPS if topology.snoop_gibps else None
        )
        self.snoop_weight = 1.0 + topology.snoop_hop_cost * topology.hops().astype(np.float64)

    def rates(
        self,
        cpu_node: npt.NDArray[np.int64],
        core: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        frac: npt.NDArray[np.float64],
        write: npt.NDArray[np.float64],
        cpu_ns_per_byte: npt.NDArray[np.float64] | None = None,
        mlp_scale: npt.NDArray[np.float64] | None = None,
    ) -> RateResult:
        """Rates of memory-streaming tasks.

        ``cpu_node``, ``core``, ``share``, ``write``: one entry per task; ``frac``: tasks x nodes, each row the
        fraction of the task's bytes on each node (rows summing to less than 1 are renormalised; an all-zero
        row means the task touches nothing yet and runs at its latency-bound local rate). Optional
        ``cpu_ns_per_byte`` (compute between accesses) and ``mlp_scale`` (fewer misses in flight) lower a
        task's demand to ``share / (cpu_ns_per_byte + lat / (core_mlp_bytes * mlp_scale))``.
        """
        n = cpu_node.shape[0]
        nr = self.nr_nodes
        if n == 0:
            return RateResult(np.empty(0), np.zeros(nr), np.zeros(self.link_cap.shape[0]))
        demand, reads, writes, core_ns = self.stream_rows(cpu_node, share, frac, write, cpu_ns_per_byte, mlp_scale)
        return self.solve(cpu_node, core, demand, reads, writes, core_ns)

    def stream_rows(
        self,
        cpu_node: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        frac: npt.NDArray[np.float64],
        write: npt.NDArray[np.float64],
        cpu_ns_per_byte: npt.NDArray[np.float64] | None = None,
        mlp_scale: npt.NDArray[np.float64] | None = None,
    ) -> tuple[npt.NDArray[np.float64], ...]:
        """(demand, reads, writes, core_ns) of streaming rows, for :meth:`solve`."""
        n = cpu_node.shape[0]
        total = frac.sum(axis=1, keepdims=True)
        local = np.zeros_like(frac)
        local[np.arange(n), cpu_node] = 1.0
        f = np.where(total > _EPS, frac / np.maximum(total, _EPS), local)
        lat = np.einsum("im,im->i", f, self.latency[cpu_node])
        if cpu_ns_per_byte is None and mlp_scale is None:
            demand = share * self.mlp / lat
        else:
            cpb = np.zeros(n) if cpu_ns_per_byte is None else cpu_ns_per_byte
            scale = np.ones(n) if mlp_scale is None else mlp_scale
            demand = share / (cpb + lat / (self.mlp * scale))
        return demand, f, f * write[:, None], lat

    def copy_rows(
        self,
        cpu_node: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        src: npt.NDArray[np.float64],
        dst: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], ...]:
        """(demand, reads, writes, core_ns) of page-copy rows: per byte copied, read the source, read the
        destination line for ownership and write it back (``src``/``dst``: bytes per node, any scale)."""
        tot = np.maximum(src.sum(axis=1, keepdims=True), _EPS)
        s, d = src / tot, dst / tot
        reads = s + d
        core_ns = np.einsum("im,im->i", reads, self.latency[cpu_node])
        return share * self.mlp / np.maximum(core_ns, _EPS), reads, d, core_ns

    def rates_rw(
        self,
        cpu_node: npt.NDArray[np.int64],
        core: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        src: npt.NDArray[np.float64],
        dst: npt.NDArray[np.float64],
    ) -> RateResult:
        """Rates of page copies alone (see :meth:`copy_rows`)."""
        demand, reads, writes, core_ns = self.copy_rows(cpu_node, share, src, dst)
        return self.solve(cpu_node, core, demand, reads, writes, core_ns)

    def solve(
        self,
        cpu_node: npt.NDArray[np.int64],
        core: npt.NDArray[np.int64],
        demand: npt.NDArray[np.float64],
        reads: npt.NDArray[np.float64],
        writes: npt.NDArray[np.float64],
        core_ns: npt.NDArray[np.float64],
    ) -> RateResult:
        """Weighted max-min rates of rows that read ``reads`` and write back ``writes`` per byte of progress and
        keep their core busy ``core_ns / core_mlp_bytes`` per byte."""
        n = cpu_node.shape[0]
        nr = self.nr_nodes
        traffic = reads + writes
        a_ctrl = traffic
        a_link = np.einsum("im,imd->id", reads, self._path_to_cpu[cpu_node]) + np.einsum(
            "im,imd->id", writes, self.path[cpu_node]
        )
        # np.unique(core, return_inverse=True), by counting (core ids are small): two thirds of the cost.
        present = np.bincount(core) > 0
        cores = np.flatnonzero(present)
        core_idx = (np.cumsum(present) - 1)[core]
        a_core = np.zeros((n, cores.shape[0]))
        a_core[np.arange(n), core_idx] = core_ns / self.mlp
        parts = [a_ctrl, a_link, a_core]
        caps = [self.controller_cap, self.link_cap, np.ones(cores.shape[0])]
        if self.snoop_cap is not None:
            parts.append(np.einsum("im,im->i", traffic, self.snoop_weight[cpu_node])[:, None])
            caps.append(np.array([self.snoop_cap]))
        a = np.hstack(parts)
        cap = np.concatenate(caps)

        rate = _progressive_fill(a, cap, demand)
        used = rate @ a
        nd = self.link_cap.shape[0]
        ctrl_util = used[:nr] / self.controller_cap
        link_util = used[nr : nr + nd] / self.link_cap if nd else np.zeros(0)
        return RateResult(rate, ctrl_util, link_util)


def _progressive_fill(
    a: npt.NDArray[np.float64], cap: npt.NDArray[np.float64], demand: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Weighted max-min fair rates: ``rate = t_i * demand_i`` with every ``t_i <= 1`` raised together.

    ``a[i, r]`` is what one unit of task i's rate consumes of resource r, ``cap[r]`` its capacity. Each round
    raises all unfrozen tasks until the next resource saturates (or t reaches 1), then freezes the tasks that
    use it; at most one round per resource.
    """
    n = a.shape[0]
    rate = np.zeros(n)
    remaining = cap.astype(np.float64).copy()
    active = demand > 0
    t = 0.0
    uses = a > 0
    while _nonzero(active):
        load = demand[active] @ a[active]
        pos = load > _EPS
        step = 1.0 - t
        if _nonzero(pos):
            step = min(step, float((remaining[pos] / load[pos]).min()))
        step = max(step, 0.0)
        rate[active] += step * demand[active]
        remaining -= step * load
        t += step
        if t >= 1.0 - 1e-12:
            break
        saturated = pos & (remaining <= 1e-9 * cap)
        frozen = active & uses[:, saturated].any(axis=1)
        if not _nonzero(frozen):  # numerical corner: nothing left to freeze, stop growing
            break
        active &= ~frozen
    return rate
