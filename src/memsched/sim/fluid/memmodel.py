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
  ``cpu node -> m``: ``f[m] * w`` (write-backs going out); under ``routing = "spread"`` a link carries only
  its share of the pair's traffic (the fraction of the shortest routes through it, ``topology/routing.py``);
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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.sim.fluid import jit
from memsched.topology import Topology
from memsched.units import GIB

__all__ = ["MemModel", "RateResult"]

#: ``mask.any()`` of a small boolean mask at a quarter of the cost (no ufunc reduction): the hot loop calls it
#: several times per event.
_nonzero = np.count_nonzero
#: ``x.min()`` and ``x.any(axis=...)`` without the method's Python wrapper (the same ufunc reductions).
_min = np.minimum.reduce
_add = np.add.reduce
_any = np.logical_or.reduce

#: ``np.einsum`` without its Python wrapper: with ``optimize`` off (the default) the wrapper calls this C
#: function with the same operands, so the result is the same.
_einsum: Callable[..., Any] = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "c_einsum", np.einsum)

_BYTES_PER_NS_PER_GIBPS = GIB / 1e9
_EPS = 1e-12


def _weighted_rows(w: npt.NDArray[np.float64], a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``w @ a`` (``w``: one weight per row of ``a``) summed in one fixed order, the same on every machine:
    row 0's products, plus row 1's, and so on, one column at a time.

    ``w @ a`` hands the sum to the BLAS library numpy was built with, and OpenBLAS picks its ``dgemv`` kernel
    at run time by CPU (Haswell, SkylakeX, Sandybridge, ...): each kernel adds the products in its own order,
    so the last bits of the rates, and through the event times every later result, depended on the machine
    (the default compare's MORON numa01 took 997.6 s on an AVX-512 CPU and 987.9 s under OpenBLAS's Haswell
    kernel). ``einsum`` over a C-ordered matrix with two or more columns runs its inner loop along the columns
    and adds row after row into the output, as fast as the BLAS call; with one column the rows would be the
    inner loop, summed pairwise, so that case adds them one by one. ``tests/unit/sim/test_memmodel.py`` holds
    both to an explicit loop.
    """
    if a.shape[1] > 1:
        return _einsum("i,ij->j", w, a)  # type: ignore[no-any-return]
    out = np.zeros(a.shape[1])
    for i in range(a.shape[0]):
        out += w[i] * a[i]
    return out


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
        # path[src, dst, d]: the fraction of the data going from node src to node dst that directed link d
        # carries (1 on every link of the one route under fixed routing; topology.routing).
        self.path = np.zeros((nr, nr, nd), dtype=np.float64)
        for (src, dst), shares in topology.link_shares().items():
            for uv, share in shares.items():
                self.path[src, dst, index[uv]] = share
        self._path_to_cpu = self.path.transpose(1, 0, 2).copy()  # [cpu, mem, d]: data mem -> cpu
        # Coherence resource: weight of a byte between a CPU on node i and memory on node j.
        self.snoop_cap = (
            float(topology.snoop_gibps) * _BYTES_PER_NS_PER_GIBPS if topology.snoop_gibps else None
        )
        self.snoop_weight = 1.0 + topology.snoop_hop_cost * topology.hops().astype(np.float64)
        #: ``solve``'s capacities (and 1e-9 of them, the saturation slack) by the number of cores in use.
        self._caps: dict[int, npt.NDArray[np.float64]] = {}
        self._tiny: dict[int, npt.NDArray[np.float64]] = {}
        self._rows = np.arange(256)
        self._nodes = np.arange(nr)
        #: What the compiled row kernels (``_kernels.stream_table``, ``copy_rows``) take of the hardware, as one
        #: tuple: latencies, both link paths, the MLP bytes, the coherence weights and whether there is one.
        self.row_args = (
            self.latency, self._path_to_cpu, self.path, self.mlp, self.snoop_weight, self.snoop_cap is not None
        )

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
        if cpu_ns_per_byte is None and mlp_scale is None:
            f, lat = self._stream_f_lat(cpu_node, frac)
            return share * self.mlp / lat, f, f * write[:, None], lat
        n = cpu_node.shape[0]
        cpb = np.zeros(n) if cpu_ns_per_byte is None else cpu_ns_per_byte
        scale = np.ones(n) if mlp_scale is None else mlp_scale
        den, f, writes, lat = self.stream_parts(cpu_node, frac, write, cpb, scale)
        return share / den, f, writes, lat

    def _stream_f_lat(
        self, cpu_node: npt.NDArray[np.int64], frac: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each row's bytes per node as fractions (rows touching nothing stream locally) and its latency."""
        n = cpu_node.shape[0]
        total = _add(frac, axis=1, keepdims=True)
        f = frac / np.maximum(total, _EPS)
        empty = total <= _EPS
        if _nonzero(empty):  # rows touching nothing yet stream locally
            local = np.zeros_like(frac)
            local[np.arange(n), cpu_node] = 1.0
            f = np.where(empty, local, f)
        return f, _einsum("im,im->i", f, self.latency[cpu_node])

    def stream_parts(
        self,
        cpu_node: npt.NDArray[np.int64],
        frac: npt.NDArray[np.float64],
        write: npt.NDArray[np.float64],
        cpu_ns_per_byte: npt.NDArray[np.float64],
        mlp_scale: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], ...]:
        """(den, reads, writes, core_ns) of streaming rows: a row's demand is ``share / den``. Every element is
        computed on its own row's values only, so rows that share their inputs can be computed once."""
        f, lat = self._stream_f_lat(cpu_node, frac)
        return cpu_ns_per_byte + lat / (self.mlp * mlp_scale), f, f * write[:, None], lat

    def stream_table(
        self,
        frac: npt.NDArray[np.float64],
        write: npt.NDArray[np.float64],
        cpu_ns_per_byte: npt.NDArray[np.float64],
        mlp_scale: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(den, base) of a streaming row on each node (row ``k``: a CPU on node ``k``) of one phase whose bytes
        lie ``frac`` per node (``write``, ``cpu_ns_per_byte``, ``mlp_scale``: the phase's, one per node): what
        :meth:`stream_parts` and :meth:`row_base` give every row of that phase on that node, element for
        element."""
        nodes = self._nodes
        frac_rows = frac[None, :].repeat(self.nr_nodes, axis=0)
        den, reads, writes, core_ns = self.stream_parts(nodes, frac_rows, write, cpu_ns_per_byte, mlp_scale)
        return den, self.row_base(nodes, reads, writes, core_ns)

    def copy_rows(
        self,
        cpu_node: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        src: npt.NDArray[np.float64],
        dst: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], ...]:
        """(demand, reads, writes, core_ns) of page-copy rows: per byte copied, read the source, read the
        destination line for ownership and write it back (``src``/``dst``: bytes per node, any scale)."""
        reads, d, core_ns = self.copy_parts(cpu_node, src, dst)
        return share * self.mlp / self.copy_den(core_ns), reads, d, core_ns

    def copy_parts(
        self, cpu_node: npt.NDArray[np.int64], src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], ...]:
        """(reads, writes, core_ns) of :meth:`copy_rows`, which do not depend on the rows' CPU shares."""
        tot = np.maximum(_add(src, axis=1, keepdims=True), _EPS)
        s, d = src / tot, dst / tot
        reads = s + d
        return reads, d, _einsum("im,im->i", reads, self.latency[cpu_node])

    @staticmethod
    def copy_den(core_ns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """What a copy row's ``share * mlp`` is divided by for its demand."""
        return np.maximum(core_ns, _EPS)

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
        return self.solve_base(core, demand, self.row_base(cpu_node, reads, writes, core_ns))

    def row_base(
        self,
        cpu_node: npt.NDArray[np.int64],
        reads: npt.NDArray[np.float64],
        writes: npt.NDArray[np.float64],
        core_ns: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """What one unit of each row's rate uses, before the cores are numbered: controllers, links, then its
        core (``core_ns / core_mlp_bytes``) and the coherence resource (0 without one), for :meth:`solve_base`."""
        n = cpu_node.shape[0]
        nr = self.nr_nodes
        nd = self.link_cap.shape[0]
        base = np.zeros((n, nr + nd + 2))
        traffic = np.add(reads, writes, out=base[:, :nr])
        a_link = base[:, nr : nr + nd]
        _einsum("im,imd->id", reads, self._path_to_cpu[cpu_node], out=a_link)
        a_link += _einsum("im,imd->id", writes, self.path[cpu_node])
        base[:, nr + nd] = core_ns / self.mlp
        if self.snoop_cap is not None:
            base[:, nr + nd + 1] = _einsum("im,im->i", traffic, self.snoop_weight[cpu_node])
        return base

    def solve_base(
        self, core: npt.NDArray[np.int64], demand: npt.NDArray[np.float64], base: npt.NDArray[np.float64]
    ) -> RateResult:
        """:meth:`solve` of rows given by :meth:`row_base` (``core``: the core each row runs on)."""
        kernel = jit.solve_kernel()
        if kernel is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
            snoop_cap = self.snoop_cap
            return RateResult(
                *kernel(
                    core,
                    demand,
                    base,
                    self.controller_cap,
                    self.link_cap,
                    0.0 if snoop_cap is None else snoop_cap,
                    snoop_cap is not None,
                )
            )
        n = core.shape[0]
        nr = self.nr_nodes
        nd = self.link_cap.shape[0]
        # The cores the rows run on, numbered densely in core order (``np.unique(core, return_inverse=True)``,
        # by counting: core ids are small).
        present = np.bincount(core) > 0
        nc = int(_nonzero(present))
        width = nr + nd + nc
        snoop = self.snoop_cap is not None
        cap = self._caps.get(nc)
        if cap is None:
            caps = [self.controller_cap, self.link_cap, np.ones(nc)]
            if snoop:
                caps.append(np.array([self.snoop_cap]))
            cap = self._caps[nc] = np.concatenate(caps)
            self._tiny[nc] = 1e-9 * cap
        # What one unit of each row's rate uses: controllers, links, its core (, the coherence resource).
        a = np.zeros((n, width + snoop))
        a[:, : nr + nd] = base[:, : nr + nd]
        rows = self._rows[:n] if n <= self._rows.shape[0] else np.arange(n)
        a[rows, (present.cumsum() + (nr + nd - 1))[core]] = base[:, nr + nd]
        if snoop:
            a[:, width] = base[:, nr + nd + 1]

        rate = _progressive_fill(a, cap, demand, self._tiny[nc])
        used = _weighted_rows(rate, a)
        ctrl_util = used[:nr] / self.controller_cap
        link_util = used[nr : nr + nd] / self.link_cap if nd else np.zeros(0)
        return RateResult(rate, ctrl_util, link_util)


def _progressive_fill(
    a: npt.NDArray[np.float64],
    cap: npt.NDArray[np.float64],
    demand: npt.NDArray[np.float64],
    tiny: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Weighted max-min fair rates: ``rate = t_i * demand_i`` with every ``t_i <= 1`` raised together.

    ``a[i, r]`` is what one unit of task i's rate consumes of resource r, ``cap[r]`` its capacity (``tiny``:
    ``1e-9 * cap``, the slack under which a resource counts as saturated). Each round raises all unfrozen tasks
    until the next resource saturates (or t reaches 1), then freezes the tasks that use it; at most one round
    per resource.
    """
    n = a.shape[0]
    remaining = cap.astype(np.float64)  # a copy
    if tiny is None:
        tiny = 1e-9 * cap
    active = demand > 0
    nr_active = int(_nonzero(active))
    if nr_active == n:  # every row grows (the usual first round): no copies of the rows
        rate = np.zeros(n)
        act_demand, act_a = demand, a
    else:
        rate = np.zeros(n)
        act_demand, act_a = demand[active], a[active]
    t = 0.0
    while nr_active:
        load = _weighted_rows(act_demand, act_a)
        pos = load > _EPS
        step = 1.0 - t
        nr_pos = _nonzero(pos)
        if nr_pos:
            ratio = remaining / load if nr_pos == pos.shape[0] else remaining[pos] / load[pos]
            step = min(step, float(_min(ratio)))
        step = max(step, 0.0)
        if nr_active == n:
            rate += step * act_demand
        else:
            rate[active] += step * act_demand
        remaining -= step * load
        t += step
        if t >= 1.0 - 1e-12:
            break
        saturated = (pos & (remaining <= tiny)).nonzero()[0]
        # the rows using a saturated resource (usually one: a column, not a sub-matrix)
        if saturated.shape[0] == 1:
            frozen = active & (a[:, saturated[0]] > 0)
        else:
            frozen = active & _any(a[:, saturated] > 0, axis=1)
        nr_frozen = int(_nonzero(frozen))
        if not nr_frozen:  # numerical corner: nothing left to freeze, stop growing
            break
        nr_active -= nr_frozen
        if not nr_active:  # (the usual end: the last unfrozen rows froze)
            break
        active &= ~frozen
        act_demand, act_a = demand[active], a[active]
    return rate
