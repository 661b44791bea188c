"""The simulated machine: topology, memory, tasks and scheduler wired to one engine, plus its "syscalls".

How time advances
-----------------
Between two events every running task progresses at a constant rate: memory phases at the rate
``memmodel`` gives for where the task runs and where its pages are, compute phases at the task's CPU share.
The loop in :meth:`Machine.run` asks which comes first, the next heap event or the next phase completion
(``remaining / rate``, rounded up to a whole nanosecond), advances every task to that instant with one
vectorised update, and handles it. Rates are recomputed only after something changed (a task started,
stopped or moved, pages moved) — never per access and never per page.

Per-task dynamic state lives in numpy arrays indexed by task id; :class:`~memsched.sim.task.Task` objects
hold identity and program position.

Kernel work done in a task's context (page faults now; NUMA scanning, hinting faults and migrations later)
is charged with :meth:`Machine.charge_system`: the task spends that much of its CPU share in the kernel
before its user work progresses again, and the time shows up as ``system_s``.

Kernel counterparts: the fork/exit/wakeup paths of kernel/fork.c, kernel/exit.c and kernel/sched/core.c;
``do_anonymous_page()`` / ``do_huge_pmd_anonymous_page()`` in mm/memory.c for first touch.

Deviations from the kernel: a first touch places a whole buffer at once, page by page split among the threads
that start touching it at the same instant (each page goes to one of them at random, the one "that got
there first"), instead of page by page as a sweep advances; page zeroing is charged as system time at the
core's local streaming rate but does not add memory traffic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError, SimulationError, UnsupportedError
from memsched.sim.engine import Engine, Prio
from memsched.sim.memmodel import MemModel
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.mm.page_alloc import PageAllocator
from memsched.sim.mm.vmstat import VmStat
from memsched.sim.sched.balance import Balancer
from memsched.sim.sched.fair import fluid_shares
from memsched.sim.sched.sched import nice_to_weight
from memsched.sim.task import (
    Call,
    Compute,
    Join,
    Phase,
    SetAffinity,
    SetMempolicy,
    Sleep,
    Spawn,
    Task,
    TaskState,
    ThreadSpec,
    Touch,
    Wait,
)
from memsched.topology import Topology
from memsched.units import NSEC_PER_SEC, PAGE_SIZE_4K, PAGE_SIZE_THP

__all__ = ["Machine", "MachineConfig", "MmHooks"]

_IDLE, _MEM, _COMPUTE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """Knobs of the simulated machine (not of a policy)."""

    #: Transparent huge pages: 2 MiB pages (on, as in the benchmarks of the debate) or 4 KiB.
    thp: bool = True
    #: Trap, entry/exit and bookkeeping of one page fault, excluding zeroing (numa.md §6.4: ~1 µs, estimate).
    page_fault_ns: int = 1_000
    #: Interval of the timeline samples (local access fraction, pages per node) in reports.
    sample_interval_ns: int = NSEC_PER_SEC
    #: Cost to a task of moving to another node: its cache contents (a few MB) refilled from memory there
    #: (estimate; the reason the load balancer resists cross-node moves). Charged as system time.
    cross_node_move_ns: int = 1_000_000

    def __post_init__(self) -> None:
        if self.page_fault_ns < 0:
            raise ConfigError("page_fault_ns", self.page_fault_ns, "must be >= 0")
        if self.cross_node_move_ns < 0:
            raise ConfigError("cross_node_move_ns", self.cross_node_move_ns, "must be >= 0")
        if self.sample_interval_ns <= 0:
            raise ConfigError("sample_interval_ns", self.sample_interval_ns, "must be > 0")

    @property
    def page_size(self) -> int:
        return PAGE_SIZE_THP if self.thp else PAGE_SIZE_4K


class MmHooks(Protocol):
    """What the memory-pressure subsystem (``sim/mm/reclaim.py``) needs to see of the machine's paths."""

    def before_fault(self, task: Task, pages: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]: ...

    def after_fault(self, task: Task, pages: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64]) -> None: ...

    def on_touch(self, task: Task, region: Region) -> None: ...

    def on_mm_exit(self, mm: MmStruct) -> None: ...

    def on_sched_change(self) -> None: ...

    def vmpressure_fd(self, config: Any) -> Any: ...


