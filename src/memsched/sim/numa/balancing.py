"""Automatic NUMA balancing in the simulated kernel: PTE scanning and hinting faults, driving one policy.

This is the foundation every 2012 design shares, attached to the fluid machine as an instrument
(``machine.add_instrument(NumaBalancing(machine, policy))``). It is the simulator's *fault source* for the
shared :class:`~memsched.policies.numa.driver.HookDriver`, which calls the policy's hooks in the same order
as the live balancer does; actions take effect through :class:`~memsched.sim.numa.actuator.SimActuator`.

**Scanning.** Either ``task_numa_work()`` (kernel/sched/fair.c, 3.8 and 3.13): each mm has
``numa_next_scan``; when it passes, one running thread of the mm (the kernel's cmpxchg lets exactly one
win) marks the next ``scan_size`` MB of the address space ``pte_numa``, charges itself the PTE updates,
sets ``numa_next_scan = now + its numa_scan_period`` (clamped to ``task_scan_min()``/``task_scan_max()``),
and on wrapping increments ``numa_scan_seq`` (a completed scan pass for the driver). Or AutoNUMA's
``knuma_scand`` thread: every ``scan_sleep_millisecs`` it marks ``pages_to_scan`` of the next mm in turn,
and after a full pass over all mms sleeps ``scan_sleep_pass_millisecs``. numa/core marks the whole address
space each scan.

**Hinting faults.** A marked page faults when a task next touches it. Tasks stream over their buffers, so
for every marked page the mechanism computes, for each running task whose current sweep covers it, when
that task's cursor reaches the page (``(page offset - cursor) mod buffer size / rate``), and the earliest
wins: that task takes the fault on its CPU (``sim/numa/faults.py`` evaluates this without visiting every
(task, page) pair). Faults are handed to the policy as one batch per scan (``FaultBatch``), at the time by
which half of them have happened (never later than the next scan), and each costs its task
``hint_fault_ns`` of system time. After the policy has seen a batch, each page remembers the fault
(``last_nid``, ``last_pid``, ``last_cpu``: ``page_nid_xchg_last()`` / ``page_cpupid_xchg_last()``).
A record of the batch is one entry of the page arrays: a huge page (one fault of 512 base pages), or a run
of 4 KiB pages (``FaultBatch.nr_faults`` faults of one base page each, ``sim/mm/mm.py``).

**Memory policy.** ``mpol_misplaced()`` only proposes a node for a page faulted under a policy with
``MPOL_F_MOF`` (the default policy's; mm/mempolicy.c, 3.8): each record says whether its faulting task's
policy has it (``FaultBatch.mof``), and the actuator refuses a hinting-fault migration whose task's does not.

**Huge pages split on a fault.** Under a design whose tree has no native THP migration
(``policy.kernel.thp_split``), the first hinting fault on a huge page splits it (``split_huge_page()``; the
pte_numa bits pass to the 512 PTEs): the fault is then a 4 KiB fault, the other pages of the block fault on
their own when touched, and each migrates alone. ``thp_split`` counts the splits; the lost TLB reach costs
every later access to the block a page walk per 4 KiB page (``MachineConfig.page_walk_ns``, in the streaming
tasks' rates, ``sim/fluid/progress.py``).

**Contention.** After every batch (and every tick or pass that moved pages), the locks the faults, the scan
and the migrations held and the TLB flushes they sent are turned into waits, sleeps and IPIs
(``sim/numa/contention.py``): spinning and interrupts are system time, a sleep takes the task off its CPU
until the lock is released, and it wakes through the wake-up path.

**Counters**: ``numa_pte_updates`` (base pages marked), ``numa_huge_pte_updates`` (PMDs, under THP),
``numa_hint_faults``, ``numa_hint_faults_local``, plus the migration counters.

Deviations from the kernel: faults are batched per scan rather than handled one at a time; a marked page
that no running task's current sweep covers stays marked until a later scan finds it covered; the 4 KiB
pages of one run share their fault (the run's first toucher takes all of them); lock waits come from a
batch's utilisation (``sim/numa/contention.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.config import cost_knob, validate
from memsched.errors import ConfigError
from memsched.policies.numa.actions import MigratePages
from memsched.policies.numa.base import (
    KnumaScand,
    NumaPolicy,
    TaskWorkScan,
    applies_misplaced_rule,
    overridden_hooks,
)
from memsched.policies.numa.driver import ActionResult, HookDriver
from memsched.policies.numa.views import FaultBatch
from memsched.sim.engine import Prio
from memsched.sim.fluid import jit
from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.migrate import BASE_PAGE, MigrationCosts
from memsched.sim.mm.mm import MmStruct
from memsched.sim.numa.actuator import SimActuator
from memsched.sim.numa.contention import (
    NO_EVENTS,
    BatchEvents,
    Contention,
    ContentionCosts,
    Outcome,
    add_totals,
    outcome,
    totals,
)
from memsched.sim.numa.context import NumaState, SimContext
from memsched.sim.numa.faults import STRIDE, median, reach_rows, scan_hits
from memsched.units import MIB, NSEC_PER_MSEC, NSEC_PER_SEC, PAGE_SIZE_THP

__all__ = ["NumaBalancing", "NumaCosts", "needs_mechanism"]

IntArray = npt.NDArray[np.int64]

#: ``reach_rows``'s mask of the sweeps whose task is still in the phase: empty when every one is.
_EVERY = np.zeros(0, dtype=bool)
#: The task ids of an mm with no live task; a batch's empty hinting-fault times; no contention events. (Empty,
#: so nothing writes them; writable, as the arrays they stand in for, so the kernels see one type.)
_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_NS = np.zeros(0)
#: The system-time causes a settle charges (``FluidProgress.system_by_cause``), in the order of each task's.
_CAUSES = ("hint_faults", "lock_spin", "tlb_flush", "tlb_ipi")
#: The causes a settle's bit mask names (bit ``i``: ``_CAUSES[i]``), with their indices, for every mask.
_MASK_CAUSES = tuple(tuple((i, c) for i, c in enumerate(_CAUSES) if mask >> i & 1) for mask in range(1 << len(_CAUSES)))


@dataclass(frozen=True)
class NumaCosts:
    """CPU costs of the hinting-fault machinery (estimates; never fitted to a policy's results), each at most 1 ms
    (:data:`memsched.config.LIMIT_EVENT_COST_NS`)."""

    pte_update_ns: int = cost_knob(50, "change_prot_numa() per PTE or PMD marked (estimate)")
    scan_fixed_ns: int = cost_knob(10_000, "task_numa_work() entry, mmap_sem and VMA walk per scan (estimate)")
    hint_fault_ns: int = cost_knob(2_000, "one NUMA hinting fault: trap, do_numa_page, task_numa_fault (estimate)")
    split_ns: int = cost_knob(30_000, "split_huge_page() CPU besides its locks: 512 tail pages and PTEs (estimate)")
    migration: MigrationCosts = field(default_factory=MigrationCosts)
    contention: ContentionCosts = field(default_factory=ContentionCosts)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(eq=False)
class _MmScan:
    """Scanner state of one mm: where the next scan starts, and the page flags the faults use."""

    mm: MmStruct
    next_scan: int
    next_reset: int
    offset: int = 0
    marked: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    last_nid: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_pid: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_cpu: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def ensure(self) -> None:
        n = self.mm.nr_pages
        if self.marked.shape[0] < n:
            grow = n - self.marked.shape[0]
            self.marked = np.concatenate([self.marked, np.zeros(grow, dtype=bool)])
            self.last_nid = np.concatenate([self.last_nid, np.full(grow, -1, dtype=np.int64)])
            self.last_pid = np.concatenate([self.last_pid, np.full(grow, -1, dtype=np.int64)])
            self.last_cpu = np.concatenate([self.last_cpu, np.full(grow, -1, dtype=np.int64)])


@dataclass(eq=False)
class _Reach:
    """The sweeps of one scan, for the looks at what they have reached: their float64 rows (a ``Sweep``, then
    the phase's work, the work done at the scan and the sweep's share of it) and each task's pc at the scan."""

    cols: npt.NDArray[np.float64]
    tid_list: list[int]
    pcs: list[int]
    tids: IntArray


def needs_mechanism(policy: NumaPolicy) -> bool:
    """Whether ``policy`` needs the balancing mechanism at all (``none`` scans nothing and has no hook)."""
    return policy.scan is not None or bool(overridden_hooks(policy))


class NumaBalancing(Instrument):
    """The NUMA balancing mechanism of one machine, driving one policy."""

    def __init__(self, machine: FluidMachine, policy: NumaPolicy, costs: NumaCosts | None = None) -> None:
        if not isinstance(policy, NumaPolicy):
            raise ConfigError("policy", policy, "must be a memsched.policies.numa.base.NumaPolicy")
        if machine.tasks:
            raise ConfigError("policy", policy.id, "must be attached before any task exists")
        self.machine = machine
        self.policy = policy
        self.costs = costs or NumaCosts()
        scan = policy.scan
        default = scan.scan_period_min_ms * NSEC_PER_MSEC if isinstance(scan, TaskWorkScan) else NSEC_PER_SEC
        self.state = NumaState(default_period_ns=default)
        self.ctx = SimContext(machine, self.state)
        self.contention = Contention(self.costs.contention, anon_vma_mutex=policy.kernel.anon_vma_lock == "mutex")
        self.actuator = SimActuator(machine, policy.migration, self.costs.migration, self.state, self.contention)
        self.driver = HookDriver(policy, self.ctx, self.actuator)
        #: The policy's fault hooks are MigrateMisplaced's rule: carried out here on the batch's arrays.
        self._misplaced_rule = applies_misplaced_rule(policy)
        self.mm_scan: dict[int, _MmScan] = {}
        self.base_per_page = machine.page_size // BASE_PAGE
        #: A record stands for one fault of ``fault_pages`` base pages (a huge page) or for the
        #: ``nr_faults`` 4 KiB faults of a run.
        huge_units = machine.page_size == PAGE_SIZE_THP
        self.fault_pages = self.base_per_page if huge_units else 1
        self.nr_faults = 1 if huge_units else self.base_per_page
        #: The system time of one fault record's hinting faults.
        self.fault_ns = float(self.nr_faults * self.costs.hint_fault_ns)
        self.splits = 0
        #: mm id -> its ``huge_version`` when it had no huge block left (none to split until the version moves).
        self._split_all: dict[int, int] = {}
        #: Remote hinting faults (4 KiB or huge) that left their page where it was.
        self.remote_kept = 0
        #: CPU time of the current batch's faults by task (ascending ids), charged together with its contention.
        self._hint_tid: IntArray = _NO_IDS
        self._hint_ns: npt.NDArray[np.float64] = _NO_NS
        self._cost_ns = np.array(self.contention.cost_ns(), dtype=np.int64)
        #: The totals of the causes a settle charges (:data:`_CAUSES`), kept up to date in place; each is in
        #: ``FluidProgress.system_by_cause`` too from its first charge.
        self._settled = np.zeros(len(_CAUSES))
        #: Live tasks of each mm (refreshed when tasks come and go).
        self._mm_tasks: dict[int, list[FluidTask]] = {}
        self._mm_ids: dict[int, IntArray] = {}  # (their ids, ascending)
        self._mm_tasks_at = -1
        #: Every action's outcome: (action, status) -> count.
        self.results: Counter[tuple[str, str]] = Counter()
        self._tgid_cache = np.zeros(0, dtype=np.int64)
        self._mof_key = (-1, -1)
        self._mof = np.zeros(0, dtype=bool)
        engine = machine.engine
        if isinstance(scan, KnumaScand):
            self._knuma_pos = (0, 0)
            engine.at(scan.scan_sleep_ms * NSEC_PER_MSEC, Prio.TICK, self._knuma_scand_wake)
        if "on_tick" in self.driver.hooks:
            if not policy.tick_interval_ns or policy.tick_interval_ns <= 0:
                raise ConfigError("tick_interval_ns", policy.tick_interval_ns, f"must be > 0 for {policy.id}'s on_tick")
            engine.at(policy.tick_interval_ns, Prio.TICK, self._tick)

    def wants(self, hook: str) -> bool:
        if hook == "task_created":
            return isinstance(self.policy.scan, TaskWorkScan)
        if hook == "lb_score":
            return "lb_score" in self.driver.hooks
        return True

    # ---- instrument hooks ----------------------------------------------------------------------------------
    def task_created(self, task: FluidTask) -> None:
        """``init_numa_balancing()``: the first task of an mm schedules the mm's first scan."""
        scan = self.policy.scan
        assert isinstance(scan, TaskWorkScan)
        mm = task.mm
        if mm.id not in self.mm_scan:
            now = self.machine.engine.now
            st = _MmScan(
                mm,
                next_scan=now + scan.scan_delay_ms * NSEC_PER_MSEC,
                next_reset=now + scan.scan_period_reset_ms * NSEC_PER_MSEC,
            )
            self.mm_scan[mm.id] = st
            self.machine.engine.at(st.next_scan, Prio.TICK, self._task_numa_work, st)

    def lb_score(self, task: FluidTask, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        return self.driver.lb_score(task.id, src_cpu, dst_cpu, dst_idle)

    def use_hooks(self) -> None:
        """Give every fault batch to the policy's hooks through :attr:`driver`, also where the mechanism would
        carry out :class:`MigrateMisplaced`'s rule itself (for one who watches the driver: a trace)."""
        self._misplaced_rule = False

    # ---- task_numa_work ------------------------------------------------------------------------------------
    def _alive(self, mm: MmStruct) -> list[FluidTask]:
        tasks = self.machine.tasks
        key = self.machine.lifecycle.nr_exited * 100_003 + len(tasks)
        if key != self._mm_tasks_at:
            self._mm_tasks_at = key
            self._mm_tasks = {}
            for t in tasks:
                if t.state is not FluidTaskState.EXITED:
                    self._mm_tasks.setdefault(t.mm.id, []).append(t)
            self._mm_ids = {k: np.array([t.id for t in v], dtype=np.int64) for k, v in self._mm_tasks.items()}
        return self._mm_tasks.get(mm.id, [])

    def _alive_ids(self, mm: MmStruct) -> IntArray:
        """The ids of :meth:`_alive`'s tasks, ascending."""
        self._alive(mm)
        return self._mm_ids.get(mm.id, _NO_IDS)

    def _task_numa_work(self, st: _MmScan) -> None:
        machine = self.machine
        scan = self.policy.scan
        assert isinstance(scan, TaskWorkScan)
        alive = self._alive(st.mm)
        if not alive:
            return
        runnable = FluidTaskState.RUNNABLE  # (a local: not an enum lookup per thread)
        threads = [t for t in alive if t.state is runnable and t.cpu >= 0]
        now = machine.engine.now
        if not threads:  # nobody ticks: try again after a minimum period
            machine.engine.after(scan.scan_period_min_ms * NSEC_PER_MSEC, Prio.TICK, self._task_numa_work, st)
            return
        rng = machine.engine.rng("numa.scanner")
        task = threads[int(rng.integers(len(threads)))]
        period_of = self.state.period
        if scan.scan_period_reset_ms and now >= st.next_reset:
            st.next_reset = now + scan.scan_period_reset_ms * NSEC_PER_MSEC
            period_of[task.id] = scan.scan_period_min_ms * NSEC_PER_MSEC
        st.ensure()
        npages = st.mm.nr_pages
        if scan.whole_address_space:
            lo, hi, wrapped = 0, npages, True
        else:
            window = max(1, scan.scan_size_mb * MIB // machine.page_size)
            lo = st.offset
            hi = min(npages, lo + window)
            wrapped = hi >= npages
        pmds, ptes = self._mark(st, lo, hi)
        machine.charge_system(task, self.costs.scan_fixed_ns + self.costs.pte_update_ns * (pmds + ptes), "scanning")
        contention = self.contention
        # change_huge_pmd() takes mm->page_table_lock per huge PMD (the task's slot is taken either way); then
        # change_protection()'s one flush_tlb_range() per range marked
        flushes = [1] if pmds or ptes else None
        contention.hold_each(st.mm.id, [task.id], "ptl", [pmds], contention.costs.ptl_scan_pmd_ns, flushes)
        st.offset = 0 if wrapped else hi
        lo_p, hi_p = scan.period_bounds_ns(st.mm.rss_pages * self.base_per_page if scan.scale_by_rss else 0)
        period = min(max(self.state.scan_period(task.id), lo_p), hi_p)
        period_of[task.id] = period
        st.next_scan = now + period
        machine.engine.at(st.next_scan, Prio.TICK, self._task_numa_work, st)
        # The window's pages are looked at again one pass later: a full pass of the address space.
        windows = 1 if scan.whole_address_space else -(-npages // max(1, scan.scan_size_mb * MIB // machine.page_size))
        self._generate_faults(st, lo, hi, horizon=period * windows)
        if wrapped:
            self._scan_pass_done(st.mm)
        self._settle(st.mm.id, 1.0)

    def _mark(self, st: _MmScan, lo: int, hi: int) -> tuple[int, int]:
        """``change_prot_numa()`` over pages [lo, hi): returns (huge PMDs, 4 KiB PTEs) newly marked."""
        mm = st.mm
        pmds, ptes = _mark_window(
            mm.page_node, st.marked, lo, hi, self.actuator.migrator.ratelimited_nodes(), self.fault_pages > 1,
            mm.thp_units, mm.huge, self.base_per_page,
        )  # fmt: skip
        vs = self.machine.vmstat
        vs.inc("numa_pte_updates", pmds * (PAGE_SIZE_THP // BASE_PAGE) + ptes)
        if pmds:
            vs.inc("numa_huge_pte_updates", pmds)
        return pmds, ptes

    def _scan_pass_done(self, mm: MmStruct) -> None:
        """``numa_scan_seq`` goes up (``reset_ptenuma_scan()`` / a full ``knuma_scand`` pass)."""
        self.state.scan_seq[mm.id] = self.state.scan_seq.get(mm.id, 0) + 1
        self._count(self.driver.scan_pass(mm.id))

    # ---- knuma_scand ---------------------------------------------------------------------------------------
    def _knuma_scand_wake(self) -> None:
        machine = self.machine
        scan = self.policy.scan
        assert isinstance(scan, KnumaScand)
        mms = [mm for mm in machine.mms if mm.users > 0]
        if not mms and not any(t.state is not FluidTaskState.EXITED for t in machine.tasks):
            return
        idx, offset = self._knuma_pos
        budget = max(1, scan.pages_to_scan_mb * MIB // machine.page_size)
        sleep = scan.scan_sleep_ms
        live_ids = [mm.id for mm in mms]
        if idx >= len(machine.mms):
            idx, offset = 0, 0
        marked = 0
        touched: list[int] = []
        # A page is looked at again one pass later: every wake-up's budget over all the mms, then the pass sleep.
        wakes = -(-sum(mm.nr_pages for mm in mms) // budget)
        pass_ns = (wakes * scan.scan_sleep_ms + scan.scan_sleep_pass_ms) * NSEC_PER_MSEC
        while budget > 0 and live_ids:
            if idx >= len(machine.mms):  # the pass over all mms is complete
                idx, offset = 0, 0
                sleep = scan.scan_sleep_pass_ms
                break
            mm = machine.mms[idx]
            if mm.users == 0:
                idx, offset = idx + 1, 0
                continue
            st = self.mm_scan.get(mm.id)
            if st is None:
                st = _MmScan(mm, next_scan=0, next_reset=0)
                self.mm_scan[mm.id] = st
            st.ensure()
            hi = min(mm.nr_pages, offset + budget)
            pmds, ptes = self._mark(st, offset, hi)
            marked += pmds + ptes
            if pmds or ptes:
                # knuma_scand defers the TLB flush to the end of the chunk (one per mm per wake-up)
                self.contention.flush(mm.id, -1, 1)
                touched.append(mm.id)
            self._generate_faults(st, offset, hi, horizon=pass_ns)
            budget -= hi - offset
            offset = hi
            if offset >= mm.nr_pages:
                self._scan_pass_done(mm)
                idx, offset = idx + 1, 0
        self._knuma_pos = (idx, offset)
        self.actuator.kthread_work(None, self.costs.scan_fixed_ns + self.costs.pte_update_ns * marked)
        for mm_id in touched:
            self._settle(mm_id, 1.0)
        machine.engine.after(sleep * NSEC_PER_MSEC, Prio.TICK, self._knuma_scand_wake)

    # ---- hinting faults ------------------------------------------------------------------------------------
    def _generate_faults(self, st: _MmScan, lo: int, hi: int, *, horizon: int) -> None:
        """Which task touches each marked page of [lo, hi) first, and when; then hand them to the policy."""
        machine = self.machine
        pages = st.marked[lo:hi].nonzero()[0] + lo
        if pages.size == 0:
            return
        psz = machine.page_size
        # A Sweep per row, then the phase's work, the work done and this sweep's share of it (for _reached).
        cols, tids = machine.progress.sweep_rows(self._alive_ids(st.mm), psz, lo, hi, horizon)
        if not tids.shape[0]:
            return
        # Only the pages reached before this window is scanned again fault now; the rest stay marked and are
        # looked at again then (a task slowed by kernel work touches, and so faults, fewer pages).
        ints, floats, mid = scan_hits(pages, psz, cols, STRIDE, float(horizon))  # ([pages | first], [times | ahead])
        if not ints.shape[0]:
            return
        when = int(min(mid, float(horizon)))  # (not ``delay``: a float above)
        tid_list = tids.tolist()
        tasks = machine.tasks
        reach = _Reach(cols, tid_list, [tasks[t].pc for t in tid_list], tids)  # (each task's pc at the scan)
        machine.engine.after(max(when, 0), Prio.WAKEUP, self._reached, st, ints, floats, reach, True)

    def _reached(
        self, st: _MmScan, ints: IntArray, floats: npt.NDArray[np.float64], reach: _Reach, again: bool
    ) -> None:
        """The faults of the pages their sweep has really reached by now: a task that spent the time in kernel
        work (faults, copies, waits on locks) has come less far than its rate promised. The pages it has not
        reached are looked at once more, when it should have reached the last of them at its rate now; what is
        still not reached then stays marked (it faults when its window is scanned and looked at again). ``ints``
        and ``floats``: the pages and their sweeps, their offsets and how far each is ahead (:func:`reach_rows`)."""
        progress = self.machine.progress
        tasks = self.machine.tasks
        # How far each sweep has come since the scan (bytes): (work - rem - done) * part, with
        # progress.phase_progress of each task (one sync), where the task is still in the phase of the sweep
        # (a Touch of that work); inf where it has left it.
        pcs = [tasks[tid].pc for tid in reach.tid_list]
        if pcs == reach.pcs:  # (the usual case: every task)
            still = None
        else:
            still = np.array(pcs) == np.array(reach.pcs)
        came_known = still is None or bool(np.count_nonzero(still))
        if came_known:
            progress.sync()
        a = progress.arrays
        reach_args = (
            reach.cols, reach.tids, _EVERY if still is None else still, came_known, a.rem, ints, floats, again,
            a.rate, a.share, a.oncpu, a.debt, a.copy_left,
        )  # fmt: skip
        if came_known and self._reached_compiled(st, reach, reach_args):
            return
        ints, floats, nok, nr_rest, t_max = reach_rows(*reach_args)
        self._look_again(st, ints, floats, nok, nr_rest, t_max, reach)
        if nok:
            self._deliver_faults(st, ints[:nok], reach.tids[ints[nok : 2 * nok]], floats[:nok])

    def _reached_compiled(self, st: _MmScan, reach: _Reach, reach_args: tuple[Any, ...]) -> bool:
        """The rest of :meth:`_reached` (the progress synced) on the rule path in one kernel
        (``_kernels.reach_deliver``: :func:`reach_rows`, :func:`_fault_rows` and ``_kernels.deliver_misplaced``, as
        the kernels each step would call), then what they leave to Python, in the same order. Returns False,
        having done nothing, where that kernel may not run now: the kernels not in use, another path than the
        rule's, a huge block of the mm perhaps left to split (``_split_faulted``), or :meth:`_deliver_args`."""
        kernels = jit.loaded()
        mm = st.mm
        if kernels is None or not self._misplaced_rule:
            return False
        if mm.thp_units and self._split_all.get(mm.id) != mm.huge_version:
            return False
        deliver = self._deliver_args(st, self._mof_tasks())
        if deliver is None:
            return False
        ints, floats, nok, nr_rest, t_max, cols, per_task, nr_remote, span, *done = kernels.reach_deliver(
            reach_args, self._fault_args(st), *deliver
        )
        self._look_again(st, ints, floats, nok, nr_rest, t_max, reach)
        size = cols.shape[1]
        if not size:
            return True
        if done[0][7]:  # (out of range: the steps one by one raise as numpy does)
            self._deliver_cols(st, cols, per_task, nr_remote, span)
        else:
            self._count_faults(size, nr_remote)
            self._delivered(mm.id, *done)
        return True

    def _look_again(
        self,
        st: _MmScan,
        ints: IntArray,
        floats: npt.NDArray[np.float64],
        nok: int,
        nr_rest: int,
        t_max: float,
        reach: _Reach,
    ) -> None:
        """The second look at the pages not reached yet (:func:`reach_rows`' rest), when the last of them should
        have been reached."""
        if nr_rest:
            when = int(min(t_max, 10 * NSEC_PER_SEC))
            rest_i, rest_f = ints[2 * nok :], floats[nok:]
            self.machine.engine.after(max(when, 1), Prio.WAKEUP, self._reached, st, rest_i, rest_f, reach, False)

    def _deliver_faults(
        self, st: _MmScan, pages: IntArray, task_ids: IntArray, offsets: npt.NDArray[np.float64]
    ) -> None:
        self._deliver_cols(st, *_fault_rows(pages, task_ids, offsets, *self._fault_args(st)))

    def _fault_args(self, st: _MmScan) -> tuple[Any, ...]:
        """:func:`_fault_rows`' arguments after the pages, their tasks and offsets."""
        machine = self.machine
        return (
            machine.progress.arrays.oncpu, st.marked, st.mm.page_node, machine.cpu_node, self._tgids(), st.last_nid,
            st.last_pid, st.last_cpu, len(machine.tasks), machine.engine.now,
        )  # fmt: skip

    def _count_faults(self, size: int, nr_remote: int) -> None:
        """A batch of ``size`` fault records, ``nr_remote`` of them remote, in vmstat."""
        nr_faults = self.nr_faults
        vs = self.machine.vmstat
        vs.inc("numa_hint_faults", size * nr_faults)
        vs.inc("numa_hint_faults_local", (size - nr_remote) * nr_faults)

    def _deliver_cols(self, st: _MmScan, cols: IntArray, per_task: IntArray, nr_remote: int, span: float) -> None:
        """The faults of :func:`_fault_rows`' batch (none when it has no column) to the policy, then settled."""
        size = cols.shape[1]
        if not size:
            return
        machine = self.machine
        mm = st.mm
        tasks = machine.tasks
        rule = self._misplaced_rule
        if not rule:
            cols.flags.writeable = False  # (the batch's columns are views of its rows: read-only too)
        pages, task_ids, cpus, cpu_node, page_node = cols[0], cols[1], cols[2], cols[3], cols[4]
        if mm.thp_units:
            self._split_faulted(mm, pages, task_ids)
        faulters = per_task.nonzero()[0]
        faulter_ids = faulters.tolist()
        faulter_mof = [tasks[t].mempolicy.mof for t in faulter_ids]
        mof_task: npt.NDArray[np.bool_] | None = None  # (None: every fault's task has MPOL_F_MOF)
        if not all(faulter_mof):
            mof_task = np.zeros(len(tasks), dtype=bool)
            mof_task[faulter_ids] = faulter_mof
        nr_faults = self.nr_faults
        self._count_faults(size, nr_remote)
        huge_faults = self.fault_pages > 1
        counts = per_task[faulters]
        self._hint_tid = faulters
        self._hint_ns = np.multiply(counts, self.fault_ns, dtype=np.float64)  # (n * fault_ns of each faulter's count n)
        if huge_faults:  # do_huge_pmd_numa_page() under mm->page_table_lock, by each faulter in turn
            contention = self.contention
            contention.hold_each(mm.id, faulters, "ptl", counts, contention.costs.ptl_huge_fault_ns)
        if rule:  # MigrateMisplaced.on_faults on the batch's arrays, without the batch
            status = self.actuator.migrate_misplaced_cols(mm.id, cols, mof_task)
            if status is not None:
                self.results[(MigratePages.__name__, status)] += 1
        else:
            mof = np.ones(size, dtype=bool) if mof_task is None else mof_task[task_ids]
            mof.flags.writeable = False  # (a new array either way: the batch's own)
            batch = FaultBatch(
                mm=mm.id,
                time_ns=cols[5],
                task=task_ids,
                tgid=cols[6],
                cpu=cpus,
                cpu_node=cpu_node,
                page=pages,
                page_node=page_node,
                last_nid=cols[7],
                last_pid=cols[8],
                last_cpu=cols[9],
                base_pages=self.fault_pages,
                nr_faults=nr_faults,
                mof=mof,
            )
            self._count(self.driver.faults(batch))
        # remote faults whose page is still remote after the policy acted: filtered; then the pages' new state
        kept = _fault_after(
            pages, task_ids, cpus, cpu_node, page_node, mm.page_node, st.last_nid, st.last_pid, st.last_cpu
        )
        self.remote_kept += kept * nr_faults
        self._settle(mm.id, max(span, 1.0))

    def _deliver_args(self, st: _MmScan, mof_task: npt.NDArray[np.bool_] | None) -> tuple[Any, ...] | None:
        """The arguments of ``_kernels.deliver_misplaced`` (which ``_kernels.reach_deliver`` calls) after the
        batch's own (``mof_task``: as ``SimActuator.migrate_misplaced_cols`` takes it), or None where it may not
        run now: the kernels not in use, the progress not synced, another contention than the actuator's."""
        actuator = self.actuator
        contention = self.contention
        margs = actuator.misplaced_args(st.mm.id, mof_task)
        if margs is None or actuator.contention is not contention:
            return None
        machine = self.machine
        mm = st.mm
        progress = machine.progress
        ev = contention.pending.get(mm.id)
        holds = (
            *(NO_EVENTS if ev is None else ev.rows()), self.fault_pages > 1,
            float(contention.costs.ptl_huge_fault_ns), *actuator.lock_args(mm.id),
        )  # fmt: skip
        settle = (
            self.fault_ns, self._alive_ids(mm), progress.arrays.oncpu,
            len(machine.tasks), contention.anon_vma_mutex, self._cost_ns, self._settled, contention.sums,
            contention.counts, progress.arrays.debt,
        )  # fmt: skip
        return margs, holds, (mm.page_node, st.last_nid, st.last_pid, st.last_cpu), settle

    def _delivered(
        self,
        mm_id: int,
        out: IntArray,
        total: float,
        kept: int,
        ints: IntArray,
        floats: npt.NDArray[np.float64],
        m: int,
    ) -> None:
        """What ``_kernels.deliver_misplaced``'s results leave to do, in :meth:`_deliver_cols`' order: the
        migration's (``SimActuator.misplaced_done``) and its result counted, the remote faults kept, the settle's
        (which had the pending events)."""
        self.contention.take(mm_id)
        status = self.actuator.misplaced_done(mm_id, out, total, paid=True)
        if status is not None:
            self.results[(MigratePages.__name__, status)] += 1
        self.remote_kept += kept * self.nr_faults
        self._settle_done(ints, floats, m, True)

    def _mof_tasks(self) -> npt.NDArray[np.bool_]:
        """Per task id, whether its memory policy has ``MPOL_F_MOF`` (kept while no task is created and no policy
        is set)."""
        machine = self.machine
        key = (len(machine.tasks), machine.lifecycle.mempolicy_version)
        if key != self._mof_key:
            self._mof_key = key
            self._mof = np.array([t.mempolicy.mof for t in machine.tasks], dtype=bool)
        return self._mof

    def _split_faulted(self, mm: MmStruct, pages: IntArray, task_ids: IntArray) -> None:
        """``split_huge_page()`` of every still-huge block among the faulted pages, by its first faulter."""
        if self._split_all.get(mm.id) == mm.huge_version:  # (no huge block is left in the mm: the usual case)
            return
        blocks = pages // mm.thp_units
        if not np.count_nonzero(mm.huge[blocks]):  # (none among these: no unique)
            if not np.count_nonzero(mm.huge):
                self._split_all[mm.id] = mm.huge_version
            return
        ub, first = np.unique(blocks, return_index=True)
        huge = mm.huge[ub]
        ub, first = ub[huge], first[huge]
        mm.set_huge(ub, False)
        self.machine.progress.dirty = True  # the blocks' accesses now walk 4 KiB page tables
        self.splits += int(ub.size)
        self.machine.vmstat.inc("thp_split", int(ub.size))
        c = self.contention.costs
        who, counts = np.unique(task_ids[first], return_counts=True)
        for tid, n in zip(who.tolist(), counts.tolist(), strict=True):
            self.machine.charge_system(self.machine.tasks[tid], float(n) * self.costs.split_ns, "thp_split")
            self.contention.hold(mm.id, tid, "anon", n, c.split_anon_vma_ns)
            self.contention.hold(mm.id, tid, "ptl", n, c.split_ptl_ns)
            self.contention.flush(mm.id, tid, n)  # pmdp_splitting_flush()

    def _settle(self, mm_id: int, window_ns: float) -> None:
        """Charge the current batch's hinting faults, and what the pending lock holds and TLB flushes of
        ``mm_id`` cost its tasks (:func:`_settle_py`; its compiled form over columns once the process uses the
        kernels, :func:`_settle_charges`)."""
        machine = self.machine
        progress = machine.progress
        hint_tid, hint_ns = self._hint_tid, self._hint_ns
        self._hint_tid, self._hint_ns = _NO_IDS, _NO_NS
        contention = self.contention
        ev = contention.take(mm_id)
        if ev is None and not hint_tid.shape[0]:
            return
        settled = self._settled
        if jit.loaded() is None:  # the events as they are: no columns to build
            cpus_of: dict[int, int] = {}
            if ev is not None:
                cpus_of = _running_cpus(self._alive_ids(machine.mms[mm_id]), progress.arrays.oncpu)
            charged_l, charge_ns_l, after, touched, part, nrs, sleeps = _settle_py(
                hint_tid.tolist(), hint_ns.tolist(), ev, cpus_of, float(window_ns), contention.anon_vma_mutex,
                contention.cost_ns(), settled.tolist(), float(contention.sums[3]),
            )  # fmt: skip
            if charged_l:
                progress.charge_each(charged_l, charge_ns_l)
            mask = _count_settle(settled, after, touched, contention.sums, contention.counts, part, nrs)
            _, flushes, ipis = nrs
            self._settled_to(mask, flushes, ipis, sleeps)
        else:
            ev_tid, ev_f, ev_n = NO_EVENTS if ev is None else ev.rows()
            synced = progress.synced()  # (then the kernel adds the charges to the debts itself)
            ints, floats, m = _settle_charges(
                hint_tid, hint_ns, ev_tid, ev_f, ev_n, self._alive_ids(machine.mms[mm_id]), progress.arrays.oncpu,
                len(machine.tasks), float(window_ns), contention.anon_vma_mutex, self._cost_ns, settled,
                contention.sums, contention.counts, progress.arrays.debt if synced else _NO_NS,
            )  # fmt: skip
            self._settle_done(ints, floats, m, synced)

    def _settle_done(self, ints: IntArray, floats: npt.NDArray[np.float64], m: int, synced: bool) -> None:
        """What :func:`_settle_charges`' results leave to do (``synced``: it added the charges to the debts)."""
        mask, nsleep, flushes, ipis = ints[:4].tolist()
        if m and not synced:
            self.machine.progress.charge_totals(ints[4 : 4 + m], floats[:m])
        self._settled_to(mask, flushes, ipis, _settle_sleeps(ints, floats, m, nsleep) if nsleep else [])

    def _settled_to(self, mask: int, flushes: int, ipis: int, sleeps: list[tuple[int, float, int]]) -> None:
        """A settle's end: the causes it touched (bit mask) to their totals, its TLB flushes and IPIs counted, its
        sleepers blocked."""
        machine = self.machine
        if mask:  # (a cause's total is in system_by_cause from its first charge on)
            causes = machine.progress.system_by_cause
            values = self._settled.tolist()
            for i, cause in _MASK_CAUSES[mask]:
                causes[cause] = values[i]
        if flushes:
            vs = machine.vmstat
            vs.inc("nr_tlb_remote_flush", flushes)
            vs.inc("nr_tlb_remote_flush_received", ipis)
        tasks = machine.tasks
        for tid, ns, cpu in sleeps:
            machine.lifecycle.block_for(tasks[tid], ns, cpu if cpu >= 0 else None)

    def _tgids(self) -> IntArray:
        if self._tgid_cache.shape[0] != len(self.machine.tasks):
            self._tgid_cache = np.array([t.tgid for t in self.machine.tasks], dtype=np.int64)
        return self._tgid_cache

    # ---- ticks ---------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        machine = self.machine
        if not any(t.state is not FluidTaskState.EXITED for t in machine.tasks):
            return
        self._count(self.driver.tick())
        for mm_id in list(self.contention.pending):
            self._settle(mm_id, 1.0)
        interval = self.policy.tick_interval_ns
        assert interval is not None
        machine.engine.after(interval, Prio.TICK, self._tick)

    def _count(self, results: list[ActionResult]) -> None:
        for r in results:
            self.results[(r.action, r.status)] += 1

    # ---- results -------------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        stats = self.actuator.stats
        out: dict[str, Any] = {
            "numa_task_migrations": stats["numa_task_migrations"],
            "numa_task_swaps": stats["numa_task_swaps"],
            "kthread_s": round(stats["kthread_ns"] / NSEC_PER_SEC, 6),
            "migrate_ratelimited_pages": self.actuator.migrator.ratelimited_pages * self.base_per_page,
            "migrate_refused_mof": self.actuator.refused_mof,
            "migrate_copy_bytes": int(self.machine.progress.copy_bytes),
            "thp_splits_on_fault": self.splits,
            "hint_faults_remote_kept": self.remote_kept,
            **self.contention.metrics(),
        }

        out.update(self.policy.metrics())
        return out


@jit.compiled_as("mark_window")
def _mark_window(
    page_node: npt.NDArray[np.int16],
    marked: npt.NDArray[np.bool_],
    lo: int,
    hi: int,
    skip: npt.NDArray[np.bool_],
    huge_units: bool,
    thp_units: int,
    huge: npt.NDArray[np.bool_],
    base_per_page: int,
) -> tuple[int, int]:
    """``change_prot_numa()`` over pages [lo, hi): mark the present pages (not on a node in ``skip``, 3.8's
    ratelimited nodes) and count the newly marked as (huge PMDs, 4 KiB PTEs): every entry a PMD with
    ``huge_units`` (2 MiB pages), else one PMD per huge block of ``thp_units`` pages (``huge``) and PTEs for the
    pages of split blocks, else PTEs."""
    node = page_node[lo:hi]
    present = node >= 0
    if np.count_nonzero(skip):
        present &= ~skip[np.maximum(node, 0)]
    new = present & ~marked[lo:hi]
    n = int(np.count_nonzero(new))
    marked[lo:hi] |= present
    if huge_units:  # 2 MiB units: every entry is a huge PMD
        return n, 0
    if thp_units:
        blocks = (new.nonzero()[0] + lo) // thp_units
        in_huge = huge[blocks]
        hb = blocks[in_huge]  # ascending (so are the pages): its distinct values are where it steps
        pmds = int(np.count_nonzero(hb[1:] != hb[:-1])) + 1 if hb.size else 0
        return pmds, int(np.count_nonzero(~in_huge)) * base_per_page
    return 0, n * base_per_page


@jit.compiled_as("fault_rows")
def _fault_rows(
    pages: IntArray,
    task_ids: IntArray,
    offsets: npt.NDArray[np.float64],
    oncpu: IntArray,
    marked: npt.NDArray[np.bool_],
    page_node: npt.NDArray[np.int16],
    cpu_node: IntArray,
    tgid: IntArray,
    last_nid: IntArray,
    last_pid: IntArray,
    last_cpu: IntArray,
    nr_tasks: int,
    now: int,
) -> tuple[Any, ...]:
    """The predicted faults that happen (on pages still ``marked`` and resident, by tasks still on a CPU: ``oncpu``
    of each task), those pages unmarked, as the columns of their batch, the rows of one array: (pages, task ids,
    CPUs, CPU nodes, page nodes, fault times around ``now``, tgids, the pages' last nid, pid and CPU); then the
    faults per task id, how many remote and the span of the offsets. The array has no column when no fault is
    left."""
    cpus = oncpu[task_ids]
    ok = (cpus >= 0) & marked[pages] & (page_node[pages] >= 0)
    size = int(np.count_nonzero(ok))
    if size != ok.shape[0]:
        pages, task_ids, offsets, cpus = pages[ok], task_ids[ok], offsets[ok], cpus[ok]
    if not size:
        return np.zeros((10, 0), dtype=np.int64), np.zeros(nr_tasks, dtype=np.int64), 0, 0.0
    marked[pages] = False
    nodes = cpu_node[cpus]
    pnodes = page_node[pages].astype(np.int64)
    per_task = np.bincount(task_ids, minlength=nr_tasks)
    sorted_offsets = np.sort(offsets)
    times = now + offsets.astype(np.int64) - int(median(sorted_offsets, is_sorted=True))
    nr_remote = int(np.count_nonzero(nodes != pnodes))
    # (max - min of the offsets: the ends of the sorted copy)
    span = float(sorted_offsets[-1] - sorted_offsets[0]) if size > 1 else 0.0
    cols = np.concatenate(
        [pages, task_ids, cpus, nodes, pnodes, times, tgid[task_ids], last_nid[pages], last_pid[pages], last_cpu[pages]]
    ).reshape(10, size)
    return cols, per_task, nr_remote, span


@jit.compiled_as("fault_after")
def _fault_after(
    pages: IntArray,
    task_ids: IntArray,
    cpus: IntArray,
    nodes: IntArray,
    pnodes: IntArray,
    page_node: npt.NDArray[np.int16],
    last_nid: IntArray,
    last_pid: IntArray,
    last_cpu: IntArray,
) -> int:
    """After the policy has seen a batch (the columns :func:`_fault_rows` gave): how many remote faults' pages
    are still remote on ``page_node``; and the pages' last faulting nid, pid and CPU, recorded."""
    remote = nodes != pnodes
    kept = int(np.count_nonzero(page_node[pages[remote]] != nodes[remote])) if np.count_nonzero(remote) else 0
    last_nid[pages] = nodes
    last_pid[pages] = task_ids
    last_cpu[pages] = cpus
    return kept


def _running_cpus(alive: IntArray, oncpu: IntArray) -> dict[int, int]:
    """Task id -> CPU of the tasks ``alive`` (ascending) that run (``oncpu`` >= 0), in that order."""
    oncpu_l = oncpu.tolist()
    return {t: cpu for t in alive.tolist() if (cpu := oncpu_l[t]) >= 0}


#: A settle of a process with no pending events.
_NO_OUTCOME = Outcome({}, {}, {}, {}, {})


def _settle_py(
    hint_tid: list[int],
    hint_ns: list[float],
    ev: BatchEvents | None,
    cpus_of: dict[int, int],
    window_ns: float,
    mutex: bool,
    cost_ns: tuple[int, int, int, int],
    causes: list[float],
    send_ns: float,
) -> tuple[list[int], list[float], list[float], list[bool], list[float], list[int], list[tuple[int, float, int]]]:
    """A settle of one process: the contention's outcome of its pending events ``ev`` (``contention.outcome``;
    ``cpus_of``: its running tasks' CPUs) and the charges of it and of the batch's hinting faults (``hint_ns``
    of the tasks ``hint_tid``), in the order charging each task's causes one after the other gives: the faults'
    (``hint_faults``), then by task in the order the outcome names them, spins (``lock_spin``) and shootdown
    sends (``tlb_flush``), each with its received IPIs (``tlb_ipi``); then the IPIs of the tasks that were
    charged nothing else (:data:`_CAUSES`).

    Returns: the tasks charged and each one's total (its causes added in that order, from 0; those whose total
    is not positive are charged nothing); the four causes' totals after the charges (from ``causes``) and
    whether each was charged; (spins' sum, sleeps' sum, IPIs' sum, ``send_ns`` plus each send in turn);
    (sleepers, shootdowns, IPIs sent); and each sleeper, its sleep and the CPU that wakes it (-1: none)."""
    out: Outcome = _NO_OUTCOME
    send_each: list[int] = []
    if ev is not None:
        out, send_each = outcome(ev, window_ns, cpus_of, cost_ns, mutex)
    sums, counts = totals(out, send_each, send_ns)
    pending = {t: {"hint_faults": ns} for t, ns in zip(hint_tid, hint_ns, strict=True)}
    for cause, part in (("lock_spin", out.spin_ns), ("tlb_flush", out.send_ns)):
        for tid, ns in part.items():
            pending.setdefault(tid, {})[cause] = ns
    ipi = dict(out.ipi_ns)
    for tid, by_cause in pending.items():
        if tid in ipi:
            by_cause["tlb_ipi"] = ipi.pop(tid)
    acc = dict(zip(_CAUSES, causes, strict=True))
    touched = dict.fromkeys(_CAUSES, False)
    charged: list[int] = []
    charge_ns: list[float] = []
    for tid, by_cause in pending.items():
        total: float = 0
        for ns in by_cause.values():
            total += ns
        if total <= 0:
            continue
        charged.append(tid)
        charge_ns.append(total)
        for cause, ns in by_cause.items():
            acc[cause] += ns
            touched[cause] = True
    for tid, ns in ipi.items():  # (the rest, in the order of the running tasks)
        if ns > 0:
            charged.append(tid)
            charge_ns.append(ns)
            acc["tlb_ipi"] += ns
            touched["tlb_ipi"] = True
    sleeps = [(t, ns, out.waker.get(t, -1)) for t, ns in out.sleep_ns.items()]
    return charged, charge_ns, [acc[c] for c in _CAUSES], [touched[c] for c in _CAUSES], sums, counts, sleeps


@jit.compiled_as("settle_charges")
def _settle_charges(
    hint_tid: IntArray,
    hint_ns: npt.NDArray[np.float64],
    ev_tid: IntArray,
    ev_f: npt.NDArray[np.float64],
    ev_n: IntArray,
    alive: IntArray,
    oncpu: IntArray,
    nr_tasks: int,
    window_ns: float,
    mutex: bool,
    cost_ns: IntArray,
    causes: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    counts: IntArray,
    debt: npt.NDArray[np.float64],
) -> tuple[Any, ...]:
    """:func:`_settle_py` over columns, the compiled kernel's form: the pending events as ``BatchEvents.rows``
    gives them (none when ``ev_tid`` is empty), the running tasks' CPUs from ``alive`` (ascending) and
    ``oncpu``; the four causes' totals so far (``causes``, of :data:`_CAUSES`) and the run's contention totals
    (``Contention.sums`` and ``counts``), all three brought up to date in place (:func:`_count_settle`). The
    results in two arrays and a count ``m``: the ints (the causes touched as a bit mask, the sleepers, the
    shootdowns and the IPIs sent, then the ``m`` tasks charged, the sleepers' ids and their wakers) and the floats
    (the ``m`` charges, then the sleeps; :func:`_settle_sleeps`). Unless ``debt`` is empty, the charges are added
    to it (``FluidProgress.charge_totals`` of a progress synced to now)."""
    cpus_of = _running_cpus(alive, oncpu)
    ev = BatchEvents.from_rows(ev_tid, ev_f, ev_n) if ev_tid.shape[0] else None
    a, b, c, d = cost_ns.tolist()
    charged, charge_ns, after, touched, part, nrs, sleeps = _settle_py(
        hint_tid.tolist(), hint_ns.tolist(), ev, cpus_of, window_ns, mutex, (a, b, c, d), causes.tolist(),
        float(sums[3]),
    )  # fmt: skip
    mask = _count_settle(causes, after, touched, sums, counts, part, nrs)
    ints = [mask, *nrs, *charged, *(t for t, _, _ in sleeps), *(w for _, _, w in sleeps)]
    floats = [*charge_ns, *(ns for _, ns, _ in sleeps)]
    ints_a, floats_a, m = np.array(ints, dtype=np.int64), np.array(floats, dtype=np.float64), len(charged)
    if debt.shape[0] and m:
        debt[ints_a[4 : 4 + m]] += floats_a[:m]
    return ints_a, floats_a, m


def _settle_sleeps(
    ints: IntArray, floats: npt.NDArray[np.float64], m: int, nsleep: int
) -> list[tuple[int, float, int]]:
    """The ``nsleep`` sleepers of :func:`_settle_charges`' results (id, sleep, waker), as :func:`_settle_py` gives
    them."""
    rest = ints[4 + m :].tolist()
    return list(zip(rest[:nsleep], floats[m:].tolist(), rest[nsleep:], strict=True))


def _count_settle(
    causes: npt.NDArray[np.float64],
    after: list[float],
    touched: list[bool],
    sums: npt.NDArray[np.float64],
    counts: IntArray,
    part: list[float],
    nrs: list[int],
) -> int:
    """Bring the causes' totals (to ``after``, :func:`_settle_py`'s) and the run's contention totals
    (``Contention.count`` of ``part`` and ``nrs``) up to date in place; the causes touched as a bit mask (bit
    ``i``: ``_CAUSES[i]``)."""
    causes[:] = after
    add_totals(sums, counts, part, nrs)
    return sum(1 << i for i, t in enumerate(touched) if t)
