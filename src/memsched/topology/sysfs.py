"""The running machine's topology, read from a sysfs tree (``/sys/devices/system/{node,cpu}``).

Models what drivers/base/node.c (``nodeN/cpulist``, ``nodeN/distance``, ``nodeN/meminfo``) and
drivers/base/topology.c (``cpuK/topology/{thread_siblings_list,physical_package_id}``) export, 6.x.

Deviations from the kernel's view: sysfs gives no bandwidth or latency figures, so those are
:data:`SYSFS_HARDWARE_DEFAULTS` unless given; links are taken as fully connected; node ids must be
contiguous from 0.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from memsched.errors import ConfigError, KernelError, KernelFileError, UnsupportedError, excerpt
from memsched.kfile import decode_kernel_text, read_kernel_file
from memsched.topology import LOCAL_DISTANCE, Cpu, Link, Node, Topology
from memsched.uapi.cpumask import parse_cpulist
from memsched.units import KIB

__all__ = ["SYSFS_HARDWARE_DEFAULTS", "parse_node_meminfo", "topology_from_sysfs"]

#: Hardware figures a sysfs topology cannot read, by default those of the ``sandybridge-2n32`` preset (a generic
#: 2012 two-socket server; see that file for their sources). Override with ``topology_from_sysfs(hardware=...)``.
SYSFS_HARDWARE_DEFAULTS: Mapping[str, float] = {
    "controller_gibps": 34.0,
    "link_gibps": 18.4,
    "latency_local_ns": 80.0,
    "latency_hop_ns": 50.0,
    "core_mlp_bytes": 640.0,
    "smt_yield": 0.6,
}


def topology_from_sysfs(
    root: str | os.PathLike[str] = "/sys",
    *,
    name: str = "sysfs",
    hardware: Mapping[str, float] | None = None,
) -> Topology:
    """The running machine's topology from a sysfs tree (``root`` is the mount point, ``/sys``).

    ``hardware`` overrides any of :data:`SYSFS_HARDWARE_DEFAULTS`. An unreadable file is a
    :class:`~memsched.errors.KernelError` naming it; malformed content too (``EINVAL``).
    """
    return _from_sysfs(Path(root), name, hardware or {})


def _sysfs_read(path: Path, root: Path) -> str:
    """Bounded, regular files only, confined to the tree ``root`` (:func:`memsched.kfile.read_kernel_file`)."""
    try:
        return decode_kernel_text(read_kernel_file(path, root=root))
    except KernelError:
        raise
    except OSError as e:
        code = e.errno if e.errno is not None else errno.EIO
        raise KernelError(code, f"cannot read {path}: {os.strerror(code)}") from e


def _sysfs_int(path: Path, root: Path) -> int:
    text = _sysfs_read(path, root).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise KernelFileError(path, f"must hold an integer (got {excerpt(text)})")
    return int(text, 10)


def _sysfs_cpulist(path: Path, root: Path) -> frozenset[int]:
    text = _sysfs_read(path, root)
    try:
        return parse_cpulist(text, field=str(path))
    except ConfigError:
        raise KernelFileError(path, f"is not a CPU/node list (got {excerpt(text.strip())})") from None


def parse_node_meminfo(text: str, *, source: str = "meminfo") -> dict[str, int]:
    """``nodeN/meminfo`` -> ``{"MemTotal": bytes, ..., "HugePages_Total": count}``.

    Lines read ``Node 0 MemTotal:        8480544 kB`` (``node_read_meminfo``, drivers/base/node.c); the
    ``HugePages_*`` lines carry counts without a unit and are returned as counts.
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        head, sep, value = line.partition(":")
        words = head.split()
        if not sep or len(words) != 3 or words[0] != "Node":
            continue
        parts = value.split()
        try:
            number = int(parts[0])
        except (IndexError, ValueError):
            raise KernelFileError(source, f"malformed line {excerpt(line)}") from None
        out[words[2]] = number * KIB if parts[1:] == ["kB"] else number
    return out


