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

The snapshot is not atomic: processes that exit while it is taken are left out and counted in ``gone``;
processes whose files this user may not read are listed in ``unreadable`` with the reason.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.errors import KernelError
from memsched.live.numa.readers import (
    MapsRange,
    NumaCounters,
    NumaMapsVma,
    ProcessGoneError,
    list_pids,
    read_maps,
    read_node_memory,
    read_numa_maps,
    read_thread_stat,
    read_thread_status,
    read_vmstat,
    thread_ids,
)
from memsched.live.roots import LiveRoots
from memsched.topology import Topology

__all__ = [
    "NumaSnapshot",
    "ProcessLocality",
    "ProcessSample",
    "ThreadSample",
    "locality",
    "node_pages_of",
    "take_snapshot",
]

IntArray = npt.NDArray[np.int64]


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
            stats = [read_thread_stat(pid, tid, roots) for tid in thread_ids(pid, roots)]
        except ProcessGoneError:
            gone += 1
            continue
        except KernelError as e:
            unreadable[pid] = str(e)
            continue
        for st in stats:
            if st.state == "R" and 0 <= st.processor < nr_cpus:
                running[st.processor] += 1
        if pid in excluded or (wanted is not None and pid not in wanted) or not stats or stats[0].is_kthread:
            continue
        try:
            vmas = read_numa_maps(pid, roots)
            if not vmas:
                continue  # no address space (a zombie, or a kernel thread without PF_KTHREAD in view)
            maps = read_maps(pid, roots)
            uids: tuple[int, ...] = ()
            for st in stats:
                status = read_thread_status(pid, st.tid, roots)
                uids = uids or status.uids
                threads.append(
                    ThreadSample(st.tid, st.comm, st.state, st.processor, st.runtime_ticks * tick_ns, status.allowed)
                )
        except ProcessGoneError:
            gone += 1
            continue
        except KernelError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                unreadable[pid] = str(e)
                continue
            raise
        node_pages = node_pages_of(vmas, topology.nr_nodes, page_size)
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
        counters=read_vmstat(roots),
        unreadable=unreadable,
        gone=gone,
    )


def node_pages_of(vmas: Iterable[NumaMapsVma], nr_nodes: int, page_size: int) -> IntArray:
    """Resident pages (of ``page_size``) per node over ``vmas`` (``numa_maps`` ``N<node>=`` totals)."""
    out = np.zeros(nr_nodes, dtype=np.int64)
    for vma in vmas:
        for node, nbytes in vma.node_bytes().items():
            if 0 <= node < nr_nodes:
                out[node] += nbytes // page_size
    return out


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
