"""Automatic NUMA balancing in the simulated kernel: PTE scanning, hinting faults, and applying a policy.

This is the foundation every 2012 design shares (numa.md §2), driven by whichever policy is attached:

**Scanning.** Either ``task_numa_work()`` (kernel/sched/fair.c, 3.8 and 3.13): each mm has
``numa_next_scan``; when it passes, one running thread of the mm (the kernel's cmpxchg lets exactly one
win) marks the next ``scan_size`` MB of the address space ``pte_numa``, charges itself the PTE updates,
sets ``numa_next_scan = now + its numa_scan_period``, and on wrapping increments ``numa_scan_seq``, which
makes every thread run ``task_numa_placement()``. Or AutoNUMA's ``knuma_scand`` thread: every
``scan_sleep_millisecs`` it marks ``pages_to_scan`` of the next mm in turn, and after a full pass over all
mms sleeps ``scan_sleep_pass_millisecs``. numa/core marks the whole address space each scan.

**Hinting faults.** A marked page faults when a task next touches it. Tasks stream over their buffers, so
for every marked page the mechanism computes, for each running task whose current sweep covers it, when
that task's cursor reaches the page (``(page offset - cursor) mod buffer size / rate``), and the earliest
wins: that task takes the fault on its CPU. All of this is vectorised over tasks x pages. Faults are
handed to the policy as one batch per scan (``FaultBatch``), at the time by which half of them have
happened (never later than the next scan), and each costs its task ``hint_fault_ns`` of system time.
After the policy has seen a batch, each page remembers the fault (``last_nid``, ``last_pid``, ``last_cpu``:
``page_nid_xchg_last()`` / ``page_cpupid_xchg_last()``).

**Actions.** Page migrations go through :class:`~memsched.sim.mm.migrate.Migrator` (rate limit,
``migrate_balanced_pgdat()``, copy cost charged to the faulting task, or to a node's migration thread for
AutoNUMA's asynchronous queues). Task moves and swaps go through the scheduler with
``task_migrate_ns`` each. The policy's ``lb_score`` becomes the load balancer's preference.

**Counters**: ``numa_pte_updates`` (base pages marked), ``numa_huge_pte_updates`` (PMDs, under THP),
``numa_hint_faults``, ``numa_hint_faults_local``, plus the migration counters.

Deviations from the kernel: faults are batched per scan rather than handled one at a time; a marked page
that no running task's current sweep covers stays marked until a later scan finds it covered; kernel
threads' CPU time (``knuma_scand``, ``knuma_migratedN``) is taken from the task running on the CPU they use
and counted in system time; THP pages migrate whole (3.8 behaviour) for every policy, including those of
the 2012 patch sets that split huge pages instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.policies.numa.actions import (
    ACTION_TYPES,
    Action,
    MigrateMmNodes,
    MigratePages,
    MigrateTask,
    SetAffinity,
    SetPreferredNode,
    SetScanPeriod,
    SwapTasks,
)
from memsched.policies.numa.base import KnumaScand, NumaPolicy, TaskWorkScan, overridden_hooks
from memsched.policies.numa.views import FaultBatch, readonly
from memsched.sim.engine import Prio
from memsched.sim.machine import Machine
from memsched.sim.mm.migrate import BASE_PAGE, MigrationCosts, Migrator
from memsched.sim.mm.mm import MmStruct
from memsched.sim.task import Task, TaskState
from memsched.units import MIB, NSEC_PER_MSEC, NSEC_PER_SEC

__all__ = ["NumaBalancing", "NumaCosts", "attach", "metrics"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class NumaCosts:
    """CPU costs of the hinting-fault machinery (estimates, numa.md §6.4 and §5.2; not fitted)."""

    pte_update_ns: int = knob(50, "change_prot_numa() per PTE or PMD marked (estimate)", min=0)
    scan_fixed_ns: int = knob(10_000, "task_numa_work() entry, mmap_sem and VMA walk per scan (estimate)", min=0)
    hint_fault_ns: int = knob(2_000, "one NUMA hinting fault: trap, do_numa_page, task_numa_fault (estimate)", min=0)
    migration: MigrationCosts = field(default_factory=MigrationCosts)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(eq=False)
class _MmState:
    mm: MmStruct
    next_scan: int
    next_reset: int
    offset: int = 0
    seq: int = 0
    marked: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    last_nid: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_pid: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_cpu: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    event: Any = None

    def ensure(self) -> None:
        n = self.mm.nr_pages
        if self.marked.shape[0] < n:
            grow = n - self.marked.shape[0]
            self.marked = np.concatenate([self.marked, np.zeros(grow, dtype=bool)])
            self.last_nid = np.concatenate([self.last_nid, np.full(grow, -1, dtype=np.int64)])
            self.last_pid = np.concatenate([self.last_pid, np.full(grow, -1, dtype=np.int64)])
            self.last_cpu = np.concatenate([self.last_cpu, np.full(grow, -1, dtype=np.int64)])


class SimContext:
    """The :class:`~memsched.policies.numa.views.PolicyContext` of the simulated machine."""

    def __init__(self, numa: NumaBalancing) -> None:
        self._numa = numa
        self._m = numa.machine
        m = self._m
        self._cpu_node = readonly(m.cpu_node)
        self._distance = readonly(m.topology.distance)
        self._node_cpus = tuple(n.cpus for n in m.topology.nodes)

    @property
    def now_ns(self) -> int:
        return self._m.engine.now

    @property
    def nr_nodes(self) -> int:
        return self._m.nr_nodes

    @property
    def nr_cpus(self) -> int:
        return self._m.nr_cpus

    @property
    def cpu_node(self) -> IntArray:
        return self._cpu_node  # type: ignore[return-value]

    @property
    def distance(self) -> IntArray:
        return self._distance  # type: ignore[return-value]

    @property
    def node_cpus(self) -> tuple[tuple[int, ...], ...]:
        return self._node_cpus

    @property
    def cpu_nr_running(self) -> IntArray:
        arr = np.array([len(q) for q in self._m.rq], dtype=np.int64)
        arr.flags.writeable = False
        return arr

    @property
    def node_free_pages(self) -> IntArray:
        return readonly(self._m.page_alloc.free_pages)  # type: ignore[return-value]

    @property
    def node_total_pages(self) -> IntArray:
        return readonly(self._m.page_alloc.total_pages)  # type: ignore[return-value]

    @property
    def page_size(self) -> int:
        return self._m.page_size

    def rng(self, name: str) -> np.random.Generator:
        return self._m.engine.rng("policy." + name)

    def tasks(self) -> IntArray:
        arr = np.array([t.id for t in self._m.tasks if t.state is not TaskState.EXITED], dtype=np.int64)
        arr.flags.writeable = False
        return arr

    def task_tgid(self, task: int) -> int:
        return self._m.tasks[task].tgid

    def task_mm(self, task: int) -> int:
        return self._m.tasks[task].mm.id

    def task_cpu(self, task: int) -> int:
        t = self._m.tasks[task]
        return t.cpu if t.state is TaskState.RUNNABLE else -1

    def task_runnable(self, task: int) -> bool:
        return self._m.tasks[task].state is TaskState.RUNNABLE

    def task_allowed(self, task: int) -> npt.NDArray[np.bool_]:
        return readonly(self._m.tasks[task].affinity)  # type: ignore[return-value]

    def task_preferred_node(self, task: int) -> int:
        return int(self._numa.preferred.get(task, -1))

    def task_scan_period_ns(self, task: int) -> int:
        return self._numa.scan_period(task)

    def task_runtime_ns(self, task: int) -> int:
        user, sys = self._m.task_times(self._m.tasks[task])
        return int(user + sys)

    def cpu_tasks(self, cpu: int) -> tuple[int, ...]:
        return tuple(self._m.rq[cpu])

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        return tuple(t.id for t in self._m.tasks if t.mm.id == mm and t.state is not TaskState.EXITED)

    def mm_node_pages(self, mm: int) -> IntArray:
        return readonly(self._m.mms[mm].node_pages)  # type: ignore[return-value]

    def mm_scan_seq(self, mm: int) -> int:
        st = self._numa.mm_state.get(mm)
        return st.seq if st else 0


class NumaBalancing:
    """The NUMA balancing mechanism of one machine, driving one policy."""

    def __init__(self, machine: Machine, policy: NumaPolicy, costs: NumaCosts | None = None) -> None:
        self.machine = machine
        self.policy = policy
        self.costs = costs or NumaCosts()
        self.hooks = set(overridden_hooks(policy))
        self.ctx = SimContext(self)
        self.migrator = Migrator(machine, policy.migration, self.costs.migration)
        self.mm_state: dict[int, _MmState] = {}
        self.period: dict[int, int] = {}
        self.preferred: dict[int, int] = {}
        self.base_per_page = machine.page_size // BASE_PAGE
        self.stats = {
            "numa_task_migrations": 0,
            "numa_task_swaps": 0,
            "migrate_ratelimited_pages": 0,
            "kthread_ns": 0.0,
        }
        self.async_queue: list[list[tuple[int, IntArray]]] = [[] for _ in range(machine.nr_nodes)]
        self._tgid_cache = np.zeros(0, dtype=np.int64)
        self._async_events = [False] * machine.nr_nodes
        scan = policy.scan
        if isinstance(scan, TaskWorkScan):
            machine.task_created_hooks.append(self._task_created)
        elif isinstance(scan, KnumaScand):
            self._knuma_pos = (0, 0)
            machine.engine.at(scan.scan_sleep_ms * NSEC_PER_MSEC, Prio.TICK, self._knuma_scand_wake)
        if "on_tick" in self.hooks:
            if not policy.tick_interval_ns or policy.tick_interval_ns <= 0:
                raise ConfigError("tick_interval_ns", policy.tick_interval_ns, f"must be > 0 for {policy.id}'s on_tick")
            machine.engine.at(policy.tick_interval_ns, Prio.TICK, self._tick)
        if "lb_score" in self.hooks:
            machine.lb_score = self._lb_score

    # ---- per-task state ----------------------------------------------------------------------------------
    def scan_period(self, task: int) -> int:
        scan = self.policy.scan
        default = scan.scan_period_min_ms * NSEC_PER_MSEC if isinstance(scan, TaskWorkScan) else NSEC_PER_SEC
        return self.period.get(task, default)

    def _alive(self, mm: MmStruct) -> list[Task]:
        return [t for t in self.machine.tasks if t.mm is mm and t.state is not TaskState.EXITED]

    # ---- task_numa_work ----------------------------------------------------------------------------------
    def _task_created(self, task: Task) -> None:
        scan = self.policy.scan
        assert isinstance(scan, TaskWorkScan)
        mm = task.mm
        if mm.id not in self.mm_state:
            now = self.machine.engine.now
            st = _MmState(
                mm,
                next_scan=now + scan.scan_delay_ms * NSEC_PER_MSEC,
                next_reset=now + scan.scan_period_reset_ms * NSEC_PER_MSEC,
            )
            self.mm_state[mm.id] = st
            st.event = self.machine.engine.at(st.next_scan, Prio.TICK, self._task_numa_work, st)

    def _scan_bounds(self, st: _MmState, task: Task) -> tuple[int, int]:
        """``task_scan_min()`` / ``task_scan_max()``: 3.13 scales the bounds by the number of scan windows."""
        scan = self.policy.scan
        assert isinstance(scan, TaskWorkScan)
        lo, hi = scan.scan_period_min_ms, scan.scan_period_max_ms
        if scan.scale_by_rss:
            rss_mb = st.mm.rss_pages * self.machine.page_size // MIB
            windows = max(1, -(-rss_mb // scan.scan_size_mb))
            floor = 1000 // (2560 // scan.scan_size_mb)  # MAX_SCAN_WINDOW = 2560 MB/s
            lo = max(floor, scan.scan_period_min_ms // windows)
            hi = max(lo, scan.scan_period_max_ms // windows)
        return lo * NSEC_PER_MSEC, hi * NSEC_PER_MSEC

    def _task_numa_work(self, st: _MmState) -> None:
        machine = self.machine
        scan = self.policy.scan
        assert isinstance(scan, TaskWorkScan)
        threads = [t for t in self._alive(st.mm) if t.state is TaskState.RUNNABLE and t.cpu >= 0]
        if not self._alive(st.mm):
            return
        now = machine.engine.now
        if not threads:  # nobody ticks: try again after a minimum period
            st.event = machine.engine.after(
                scan.scan_period_min_ms * NSEC_PER_MSEC, Prio.TICK, self._task_numa_work, st
            )
            return
        rng = machine.engine.rng("numa.scanner")
        task = threads[int(rng.integers(len(threads)))]
        if scan.scan_period_reset_ms and now >= st.next_reset:
            st.next_reset = now + scan.scan_period_reset_ms * NSEC_PER_MSEC
            self.period[task.id] = scan.scan_period_min_ms * NSEC_PER_MSEC
        st.ensure()
        npages = st.mm.nr_pages
        if scan.whole_address_space:
            lo, hi, wrapped = 0, npages, True
        else:
            window = max(1, scan.scan_size_mb * MIB // machine.page_size)
            lo = st.offset
            hi = min(npages, lo + window)
            wrapped = hi >= npages
        updated = self._mark(st, lo, hi)
        machine.charge_system(task, self.costs.scan_fixed_ns + self.costs.pte_update_ns * updated)
        st.offset = 0 if wrapped else hi
        lo_p, hi_p = self._scan_bounds(st, task)
        period = min(max(self.scan_period(task.id), lo_p), hi_p)
        self.period[task.id] = period
        st.next_scan = now + period
        st.event = machine.engine.at(st.next_scan, Prio.TICK, self._task_numa_work, st)
        self._generate_faults(st, lo, hi, horizon=period)
        if wrapped:
            self._scan_pass_done(st)

    def _mark(self, st: _MmState, lo: int, hi: int) -> int:
        """``change_prot_numa()`` over pages [lo, hi): returns the number of PTEs/PMDs newly marked."""
        present = st.mm.page_node[lo:hi] >= 0
        skip = self.migrator.ratelimited_nodes()
        if skip.any():
            present &= ~skip[np.maximum(st.mm.page_node[lo:hi], 0)]
        new = present & ~st.marked[lo:hi]
        n = int(new.sum())
        st.marked[lo:hi] |= present
        vs = self.machine.vmstat
        vs.inc("numa_pte_updates", n * self.base_per_page)
        if self.base_per_page > 1:
            vs.inc("numa_huge_pte_updates", n)
        return n

    def _scan_pass_done(self, st: _MmState) -> None:
        """``reset_ptenuma_scan()``: a new ``numa_scan_seq``; each thread runs ``task_numa_placement()``."""
        st.seq += 1
        if "on_placement" in self.hooks:
            for t in self._alive(st.mm):
                self._apply(self.policy.on_placement(self.ctx, t.id))

    # ---- knuma_scand -------------------------------------------------------------------------------------
    def _knuma_scand_wake(self) -> None:
        machine = self.machine
        scan = self.policy.scan
        assert isinstance(scan, KnumaScand)
        mms = [mm for mm in machine.mms if mm.users > 0]
        if not mms and not any(t.state is not TaskState.EXITED for t in machine.tasks):
            return
        idx, offset = self._knuma_pos
        budget = max(1, scan.pages_to_scan_mb * MIB // machine.page_size)
        sleep = scan.scan_sleep_ms
        live_ids = [mm.id for mm in mms]
        if idx >= len(machine.mms):
            idx, offset = 0, 0
        marked = 0
        while budget > 0 and live_ids:
            if idx >= len(machine.mms):  # the pass over all mms is complete
                idx, offset = 0, 0
                sleep = scan.scan_sleep_pass_ms
                break
            mm = machine.mms[idx]
            if mm.users == 0:
                idx, offset = idx + 1, 0
                continue
            st = self.mm_state.get(mm.id)
            if st is None:
                st = _MmState(mm, next_scan=0, next_reset=0)
                self.mm_state[mm.id] = st
            st.ensure()
            hi = min(mm.nr_pages, offset + budget)
            marked += self._mark(st, offset, hi)
            self._generate_faults(st, offset, hi, horizon=scan.scan_sleep_pass_ms * NSEC_PER_MSEC)
            budget -= hi - offset
            offset = hi
            if offset >= mm.nr_pages:
                st.seq += 1
                if "on_scan_pass" in self.hooks:
                    self._apply(self.policy.on_scan_pass(self.ctx, mm.id, tuple(int(x) for x in mm.node_pages)))
                idx, offset = idx + 1, 0
        self._knuma_pos = (idx, offset)
        self._kthread_work(None, self.costs.scan_fixed_ns + self.costs.pte_update_ns * marked)
        machine.engine.after(sleep * NSEC_PER_MSEC, Prio.TICK, self._knuma_scand_wake)

    # ---- hinting faults ----------------------------------------------------------------------------------
    def _generate_faults(self, st: _MmState, lo: int, hi: int, *, horizon: int) -> None:
        """Which task touches each marked page of [lo, hi) first, and when; then hand them to the policy."""
        machine = self.machine
        pages = np.flatnonzero(st.marked[lo:hi]) + lo
        if pages.size == 0:
            return
        psz = machine.page_size
        sweeps = []
        for t in self._alive(st.mm):
            for region, cursor, rate in machine.sweep_state(t):
                p0, p1 = region.page_span(psz)
                if p1 <= lo or p0 >= hi or rate <= 0:
                    continue
                sweeps.append((t.id, region.start, region.nbytes, p0, p1, cursor, rate))
        if not sweeps:
            return
        cols = np.array(sweeps, dtype=np.float64)  # tid, region start, nbytes, p0, p1, cursor, rate
        tid = cols[:, 0].astype(np.int64)
        rstart, nbytes, cursors, speed = cols[:, 1:2], cols[:, 2:3], cols[:, 5:6], cols[:, 6:7]
        starts = (pages * psz).astype(np.float64)
        offset_in = np.maximum(starts[None, :], rstart) - rstart
        when = ((offset_in - cursors) % nbytes) / speed
        cover = (pages[None, :] >= cols[:, 3:4]) & (pages[None, :] < cols[:, 4:5])
        when[~cover] = np.inf
        first = np.argmin(when, axis=0)
        t_first = when[first, np.arange(pages.size)]
        hit = np.isfinite(t_first)
        if not hit.any():
            return
        pages, first, t_first = pages[hit], first[hit], t_first[hit]
        order = np.argsort(t_first, kind="stable")
        pages, first, t_first = pages[order], first[order], t_first[order]
        task_ids = tid[first]
        delay = int(min(float(np.median(t_first)), float(horizon)))
        machine.engine.after(max(delay, 0), Prio.WAKEUP, self._deliver_faults, st, pages, task_ids, t_first)

    def _deliver_faults(
        self, st: _MmState, pages: IntArray, task_ids: IntArray, offsets: npt.NDArray[np.float64]
    ) -> None:
        machine = self.machine
        # Faults only for pages still marked, by tasks still running on a CPU.
        cpus = machine.task_cpus(task_ids)
        ok = (cpus >= 0) & st.marked[pages] & (st.mm.page_node[pages] >= 0)
        if not ok.any():
            return
        pages, task_ids, offsets, cpus = pages[ok], task_ids[ok], offsets[ok], cpus[ok]
        st.marked[pages] = False
        cpu_node = machine.cpu_node[cpus]
        page_node = st.mm.page_node[pages].astype(np.int64)
        now = machine.engine.now
        batch = FaultBatch(
            mm=st.mm.id,
            time_ns=_ro(now + offsets.astype(np.int64) - int(np.median(offsets))),
            task=_ro(task_ids),
            tgid=_ro(self._tgids()[task_ids]),
            cpu=_ro(cpus),
            cpu_node=_ro(cpu_node),
            page=_ro(pages),
            page_node=_ro(page_node),
            last_nid=_ro(st.last_nid[pages].copy()),
            last_pid=_ro(st.last_pid[pages].copy()),
            last_cpu=_ro(st.last_cpu[pages].copy()),
            base_pages=self.base_per_page,
        )
        vs = machine.vmstat
        vs.inc("numa_hint_faults", batch.size)
        vs.inc("numa_hint_faults_local", int((cpu_node == page_node).sum()))
        per_task = np.bincount(task_ids, minlength=len(machine.tasks))
        for tid in np.flatnonzero(per_task):
            machine.charge_system(machine.tasks[int(tid)], float(per_task[tid]) * self.costs.hint_fault_ns)
        before = st.mm.page_node[pages].copy()
        if "on_faults" in self.hooks:
            self._apply(self.policy.on_faults(self.ctx, batch))
        if "after_faults" in self.hooks:
            migrated = st.mm.page_node[pages] != before
            migrated.flags.writeable = False
            self._apply(self.policy.after_faults(self.ctx, batch, migrated))
        st.last_nid[pages] = cpu_node
        st.last_pid[pages] = task_ids
        st.last_cpu[pages] = cpus

    def _tgids(self) -> IntArray:
        if self._tgid_cache.shape[0] != len(self.machine.tasks):
            self._tgid_cache = np.array([t.tgid for t in self.machine.tasks], dtype=np.int64)
        return self._tgid_cache

    # ---- applying actions --------------------------------------------------------------------------------
    def _apply(self, actions: Any) -> None:
        if actions is None:
            return
        for action in actions:
            if not isinstance(action, ACTION_TYPES):
                raise ConfigError(
                    "action", action, f"must be an action of memsched.policies.numa.actions ({self.policy.id})"
                )
            self._apply_one(action)

    def _apply_one(self, action: Action) -> None:
        machine = self.machine
        if isinstance(action, MigratePages):
            self._migrate_pages(action)
        elif isinstance(action, MigrateMmNodes):
            self._migrate_mm_nodes(action)
        elif isinstance(action, MigrateTask):
            task = machine.tasks[action.task]
            if (
                task.state is TaskState.RUNNABLE
                and task.cpu >= 0
                and task.cpu != action.dst_cpu
                and task.affinity[action.dst_cpu]
            ):
                machine.move_task(task, action.dst_cpu)
                machine.charge_system(task, self.costs.migration.task_migrate_ns)
                self.stats["numa_task_migrations"] += 1
        elif isinstance(action, SwapTasks):
            a, b = machine.tasks[action.a], machine.tasks[action.b]
            if (
                a.state is TaskState.RUNNABLE
                and b.state is TaskState.RUNNABLE
                and a.cpu >= 0
                and b.cpu >= 0
                and a.cpu != b.cpu
                and a.affinity[b.cpu]
                and b.affinity[a.cpu]
            ):
                ca, cb = a.cpu, b.cpu
                machine.move_task(a, cb)
                machine.move_task(b, ca)
                machine.charge_system(a, self.costs.migration.task_migrate_ns)
                machine.charge_system(b, self.costs.migration.task_migrate_ns)
                self.stats["numa_task_swaps"] += 1
        elif isinstance(action, SetPreferredNode):
            self.preferred[action.task] = action.node
        elif isinstance(action, SetScanPeriod):
            self.period[action.task] = action.period_ns
        elif isinstance(action, SetAffinity):
            task = machine.tasks[action.task]
            if task.state is not TaskState.EXITED:
                machine.set_affinity(task, action.cpus)

    def _migrate_pages(self, action: MigratePages) -> None:
        machine = self.machine
        if action.mode == "async":
            for node in np.unique(action.dst):
                sel = action.dst == node
                self.async_queue[int(node)].append((action.mm, action.pages[sel].copy()))
                if not self._async_events[int(node)]:
                    self._async_events[int(node)] = True
                    machine.engine.after(0, Prio.DEFERRED, self._knuma_migrated, int(node))
            return
        mm = machine.mms[action.mm]
        src_before = mm.page_node[action.pages].astype(np.int64)
        res = self.migrator.migrate(
            action.mm, action.pages.copy(), action.dst.copy(), apply_ratelimit=action.mode == "sync"
        )
        if res.moved.size == 0:
            return
        moved_src = _lookup(action.pages, src_before, res.moved)
        if action.mode == "sync":
            assert action.payer is not None
            payer = _lookup(action.pages, action.payer, res.moved)
            for tid in np.unique(payer):
                sel = payer == tid
                task = machine.tasks[int(tid)]
                cpu_node = int(machine.cpu_node[task.cpu]) if task.cpu >= 0 else int(res.moved_dst[sel][0])
                cost = float(self.migrator.copy_ns(cpu_node, moved_src[sel], res.moved_dst[sel]).sum())
                machine.charge_system(task, cost)
        else:  # a daemon's migrate_pages(2): its own time, on a CPU of the source node
            node = int(moved_src[0])
            self._kthread_work(node, float(self.migrator.copy_ns(node, moved_src, res.moved_dst).sum()))

    def _migrate_mm_nodes(self, action: MigrateMmNodes) -> None:
        """``migrate_pages(2)``: the i-th source node's pages go to the (i mod n)-th destination node."""
        mm = self.machine.mms[action.mm]
        if mm.users == 0:
            return
        to = np.asarray(action.to_nodes, dtype=np.int64)
        pages_l, dst_l = [], []
        for i, src in enumerate(action.from_nodes):
            if src in action.to_nodes:
                continue
            pages = np.flatnonzero(mm.page_node == src)
            if pages.size:
                pages_l.append(pages)
                dst_l.append(np.full(pages.size, to[i % to.size], dtype=np.int64))
        if pages_l:
            self._migrate_pages(
                MigratePages(action.mm, np.concatenate(pages_l), np.concatenate(dst_l), mode="syscall")
            )

    def _knuma_migrated(self, node: int) -> None:
        """``knuma_migratedN``: migrate up to ``pages_to_migrate`` from node N's queue, then sleep."""
        machine = self.machine
        budget = self.policy.migration.ratelimit_mb * MIB // machine.page_size
        queue = self.async_queue[node]
        done = 0
        while queue and done < budget:
            mm_id, pages = queue[0]
            take = pages[: budget - done]
            rest = pages[budget - done :]
            if rest.size:
                queue[0] = (mm_id, rest)
            else:
                queue.pop(0)
            if machine.mms[mm_id].users == 0:
                continue
            src = machine.mms[mm_id].page_node[take].astype(np.int64)
            res = self.migrator.migrate(
                mm_id, take, np.full(take.shape[0], node, dtype=np.int64), apply_ratelimit=False
            )
            done += take.shape[0]
            if res.moved.size:
                moved_src = _lookup(take, src, res.moved)
                self._kthread_work(node, float(self.migrator.copy_ns(node, moved_src, res.moved_dst).sum()))
        if queue:
            machine.engine.after(
                self.policy.migration.migrate_interval_ms * NSEC_PER_MSEC, Prio.TICK, self._knuma_migrated, node
            )
        else:
            self._async_events[node] = False

    def _kthread_work(self, node: int | None, ns: float) -> None:
        """A kernel thread's CPU time: taken from the task running on the CPU it uses (an idle one if any)."""
        if ns <= 0:
            return
        machine = self.machine
        cpus = range(machine.nr_cpus) if node is None else machine.topology.node_cpus(node)
        idle = [c for c in cpus if not machine.rq[c]]
        self.stats["kthread_ns"] += ns
        if idle:
            return
        victim = machine.running_cpu_task(min(cpus))
        if victim is not None:
            machine.charge_system(victim, ns)

    # ---- ticks and the load balancer ---------------------------------------------------------------------
    def _tick(self) -> None:
        machine = self.machine
        if not any(t.state is not TaskState.EXITED for t in machine.tasks):
            return
        self._apply(self.policy.on_tick(self.ctx))
        interval = self.policy.tick_interval_ns
        assert interval is not None
        machine.engine.after(interval, Prio.TICK, self._tick)

    def _lb_score(self, task: Task, src: int, dst: int, dst_idle: bool) -> float | None:
        return self.policy.lb_score(self.ctx, task.id, src, dst, dst_idle)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (round(v / NSEC_PER_SEC, 6) if k == "kthread_ns" else v) for k, v in self.stats.items()
        }
        out["kthread_s"] = out.pop("kthread_ns")
        out["migrate_ratelimited_pages"] = self.migrator.ratelimited_pages * self.base_per_page
        out.update(self.policy.metrics())
        return out


def _ro(arr: npt.NDArray[Any]) -> IntArray:
    out = np.asarray(arr, dtype=np.int64)
    out.flags.writeable = False
    return out


def _lookup(keys: IntArray, values: npt.NDArray[Any], wanted: IntArray) -> npt.NDArray[Any]:
    """``values[i]`` for each ``wanted`` key (keys unique)."""
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], wanted)
    return np.asarray(values[order[pos]])


def attach(machine: Machine, policy: Any) -> NumaBalancing | None:
    """Attach ``policy`` to ``machine`` before any task exists; ``None`` for a policy with no mechanism."""
    if not isinstance(policy, NumaPolicy):
        raise ConfigError("policy", policy, "must be a memsched.policies.numa.base.NumaPolicy")
    if policy.scan is None and not overridden_hooks(policy):
        machine.numa = None
        return None
    numa = NumaBalancing(machine, policy)
    machine.numa = numa
    return numa


def metrics(machine: Machine) -> dict[str, Any]:
    numa = getattr(machine, "numa", None)
    return numa.metrics() if numa is not None else {}
