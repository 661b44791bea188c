"""The :class:`~memsched.policies.numa.views.PolicyContext` of the running machine.

Ids. A policy keys its state by task and mm id and grows arrays up to the largest id it sees, so the live
context hands out small dense ids, not kernel tids (which go up to ``pid_max``, 4194304): ``task`` ids number
the threads of the balanced processes in the order the balancer first saw them, ``mm`` ids their processes;
both stay stable for the life of the balancer. ``task_tgid`` is the task id of the process's main thread.

What each view is built from:

================== ==========================================================================================
view               source
================== ==========================================================================================
topology views     ``Topology.from_sysfs``: ``cpu_node``, ``distance`` (SLIT), ``node_cpus``
node pages         ``nodeN/meminfo`` ``MemTotal`` / ``MemFree`` in pages of ``page_size`` (the base page)
``tasks``          threads of the balanced processes (``/proc/<pid>/task``)
``task_cpu``       ``stat`` field 39 (last CPU) if the thread used CPU time since the previous sample or is
                   in state ``R`` now, else -1 (the sim's "queued on a CPU"); at the first sample only
                   state ``R`` counts
``task_runnable``  the same condition
``task_allowed``   ``Cpus_allowed_list`` of ``/proc/<pid>/task/<tid>/status``
``task_runtime_ns`` ``stat`` utime + stime, in clock ticks (``SC_CLK_TCK``) converted to ns
``cpu_nr_running`` threads in state ``R`` on each CPU, over all of ``/proc`` (see ``snapshot``)
``cpu_tasks``      the balanced threads counted by ``cpu_nr_running`` on that CPU (other processes' threads
                   are not tasks of the context)
``mm_node_pages``  ``numa_maps`` ``N<node>=`` totals, every VMA, in base pages
``mm_scan_seq``    completed passes of the balancer's page sampling over the process (``pages.py``)
``task_mempolicy`` the policy ``numa_maps`` prints for most of the process's anonymous memory (the main
                   thread's view: a VMA without a policy of its own shows the task's; other threads'
                   policies are not visible in ``/proc/<pid>/numa_maps``)
``mm_vma_mempolicies`` the VMAs whose ``numa_maps`` policy differs from that one (an ``mbind(2)``), by first
                   base page (start address / base page size)
preferred node,    kept by the balancer (``SetPreferredNode`` / ``SetScanPeriod`` actions); the kernel has no
scan period        interface for either from user space
``now_ns``         monotonic time since the balancer started
``rng``            ``numpy`` generators seeded from the balancer's seed and the stream's name
================== ==========================================================================================

Within one sample the context reflects the actions already applied (a moved task's CPU, a changed affinity,
pages moved between nodes), as the simulated kernel would, so later hooks of the same sample see them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.live.numa.snapshot import NumaSnapshot, ProcessSample, ThreadSample
from memsched.policies.numa.views import MempolicyView, parse_mpol_str

__all__ = ["IdTable", "LiveContext", "LiveTask"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class IdTable:
    """Dense ids for kernel ids (tids or pids), stable for the table's life."""

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._keys: list[int] = []

    def id(self, key: int) -> int:
        got = self._ids.get(key)
        if got is None:
            got = len(self._keys)
            self._ids[key] = got
            self._keys.append(key)
        return got

    def key(self, ident: int) -> int:
        return self._keys[ident]


@dataclass(eq=False)
class LiveTask:
    """One thread of a balanced process, as the context and the appliers see it."""

    id: int
    mm: int
    tgid: int
    process: ProcessSample
    thread: ThreadSample
    active: bool
    weight_ns: int
    cpu: int
    allowed: frozenset[int]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def tid(self) -> int:
        return self.thread.tid

    def describe(self) -> str:
        if self.tid == self.pid:
            return f"pid {self.pid} ({self.process.comm})"
        return f"tid {self.tid} ({self.thread.comm}, pid {self.pid})"


@dataclass(eq=False)
class BalancerState:
    """What the live mechanism remembers between samples."""

    seed: int
    start_ns: int
    tasks: IdTable = field(default_factory=IdTable)
    mms: IdTable = field(default_factory=IdTable)
    preferred: dict[int, int] = field(default_factory=dict)
    period: dict[int, int] = field(default_factory=dict)
    scan_offset: dict[int, int] = field(default_factory=dict)
    scan_seq: dict[int, int] = field(default_factory=dict)
    runtime: dict[int, int] = field(default_factory=dict)
    samples: int = 0
    default_period_ns: int = 1_000_000_000
    _rngs: dict[str, np.random.Generator] = field(default_factory=dict)

    def rng(self, name: str) -> np.random.Generator:
        gen = self._rngs.get(name)
        if gen is None:
            gen = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
            self._rngs[name] = gen
        return gen


