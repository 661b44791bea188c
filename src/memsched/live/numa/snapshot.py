"""One reading of the machine's NUMA state: processes, their threads and memory per node, free memory per node,
and the ``/proc/vmstat`` NUMA counters; and what ``memsched numa top`` shows from it.

A process's **remote memory** is the resident memory (``numa_maps`` ``N<node>=`` totals, every VMA
included, as ``numastat -p`` counts it) that sits on nodes none of its threads last ran on (``stat`` field
39). A process whose threads span two nodes therefore counts memory on either as local: user space cannot
see which thread touches which page.

``cpu_nr_running`` counts every thread of the machine in state ``R`` by the CPU it last ran on: the kernel
does not export per-CPU runqueue lengths (``/proc/stat`` ``procs_running`` is machine-wide;
``/proc/sched_debug`` needs debugfs), so this is the snapshot's estimate of the runqueues. It is read from
all of ``/proc``, not only from the processes being balanced.

The NUMA counters of ``/proc/vmstat`` (mm/vmstat.c ``vmstat_text``) exist only with ``CONFIG_NUMA``
(``numa_hit`` ... ``numa_other``), ``CONFIG_NUMA_BALANCING`` (``numa_pte_updates`` ... ``numa_pages_migrated``;
``numa_huge_pte_updates`` since about 3.13) and ``CONFIG_MIGRATION`` (``pgmigrate_*``). A missing counter is
``None`` and raises a :class:`~memsched.live.procfs.MissingFieldWarning` naming it and the likely reason, never a
silent 0.

The snapshot is not atomic: processes that exit while it is taken are left out and counted in ``gone``;
processes whose files this user may not read are listed in ``unreadable`` with the reason.
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.errors import AccessDeniedError, KernelError, KernelFileError, ProcessGoneError
from memsched.live.procfs import (
    MapsRange,
    MissingFieldWarning,
    NumaMapsVma,
    ProcStatus,
    list_pids,
    parse_flat_keyed,
    read_maps,
    read_numa_maps,
    read_status,
    read_task_stat,
    thread_ids,
)
from memsched.live.procfs.maps import MAX_VMA_BYTES
from memsched.live.roots import LiveRoots, read_text
from memsched.topology import Topology
from memsched.topology.sysfs import parse_node_meminfo

__all__ = [
    "NUMA_COUNTERS",
    "NumaCounters",
    "NumaSnapshot",
    "ProcessLocality",
    "ProcessSample",
    "ThreadSample",
    "locality",
    "node_pages_of",
    "numa_counters",
    "read_node_memory",
    "read_numa_counters",
    "take_snapshot",
]

IntArray = npt.NDArray[np.int64]

#: The ``/proc/vmstat`` counters ``numa top`` shows, with the kernel option that provides them.
NUMA_COUNTERS: Mapping[str, str] = {
    "numa_hit": "CONFIG_NUMA",
    "numa_miss": "CONFIG_NUMA",
    "numa_foreign": "CONFIG_NUMA",
    "numa_interleave": "CONFIG_NUMA",
    "numa_local": "CONFIG_NUMA",
    "numa_other": "CONFIG_NUMA",
    "numa_pte_updates": "CONFIG_NUMA_BALANCING",
    "numa_huge_pte_updates": "CONFIG_NUMA_BALANCING (3.13+)",
    "numa_hint_faults": "CONFIG_NUMA_BALANCING",
    "numa_hint_faults_local": "CONFIG_NUMA_BALANCING",
    "numa_pages_migrated": "CONFIG_NUMA_BALANCING",
    "pgmigrate_success": "CONFIG_MIGRATION",
    "pgmigrate_fail": "CONFIG_MIGRATION",
}


@dataclass(frozen=True, slots=True)
class NumaCounters:
    """The NUMA counters of ``/proc/vmstat``; a counter the kernel did not print is ``None``."""

    values: Mapping[str, int | None]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.values.items() if v is None)

    def delta(self, before: NumaCounters) -> dict[str, int | None]:
        """Per-counter increase since ``before`` (``None`` where either side is unknown)."""
        out: dict[str, int | None] = {}
        for k, v in self.values.items():
            b = before.values.get(k)
            out[k] = None if v is None or b is None else v - b
        return out


def numa_counters(vmstat: Mapping[str, int], *, source: str = "/proc/vmstat") -> NumaCounters:
    """Pick :data:`NUMA_COUNTERS` out of a parsed vmstat; warn once per call naming every missing one."""
    values = {name: vmstat.get(name) for name in NUMA_COUNTERS}
    missing = [name for name, v in values.items() if v is None]
    if missing:
        reasons = sorted({NUMA_COUNTERS[m].split(" (")[0] for m in missing})
        warnings.warn(
            f"{source} lacks {', '.join(missing)} (kernel built without {' / '.join(reasons)}?): reported as unknown",
            MissingFieldWarning,
            stacklevel=2,
        )
    return NumaCounters(values)


def read_numa_counters(roots: LiveRoots) -> NumaCounters:
    """The NUMA counters of ``/proc/vmstat``."""
    path = roots.proc("vmstat")
    return numa_counters(parse_flat_keyed(read_text(path, roots), source=str(path)), source=str(path))


@dataclass(frozen=True, slots=True)
class ThreadSample:
    tid: int
    comm: str
    state: str
    cpu: int
    runtime_ns: int
    allowed: frozenset[int]


@dataclass(frozen=True, eq=False)
class ProcessSample:
    """A process with its threads and its resident memory per node (in base pages of the snapshot)."""

    pid: int
    comm: str
    uids: tuple[int, ...]
    threads: tuple[ThreadSample, ...]
    vmas: tuple[NumaMapsVma, ...]
    maps: tuple[MapsRange, ...]
    node_pages: IntArray

    @property
    def total_pages(self) -> int:
        return int(self.node_pages.sum())


@dataclass(frozen=True, eq=False)
class NumaSnapshot:
    time_ns: int
    topology: Topology
    page_size: int
    processes: Mapping[int, ProcessSample]
    node_total_bytes: tuple[int, ...]
    node_free_bytes: tuple[int, ...]
    cpu_nr_running: IntArray
    counters: NumaCounters
    unreadable: Mapping[int, str] = field(default_factory=dict)
    gone: int = 0

    def thread_node(self, thread: ThreadSample) -> int:
        cpu_node = self.topology.cpu_node()
        return int(cpu_node[thread.cpu]) if 0 <= thread.cpu < cpu_node.shape[0] else -1


def _clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def take_snapshot(
    roots: LiveRoots,
    topology: Topology,
    *,
    pids: Iterable[int] | None = None,
    page_size: int | None = None,
    clk_tck: int | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    exclude: Iterable[int] = (),
) -> NumaSnapshot:
    """Read everything once. ``pids=None``: every process with an address space (kernel threads, whose
    ``numa_maps`` is empty, are left out); ``exclude`` drops pids (the caller itself)."""
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    tick_ns = 1_000_000_000 // (clk_tck or _clock_ticks())
    excluded = set(exclude)
    wanted = None if pids is None else set(pids)
    nr_cpus = topology.nr_cpus
    running = np.zeros(nr_cpus, dtype=np.int64)
    processes: dict[int, ProcessSample] = {}
    unreadable: dict[int, str] = {}
    gone = 0
    for pid in list_pids(roots):
        threads: list[ThreadSample] = []
        try:
            stats = [read_task_stat(roots, pid, tid) for tid in thread_ids(roots, pid)]
        except ProcessGoneError:
            gone += 1
            continue
        except AccessDeniedError as e:
            unreadable[pid] = str(e)
            continue
        for st in stats:
            if st.state == "R" and 0 <= st.processor < nr_cpus:
                running[st.processor] += 1
        if pid in excluded or (wanted is not None and pid not in wanted) or not stats or stats[0].is_kthread:
            continue
        try:
            vmas = read_numa_maps(roots, pid)
            if not vmas:
                continue  # no address space (a zombie, or a kernel thread without PF_KTHREAD in view)
            maps = read_maps(roots, pid)
            uids: tuple[int, ...] = ()
            for st in stats:
                status = read_status(roots, pid, st.tid)
                uids = uids or status.uids
                runtime_ns = st.runtime_ticks * tick_ns
                threads.append(ThreadSample(st.tid, st.comm, st.state, st.processor, runtime_ns, _allowed(status)))
        except ProcessGoneError:
            gone += 1
            continue
        except AccessDeniedError as e:
            unreadable[pid] = str(e)
            continue
        node_pages = node_pages_of(vmas, topology.nr_nodes, page_size, source=str(roots.proc(pid, "numa_maps")))
        node_pages.flags.writeable = False
        comm = next((t.comm for t in threads if t.tid == pid), threads[0].comm)
        processes[pid] = ProcessSample(pid, comm, uids, tuple(threads), vmas, maps, node_pages)
    if wanted is not None:
        for pid in sorted(wanted - set(processes) - set(unreadable)):
            unreadable[pid] = f"pid {pid}: no such process with an address space"
    total, free = read_node_memory(roots, range(topology.nr_nodes))
    running.flags.writeable = False
    return NumaSnapshot(
        time_ns=clock(),
        topology=topology,
        page_size=page_size,
        processes=processes,
        node_total_bytes=total,
        node_free_bytes=free,
        cpu_nr_running=running,
        counters=read_numa_counters(roots),
        unreadable=unreadable,
        gone=gone,
    )


def read_node_memory(roots: LiveRoots, nodes: Iterable[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(MemTotal, MemFree)`` in bytes for each node, from ``/sys/devices/system/node/nodeN/meminfo``."""
    total, free = [], []
    for n in nodes:
        path = roots.sys("devices", "system", "node", f"node{n}", "meminfo")
        info = parse_node_meminfo(read_text(path, roots), source=str(path))
        for key in ("MemTotal", "MemFree"):
            if key not in info:
                raise KernelError(errno.EINVAL, f"{path} has no {key} line")
        total.append(info["MemTotal"])
        free.append(info["MemFree"])
    return tuple(total), tuple(free)