def _from_sysfs(root: Path, name: str, hardware: Mapping[str, float]) -> Topology:
    unknown = sorted(set(hardware) - set(SYSFS_HARDWARE_DEFAULTS))
    if unknown:
        raise ConfigError(
            "hardware", unknown[0], "must be one of: " + ", ".join(sorted(SYSFS_HARDWARE_DEFAULTS))
        )
    figures = {**SYSFS_HARDWARE_DEFAULTS, **{k: float(v) for k, v in hardware.items()}}
    for key, value in figures.items():
        if not value > 0 or (key == "smt_yield" and value > 1):
            raise ConfigError(key, value, "must be in (0, 1]" if key == "smt_yield" else "must be > 0")
    node_dir = root / "devices" / "system" / "node"
    cpu_dir = root / "devices" / "system" / "cpu"
    node_ids = sorted(_sysfs_cpulist(node_dir / "online", root))
    if not node_ids:
        raise KernelFileError(node_dir / "online", "lists no node")
    if node_ids != list(range(len(node_ids))):
        raise UnsupportedError(
            "a topology from sysfs",
            f"online nodes {node_ids} are not numbered 0..{len(node_ids) - 1} (holes in the node numbering)",
        )
    nr_nodes = len(node_ids)
    online_cpus = _sysfs_cpulist(cpu_dir / "online", root)

    dist_rows = []
    node_cpus: list[tuple[int, ...]] = []
    memory: list[int] = []
    for n in node_ids:
        d = node_dir / f"node{n}"
        row_text = _sysfs_read(d / "distance", root).split()
        if not all(x.isascii() and x.isdigit() and len(x) <= 3 for x in row_text):
            shown = excerpt(" ".join(row_text))
            raise KernelFileError(d / "distance", f"must be a list of SLIT distances (got {shown})")
        row = [int(x) for x in row_text]
        if len(row) != nr_nodes:
            raise KernelFileError(d / "distance", f"has {len(row)} entries for {nr_nodes} online nodes")
        dist_rows.append(row)
        node_cpus.append(tuple(sorted(_sysfs_cpulist(d / "cpulist", root) & online_cpus)))
        meminfo = parse_node_meminfo(_sysfs_read(d / "meminfo", root), source=str(d / "meminfo"))
        if "MemTotal" not in meminfo:
            raise KernelFileError(d / "meminfo", "has no MemTotal line")
        memory.append(meminfo["MemTotal"])
    dist = np.array(dist_rows, dtype=np.int64)
    off = dist[~np.eye(nr_nodes, dtype=bool)]
    if (np.diag(dist) != LOCAL_DISTANCE).any() or (off <= LOCAL_DISTANCE).any() or (dist > 254).any():
        raise KernelFileError(
            f"{node_dir}/node*/distance",
            f"SLIT must have {LOCAL_DISTANCE} on the diagonal and 11..254 elsewhere "
            f"(got {excerpt(str(dist.tolist()))})",
        )
    dist.setflags(write=False)

    cpu_to_node = {c: n for n in node_ids for c in node_cpus[n]}
    missing = sorted(online_cpus - set(cpu_to_node))
    if missing:
        shown = excerpt(str(missing))
        raise KernelFileError(cpu_dir / "online", f"online CPUs {shown} are in no node's cpulist under {node_dir}")
    # Cores: one per distinct SMT sibling group, numbered machine-wide in order of their first CPU (sysfs
    # core_id is per package and may have holes, the simulator wants a machine-wide index).
    sibling_groups: dict[int, tuple[int, ...]] = {}
    sockets: dict[int, int] = {}
    for c in sorted(online_cpus):
        topo = cpu_dir / f"cpu{c}" / "topology"
        group = tuple(sorted(_sysfs_cpulist(topo / "thread_siblings_list", root) & online_cpus)) or (c,)
        sibling_groups[c] = group
        sockets[c] = _sysfs_int(topo / "physical_package_id", root)
    core_of_group = {g: i for i, g in enumerate(sorted(set(sibling_groups.values())))}
    cpus = tuple(
        Cpu(
            id=c,
            node=cpu_to_node[c],
            socket=sockets[c],
            core=core_of_group[sibling_groups[c]],
            thread=sibling_groups[c].index(c),
        )
        for c in sorted(online_cpus)
    )
    nodes = tuple(
        Node(id=n, cpus=node_cpus[n], memory_bytes=memory[n], controller_gibps=figures["controller_gibps"])
        for n in node_ids
    )
    links = tuple(Link(a, b, figures["link_gibps"]) for a in node_ids for b in node_ids if a < b)
    source = "given" if hardware else "defaults (sandybridge-2n32), not measured"
    return Topology(
        name=name,
        description=f"read from {root}: {nr_nodes} node(s), {len(cpus)} online CPU(s); hardware figures {source}",
        nodes=nodes,
        cpus=cpus,
        distance=dist,
        links=links,
        latency_local_ns=figures["latency_local_ns"],
        latency_hop_ns=figures["latency_hop_ns"] if nr_nodes > 1 else 0.0,
        core_mlp_bytes=figures["core_mlp_bytes"],
        smt_yield=figures["smt_yield"],
    )
