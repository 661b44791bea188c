"""Machine description: NUMA nodes, CPUs (SMT threads, cores, sockets), SLIT distances, memory, bandwidth.

A :class:`Topology` is the frozen, validated description both backends share: the simulator builds its
machine from it, and the live backend reads one from ``/sys`` (``memsched.topology.sysfs``) so that a policy
sees the same vocabulary everywhere. The kernel counterparts are ``drivers/base/node.c`` (``nodeN/cpulist``,
``nodeN/distance``, ``nodeN/meminfo``) and the ACPI SRAT/SLIT tables behind them.

Beyond what ``/sys`` shows, a simulated machine needs the hardware figures that decide how fast memory-bound
work runs (the benchmarks of the debate are bandwidth-bound; ``docs/calibration.md`` derives each figure):

``controller_gibps``
    DRAM traffic one node's memory controller sustains, reads plus writes, in GiB/s. A ``bzero`` costs two
    bytes of traffic per byte written (read-for-ownership plus write-back), so a controller of 9.2 GiB/s
    serves 4.6 GiB/s of ``bzero``.
``link_gibps``
    Payload capacity of one interconnect link (QPI / HyperTransport) **per direction**, in GiB/s.
``latency_local_ns`` / ``latency_hop_ns``
    Idle load-to-use latency of local memory and the extra latency of each interconnect hop.
``core_mlp_bytes``
    Bytes a core keeps in flight (line-fill buffers × 64 B). A core streams at most
    ``core_mlp_bytes / latency``: this is how latency, not only bandwidth, enters the model.
``smt_yield``
    Throughput of one hardware thread while its sibling is busy, relative to running alone (compute work).
``links`` with a capacity
    A link may carry its own capacity (``[a, b, gibps]``), so a narrow connection between two chassis can
    be expressed next to the wider links inside each chassis.
``routing``
    ``"fixed"`` (default: one shortest route per pair of nodes) or ``"spread"`` (traffic split evenly over
    every shortest route); ``memsched.topology.routing`` says what each models.
``snoop_gibps`` / ``snoop_hop_cost`` (optional)
    A machine-wide coherence resource: every byte of DRAM traffic between a CPU and memory ``h`` interconnect
    hops away consumes ``1 + snoop_hop_cost * h`` bytes of it (snoops, directory look-ups and completions
    that a remote line costs more of than a local one). Absent, nothing is shared machine-wide.

Presets live as TOML files in ``memsched/data/topologies`` and go through the same loader and validation as
a user's file, so every rule below is exercised by the presets themselves.

**From sysfs** (:meth:`Topology.from_sysfs`). ``/sys`` gives the nodes (``devices/system/node/online``), each
node's CPUs (``nodeN/cpulist``), SLIT row (``nodeN/distance``, one entry per online node) and memory
(``nodeN/meminfo`` ``MemTotal``), and each CPU's package and SMT siblings
(``devices/system/cpu/cpuK/topology/{physical_package_id,thread_siblings_list}``); formats from
drivers/base/node.c and drivers/base/topology.c (Linux 6.x), Documentation/ABI/stable/sysfs-devices-node and
Documentation/admin-guide/cputopology.rst. It cannot give the hardware figures above: those come from
``hardware=`` or default to :data:`SYSFS_HARDWARE_DEFAULTS` (the ``sandybridge-2n32`` preset's figures, a generic
two-socket server), and the topology's description says so. The live tools never use them (a policy sees only
CPUs, nodes, distances and memory); they matter only if a sysfs topology is fed to the simulator. The links
are taken as "full" (sysfs does not describe the interconnect). Node ids must be contiguous from 0 (the
policies index arrays by node id); a machine with holes in its node numbering is refused with the reason.
Memory-less and CPU-less nodes are kept as they are (``memory_bytes`` 0, ``cpus`` empty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.config import check_name, parse_toml, read_input_file
from memsched.errors import ConfigError, UnknownNameError
from memsched.topology.bounds import MAX_NODE_MEMORY, check_bounds, link_capacity
from memsched.topology.routing import ROUTING_MODES, link_shares
from memsched.topology.routing import shortest_routes as _routes
from memsched.units import GIB, parse_size

__all__ = [
    "Cpu",
    "Link",
    "Node",
    "Topology",
    "list_presets",
    "load_topology",
]

#: SLIT value of a node to itself (``LOCAL_DISTANCE`` in include/linux/topology.h).
LOCAL_DISTANCE = 10


@dataclass(frozen=True, slots=True)
class Cpu:
    """One logical CPU (a hardware thread). ``core`` is a machine-wide core id, ``thread`` the SMT index."""

    id: int
    node: int
    socket: int
    core: int
    thread: int


@dataclass(frozen=True, slots=True)
class Node:
    """One NUMA node: its CPUs, memory and memory-controller capacity."""

    id: int
    cpus: tuple[int, ...]
    memory_bytes: int
    controller_gibps: float


@dataclass(frozen=True, slots=True)
class Link:
    """An interconnect link between two nodes; ``gibps`` is the capacity of each direction."""

    a: int
    b: int
    gibps: float


@dataclass(frozen=True, eq=False)
class Topology:
    """A validated machine description. Build one with :func:`load_topology` or :meth:`from_mapping`."""

    name: str
    description: str
    nodes: tuple[Node, ...]
    cpus: tuple[Cpu, ...]
    distance: npt.NDArray[np.int64]
    links: tuple[Link, ...]
    latency_local_ns: float
    latency_hop_ns: float
    core_mlp_bytes: float
    smt_yield: float
    #: Machine-wide coherence resource (GiB/s of weighted traffic), ``None`` when the machine has none.
    snoop_gibps: float | None = None
    #: Extra cost of a remote byte on the coherence resource per interconnect hop.
    snoop_hop_cost: float = 0.0
    #: How traffic between two nodes uses the links: "fixed" (one route) or "spread" (``topology.routing``).
    routing: str = "fixed"

    # ---- derived, read-only views ------------------------------------------------------------------------
    @property
    def nr_nodes(self) -> int:
        return len(self.nodes)

    @property
    def nr_cpus(self) -> int:
        """``nr_cpu_ids``: highest CPU id + 1 (what autonuma-benchmark's preproc.awk calls ``cpus``)."""
        return max(c.id for c in self.cpus) + 1

    @property
    def nr_cores(self) -> int:
        return len({c.core for c in self.cpus})

    @property
    def threads_per_core(self) -> int:
        return max(c.thread for c in self.cpus) + 1

    @property
    def memory_bytes(self) -> int:
        return sum(n.memory_bytes for n in self.nodes)

    def cpu_node(self) -> npt.NDArray[np.int64]:
        """Array mapping CPU id to node id."""
        out = np.full(self.nr_cpus, -1, dtype=np.int64)
        for c in self.cpus:
            out[c.id] = c.node
        return out

    def cpu_core(self) -> npt.NDArray[np.int64]:
        out = np.full(self.nr_cpus, -1, dtype=np.int64)
        for c in self.cpus:
            out[c.id] = c.core
        return out

    def node_cpus(self, node: int) -> tuple[int, ...]:
        return self.nodes[node].cpus

    def siblings(self, cpu: int) -> tuple[int, ...]:
        """SMT siblings of ``cpu`` including itself (``topology/thread_siblings_list``)."""
        core = self.cpus_by_id[cpu].core
        return tuple(c.id for c in self.cpus if c.core == core)

    @property
    def cpus_by_id(self) -> Mapping[int, Cpu]:
        return {c.id: c for c in self.cpus}

    def hops(self) -> npt.NDArray[np.int64]:
        """Interconnect hop count between every pair of nodes (BFS over the links)."""
        return _routes(self.nr_nodes, self.links)[0]

    def routes(self) -> list[list[list[int]]]:
        """``routes()[src][dst]``: the node sequence data takes from ``src`` to ``dst`` (shortest path,
        ties broken towards the lower-numbered intermediate node, as a fixed routing table would)."""
        return _routes(self.nr_nodes, self.links)[1]

    def link_shares(self) -> dict[tuple[int, int], dict[tuple[int, int], float]]:
        """``link_shares()[(src, dst)][(u, v)]``: fraction of the ``src -> dst`` traffic on the directed link
        ``u -> v`` under this topology's ``routing`` (``memsched.topology.routing``)."""
        return link_shares(self.nr_nodes, self.links, self.routing)

    def latency_ns(self) -> npt.NDArray[np.float64]:
        """Idle memory latency from a CPU on node ``i`` to memory on node ``j``."""
        return self.latency_local_ns + self.latency_hop_ns * self.hops().astype(np.float64)

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<topology>") -> Topology:
        """Validate a parsed TOML document (schema in ``docs/topology.md``) and build the topology."""
        return _build(data, source)

    def to_mapping(self) -> dict[str, Any]:
        """A plain description (for ``--json`` and reports)."""
        return {
            "name": self.name,
            "description": self.description,
            "nodes": [
                {
                    "id": n.id,
                    "cpus": list(n.cpus),
                    "memory_bytes": n.memory_bytes,
                    "controller_gibps": n.controller_gibps,
                }
                for n in self.nodes
            ],
            "nr_cpus": self.nr_cpus,
            "nr_cores": self.nr_cores,
            "threads_per_core": self.threads_per_core,
            "distance": self.distance.tolist(),
            "links": [dataclasses.asdict(link) for link in self.links],
            "latency_local_ns": self.latency_local_ns,
            "latency_hop_ns": self.latency_hop_ns,
            "core_mlp_bytes": self.core_mlp_bytes,
            "smt_yield": self.smt_yield,
            **({"snoop_gibps": self.snoop_gibps, "snoop_hop_cost": self.snoop_hop_cost} if self.snoop_gibps else {}),
            **({"routing": self.routing} if self.routing != "fixed" else {}),
        }


# ------------------------------------------------------------------------------------------------------------
# Loading and validation


def list_presets() -> list[str]:
    """Names of the bundled presets, sorted."""
    folder = resources.files("memsched.data").joinpath("topologies")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_topology(name_or_path: str | Path) -> Topology:
    """A preset by name, or a TOML file by path (anything containing a path separator or ending in .toml)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return _parse_toml(read_input_file(Path(text), "topology", "TOML file"), text)
    if text not in list_presets():
        raise UnknownNameError("topology", text, [*list_presets(), "<path>.toml"])
    raw = resources.files("memsched.data").joinpath("topologies", f"{text}.toml").read_bytes()
    return _parse_toml(raw, f"preset {text}")


def _parse_toml(raw: bytes, source: str) -> Topology:
    return _build(parse_toml(raw, "topology", source), source)


_KNOWN_KEYS = {
    "name",
    "description",
    "sockets",
    "nodes_per_socket",
    "cores_per_socket",
    "threads_per_core",
    "node_memory",
    "controller_gibps",
    "link_gibps",
    "links",
    "distance",
    "latency_local_ns",
    "latency_hop_ns",
    "core_mlp_bytes",
    "smt_yield",
    "snoop_gibps",
    "snoop_hop_cost",
    "routing",
}


def _build(data: Mapping[str, Any], source: str) -> Topology:
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            unknown[0],
            data[unknown[0]],
            "is not a topology key; known keys: " + ", ".join(sorted(_KNOWN_KEYS)),
            source=source,
        )
    check_bounds(data, source)

    def get(key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in data:
            if default is None:
                raise ConfigError(key, None, "is required", source=source)
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(key, value, f"must be of type {names}", source=source)
        return value

    def positive_int(key: str, default: int | None = None) -> int:
        v = int(get(key, int, default))
        if v < 1:
            raise ConfigError(key, v, "must be >= 1", source=source)
        return v

    def positive_float(key: str, default: float | None = None) -> float:
        v = float(get(key, (int, float), default))
        if not v > 0:
            raise ConfigError(key, v, "must be > 0", source=source)
        return v

    name = check_name(get("name", str), "name", source=source)
    description = str(get("description", str, ""))
    sockets = positive_int("sockets")
    nodes_per_socket = positive_int("nodes_per_socket", 1)
    cores_per_socket = positive_int("cores_per_socket")
    threads_per_core = positive_int("threads_per_core", 1)
    if cores_per_socket % nodes_per_socket:
        raise ConfigError(
            "cores_per_socket",
            cores_per_socket,
            f"must be a multiple of nodes_per_socket ({nodes_per_socket})",
            source=source,
        )
    nr_nodes = sockets * nodes_per_socket
    cores_per_node = cores_per_socket // nodes_per_socket
    nr_cores = sockets * cores_per_socket

    # Memory: one size for every node, or a list with one size per node.
    mem_raw = get("node_memory", (str, int, list))
    mem_list = mem_raw if isinstance(mem_raw, list) else [mem_raw] * nr_nodes
    if len(mem_list) != nr_nodes:
        raise ConfigError("node_memory", mem_raw, f"must have one entry per node ({nr_nodes})", source=source)
    memory = []
    for m in mem_list:
        try:
            size = parse_size(m, field="node_memory", max_bytes=MAX_NODE_MEMORY, unit_required=True)
        except ConfigError as e:
            raise ConfigError("node_memory", m, e.allowed, source=source) from None
        if size < 64 * (1 << 20):
            raise ConfigError("node_memory", m, "must be at least 64MiB per node", source=source)
        memory.append(size)

    controller = positive_float("controller_gibps")
    link_bw = positive_float("link_gibps", 1.0 if nr_nodes == 1 else None)
    latency_local = positive_float("latency_local_ns")
    latency_hop = float(get("latency_hop_ns", (int, float), 0.0 if nr_nodes == 1 else None))
    if latency_hop < 0:
        raise ConfigError("latency_hop_ns", latency_hop, "must be >= 0", source=source)
    mlp = positive_float("core_mlp_bytes")
    smt_yield = float(get("smt_yield", (int, float), 1.0))
    if not 0 < smt_yield <= 1:
        raise ConfigError("smt_yield", smt_yield, "must be in (0, 1]", source=source)

    snoop: float | None = None
    if "snoop_gibps" in data:
        snoop = positive_float("snoop_gibps")
    snoop_hop_cost = float(get("snoop_hop_cost", (int, float), 0.0))
    if snoop_hop_cost < 0:
        raise ConfigError("snoop_hop_cost", snoop_hop_cost, "must be >= 0", source=source)

    routing = str(get("routing", str, "fixed"))
    if routing not in ROUTING_MODES:
        raise ConfigError("routing", routing, "must be " + " or ".join(f'"{m}"' for m in ROUTING_MODES), source=source)

    # Links: "full" (every pair of nodes directly connected) or a list of [a, b] / [a, b, gibps] entries.
    links_raw = get("links", (str, list), "full")
    pairs: list[tuple[int, int]] = []
    caps: list[float] = []
    if isinstance(links_raw, str):
        if links_raw != "full":
            raise ConfigError("links", links_raw, 'must be "full" or a list of [a, b] node pairs', source=source)
        pairs = [(a, b) for a in range(nr_nodes) for b in range(a + 1, nr_nodes)]
        caps = [link_bw] * len(pairs)
    else:
        for item in links_raw:
            if (
                not isinstance(item, list)
                or len(item) not in (2, 3)
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in item[:2])
                or not all(0 <= x < nr_nodes for x in item[:2])
                or item[0] == item[1]
            ):
                raise ConfigError(
                    "links",
                    item,
                    f"entries must be [a, b] or [a, b, gibps] with distinct nodes in 0..{nr_nodes - 1}",
                    source=source,
                )
            cap = link_bw
            if len(item) == 3:
                cap = link_capacity(item, source)
            a, b = sorted(item[:2])
            if (a, b) in pairs:
                raise ConfigError("links", item, "must not list a link twice", source=source)
            pairs.append((a, b))
            caps.append(cap)
    links = tuple(Link(a, b, cap) for (a, b), cap in zip(pairs, caps, strict=True))
    hops, _ = _routes(nr_nodes, links)
    if (hops < 0).any():
        i, j = (int(x) for x in np.argwhere(hops < 0)[0])
        raise ConfigError(
            "links", links_raw, f"must connect every node (no path from node {i} to node {j})", source=source
        )

    # SLIT: given, or derived as 10 + 10 * hops (the common BIOS convention of 10/20/30).
    if "distance" in data:
        dist = _validate_distance(data["distance"], nr_nodes, source)
    else:
        dist = np.where(hops == 0, LOCAL_DISTANCE, LOCAL_DISTANCE + 10 * hops).astype(np.int64)
    dist.setflags(write=False)

    # CPU numbering as Linux enumerates most x86 boxes: the first thread of every core in socket order, then
    # the second threads (cpu N and N + nr_cores are siblings).
    cpus: list[Cpu] = []
    for thread in range(threads_per_core):
        for core in range(nr_cores):
            socket = core // cores_per_socket
            node = core // cores_per_node
            cpus.append(Cpu(id=thread * nr_cores + core, node=node, socket=socket, core=core, thread=thread))
    nodes = tuple(
        Node(
            id=n,
            cpus=tuple(sorted(c.id for c in cpus if c.node == n)),
            memory_bytes=memory[n],
            controller_gibps=controller,
        )
        for n in range(nr_nodes)
    )
    return Topology(
        name=name,
        description=description,
        nodes=nodes,
        cpus=tuple(sorted(cpus, key=lambda c: c.id)),
        distance=dist,
        links=links,
        latency_local_ns=latency_local,
        latency_hop_ns=latency_hop,
        core_mlp_bytes=mlp,
        smt_yield=smt_yield,
        snoop_gibps=snoop,
        snoop_hop_cost=snoop_hop_cost,
        routing=routing,
    )


def _validate_distance(raw: Any, nr_nodes: int, source: str) -> npt.NDArray[np.int64]:
    shape_ok = (
        isinstance(raw, list)
        and len(raw) == nr_nodes
        and all(isinstance(row, list) and len(row) == nr_nodes for row in raw)
        and all(isinstance(x, int) and not isinstance(x, bool) for row in raw for x in row)
    )
    if not shape_ok:
        raise ConfigError("distance", raw, f"must be a {nr_nodes}x{nr_nodes} matrix of integers", source=source)
    dist = np.array(raw, dtype=np.int64)
    if (np.diag(dist) != LOCAL_DISTANCE).any():
        raise ConfigError(
            "distance", raw, f"must have {LOCAL_DISTANCE} on the diagonal (LOCAL_DISTANCE)", source=source
        )
    off = dist[~np.eye(nr_nodes, dtype=bool)]
    if (off <= LOCAL_DISTANCE).any() or (dist > 254).any():
        raise ConfigError("distance", raw, "must have off-diagonal entries in 11..254 (SLIT)", source=source)
    if (dist != dist.T).any():
        raise ConfigError("distance", raw, "must be symmetric", source=source)
    return dist


def node_memory_gib(topo: Topology) -> list[float]:
    return [n.memory_bytes / GIB for n in topo.nodes]