def _allowed(status: ProcStatus) -> frozenset[int]:
    """A thread's affinity: ``Cpus_allowed_list`` is required here (every kernel since 2.6.26 prints it)."""
    if status.cpus_allowed is None:
        raise KernelError(errno.EINVAL, f"{status.source} has no Cpus_allowed_list line")
    return status.cpus_allowed


def node_pages_of(
    vmas: Iterable[NumaMapsVma], nr_nodes: int, page_size: int, *, source: str = "numa_maps"
) -> IntArray:
    """Resident pages (of ``page_size``) per node over ``vmas`` (``numa_maps`` ``N<node>=`` totals).

    A node the machine does not have (``nr_nodes``) is a :class:`KernelFileError` naming ``source`` and the
    node, never pages silently left out; so is a total past :data:`MAX_VMA_BYTES` (128 PiB, more than any node
    holds), which would not fit the array's 64 bits either.
    """
    totals = [0] * nr_nodes
    for vma in vmas:
        for node, nbytes in vma.node_bytes().items():
            if not 0 <= node < nr_nodes:
                raise KernelFileError(
                    source,
                    f"VMA {vma.start:#x} has pages on node {node} (N{node}=), but the machine has nodes "
                    f"0..{nr_nodes - 1}",
                )
            totals[node] += nbytes
    for node, nbytes in enumerate(totals):
        if nbytes > MAX_VMA_BYTES:
            raise KernelFileError(source, f"N{node}= pages add up to more than 128 PiB")
    return np.array([nbytes // page_size for nbytes in totals], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class ProcessLocality:
    """What ``numa top`` shows for a process."""

    pid: int
    comm: str
    threads: int
    thread_nodes: tuple[int, ...]
    node_pages: tuple[int, ...]
    total_pages: int
    remote_pages: int

    @property
    def remote_share(self) -> float:
        return self.remote_pages / self.total_pages if self.total_pages else 0.0

    def to_dict(self, page_size: int) -> dict[str, object]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "threads": self.threads,
            "thread_nodes": list(self.thread_nodes),
            "node_pages": list(self.node_pages),
            "total_pages": self.total_pages,
            "remote_pages": self.remote_pages,
            "remote_bytes": self.remote_pages * page_size,
            "remote_share": round(self.remote_share, 6),
        }


def locality(snapshot: NumaSnapshot) -> list[ProcessLocality]:
    """Every process of the snapshot, most remote first (share, then remote pages, then pid)."""
    out = []
    for p in snapshot.processes.values():
        nodes = sorted({n for n in (snapshot.thread_node(t) for t in p.threads) if n >= 0})
        local = int(p.node_pages[nodes].sum()) if nodes else 0
        out.append(
            ProcessLocality(
                pid=p.pid,
                comm=p.comm,
                threads=len(p.threads),
                thread_nodes=tuple(nodes),
                node_pages=tuple(int(x) for x in p.node_pages),
                total_pages=p.total_pages,
                remote_pages=p.total_pages - local,
            )
        )
    out.sort(key=lambda r: (-r.remote_share, -r.remote_pages, r.pid))
    return out