class LiveContext:
    """A :class:`PolicyContext` over one :class:`NumaSnapshot` of the balanced processes."""

    def __init__(
        self, snapshot: NumaSnapshot, processes: Iterable[ProcessSample], state: BalancerState, tick_ns: int
    ) -> None:
        self.snapshot = snapshot
        self.state = state
        topo = snapshot.topology
        self._nr_cpus = topo.nr_cpus
        cpu_node = topo.cpu_node()
        cpu_node.flags.writeable = False
        self._cpu_node = cpu_node
        dist = np.array(topo.distance, dtype=np.int64)
        dist.flags.writeable = False
        self._distance = dist
        self._node_cpus = tuple(n.cpus for n in topo.nodes)
        page = snapshot.page_size
        self._node_total = _ro(np.array(snapshot.node_total_bytes, dtype=np.int64) // page)
        self._node_free = _ro(np.array(snapshot.node_free_bytes, dtype=np.int64) // page)
        self.tasks_by_id: dict[int, LiveTask] = {}
        self.mm_process: dict[int, ProcessSample] = {}
        self._mm_pages: dict[int, IntArray] = {}
        self._mm_tasks: dict[int, list[int]] = {}
        for p in sorted(processes, key=lambda p: p.pid):
            mm = state.mms.id(p.pid)
            tgid = state.tasks.id(p.pid)
            self.mm_process[mm] = p
            self._mm_pages[mm] = np.array(p.node_pages, dtype=np.int64)
            ids = []
            for t in p.threads:
                tid = state.tasks.id(t.tid)
                # CPU time since the previous sample; at the first sample nothing is known about the recent
                # past (the total since the thread started says nothing about now), and a thread that
                # appeared since the previous sample used all of its time in between.
                before = state.runtime.get(tid)
                ran = 0 if state.samples == 0 else t.runtime_ns - (before if before is not None else 0)
                weight = max(ran, 0) + (tick_ns if t.state == "R" else 0)
                active = weight > 0 and 0 <= t.cpu < self._nr_cpus
                self.tasks_by_id[tid] = LiveTask(
                    tid, mm, tgid, p, t, active, weight, t.cpu if active else -1, t.allowed
                )
                ids.append(tid)
            self._mm_tasks[mm] = ids
        self._task_ids = _ro(np.array(sorted(self.tasks_by_id), dtype=np.int64))

    # ---- updates from applied actions --------------------------------------------------------------------
    def moved_task(self, task: int, cpu: int) -> None:
        self.tasks_by_id[task].cpu = cpu

    def changed_affinity(self, task: int, cpus: frozenset[int]) -> None:
        self.tasks_by_id[task].allowed = cpus

    def moved_pages(self, mm: int, src: IntArray, dst: int) -> None:
        """Base pages moved to ``dst``; ``src`` holds the node each came from."""
        pages = self._mm_pages[mm]
        np.subtract.at(pages, src, 1)
        pages[dst] += src.shape[0]
        np.maximum(pages, 0, out=pages)

    def set_node_pages(self, mm: int, pages: IntArray) -> None:
        self._mm_pages[mm] = np.array(pages, dtype=np.int64)

    # ---- PolicyContext -----------------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return self.snapshot.time_ns - self.state.start_ns

    @property
    def nr_nodes(self) -> int:
        return self.snapshot.topology.nr_nodes

    @property
    def nr_cpus(self) -> int:
        return self._nr_cpus

    @property
    def cpu_node(self) -> IntArray:
        return self._cpu_node

    @property
    def distance(self) -> IntArray:
        return self._distance

    @property
    def node_cpus(self) -> tuple[tuple[int, ...], ...]:
        return self._node_cpus

    @property
    def cpu_nr_running(self) -> IntArray:
        return self.snapshot.cpu_nr_running

    @property
    def node_free_pages(self) -> IntArray:
        return self._node_free

    @property
    def node_total_pages(self) -> IntArray:
        return self._node_total

    @property
    def page_size(self) -> int:
        return self.snapshot.page_size

    def rng(self, name: str) -> np.random.Generator:
        return self.state.rng("policy." + name)

    def tasks(self) -> IntArray:
        return self._task_ids

    def task_tgid(self, task: int) -> int:
        return self.tasks_by_id[task].tgid

    def task_mm(self, task: int) -> int:
        return self.tasks_by_id[task].mm

    def task_cpu(self, task: int) -> int:
        return self.tasks_by_id[task].cpu

    def task_runnable(self, task: int) -> bool:
        return self.tasks_by_id[task].active

    def task_allowed(self, task: int) -> BoolArray:
        mask = np.zeros(self._nr_cpus, dtype=bool)
        cpus = [c for c in self.tasks_by_id[task].allowed if c < self._nr_cpus]
        mask[cpus] = True
        mask.flags.writeable = False
        return mask

    def task_preferred_node(self, task: int) -> int:
        return self.state.preferred.get(task, -1)

    def task_scan_period_ns(self, task: int) -> int:
        return self.state.period.get(task, self.state.default_period_ns)

    def task_runtime_ns(self, task: int) -> int:
        return self.tasks_by_id[task].thread.runtime_ns

    def cpu_tasks(self, cpu: int) -> tuple[int, ...]:
        return tuple(t.id for t in self.tasks_by_id.values() if t.cpu == cpu and t.thread.state == "R")

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        return tuple(self._mm_tasks.get(mm, ()))

    def mm_node_pages(self, mm: int) -> IntArray:
        return _ro(self._mm_pages[mm].copy())

    def mm_scan_seq(self, mm: int) -> int:
        return self.state.scan_seq.get(mm, 0)

    def _process_policy(self, mm: int) -> str:
        counts: dict[str, int] = {}
        for vma in self.mm_process[mm].vmas:
            if vma.anon or vma.heap or vma.stack:
                counts[vma.policy] = counts.get(vma.policy, 0) + max(vma.anon, 1)
        return max(sorted(counts), key=lambda p: counts[p]) if counts else "default"

    def task_mempolicy(self, task: int) -> MempolicyView:
        return parse_mpol_str(self._process_policy(self.tasks_by_id[task].mm))

    def mm_vma_mempolicies(self, mm: int) -> tuple[tuple[int, MempolicyView], ...]:
        common = self._process_policy(mm)
        page = self.snapshot.page_size
        return tuple(
            (vma.start // page, parse_mpol_str(vma.policy)) for vma in self.mm_process[mm].vmas if vma.policy != common
        )


def _ro(arr: IntArray) -> IntArray:
    arr.flags.writeable = False
    return arr
