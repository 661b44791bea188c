"""The limits of a topology file: what the simulated machine can honour on the computer running it.

Each limit is checked before anything is built, on the raw TOML values, so that a file describing a machine
the simulator cannot hold is refused with one line naming the key (``sockets = 100000`` used to take 9.4 GB
and 20 s before failing; 300 nodes asked numpy for 60 GiB; ``latency_hop_ns = nan`` ran forever).

Why these numbers:

``MAX_NODES = 32``
    The fluid memory model keeps a route table of nodes × nodes × directed links; fully connected, that is
    N³(N−1) floats: 8 MiB at 32 nodes, 132 MiB and a 2.4 GB, 68 s numa02 run at 64 (measured on the 2-CPU
    development VM). The machines of the 2012 debate had 2 to 8 nodes.
``MAX_CPUS = 1024``
    numa02 on a 1,024-CPU, 1-node machine runs in about 22 s here; every workload sizes its threads by the
    CPU count.
``MAX_THREADS_PER_CORE = 8``
    POWER8's SMT8, the widest shipped.
``MAX_NODE_MEMORY`` = 4 TiB per node
    Beyond any single NUMA node of the period; the fluid model's page arrays follow what workloads touch,
    the pressure scenarios bound the machine's memory separately (their frame table is per page).
Hardware figures
    Finite, positive where a rate or a latency must be, and inside what real machines span with margin
    (bandwidths 0.1–10,000 GiB/s, latencies up to 1 µs per access and per hop, 64 B–1 MiB in flight per
    core). Slower or slower-to-reach memory would stretch a run's simulated time without bound. The
    bandwidths include a link's own capacity (the third entry of a ``links`` entry, the range of
    ``link_gibps``) and the machine-wide coherence resource ``snoop_gibps``.
``snoop_hop_cost`` 0–10
    The extra bytes of the coherence resource a byte from one hop further away uses. The fitted
    ``x86-8n64`` preset has 1.935; 10 leaves a wide margin and keeps the slowest allowed machine finite
    (numa02 on a 2-node file with ``snoop_gibps = 0.1`` and ``snoop_hop_cost = 10`` takes about 7 s here,
    where 1e300 ran forever and NaN was quietly taken as 0).

NaN and infinity are refused everywhere; so are booleans where numbers are expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from memsched.config import finite_number, format_bound
from memsched.errors import ConfigError
from memsched.units import TIB

__all__ = [
    "MAX_CPUS",
    "MAX_NODES",
    "MAX_NODE_MEMORY",
    "MAX_THREADS_PER_CORE",
    "check_bounds",
    "link_capacity",
]

MAX_NODES = 32
MAX_CPUS = 1024
MAX_THREADS_PER_CORE = 8
MAX_NODE_MEMORY = 4 * TIB

#: key -> (lowest, highest, unit shown in the message) for the hardware figures.
_FIGURES: dict[str, tuple[float, float, str]] = {
    "controller_gibps": (0.1, 10_000.0, " GiB/s"),
    "link_gibps": (0.1, 10_000.0, " GiB/s"),
    "snoop_gibps": (0.1, 10_000.0, " GiB/s"),
    "snoop_hop_cost": (0.0, 10.0, ""),
    "latency_local_ns": (1.0, 1_000.0, " ns"),
    "latency_hop_ns": (0.0, 1_000.0, " ns"),
    "core_mlp_bytes": (64.0, float(1 << 20), " bytes"),
    "smt_yield": (0.01, 1.0, ""),
}
_COUNTS = {
    "sockets": MAX_NODES,
    "nodes_per_socket": MAX_NODES,
    "cores_per_socket": MAX_CPUS,
    "threads_per_core": MAX_THREADS_PER_CORE,
}


def _count(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        return default  # the loader names the wrong type
    return value


def link_capacity(entry: list[Any], source: str) -> float:
    """The capacity (third entry) of a ``links`` entry ``[a, b, gibps]``, within the range of ``link_gibps``."""
    lo, hi, unit = _FIGURES["link_gibps"]
    cap = entry[2]
    if (
        isinstance(cap, bool)
        or not isinstance(cap, int | float)
        or (isinstance(cap, float) and not math.isfinite(cap))
        or not lo <= cap <= hi
    ):
        span = f"{format_bound(lo)}..{format_bound(hi)}{unit}"
        why = f"entries' capacity (third entry) must be a number in {span}, the range of link_gibps"
        raise ConfigError("links", entry, why, source=source)
    return float(cap)


def check_bounds(data: Mapping[str, Any], source: str) -> None:
    """Refuse values outside the limits above (types and structure are the loader's to check)."""
    for key, most in _COUNTS.items():
        v = data.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and not 1 <= v <= most:
            raise ConfigError(key, v, f"must be in 1..{most}", source=source)
    for key, (lo, hi, unit) in _FIGURES.items():
        if key in data and not isinstance(data[key], str):
            finite_number(data[key], key, lo=lo, hi=hi, source=source, unit=unit)
    sockets, cores = _count(data, "sockets", 1), _count(data, "cores_per_socket", 1)
    nodes = sockets * _count(data, "nodes_per_socket", 1)
    if nodes > MAX_NODES:
        raise ConfigError(
            "nodes_per_socket", data.get("nodes_per_socket", 1),
            f"gives {nodes} nodes with {sockets} sockets; at most {MAX_NODES} nodes are simulated", source=source,
        )  # fmt: skip
    cpus = sockets * cores * _count(data, "threads_per_core", 1)
    if cpus > MAX_CPUS:
        raise ConfigError(
            "cores_per_socket", cores,
            f"gives {cpus} CPUs with {sockets} sockets; at most {MAX_CPUS} CPUs are simulated", source=source,
        )  # fmt: skip
    memory = data.get("node_memory")
    for entry in memory if isinstance(memory, list) else [memory]:
        if entry is None:
            continue
        if not isinstance(entry, str):
            raise ConfigError("node_memory", entry, 'must be a size with a unit such as "16GiB"', source=source)
    if isinstance(memory, list) and len(memory) > MAX_NODES:
        raise ConfigError("node_memory", f"[{len(memory)} entries]", f"must have at most {MAX_NODES}", source=source)
    for key in ("links", "distance"):
        value = data.get(key)
        if isinstance(value, list) and len(value) > MAX_NODES * MAX_NODES:
            raise ConfigError(key, f"[{len(value)} entries]", "has more entries than any machine", source=source)
    distance = data.get("distance")
    if isinstance(distance, list):
        for row in distance:
            for x in row if isinstance(row, list) else []:
                if isinstance(x, int) and not isinstance(x, bool) and not 0 <= x <= 255:
                    raise ConfigError("distance", x, "entries must be in 10..254 (SLIT)", source=source)