class Machine:
    """One simulated NUMA machine and everything running on it."""

    def __init__(self, topology: Topology, *, seed: int = 0, config: MachineConfig | None = None) -> None:
        self.topology = topology
        self.config = config or MachineConfig()
        self.engine = Engine(seed)
        self.page_size = self.config.page_size
        self.nr_nodes = topology.nr_nodes
        self.nr_cpus = topology.nr_cpus
        self.vmstat = VmStat(self.nr_nodes)
        self.page_alloc = PageAllocator(topology, self.page_size, self.vmstat)
        self.memmodel = MemModel(topology)
        self.balancer = Balancer(topology)
        self.cpu_node = topology.cpu_node()
        self.cpu_core = topology.cpu_core()
        self._sibling_cpus = [np.array(topology.siblings(c), dtype=np.int64) for c in range(self.nr_cpus)]
        self.tasks: list[Task] = []
        self.mms: list[MmStruct] = []
        self.rq: list[list[int]] = [[] for _ in range(self.nr_cpus)]
        #: Workload samplers: called at every timeline sample, their dicts stored under ``"workload"``.
        self.sample_hooks: list[Callable[[], dict[str, Any]]] = []
        #: NUMA policy's say in load balancing: ``(task, src, dst, dst_idle) -> None`` (veto) or a preference.
        self.lb_score: Callable[[Task, int, int, bool], float | None] | None = None
        #: Tasks moved to another node (by the load balancer or a NUMA policy).
        self.task_node_moves = 0
        #: The attached NUMA balancing mechanism (``sim/numa/balancing.py``), if any.
        self.numa: Any = None
        #: Called with every new task (the NUMA mechanism starts its per-mm scanners from here).
        self.task_created_hooks: list[Callable[[Task], None]] = []
        # Per-task dynamic state.
        cap = 16
        self._rem = np.zeros(cap)
        self._rate = np.zeros(cap)
        self._share = np.zeros(cap)
        self._debt = np.zeros(cap)
        self._user_ns = np.zeros(cap)
        self._sys_ns = np.zeros(cap)
        self._write = np.zeros(cap)
        self._cpb = np.zeros(cap)
        self._mlp_scale = np.ones(cap)
        self._kind = np.zeros(cap, dtype=np.int8)
        self._oncpu = np.full(cap, -1, dtype=np.int64)
        self._frac = np.zeros((cap, self.nr_nodes))
        self._frac_cache: dict[Region, tuple[int, npt.NDArray[np.float64]]] = {}
        self._region: list[Touch | None] = []  # each task's current Touch phase
        self._weight = np.zeros(cap)
        self._t_last = 0
        self._dirty = True
        self._balance_event = False
        self._first_touch: list[tuple[Task, Region]] = []
        self._first_touch_event = False
        # Accounting of memory traffic for the local-access fraction.
        self.bytes_total = 0.0
        self.bytes_local = 0.0
        self._interval_bytes = np.zeros(2)
        self.timeline: list[dict[str, Any]] = []
        self.controller_util = np.zeros(self.nr_nodes)
        self._sampling = False
        # ---- memory-pressure attach point ---------------------------------------------------------------
        #: Set by ``memsched.sim.mm.reclaim.attach()``: watermarks, reclaim, memcg, vmpressure and PSI see
        #: page faults, touches, exits and runqueue changes through it. ``None`` leaves every path as it was.
        self.mm_hooks: MmHooks | None = None

    # ---- setup "syscalls" ------------------------------------------------------------------------------
    def new_mm(self, name: str) -> MmStruct:
        mm = MmStruct(id=len(self.mms), name=name, page_size=self.page_size, nr_nodes=self.nr_nodes)
        self.mms.append(mm)
        return mm

    def spawn_process(
        self,
        name: str,
        program: tuple[Phase, ...],
        *,
        mm: MmStruct | None = None,
        parent_cpu: int = 0,
        nice: int = 0,
    ) -> Task:
        """``fork()`` + run ``program`` as the new process's main thread (placed by fork balancing)."""
        mm = mm if mm is not None else self.new_mm(name)
        task = self._new_task(name, program, mm, tgid=-1, nice=nice, parent=None)
        task.tgid = task.id
        self._place_new(task, parent_cpu)
        return task

    def _new_task(
        self, name: str, program: tuple[Phase, ...], mm: MmStruct, *, tgid: int, nice: int, parent: Task | None
    ) -> Task:
        tid = len(self.tasks)
        self._grow(tid + 1)
        affinity = parent.affinity.copy() if parent else np.ones(self.nr_cpus, dtype=bool)
        policy = parent.mempolicy if parent else Mempolicy()
        task = Task(
            id=tid,
            name=name,
            tgid=tgid,
            mm=mm,
            program=program,
            affinity=affinity,
            mempolicy=policy,
            weight=float(nice_to_weight(nice)),
            parent=parent.id if parent else None,
            start_ns=self.engine.now,
        )
        mm.users += 1
        self.tasks.append(task)
        self._region.append(None)
        self._weight[tid] = task.weight
        for hook in self.task_created_hooks:
            hook(task)
        return task

    def _grow(self, n: int) -> None:
        cap = self._rem.shape[0]
        if n <= cap:
            return
        new = max(n, 2 * cap)
        for name in ("_rem", "_rate", "_share", "_debt", "_user_ns", "_sys_ns", "_write", "_weight", "_cpb"):
            old = getattr(self, name)
            arr = np.zeros(new, dtype=old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)
        scale = np.ones(new)
        scale[:cap] = self._mlp_scale
        self._mlp_scale = scale
        kind = np.zeros(new, dtype=np.int8)
        kind[:cap] = self._kind
        self._kind = kind
        oncpu = np.full(new, -1, dtype=np.int64)
        oncpu[:cap] = self._oncpu
        self._oncpu = oncpu
        frac = np.zeros((new, self.nr_nodes))
        frac[:cap] = self._frac
        self._frac = frac

    def charge_system(self, task: Task, ns: float) -> None:
        """Kernel work of ``ns`` CPU nanoseconds in ``task``'s context (delays its user work).

        The task's user progress stalls until its CPU share has paid the work off. Its bandwidth share is
        not handed to others meanwhile (kernel stalls here are short against the intervals between
        placement changes), which keeps a fault or a scan from forcing two rate recomputations.
        """
        if ns <= 0:
            return
        self._sync()
        self._debt[task.id] += ns

    def sweep_state(self, task: Task) -> list[tuple[Region, float, float]]:
        """Where a running task is in its current ``Touch`` sweeps: (region, cursor in bytes, rate in B/ns).

        The cursor is the offset in the region the task writes next: a ``bzero`` loop walks its buffer in
        order, so after ``done`` bytes of a multi-pass phase it is at ``done mod nbytes``. A phase with a
        shared region walks both, each at its share of the rate. Empty when the task is not streaming.
        """
        phase = task.phase
        if not isinstance(phase, Touch) or self._oncpu[task.id] < 0:
            return []
        self._sync()
        done = phase.work - float(self._rem[task.id])
        return phase.sweeps(done, float(self._rate[task.id]))

    def task_cpus(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """CPU each task is queued on, -1 for tasks not on a runqueue (sleeping, blocked, exited)."""
        return self._oncpu[ids]

    def phase_progress(self, task: Task) -> float:
        """Work done so far in the task's current phase (bytes for ``Touch``, ns for ``Compute``)."""
        phase = task.phase
        self._sync()
        if isinstance(phase, Touch):
            return phase.work - float(self._rem[task.id])
        if isinstance(phase, Compute):
            return float(phase.ns) - float(self._rem[task.id])
        return 0.0

    def running_cpu_task(self, cpu: int) -> Task | None:
        """The task the fluid scheduler would show as ``rq->curr``: the first queued on ``cpu``."""
        q = self.rq[cpu]
        return self.tasks[q[0]] if q else None

    def invalidate_rates(self) -> None:
        """Placement or scheduling changed outside the machine's own paths (e.g. a migration)."""
        self._sync()
        self._dirty = True

    # ---- the main loop ---------------------------------------------------------------------------------
    def run(self, until: int | None = None, *, progress: Callable[[int], None] | None = None) -> None:
        """Run until every task has exited (or until ``until`` ns). ``progress(now)`` is called per sample."""
        if not self._sampling:
            self._sampling = True
            self.engine.at(self.engine.now, Prio.SAMPLE, self._sample, progress)
        engine = self.engine
        while True:
            if self._dirty:
                self._recompute()
            t_event = engine.peek()
            t_done = self._next_completion()
            if t_done is None and (t_event is None or not self._any_alive()):
                break
            if t_done is not None and (t_event is None or t_done <= t_event):
                t = t_done
            else:
                assert t_event is not None
                t = t_event
            if until is not None and t > until:
                self._advance(until)
                engine.now = until
                break
            if t_done is not None and t == t_done:
                self._advance(t)
                engine.now = t
                self._complete_due()
            else:
                self._advance(t)
                engine.step()
        if self._any_alive() and until is None:
            stuck = [t.name for t in self.tasks if t.state is not TaskState.EXITED][:5]
            raise SimulationError(f"no runnable work left but tasks have not exited: {stuck}")

    def _any_alive(self) -> bool:
        return any(t.state is not TaskState.EXITED for t in self.tasks)

    def _sync(self) -> None:
        """Bring every task's progress up to ``engine.now`` (before state changes mid-event)."""
        self._advance(self.engine.now)

    def _advance(self, t: int) -> None:
        dt = t - self._t_last
        if dt <= 0:
            return
        self._t_last = t
        n = len(self.tasks)
        running = self._oncpu[:n] >= 0
        if not running.any():
            return
        share = self._share[:n]
        debt = self._debt[:n]
        indebt = running & (debt > 0)
        working = running & ~indebt
        self._user_ns[:n][working] += share[working] * dt
        self._sys_ns[:n][indebt] += share[indebt] * dt
        if indebt.any():
            debt[indebt] = np.maximum(debt[indebt] - share[indebt] * dt, 0.0)
        progressed = self._rate[:n] * dt
        self._rem[:n][working] -= progressed[working]
        mem = working & (self._kind[:n] == _MEM)
        if mem.any():
            nbytes = progressed[mem]
            idx = np.flatnonzero(mem)
            local = self._frac[idx, self.cpu_node[self._oncpu[idx]]]
            total_b = float(nbytes.sum())
            local_b = float((nbytes * local).sum())
            self.bytes_total += total_b
            self.bytes_local += local_b
            self._interval_bytes += (total_b, local_b)

    def _next_completion(self) -> int | None:
        n = len(self.tasks)
        running = self._oncpu[:n] >= 0
        if not running.any():
            return None
        debt = self._debt[:n]
        rate = self._rate[:n]
        best = math.inf
        indebt = running & (debt > 0)
        if indebt.any():
            best = float((debt[indebt] / self._share[:n][indebt]).min())
        working = running & ~indebt & (rate > 0)
        if working.any():
            best = min(best, float((self._rem[:n][working] / rate[working]).min()))
        if best == math.inf:
            return None
        return self._t_last + max(1, math.ceil(best - 1e-9))

    def _complete_due(self) -> None:
        n = len(self.tasks)
        running = self._oncpu[:n] >= 0
        debt = self._debt[:n]
        share = self._share[:n]
        paid = running & (debt > 0) & (debt <= share * 1.0 + 1e-9)
        if paid.any():
            debt[paid] = 0.0
        rate = self._rate[:n]
        done = running & (debt <= 0) & (rate > 0) & (self._rem[:n] <= rate * 1.0 + 1e-9)
        for tid in np.flatnonzero(done):
            task = self.tasks[int(tid)]
            if task.state is TaskState.RUNNABLE and self._oncpu[tid] >= 0:
                self._rem[tid] = 0.0
                self._next_phase(task)

    # ---- rates ---------------------------------------------------------------------------------------------
    def _recompute(self) -> None:
        self._dirty = False
        n = len(self.tasks)
        self._rate[:n] = 0.0
        self._share[:n] = 0.0
        running = np.flatnonzero(self._oncpu[:n] >= 0)
        if running.size == 0:
            self.controller_util[:] = 0.0
            return
        cpus = self._oncpu[running]
        share = fluid_shares(cpus, self._weight[running], self.nr_cpus)
        self._share[running] = share
        working = np.ones(running.shape[0], dtype=bool)  # kernel debt stalls progress, not the rate
        kind = self._kind[running]
        mem_sel = working & (kind == _MEM)
        mem = running[mem_sel]
        if mem.size:
            by_phase: dict[Touch, list[int]] = {}
            for tid in mem.tolist():
                phase = self._region[tid]
                assert phase is not None
                by_phase.setdefault(phase, []).append(tid)
            for phase, tids in by_phase.items():
                frac = self._region_frac(phase.region)
                if phase.shared is not None:
                    f = phase.shared_fraction
                    frac = (1.0 - f) * frac + f * self._region_frac(phase.shared)
                self._frac[tids] = frac
            res = self.memmodel.rates(
                self.cpu_node[self._oncpu[mem]],
                self.cpu_core[self._oncpu[mem]],
                self._share[mem],
                self._frac[mem],
                self._write[mem],
                self._cpb[mem],
                self._mlp_scale[mem],
            )
            self._rate[mem] = res.rate
            self.controller_util = res.controller_util
        else:
            self.controller_util = np.zeros(self.nr_nodes)
        comp = running[working & (kind == _COMPUTE)]
        if comp.size:
            busy = np.zeros(self.nr_cpus, dtype=bool)
            busy[cpus] = True
            yields = np.array(
                [
                    self.topology.smt_yield if busy[self._sibling_cpus[int(c)]].sum() > 1 else 1.0
                    for c in self._oncpu[comp]
                ]
            )
            self._rate[comp] = self._share[comp] * yields

    def _region_frac(self, region: Region) -> npt.NDArray[np.float64]:
        mm = self.mms[region.mm_id]
        hit = self._frac_cache.get(region)
        if hit is not None and hit[0] == mm.placement_version:
            return hit[1]
        frac = mm.region_node_bytes(region) / float(region.nbytes)
        self._frac_cache[region] = (mm.placement_version, frac)
        return frac

    # ---- programs ------------------------------------------------------------------------------------------
    def _next_phase(self, task: Task) -> None:
        """Advance ``task`` to its next phase that takes time (running instantaneous ones on the way)."""
        self._dirty = True
        while True:
            task.pc += 1
            phase = task.phase
            tid = task.id
            if phase is None:
                self._exit(task)
                return
            if isinstance(phase, Touch):
                if phase.region.mm_id != task.mm.id:
                    raise SimulationError(f"{task.name} touches a region of another mm")
                self._kind[tid] = _MEM
                self._region[tid] = phase
                self._rem[tid] = phase.work
                self._write[tid] = phase.write
                self._cpb[tid] = phase.cpu_ns_per_byte
                self._mlp_scale[tid] = phase.mlp_scale
                mm = task.mm
                if self.mm_hooks is not None:
                    self.mm_hooks.on_touch(task, phase.region)
                for region in (phase.region, phase.shared):
                    if region is None:
                        continue
                    p0, p1 = region.page_span(self.page_size)
                    if (mm.page_node[p0:p1] < 0).any():
                        self._first_touch.append((task, region))
                        if not self._first_touch_event:
                            self._first_touch_event = True
                            self.engine.at(self.engine.now, Prio.DEFERRED, self._do_first_touch)
                return
            if isinstance(phase, Compute):
                self._kind[tid] = _COMPUTE
                self._rem[tid] = float(phase.ns)
                return
            if isinstance(phase, Sleep):
                self._kind[tid] = _IDLE
                self._dequeue(task, TaskState.SLEEPING)
                self.engine.after(phase.ns, Prio.WAKEUP, self._wake_and_continue, task)
                return
            if isinstance(phase, SetMempolicy):
                phase.policy.validate_nodes(self.nr_nodes)
                task.mempolicy = phase.policy
                continue
            if isinstance(phase, SetAffinity):
                self.set_affinity(task, phase.cpus)
                continue
            if isinstance(phase, Spawn):
                for spec in phase.threads:
                    self._spawn_thread(task, spec)
                continue
            if isinstance(phase, Join):
                if task.live_children == 0:
                    continue
                self._kind[tid] = _IDLE
                task.joining = True
                self._dequeue(task, TaskState.BLOCKED)
                return
            if isinstance(phase, Wait):
                if phase.on.poll_ready(task):
                    continue
                self._kind[tid] = _IDLE
                self._dequeue(task, TaskState.BLOCKED)
                phase.on.add_waiter(task, self.wake_task)
                return
            if isinstance(phase, Call):
                ns = phase.fn(self, task)
                if task.state is TaskState.EXITED:
                    return
                if ns:
                    self._kind[tid] = _COMPUTE
                    self._rem[tid] = float(ns)
                    return
                continue
            raise SimulationError(f"unknown phase {phase!r}")  # pragma: no cover

    def _spawn_thread(self, parent: Task, spec: ThreadSpec) -> Task:
        thread = self._new_task(spec.name, spec.program, parent.mm, tgid=parent.tgid, nice=spec.nice, parent=parent)
        parent.children.append(thread.id)
        parent.live_children += 1
        self._place_new(thread, parent.cpu if parent.cpu >= 0 else 0)
        return thread

    def _place_new(self, task: Task, parent_cpu: int) -> None:
        load = self._cpu_load()
        cpu = self.balancer.select_fork_cpu(parent_cpu, task.affinity, load)
        self._enqueue(task, cpu)
        self._next_phase(task)

    def _cpu_load(self) -> npt.NDArray[np.float64]:
        return np.array([sum(self.tasks[t].weight for t in q) for q in self.rq])

    def _nr_running(self) -> npt.NDArray[np.int64]:
        return np.array([len(q) for q in self.rq], dtype=np.int64)

    def set_affinity(self, task: Task, cpus: tuple[int, ...] | None) -> None:
        """``sched_setaffinity(2)``: restrict ``task`` to ``cpus`` (``None``: all), moving it if needed."""
        mask = np.zeros(self.nr_cpus, dtype=bool)
        if cpus is None:
            mask[:] = True
        else:
            bad = [c for c in cpus if not 0 <= c < self.nr_cpus]
            if bad or not cpus:
                raise ConfigError("cpus", cpus, f"must be a non-empty set of CPUs in 0..{self.nr_cpus - 1}")
            mask[list(cpus)] = True
        task.affinity = mask
        if task.cpu >= 0 and not mask[task.cpu] and task.state is TaskState.RUNNABLE:
            self._sync()
            dst = self.balancer.select_wake_cpu(task.cpu, mask, self._nr_running())
            self.move_task(task, dst)

    def move_task(self, task: Task, dst: int) -> None:
        """Move a runnable task to ``dst``'s runqueue (the caller has checked the affinity)."""
        self._sync()
        self._charge_node_change(task, task.cpu, dst)
        self.rq[task.cpu].remove(task.id)
        self.rq[dst].append(task.id)
        task.cpu = dst
        self._oncpu[task.id] = dst
        self._dirty = True
        self._request_balance()
        self._sched_changed()

    def _charge_node_change(self, task: Task, src: int, dst: int) -> None:
        if self.cpu_node[src] != self.cpu_node[dst]:
            self.task_node_moves += 1
            self.charge_system(task, self.config.cross_node_move_ns)

    def _enqueue(self, task: Task, cpu: int) -> None:
        self._sync()
        task.state = TaskState.RUNNABLE
        task.cpu = cpu
        self.rq[cpu].append(task.id)
        self._oncpu[task.id] = cpu
        self._dirty = True
        self._request_balance()
        self._sched_changed()

    def _dequeue(self, task: Task, state: TaskState) -> None:
        self._sync()
        if task.cpu >= 0 and task.id in self.rq[task.cpu]:
            self.rq[task.cpu].remove(task.id)
        self._oncpu[task.id] = -1
        task.state = state
        self._dirty = True
        self._request_balance()
        self._sched_changed()

    def _wake_and_continue(self, task: Task) -> None:
        if task.state is TaskState.EXITED:  # killed while asleep or blocked
            return
        self._wake(task)
        self._next_phase(task)

    def _wake(self, task: Task) -> None:
        prev = task.cpu if task.cpu >= 0 else 0
        cpu = self.balancer.select_wake_cpu(prev, task.affinity, self._nr_running())
        self._enqueue(task, cpu)

    def _exit(self, task: Task) -> None:
        self._kind[task.id] = _IDLE
        self._dequeue(task, TaskState.EXITED)
        task.exit_ns = self.engine.now
        mm = task.mm
        mm.users -= 1
        if mm.users == 0:
            if self.mm_hooks is not None:
                self.mm_hooks.on_mm_exit(mm)
            present = mm.page_node >= 0
            self.page_alloc.free(mm.page_node[present].astype(np.int64))
            mm.final_node_pages = mm.node_pages.copy()
        if task.parent is not None:
            parent = self.tasks[task.parent]
            parent.live_children -= 1
            if parent.joining and parent.live_children == 0:
                parent.joining = False
                self.engine.at(self.engine.now, Prio.WAKEUP, self._wake_and_continue, parent)

    # ---- memory-pressure "syscalls" and helpers (sim/mm/reclaim.py attaches the mechanisms) ----------------
    def _sched_changed(self) -> None:
        if self.mm_hooks is not None:
            self.mm_hooks.on_sched_change()

    def wake_task(self, task: Task) -> None:
        """Wake a task blocked in a ``Wait`` phase; it continues with its next phase (once, however many
        of its wait queues fire)."""
        if task.state is TaskState.BLOCKED and not task.joining:
            self.engine.at(self.engine.now, Prio.WAKEUP, self._wake_waiter, task)

    def _wake_waiter(self, task: Task) -> None:
        if task.state is TaskState.BLOCKED and not task.joining:
            self._wake_and_continue(task)

    def kill_process(self, task: Task) -> list[Task]:
        """SIGKILL to ``task``'s thread group (as the OOM killer sends it): every thread exits now, and the
        address space is freed when its last user is gone. Returns the threads killed."""
        victims = [t for t in self.tasks if t.tgid == task.tgid and t.state is not TaskState.EXITED]
        self._sync()
        for t in victims:
            t.killed = True
            self._exit(t)
        return victims

    def vmpressure_fd(self, config: Any) -> Any:
        """``vmpressure_fd(2)`` of the 2012 RFC: a system-wide :class:`~memsched.pressure.VmpressureFile`."""
        if self.mm_hooks is None:
            raise UnsupportedError("vmpressure_fd", "reclaim is not attached (sim.mm.reclaim.attach)")
        return self.mm_hooks.vmpressure_fd(config)

    # ---- first touch ---------------------------------------------------------------------------------------
    def _do_first_touch(self) -> None:
        """Allocate the absent pages of every region first-touched at this instant.

        Each absent page goes to one of the tasks touching it, chosen uniformly (the first to get there),
        and is placed under that task's memory policy from the node of the CPU it runs on.
        """
        self._first_touch_event = False
        pending, self._first_touch = self._first_touch, []
        rng = self.engine.rng("first_touch")
        by_mm: dict[int, list[tuple[Task, Region]]] = {}
        for task, region in pending:
            if task.state is TaskState.RUNNABLE:
                by_mm.setdefault(region.mm_id, []).append((task, region))
        for mm_id, touchers in by_mm.items():
            mm = self.mms[mm_id]
            spans = [r.page_span(self.page_size) for _, r in touchers]
            cuts = sorted({p for span in spans for p in span})
            base = cuts[0]  # owner covers only the touched span (mm-sized arrays made small touches O(mm))
            owner = np.full(cuts[-1] - base, -1, dtype=np.int64)
            for lo, hi in itertools.pairwise(cuts):
                covering = [k for k, (s0, s1) in enumerate(spans) if s0 <= lo and hi <= s1]
                if not covering:
                    continue
                absent = np.flatnonzero(mm.page_node[lo:hi] < 0) + lo
                if absent.size:
                    owner[absent - base] = np.asarray(covering)[rng.integers(len(covering), size=absent.size)]
            for k, (task, _) in enumerate(touchers):
                pages = np.flatnonzero(owner == k) + base
                if pages.size:
                    self.fault_in(task, pages)
        self._dirty = True

    def fault_in(self, task: Task, pages: npt.NDArray[np.int64]) -> None:
        """First-touch faults of ``task`` on ``pages`` of its mm: allocate under its policy, charge the faults."""
        if self.mm_hooks is not None:
            pages = self.mm_hooks.before_fault(task, pages)  # watermarks, reclaim, memcg charge, OOM
            if pages.size == 0:
                return
        mm = task.mm
        cpu_node = int(self.cpu_node[task.cpu])
        policy = task.mempolicy
        vma_start = np.array([mm.vma_of(int(pages[0])).start], dtype=np.int64)
        target = policy.target_nodes(cpu_node, pages - vma_start[0], self.page_alloc.zonelists[cpu_node])
        got = self.page_alloc.alloc(
            target,
            policy.allowed(self.nr_nodes),
            np.full(pages.shape[0], cpu_node, dtype=np.int64),
            interleaved=policy.mode.name == "INTERLEAVE",
        )
        mm.set_nodes(pages, got)
        if self.mm_hooks is not None:
            self.mm_hooks.after_fault(task, pages, got)
        self.vmstat.inc("pgfault", pages.size)
        if self.page_size == PAGE_SIZE_THP:
            self.vmstat.inc("thp_fault_alloc", pages.size)
        clear_rate = self.topology.core_mlp_bytes / self.topology.latency_local_ns  # bytes/ns
        self.charge_system(task, pages.size * (self.config.page_fault_ns + self.page_size / clear_rate))

    # ---- balancing -----------------------------------------------------------------------------------------
    def _request_balance(self) -> None:
        if not self._balance_event:
            self._balance_event = True
            self.engine.at(self.engine.now, Prio.DEFERRED, self._balance)

    def _lb_score(self, tid: int, src: int, dst: int, dst_idle: bool) -> float | None:
        task = self.tasks[tid]
        if not task.affinity[dst]:
            return None
        return 0.0 if self.lb_score is None else self.lb_score(task, src, dst, dst_idle)

    def _balance(self) -> None:
        self._balance_event = False
        moves = self.balancer.balance(self.rq, lambda t: self.tasks[t].weight, self._lb_score)
        if moves:
            self._sync()
            for mv in moves:
                task = self.tasks[mv.task]
                self._charge_node_change(task, mv.src, mv.dst)
                task.cpu = mv.dst
                self._oncpu[mv.task] = mv.dst
            self._dirty = True
            self._sched_changed()

    # ---- sampling and results ------------------------------------------------------------------------------
    def _sample(self, progress: Callable[[int], None] | None) -> None:
        self._sync()
        total, local = self._interval_bytes
        self._interval_bytes[:] = 0.0
        node_pages = np.zeros(self.nr_nodes, dtype=np.int64)
        for mm in self.mms:
            if mm.users:
                node_pages += mm.node_pages
        node_tasks = np.bincount(self.cpu_node[[c for c, q in enumerate(self.rq) for _ in q]], minlength=self.nr_nodes)
        self.timeline.append(
            {
                "t_s": self.engine.now / NSEC_PER_SEC,
                "local_fraction": (local / total) if total > 0 else None,
                "node_pages": node_pages.tolist(),
                "node_tasks": node_tasks.tolist(),
                **({"workload": [h() for h in self.sample_hooks]} if self.sample_hooks else {}),
            }
        )
        if progress is not None:
            progress(self.engine.now)
        # Keep sampling while something can still happen: a task on a CPU, or any other pending event. With
        # neither, every live task waits for something that will never come, and run() reports it.
        busy = bool((self._oncpu[: len(self.tasks)] >= 0).any())
        if self._any_alive() and (busy or self.engine.has_events(except_prio=Prio.SAMPLE)):
            self.engine.after(self.config.sample_interval_ns, Prio.SAMPLE, self._sample, progress)

    @property
    def elapsed_ns(self) -> int:
        ends = [t.exit_ns for t in self.tasks if t.exit_ns is not None]
        return max(ends) if ends else self.engine.now

    def user_ns(self) -> float:
        return float(self._user_ns[: len(self.tasks)].sum())

    def system_ns(self) -> float:
        return float(self._sys_ns[: len(self.tasks)].sum())

    def task_times(self, task: Task) -> tuple[float, float]:
        """User and system CPU nanoseconds of one task."""
        return float(self._user_ns[task.id]), float(self._sys_ns[task.id])

    def local_fraction(self) -> float | None:
        return self.bytes_local / self.bytes_total if self.bytes_total > 0 else None
