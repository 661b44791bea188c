"""Fluid progress: every running task advances at a constant rate between two events.

This is the engine :class:`~memsched.sim.engine.Source` of the fluid machine. Memory phases progress at the
rate :class:`~memsched.sim.fluid.memmodel.MemModel` gives for where the task runs and where its pages are,
compute phases at the task's CPU share (times the SMT yield when its sibling is busy). The engine asks
:meth:`FluidProgress.next_time` for the next phase completion (``remaining / rate``, rounded up to a whole
nanosecond so work never finishes early), brings every task to an instant with one vectorised
:meth:`FluidProgress.advance`, and lets :meth:`FluidProgress.fire` hand completed phases to the program
interpreter. Rates are recomputed only after something changed (a task started, stopped or moved, pages
moved) — never per access and never per page.

Kernel work done in a task's context (page faults, NUMA scanning, hinting faults, migrations, reclaim) is
charged with :meth:`FluidProgress.charge_system`: the task spends that much of its CPU share in the kernel
before its user work progresses again, and the time shows up as ``system_s``. Its bandwidth share is not
handed to others meanwhile (kernel stalls are short against the intervals between placement changes), which
keeps a fault or a scan from forcing two rate recomputations.

Page copies are memory work, not a fixed CPU time (:meth:`FluidProgress.charge_copy`): a task that migrates
pages in its own context (``migrate_misplaced_page()`` from a hinting fault) copies them at the rate the
memory model gives a copy row (reading the source node, writing the destination node, crossing the links
between them) while everybody else streams, and the time it takes is system time. A kernel thread's copy on
an otherwise idle CPU (:meth:`FluidProgress.start_kernel_copy`) is such a row with no task behind it.

Deviations from the kernel: no time slices — CFS's ideal of every runnable task receiving ``weight / sum of
weights`` of its CPU (kernel/sched/fair.c) is used directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt

from memsched.sim.engine import Engine
from memsched.sim.fluid import jit
from memsched.sim.fluid.memmodel import MemModel
from memsched.sim.fluid.state import COMPUTE, IDLE, MEM, TaskArrays, grown
from memsched.sim.fluid.task import Compute, FluidTask, FluidTaskState, Touch
from memsched.sim.mm.mm import MmStruct, Region
from memsched.topology import Topology

__all__ = ["FluidProgress", "fluid_shares"]

#: ``mask.any()`` of a small boolean mask at a quarter of the cost (no ufunc reduction): the hot loop calls it
#: several times per event.
_nonzero = np.count_nonzero
#: ``x.sum()`` and ``x.min()`` of a 1-D array without the method's Python wrapper (the same ufunc reductions).
_sum = np.add.reduce
_min = np.minimum.reduce
#: ``fire_through``'s next event when the heap has none: later than any completion it can compute.
_NO_EVENT = 2**63 - 1


def fluid_shares(
    cpu: npt.NDArray[np.int64], weight: npt.NDArray[np.float64], nr_cpus: int
) -> npt.NDArray[np.float64]:
    """CPU share of each runnable task: its weight over the total weight queued on its CPU."""
    if cpu.shape[0] == 0:
        return np.empty(0)
    per_cpu = np.bincount(cpu, weights=weight, minlength=nr_cpus)
    return weight / per_cpu[cpu]


_Tols = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]


class _Running:
    """The running tasks' rows (``idx``) and what :meth:`FluidProgress.next_time`, ``advance`` and ``fire`` read
    of them that only :meth:`FluidProgress.recompute` changes: CPU shares and rates, gathered once. Read-only."""

    __slots__ = ("_pos", "_share_pos", "_split", "_tols", "idx", "rate", "share")

    def __init__(
        self,
        idx: npt.NDArray[np.int64],
        share: npt.NDArray[np.float64],
        rate: npt.NDArray[np.float64],
        all_share_pos: bool | None = None,
        all_pos: bool | None = None,
    ):
        self.idx = idx
        self.share = share
        self.rate = rate
        # (given when the compiled recompute found them, else found at the first read: fire's compiled path,
        # which gathers the rows again after a change, reads neither)
        self._share_pos = all_share_pos
        self._pos = all_pos
        self._split: _Split | None = None
        self._tols: _Tols | None = None

    @property
    def all_share_pos(self) -> bool:
        """Every row has a CPU share > 0 (the usual case: a runnable task's weight is > 0)."""
        v = self._share_pos
        if v is None:
            v = self._share_pos = self.idx.shape[0] == 0 or bool(_min(self.share) > 0)
        return v

    @property
    def all_pos(self) -> bool:
        """There are rows and every one has a rate > 0."""
        v = self._pos
        if v is None:
            v = self._pos = self.idx.shape[0] > 0 and bool(_min(self.rate) > 0)
        return v

    def tols(self) -> _Tols:
        """What ``fire`` compares with, from shares and rates only: (share * 1.0 + 1e-9, rate * 1.0 + 1e-6,
        rate * 1.0 + 1e-9, rate > 0)."""
        t = self._tols
        if t is None:
            share, rate = self.share, self.rate
            t = self._tols = (share * 1.0 + 1e-9, rate * 1.0 + 1e-6, rate * 1.0 + 1e-9, rate > 0)
        return t

    @classmethod
    def of(cls, idx: npt.NDArray[np.int64], a: TaskArrays) -> _Running:
        return cls(idx, a.share[idx], a.rate[idx])

    def split(self, a: TaskArrays, cpu_node: npt.NDArray[np.int64]) -> _Split:
        """The rows copying and working, and the working rows' streams (see :class:`_Split`), found once: which
        rows copy changes only with a copy started or finished and which stream only with a phase, and either
        marks the rates dirty."""
        sp = self._split
        if sp is None:
            sp = self._split = _Split(self, a, cpu_node)
        return sp


class _Split:
    """The running rows copying (``copying``: mask, ``ci``: rows, ``share_c``) and working (``working``, ``wi``,
    ``share_w``), and which working rows stream (``mem``: mask or None for all, ``nr_mem``, ``local``: their
    fraction of bytes on their CPU's node), as ``_advance_folded`` reads them."""

    __slots__ = ("ci", "copying", "local", "mem", "nr_copying", "nr_mem", "share_c", "share_w", "wi", "working")

    def __init__(self, run: _Running, a: TaskArrays, cpu_node: npt.NDArray[np.int64]) -> None:
        idx, share = run.idx, run.share
        self.copying = a.copy_left[idx] > 0
        self.nr_copying = int(_nonzero(self.copying))
        if self.nr_copying:
            self.ci = idx[self.copying]
            self.share_c = share[self.copying]
            self.working = ~self.copying
            self.wi = idx[self.working]
            self.share_w = share[self.working]
        else:
            self.ci, self.share_c, self.working, self.wi, self.share_w = idx[:0], share[:0], self.copying, idx, share
        mem = a.kind[self.wi] == MEM
        self.nr_mem = int(_nonzero(mem))
        self.mem = None if self.nr_mem == mem.shape[0] else mem
        mi = self.wi if self.mem is None else self.wi[mem]
        self.local = a.frac[mi, cpu_node[a.oncpu[mi]]]


def _charges(ns: npt.NDArray[np.float64], src: npt.NDArray[np.float64]) -> bool:
    """Whether :func:`_charge_rows` charges any CPU time or copy of these rows."""
    return bool(np.count_nonzero(ns > 0)) or bool(np.count_nonzero(src > 0))


@jit.compiled_as("charge_rows")
def _charge_rows(
    tids: npt.NDArray[np.int64],
    ns: npt.NDArray[np.float64],
    src: npt.NDArray[np.float64],
    dst: npt.NDArray[np.float64],
    total: float,
    debt: npt.NDArray[np.float64],
    copy_left: npt.NDArray[np.float64],
    copy_src: npt.NDArray[np.float64],
    copy_dst: npt.NDArray[np.float64],
    copy_epoch: npt.NDArray[np.int64],
) -> tuple[float, bool, bool]:
    """:meth:`FluidProgress.charge_rows` on the arrays: each task's debt grows by its ``ns`` when positive and
    ``total`` (its cause's sum so far) by the same in turn; then each row's copy, when its bytes are positive
    (``_add_copy``: the row's sum is exact in any order, the bytes of whole pages). Returns the cause's new
    sum, and whether any CPU time and any copy was charged."""
    charged = copied = False
    for i, tid in enumerate(tids.tolist()):
        x = float(ns[i])
        if x > 0:
            debt[tid] += x
            total += x
            charged = True
    nbytes = np.add.reduce(src, axis=1).tolist()
    for i, tid in enumerate(tids.tolist()):
        if nbytes[i] > 0:
            copy_left[tid] += nbytes[i]
            copy_src[tid] += src[i]
            copy_dst[tid] += dst[i]
            copy_epoch[tid] += 1
            copied = True
    return total, charged, copied


@jit.compiled_as("sweep_rows")
def _sweep_rows(
    ids: npt.NDArray[np.int64],
    oncpu: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    phase_key: npt.NDArray[np.int64],
    geo_i: npt.NDArray[np.int64],
    geo_f: npt.NDArray[np.float64],
    rate: npt.NDArray[np.float64],
    debt: npt.NDArray[np.float64],
    share: npt.NDArray[np.float64],
    copy_left: npt.NDArray[np.float64],
    rem: npt.NDArray[np.float64],
    page_size: int,
    lo: int,
    hi: int,
    horizon: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """:meth:`FluidProgress.sweep_rows` from the task columns: the tasks of ``ids`` on a CPU (``oncpu``) in a
    ``Touch`` phase (``kind`` MEM), each phase's geometry by its key (``geo_i``: region start and bytes, shared
    region start and bytes; ``geo_f``: ``shared_fraction`` and ``work``)."""
    flat: list[float] = []
    tids: list[int] = []
    on, kinds, keys, gi, gf = oncpu.tolist(), kind.tolist(), phase_key.tolist(), geo_i.tolist(), geo_f.tolist()
    rates, debts, shares, copies, rems = rate.tolist(), debt.tolist(), share.tolist(), copy_left.tolist(), rem.tolist()
    for tid in ids.tolist():
        if on[tid] < 0 or kinds[tid] != MEM:
            continue
        key = keys[tid]
        start, nbytes, s_start, s_nbytes = gi[key]
        f, work = gf[key]
        r = rates[tid]
        delay = 0.0
        d, sh, cl = debts[tid], shares[tid], copies[tid]
        if d > 0:
            delay += d / sh if sh > 0 else math.inf
        if cl > 0:
            delay += cl / r if r > 0 else math.inf
        done = work - rems[tid]
        if f == 0.0:  # one region (``shared_fraction`` is > 0 exactly when there is a shared one)
            sweeps = [(start, nbytes, done % nbytes, r, r / r if r > 0 else 0.0)]
        else:  # (Touch.sweeps: each region at its share of the work and the rate)
            own = 1.0 - f
            r_own, r_shared = r * own, r * f
            sweeps = [
                (start, nbytes, (done * own) % nbytes, r_own, r_own / r if r > 0 else 0.0),
                (s_start, s_nbytes, (done * f) % s_nbytes, r_shared, r_shared / r if r > 0 else 0.0),
            ]
        for b0, nb, cursor, rr, part in sweeps:
            p0 = b0 // page_size  # (Region.page_span)
            p1 = p0 if nb == 0 else (b0 + nb - 1) // page_size + 1
            if p1 <= lo or p0 >= hi or rr <= 0 or delay >= horizon:
                continue
            flat += (tid, b0, nb, p0, p1, cursor, rr, delay, work, done, part)
            tids.append(tid)
    return np.array(flat, dtype=np.float64).reshape(len(tids), 11), np.array(tids, dtype=np.int64)


class FluidProgress:
    """Task progress between events, and the rates it follows."""

    def __init__(
        self,
        engine: Engine,
        topology: Topology,
        memmodel: MemModel,
        tasks: list[FluidTask],
        mms: list[MmStruct],
        *,
        page_walk_ns: int = 0,
        debt_events: bool = True,
    ) -> None:
        self.engine = engine
        self.walk_ns_per_byte = page_walk_ns / 4096.0
        #: Whether paying off a kernel debt is an event of its own (True), or is folded into the time of the
        #: task's next completion (False: fewer events; the NUMA runs, whose faults charge many small debts).
        self.debt_events = debt_events
        self.topology = topology
        self.memmodel = memmodel
        self.tasks = tasks
        self.mms = mms
        self.nr_cpus = topology.nr_cpus
        self.cpu_node = topology.cpu_node()
        self.cpu_core = topology.cpu_core()
        #: Called with each task whose phase completed (the program interpreter).
        self.on_complete: Callable[[FluidTask], None] = lambda task: None
        self.arrays = TaskArrays(topology.nr_nodes)
        self._canon_phase: dict[int, int] = {}
        self._equal_phase: dict[Touch, int] = {}
        #: The distinct (by value) ``Touch`` phases seen, and each task's index into them (its current phase's).
        self._phases: list[Touch] = []
        self._phase_key = np.zeros(16, dtype=np.int64)
        #: Each phase key's sweep geometry (:meth:`sweep_rows`): its region's start and bytes, its shared
        #: region's (0, 0 without one); its ``shared_fraction`` and its ``work``.
        self._geo_i = np.zeros((4, 4), dtype=np.int64)
        self._geo_f = np.zeros((4, 2))
        self.t_last = 0
        self.dirty = True
        #: The next completion as ``fire_through`` found it at the end of its run, for the engine's next call of
        #: ``next_time`` (which comes at once: nothing runs between), then None.
        self._next_known: tuple[int | None] | None = None
        #: Completions fired by ``fire_through`` (the engine's steps it took over; tests read it).
        self.fired_through = 0
        self._running: _Running | None = None
        self._frac_cache: dict[Region, tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        #: Stream tables by phase key (``_refresh_phase_rows``): placement fractions, and by key * nr_nodes +
        #: node the demand's denominator and the resource use of a row; with the inputs they were computed from.
        nr = topology.nr_nodes
        self._tab_frac = np.zeros((4, nr))
        self._tab_den = np.zeros(4 * nr)
        self._tab_base = np.zeros((4 * nr, nr + memmodel.link_cap.shape[0] + 2))
        #: Per phase key: (its page-walk share, then cpu_ns_per_byte, write and mlp_scale per node), the
        #: read-only inputs of its stream-table rows (:meth:`_refresh_phase_rows`).
        self._tab_inputs: dict[
            int, tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
        ] = {}
        self._tab_state: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, float] | None] = []
        #: Each phase key's mm, and the placement and huge-page versions of that mm when its rows were last
        #: checked: a key checked under its mm's versions now is up to date (``_refresh_phase_rows`` reads
        #: nothing else that changes, so it would return at once).
        self._key_mm: list[int] = []
        self._tab_fresh: dict[int, tuple[int, int]] = {}
        #: Each key's stamp when ``_refresh_tables`` last checked it: the stamp moves on (``_stamp``) when it reads
        #: versions other than the last it read (``_ok_versions``), so the keys checked under the versions now
        #: are those stamped ``_stamp`` (-1: never checked).
        self._key_stamp = np.full(16, -1, dtype=np.int64)
        self._stamp = 0
        self._ok_versions: list[tuple[int, int]] | None = None
        #: Copy rows by task (``_copy_table``): each task's copy epoch (bumped when its pending copy grows),
        #: and the epoch and node its row was computed for, ``max(core_ns, eps)`` and the row's resource use.
        self._copy_epoch = np.zeros(16, dtype=np.int64)
        self._crow_epoch = np.full(16, -1, dtype=np.int64)
        self._crow_node = np.full(16, -1, dtype=np.int64)
        self._crow_m = np.zeros(16)
        self._crow_base = np.zeros((16, self._tab_base.shape[1]))
        self._sibling_cpus = [np.array(topology.siblings(c), dtype=np.int64) for c in range(self.nr_cpus)]
        #: Memory traffic since the start, and since the last timeline sample: (total, local) bytes.
        self.bytes_total = 0.0
        self.bytes_local = 0.0
        self.interval_bytes = np.zeros(2)
        self.controller_util = np.zeros(topology.nr_nodes)
        #: Bytes copied by page migrations (in tasks' context and by kernel threads).
        self.copy_bytes = 0.0
        #: Kernel CPU time charged, by cause (``charge_system``), plus ``"copy"``: time tasks spent copying.
        self.system_by_cause: dict[str, float] = {}
        #: Kernel threads' copies on idle CPUs: [cpu, bytes left, src bytes per node, dst bytes per node, rate].
        self.kernel_copies: list[list[object]] = []

    # ---- tasks ---------------------------------------------------------------------------------------------
    def new_task(self, task: FluidTask) -> None:
        self.arrays.grow(task.id + 1)
        cap = self.arrays.capacity
        if self._phase_key.shape[0] < cap:
            self._phase_key = grown(self._phase_key, cap, 0)
            self._copy_epoch = grown(self._copy_epoch, cap, 0)
            self._crow_epoch = grown(self._crow_epoch, cap, -1)
            self._crow_node = grown(self._crow_node, cap, -1)
            self._crow_m = grown(self._crow_m, cap, 0.0)
            self._crow_base = grown(self._crow_base, cap, 0.0)
        self.arrays.weight[task.id] = task.weight

    def begin_touch(self, task: FluidTask, phase: Touch) -> None:
        a, tid = self.arrays, task.id
        a.kind[tid] = MEM
        # Tasks in equal phases share one rate computation. Equal phases are found once per phase object
        # (hashing a frozen dataclass each time costs more than the rest); the programs keep their phase
        # objects alive, so an id is not reused during a run.
        key = self._canon_phase.get(id(phase))
        if key is None:
            key = self._equal_phase.get(phase)
            if key is None:
                key = self._equal_phase[phase] = len(self._phases)
                self._phases.append(phase)
                self._add_geometry(key, phase)
            self._canon_phase[id(phase)] = key
        self._phase_key[tid] = key
        a.rem[tid] = phase.work
        a.write[tid] = phase.write
        a.cpu_ns_per_byte[tid] = phase.cpu_ns_per_byte
        a.mlp_scale[tid] = phase.mlp_scale

    def _add_geometry(self, key: int, phase: Touch) -> None:
        """Phase ``key``'s row of the sweep geometry (:meth:`sweep_rows`)."""
        if self._geo_i.shape[0] <= key:
            cap = max(2 * self._geo_i.shape[0], key + 1)
            self._geo_i = grown(self._geo_i, cap, 0)
            self._geo_f = grown(self._geo_f, cap, 0.0)
        shared = phase.shared
        region = phase.region
        self._geo_i[key] = (region.start, region.nbytes, *((shared.start, shared.nbytes) if shared else (0, 0)))
        self._geo_f[key] = (phase.shared_fraction, phase.work)
        self._key_mm.append(region.mm_id)  # (keys are made in order: this is _key_mm[key])

    def begin_compute(self, task: FluidTask, ns: float) -> None:
        self.arrays.kind[task.id] = COMPUTE
        self.arrays.rem[task.id] = float(ns)

    def stop(self, task: FluidTask) -> None:
        """The task's current phase consumes nothing (it sleeps, blocks, waits or exits)."""
        self.arrays.kind[task.id] = IDLE

    def charge_system(self, task: FluidTask, ns: float, cause: str = "other") -> None:
        """Kernel work of ``ns`` CPU nanoseconds in ``task``'s context (delays its user work), counted under
        ``cause`` in :attr:`system_by_cause`."""
        if ns <= 0:
            return
        self.sync()
        self.arrays.debt[task.id] += ns
        self.system_by_cause[cause] = self.system_by_cause.get(cause, 0.0) + ns

    def charge_totals(self, tids: npt.NDArray[np.int64], totals: npt.NDArray[np.float64]) -> None:
        """Kernel work in the context of the distinct tasks ``tids``, ``totals[i]`` ns for ``tids[i]``, as
        :meth:`charge_system` of each (one sync for them all); the caller counts the causes."""
        self.sync()
        self.arrays.debt[tids] += totals

    def charge_each(self, tids: list[int], totals: list[float]) -> None:
        """:meth:`charge_totals` of lists: one add per task (fewer steps than two arrays for a few tasks; the same
        adds)."""
        self.sync()
        debt = self.arrays.debt
        for tid, total in zip(tids, totals, strict=True):
            debt[tid] += total

    def charge_copy(
        self, task: FluidTask, src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
    ) -> None:
        """Page copies in ``task``'s context: ``src``/``dst`` bytes read from / written to each node. Done after
        any CPU debt, at the copy's memory rate, as system time."""
        nbytes = float(_sum(src))
        if nbytes <= 0:
            return
        self.sync()
        self._add_copy(task.id, nbytes, src, dst)
        self.dirty = True

    def charge_rows(
        self,
        tids: npt.NDArray[np.int64],
        ns: npt.NDArray[np.float64],
        src: npt.NDArray[np.float64],
        dst: npt.NDArray[np.float64],
        cause: str,
    ) -> None:
        """:meth:`charge_system` of ``ns[i]`` for each of the distinct tasks ``tids`` in turn, under ``cause``, then
        :meth:`charge_copy` of the row ``src[i]``/``dst[i]`` for each in turn (one sync first, when either charges
        anything)."""
        if not tids.shape[0]:
            return
        causes = self.system_by_cause
        if not self.synced() and _charges(ns, src):
            self.sync()
        total, charged, copied = _charge_rows(tids, ns, src, dst, causes.get(cause, 0.0), *self.charge_arrays())
        self.rows_charged(cause, total, charged, copied)

    def charge_arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.int64],
    ]:
        """The arrays :func:`_charge_rows` updates: the debts, the copies left, their bytes read from and written
        to each node, and the copies' epochs (for one who charges rows as it does, in step with the progress)."""
        a = self.arrays
        return a.debt, a.copy_left, a.copy_src, a.copy_dst, self._copy_epoch

    def rows_charged(self, cause: str, total: float, charged: bool, copied: bool) -> None:
        """What :func:`_charge_rows`' results leave to do: ``cause``'s new sum when it charged CPU time, and the
        rates to compute again when it added a copy."""
        if charged:
            self.system_by_cause[cause] = total
        if copied:
            self.dirty = True

    def _add_copy(self, tid: int, nbytes: float, src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]) -> None:
        """One task's pending copy grows by ``nbytes``, read ``src`` and written ``dst`` per node (its copy row is
        computed again: ``_copy_table``)."""
        a = self.arrays
        a.copy_left[tid] += nbytes
        a.copy_src[tid] += src
        a.copy_dst[tid] += dst
        self._copy_epoch[tid] += 1

    def start_kernel_copy(self, cpu: int, src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]) -> None:
        """A kernel thread copies pages on the idle ``cpu`` (it competes for memory, not for a task's CPU)."""
        nbytes = float(src.sum())
        if nbytes <= 0:
            return
        self.sync()
        self.kernel_copies.append([cpu, nbytes, np.array(src, dtype=np.float64), np.array(dst, dtype=np.float64), 0.0])
        self.dirty = True

    def sync(self) -> None:
        """Bring every task's progress up to now (before state changes mid-event)."""
        now = self.engine.now
        if now > self.t_last:
            self.advance(now)

    def synced(self) -> bool:
        """Whether every task's progress is up to now, so that :meth:`sync` would do nothing: a kernel may then
        charge the task arrays directly, as the methods that sync first would."""
        return self.t_last >= self.engine.now

    def invalidate(self) -> None:
        """Placement or scheduling changed: progress so far is kept and rates are recomputed before the next step."""
        self.sync()
        self.dirty = True

    # ---- what the mechanisms read --------------------------------------------------------------------------
    def sweep_rows(
        self, ids: npt.NDArray[np.int64], page_size: int, lo: int, hi: int, horizon: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Where the running tasks ``ids`` (ascending) are in their current ``Touch`` sweeps, for a scan of pages
        [lo, hi): the float64 row of every sweep that covers some of those pages and moves within ``horizon`` ns,
        and its task id. A row is (task id, region start byte, region bytes, first page, end page, cursor byte,
        rate, delay; then the phase's whole ``work``, the work ``done`` in it so far and the ``part`` of it that
        goes to this sweep's region, for :meth:`phase_progress` later). The cursor is the offset in the region
        the task writes next (a ``bzero`` loop walks its buffer in order, so after ``done`` bytes of a
        multi-pass phase it is at ``done mod bytes``); a phase with a shared region walks both, each at its share
        of the rate. ``delay`` (ns) is the kernel work the task does before its cursor moves again: its CPU debt
        at its share of the CPU, then a page copy in its context. ``horizon`` must be below 2**53 (float64 holds
        it exactly)."""
        self.sync()
        a = self.arrays
        return _sweep_rows(
            ids, a.oncpu, a.kind, self._phase_key, self._geo_i, self._geo_f, a.rate, a.debt, a.share, a.copy_left,
            a.rem, page_size, lo, hi, float(horizon),
        )  # fmt: skip

    def phase_progress(self, task: FluidTask) -> float:
        """Work done so far in the task's current phase (bytes for ``Touch``, ns for ``Compute``)."""
        self.sync()
        return self.synced_progress(task)

    def synced_progress(self, task: FluidTask) -> float:
        """:meth:`phase_progress` when the caller has just synced (no event in between)."""
        phase = task.phase
        if isinstance(phase, Touch):
            return phase.work - float(self.arrays.rem[task.id])
        if isinstance(phase, Compute):
            return float(phase.ns) - float(self.arrays.rem[task.id])
        return 0.0

    def task_cpus(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """CPU each task is queued on, -1 for tasks not on a runqueue (sleeping, blocked, exited)."""
        return self.arrays.oncpu[ids]

    def take_interval_bytes(self) -> tuple[float, float]:
        """(total, local) bytes since the last call."""
        total, local = float(self.interval_bytes[0]), float(self.interval_bytes[1])
        self.interval_bytes[:] = 0.0
        return total, local

    # ---- the engine's Source -------------------------------------------------------------------------------
    def done(self) -> bool:
        """Every task that ever ran has exited (a machine with no task yet is not done)."""
        return bool(self.tasks) and all(t.state is FluidTaskState.EXITED for t in self.tasks)

    def advance(self, t: int) -> None:
        dt = t - self.t_last
        if dt <= 0:
            return
        self.t_last = t
        if self.kernel_copies:
            for kc in self.kernel_copies:
                moved = min(float(kc[1]), float(kc[4]) * dt)  # type: ignore[arg-type]
                kc[1] = float(kc[1]) - moved  # type: ignore[arg-type]
                self.copy_bytes += moved
        if not self.debt_events:
            self._advance_folded(dt)
            return
        n = len(self.tasks)
        a = self.arrays
        running = a.oncpu[:n] >= 0
        if not _nonzero(running):
            return
        share = a.share[:n]
        debt = a.debt[:n]
        copy_left = a.copy_left[:n]
        rate = a.rate[:n]
        indebt = running & (debt > 0)
        copying = running & ~indebt & (copy_left > 0)
        working = running & ~indebt & ~copying
        a.user_ns[:n][working] += share[working] * dt
        kernel = indebt | copying
        a.sys_ns[:n][kernel] += share[kernel] * dt
        if _nonzero(copying):
            self.system_by_cause["copy"] = self.system_by_cause.get("copy", 0.0) + float(share[copying].sum() * dt)
        if _nonzero(indebt):
            debt[indebt] = np.maximum(debt[indebt] - share[indebt] * dt, 0.0)
        progressed = rate * dt
        if _nonzero(copying):
            copied = np.minimum(progressed[copying], copy_left[copying])
            copy_left[copying] -= copied
            self.copy_bytes += float(copied.sum())
            finished = copying & (copy_left <= 1e-6)
            if _nonzero(finished):  # the copy is over: the task streams again, at rates without the copy's row
                copy_left[finished] = 0.0
                a.copy_src[:n][finished] = 0.0
                a.copy_dst[:n][finished] = 0.0
                self.dirty = True
        a.rem[:n][working] -= progressed[working]
        mem = working & (a.kind[:n] == MEM)
        if _nonzero(mem):
            nbytes = progressed[mem]
            idx = mem.nonzero()[0]
            local = a.frac[idx, self.cpu_node[a.oncpu[idx]]]
            total_b = float(nbytes.sum())
            local_b = float((nbytes * local).sum())
            self.bytes_total += total_b
            self.bytes_local += local_b
            self.interval_bytes += (total_b, local_b)

    def _advance_folded(self, dt: int) -> None:
        """:meth:`advance` when debts are folded into completions: the debt is paid first, then the task copies
        or works for the rest of ``dt``. Works on the running tasks' rows only (gathered once); every
        element's arithmetic, and every sum's terms and their order, are those of the masked form."""
        a = self.arrays
        run = self._running_rows()
        idx = run.idx
        if not idx.size:
            return
        kernels = jit.loaded()
        if kernels is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
            nr_copying, copy_ns, copied, finished, nr_mem, total_b, local_b = kernels.advance_folded(
                idx, run.share, run.rate, dt, run.all_share_pos, a.debt, a.sys_ns, a.user_ns, a.rem,
                a.copy_left, a.copy_src, a.copy_dst, a.kind, a.frac, a.oncpu, self.cpu_node,
            )  # fmt: skip
            if nr_copying:
                self.system_by_cause["copy"] = self.system_by_cause.get("copy", 0.0) + copy_ns
                self.copy_bytes += copied
                if finished:
                    self.dirty = True
            if nr_mem:
                self.bytes_total += total_b
                self.bytes_local += local_b
                interval = self.interval_bytes
                interval[0] += total_b
                interval[1] += local_b
            return
        fdt = float(dt)
        share = run.share
        debt = a.debt[idx]
        rest: npt.NDArray[np.float64] | float
        if run.all_share_pos:
            # every row at once: a row without debt pays 0 (its debt stays 0.0, its system time gains 0.0 and
            # its rest is fdt - 0.0), so the rows in debt get exactly the masked form's values
            busy = np.minimum(fdt, debt / share)
            a.debt[idx] = np.maximum(debt - share * dt, 0.0)
            a.sys_ns[idx] += share * busy
            rest = fdt - busy
        elif _nonzero(indebt := (debt > 0) & (share > 0)):
            di = idx[indebt]
            s, d = share[indebt], debt[indebt]
            busy = np.minimum(fdt, d / s)
            a.debt[di] = np.maximum(d - s * dt, 0.0)
            a.sys_ns[di] += s * busy
            rest = np.full(idx.size, fdt)
            rest[indebt] = fdt - busy
        else:
            rest = fdt
        sp = run.split(a, self.cpu_node)
        progressed = run.rate * rest
        if sp.nr_copying:
            copying, working, ci = sp.copying, sp.working, sp.ci
            rest_c = rest[copying] if isinstance(rest, np.ndarray) else rest
            copy_ns = sp.share_c * rest_c
            a.sys_ns[ci] += copy_ns
            self.system_by_cause["copy"] = self.system_by_cause.get("copy", 0.0) + float(_sum(copy_ns))
            rest_w = rest[working] if isinstance(rest, np.ndarray) else rest
            prog_w = progressed[working]
            copy_left_c = a.copy_left[ci]
            copied = np.minimum(progressed[copying], copy_left_c)
            left = copy_left_c - copied
            a.copy_left[ci] = left
            self.copy_bytes += float(_sum(copied))
            finished = left <= 1e-6
            if _nonzero(finished):  # the copy is over: the task streams again, at rates without the copy's row
                fi = ci[finished]
                a.copy_left[fi] = 0.0
                a.copy_src[fi] = 0.0
                a.copy_dst[fi] = 0.0
                self.dirty = True
        else:
            rest_w, prog_w = rest, progressed
        wi = sp.wi
        a.user_ns[wi] += sp.share_w * rest_w
        a.rem[wi] -= prog_w
        if sp.nr_mem:
            nbytes = prog_w if sp.mem is None else prog_w[sp.mem]
            total_b = float(_sum(nbytes))
            local_b = float(_sum(nbytes * sp.local))
            self.bytes_total += total_b
            self.bytes_local += local_b
            interval = self.interval_bytes
            interval[0] += total_b
            interval[1] += local_b

    def next_time(self) -> int | None:
        known = self._next_known
        if known is not None:  # (fire_through's, from the state it left)
            self._next_known = None
            return known[0]
        if self.dirty:
            self.recompute()
        n = len(self.tasks)
        a = self.arrays
        best = math.inf
        for kc in self.kernel_copies:
            if float(kc[4]) > 0:  # type: ignore[arg-type]
                best = min(best, float(kc[1]) / float(kc[4]))  # type: ignore[arg-type]
        if not self.debt_events:
            run = self._running_rows()
            idx = run.idx
            all_pos = run.all_pos
            kernels = jit.loaded()
            if kernels is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
                found, least = kernels.next_completion(
                    idx, run.share, run.rate, all_pos, run.all_share_pos, a.debt, a.rem, a.copy_left
                )
                if found:
                    best = min(best, least)
                return self.t_last + max(1, math.ceil(best - 1e-9)) if best != math.inf else None
            pos = None if all_pos or not idx.shape[0] else run.rate > 0
            if all_pos or (pos is not None and _nonzero(pos)):
                # kernel debt first, then the copy (copy_left > 0) or the phase's work: the earliest of them
                sp = run.split(a, self.cpu_node)
                left = a.rem[idx]  # the copy (copy_left > 0) or else the phase's work
                if sp.nr_copying:
                    left[sp.copying] = a.copy_left[sp.ci]
                t = left / run.rate if pos is None else left[pos] / run.rate[pos]
                debt = a.debt[idx]
                share = run.share
                if run.all_share_pos:  # a row without debt adds 0.0 / share = 0.0, as the masked form's 0.0
                    kt = debt / share
                    t = (kt if pos is None else kt[pos]) + t
                elif _nonzero(indebt := (debt > 0) & (share > 0)):
                    kt = np.where(indebt, debt / np.where(share > 0, share, 1.0), 0.0)
                    t = (kt if pos is None else kt[pos]) + t
                best = min(best, float(_min(t)))
            return self.t_last + max(1, math.ceil(best - 1e-9)) if best != math.inf else None
        running = a.oncpu[:n] >= 0
        if _nonzero(running):
            debt = a.debt[:n]
            rate = a.rate[:n]
            indebt = running & (debt > 0)
            if _nonzero(indebt):
                best = min(best, float((debt[indebt] / a.share[:n][indebt]).min()))
            copy_left = a.copy_left[:n]
            copying = running & ~indebt & (copy_left > 0) & (rate > 0)
            if _nonzero(copying):
                best = min(best, float((copy_left[copying] / rate[copying]).min()))
            working = running & ~indebt & (copy_left <= 0) & (rate > 0)
            if _nonzero(working):
                best = min(best, float((a.rem[:n][working] / rate[working]).min()))
        if best == math.inf:
            return None
        return self.t_last + max(1, math.ceil(best - 1e-9))

    def fire_through(self, t: int, t_ev: int | None) -> bool:
        """The engine's loop from its step to ``t`` (``_advance_to(t)``, then :meth:`fire`) on, while nothing
        but these completions happens: the next completion comes at or before the next event ``t_ev`` (None:
        no event), no phase completes and the rates need nothing made in Python (every running task streams
        from a stream table or copies from a copy row that is up to date). As one compiled kernel
        (``_kernels.fire_chain``): the same kernels in the same order, so the same bits, and ``Engine.now``
        moves with each completion as ``_advance_to`` would move it. Returns False, having done nothing, where
        the kernels are not loaded or the rates are not as the compiled paths keep them (debts as events,
        kernel threads' copies, rates to compute), and the engine steps as before."""
        kernels = jit.loaded()
        run = self._running
        if kernels is None or self.dirty or run is None or self.kernel_copies or self.debt_events or t <= self.t_last:
            return False
        a = self.arrays
        versions = self._versions()
        mm = self.memmodel
        snoop_cap = mm.snoop_cap
        acc = np.array([self.system_by_cause.get("copy", 0.0), self.copy_bytes, self.bytes_total, self.bytes_local])
        ints, done, idx, share, rate, cu = kernels.fire_chain(
            t, self.t_last, _NO_EVENT if t_ev is None else t_ev, (run.idx, run.share, run.rate), run.all_pos,
            run.all_share_pos,
            (
                len(self.tasks), a.oncpu, a.weight, a.kind, self._phase_key, self._copy_epoch, a.rate, a.share,
                a.debt, a.sys_ns, a.user_ns, a.rem, a.copy_left, a.copy_src, a.copy_dst, a.frac,
            ),
            (
                self._key_stamp, self._stamp if versions == self._ok_versions else 0, self._tab_frac, self._tab_den,
                self._tab_base, self._crow_epoch, self._crow_node, self._crow_m, self._crow_base,
            ),
            (
                self.cpu_node, self.cpu_core, self.nr_cpus, mm.mlp, mm.controller_cap, mm.link_cap,
                0.0 if snoop_cap is None else snoop_cap, snoop_cap is not None,
            ),
            acc, self.interval_bytes,
        )  # fmt: skip
        way, t_last, dirty, copying, recomputed, all_pos, all_share_pos, known, t_next, fired = ints.tolist()
        self.fired_through += fired
        copy_ns, self.copy_bytes, self.bytes_total, self.bytes_local = acc.tolist()
        if copying:
            self.system_by_cause["copy"] = copy_ns
        if recomputed:
            self._running = _Running(idx, share, rate, bool(all_share_pos), bool(all_pos))
            self.controller_util = cu
        self.dirty = bool(dirty)
        self.t_last = t_last
        self.engine.now = t_last
        if way == kernels.CHAIN_DONE:
            self._complete(done.tolist())
        elif known:  # (what next_time, which the engine calls next, would compute again)
            self._next_known = (None if t_next < 0 else t_next,)
        return True

    def fire(self) -> None:
        """Pay off kernel debts, finish copies and hand every phase that completed now to the interpreter."""
        if self.kernel_copies:
            left = [kc for kc in self.kernel_copies if float(kc[1]) > float(kc[4]) * 1.0 + 1e-6]  # type: ignore[arg-type]
            if len(left) != len(self.kernel_copies):
                self.kernel_copies = left
                self.dirty = True
        a = self.arrays
        run = self._running_rows()  # the running tasks' rows (gathered once)
        idx = run.idx
        kernels = jit.loaded()
        if kernels is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
            copied_bytes, any_copied, done_ids = kernels.fire_rows(
                idx, run.share, run.rate, a.debt, a.rem, a.copy_left, a.copy_src, a.copy_dst
            )
            if any_copied:
                self.copy_bytes += copied_bytes
                self.dirty = True
            self._complete(done_ids.tolist())
            return
        debt = a.debt[idx]
        share_tol, copy_tol, rem_tol, rate_pos = run.tols()
        paid = (debt > 0) & (debt <= share_tol)
        if _nonzero(paid):
            a.debt[idx[paid]] = 0.0
            debt[paid] = 0.0
        copy_left = a.copy_left[idx]
        no_debt = debt <= 0
        copied = no_debt & (copy_left > 0) & (copy_left <= copy_tol)
        if _nonzero(copied):
            ci = idx[copied]
            self.copy_bytes += float(_sum(copy_left[copied]))
            a.copy_left[ci] = 0.0
            copy_left[copied] = 0.0
            a.copy_src[ci] = 0.0
            a.copy_dst[ci] = 0.0
            self.dirty = True
        done = no_debt & (copy_left <= 0) & rate_pos & (a.rem[idx] <= rem_tol)
        self._complete(idx[done].tolist())

    def _complete(self, done: list[int]) -> None:
        """Hand each task of ``done`` whose phase completed to the interpreter, in order (one may block or
        wake another before its turn)."""
        tasks = self.tasks
        a = self.arrays
        for tid in done:
            task = tasks[tid]
            if task.state is FluidTaskState.RUNNABLE and a.oncpu[tid] >= 0:
                a.rem[tid] = 0.0
                self.on_complete(task)

    # ---- rates ---------------------------------------------------------------------------------------------
    def recompute(self) -> None:
        self.dirty = False
        kernels = jit.loaded()
        if kernels is not None and not self.kernel_copies:
            self._recompute_compiled(kernels)
            return
        n = len(self.tasks)
        a = self.arrays
        a.rate[:n] = 0.0
        a.share[:n] = 0.0
        running = (a.oncpu[:n] >= 0).nonzero()[0]
        if running.size == 0 and not self.kernel_copies:
            self.controller_util[:] = 0.0
            self._running = _Running.of(running, a)
            return
        cpus = a.oncpu[running]
        run_share = fluid_shares(cpus, a.weight[running], self.nr_cpus)
        if running.size:
            a.share[running] = run_share
        copying = a.copy_left[running] > 0
        kind = a.kind[running]
        not_copying = ~copying
        mem = running[(kind == MEM) & not_copying]
        cop = running[copying]
        mm_model = self.memmodel
        demands: list[npt.NDArray[np.float64]] = []
        bases: list[npt.NDArray[np.float64]] = []
        row_cpu: list[npt.NDArray[np.int64]] = []
        # The stream tables of the streaming rows' phases, and of the copying rows' in a Touch (up to date when
        # a copy ends, as the compiled recompute keeps them for fire_through): the same keys, ascending.
        touch = running[kind == MEM]
        if touch.size:
            self._refresh_tables(np.bincount(self._phase_key[touch]).nonzero()[0].tolist())
        if mem.size:
            # One group per distinct phase (see begin_touch); every row of a group on one node is the same
            # row (its placement fractions, page-walk cost and resource use), kept in a table per phase until
            # the placement it was computed from changes.
            keys = self._phase_key[mem]
            oncpu = a.oncpu[mem]
            a.frac[mem] = self._tab_frac[keys]
            g = keys * self.arrays.nr_nodes + self.cpu_node[oncpu]
            demands.append(a.share[mem] / self._tab_den[g])
            bases.append(self._tab_base[g])
            row_cpu.append(oncpu)
        if cop.size:
            oncpu = a.oncpu[cop]
            node = self.cpu_node[oncpu]
            m, base = self._copy_table(cop, node)
            demands.append(a.share[cop] * mm_model.mlp / m)  # (copy_rows' demand, from the kept rows)
            bases.append(base)
            row_cpu.append(oncpu)
        kcs = self.kernel_copies
        if kcs:
            kcpu = np.array([int(kc[0]) for kc in kcs], dtype=np.int64)  # type: ignore[call-overload]
            node = self.cpu_node[kcpu]
            demand, reads, writes, core_ns = mm_model.copy_rows(
                node,
                np.ones(len(kcs)),
                np.array([kc[2] for kc in kcs], dtype=np.float64),
                np.array([kc[3] for kc in kcs], dtype=np.float64),
            )
            demands.append(demand)
            bases.append(mm_model.row_base(node, reads, writes, core_ns))
            row_cpu.append(kcpu)
        if demands:
            if len(demands) > 1:
                cpu_all = np.concatenate(row_cpu)
                res = mm_model.solve_base(self.cpu_core[cpu_all], np.concatenate(demands), np.concatenate(bases))
            else:
                res = mm_model.solve_base(self.cpu_core[row_cpu[0]], demands[0], bases[0])
            k = 0
            if mem.size:
                a.rate[mem] = res.rate[: mem.size]
                k = mem.size
            if cop.size:
                a.rate[cop] = res.rate[k : k + cop.size]
                k += cop.size
            for i, kc in enumerate(kcs):
                kc[4] = float(res.rate[k + i])
            self.controller_util = res.controller_util
        else:
            self.controller_util = np.zeros(self.topology.nr_nodes)
        # the rest of the running tasks: those in a compute phase (none when every one streams or copies)
        comp = running[(kind == COMPUTE) & not_copying] if mem.size + cop.size < running.size else running[:0]
        if comp.size:
            self._compute_rates(comp, cpus)
        self._running = _Running(running, run_share, a.rate[running])

    def _recompute_compiled(self, kernels: ModuleType) -> None:
        """:meth:`recompute` without kernel copies through the compiled kernels (``memsched.sim.fluid.jit``):
        the same rows, tables and solve, so the same bits."""
        n = len(self.tasks)
        a = self.arrays
        ids, run_share, counts, share_pos = kernels.running_rows(
            n, a.oncpu, a.weight, a.copy_left, a.kind, self._phase_key, a.rate, a.share, self.nr_cpus,
            self.cpu_node, self._copy_epoch, self._crow_epoch, self._crow_node,
        )  # fmt: skip
        # the running, streaming and copying rows, the streaming rows' phase keys, the copying rows' nodes, the
        # stale copy rows (positions among the copying rows) and the computing rows, one after the other in ids
        nrun, nmem, nkeys, ncop, nstale, ncomp = counts.tolist()
        running = ids[:nrun]
        if not nrun:
            self.controller_util[:] = 0.0
            self._running = _Running.of(running, a)
            return
        o = nrun + nmem
        mem, cop = ids[nrun:o], ids[o + nkeys : o + nkeys + ncop]
        if nkeys:
            self._refresh_tables(ids[o : o + nkeys].tolist())
        o += nkeys + 2 * ncop
        if nstale:
            stale = ids[o : o + nstale]
            self._copy_rows(cop[stale], ids[o - ncop : o][stale])
        comp = ids[o + nstale :]
        if nmem or ncop:
            mm_model = self.memmodel
            snoop_cap = mm_model.snoop_cap
            self.controller_util, run_rate, rate_pos = kernels.stream_and_copy_rates(
                mem, cop, a.oncpu, self._phase_key, a.share, a.frac, self._tab_frac, self._tab_den,
                self._tab_base, self._crow_m, self._crow_base, self.cpu_node, self.cpu_core, mm_model.mlp,
                mm_model.controller_cap, mm_model.link_cap, 0.0 if snoop_cap is None else snoop_cap,
                snoop_cap is not None, a.rate, running,
            )  # fmt: skip
            if not ncomp:  # (every running row's rate is set: the kernel's gather of them holds)
                self._running = _Running(running, run_share, run_rate, share_pos, rate_pos)
                return
        else:
            self.controller_util = np.zeros(self.topology.nr_nodes)
        if ncomp:
            self._compute_rates(comp, a.oncpu[running])
        self._running = _Running(running, run_share, a.rate[running], share_pos)

    def _compute_rates(self, comp: npt.NDArray[np.int64], cpus: npt.NDArray[np.int64]) -> None:
        """The rates of the running tasks ``comp`` in a compute phase: their CPU share, times ``smt_yield`` when
        another task runs on an SMT sibling of their CPU (``cpus``: the CPUs of every running task)."""
        a = self.arrays
        busy = np.zeros(self.nr_cpus, dtype=bool)
        busy[cpus] = True
        smt_yield = self.topology.smt_yield
        yields = np.array([smt_yield if busy[self._sibling_cpus[int(c)]].sum() > 1 else 1.0 for c in a.oncpu[comp]])
        a.rate[comp] = a.share[comp] * yields

    def _versions(self) -> list[tuple[int, int]]:
        """Each mm's placement and huge-page versions, by mm id: what the stream tables were computed from."""
        return [(mm.placement_version, mm.huge_version) for mm in self.mms]

    def _refresh_tables(self, keys: list[int]) -> None:
        """Bring the stream tables of the phase keys ``keys`` (ascending) up to date: those not checked since the
        placement or huge-page version of their mm moved (:meth:`_refresh_phase_rows`; a phase's regions are
        in one mm, ``Touch`` checks)."""
        fresh = self._tab_fresh
        key_mm = self._key_mm
        versions = self._versions()
        # each key checked is stamped (fire_through's compiled recompute needs no refresh of those stamped now)
        if versions != self._ok_versions:
            self._stamp += 1
            self._ok_versions = versions
        stamp, stamps = self._stamp, self._key_stamp
        if keys and keys[-1] >= stamps.shape[0]:
            stamps = self._key_stamp = grown(stamps, 2 * keys[-1] + 2, -1)
        for key in keys:
            now = versions[key_mm[key]]
            if fresh.get(key) != now:
                self._refresh_phase_rows(key)  # (reads its mm's placement only: the versions stay)
                fresh[key] = now
            stamps[key] = stamp

    def _running_rows(self) -> _Running:
        """The running tasks' rows with their CPU shares and rates: as of the last :meth:`recompute` while nothing
        has changed since (every change of a task's CPU marks the rates dirty), else gathered now."""
        run = self._running
        if self.dirty or run is None:
            return _Running.of((self.arrays.oncpu[: len(self.tasks)] >= 0).nonzero()[0], self.arrays)
        return run

    def _refresh_phase_rows(self, key: int) -> None:
        """Bring the rows of phase ``key`` in the stream tables up to date: its placement fractions
        (``_tab_frac``) and, per node its task runs on, its demand's denominator and resource use
        (``MemModel.stream_table``). Recomputed only when a fraction it depends on is a new array (placement
        changed) or its page-walk share changed."""
        phase = self._phases[key]
        frac1 = self._region_frac(phase.region)
        frac2 = self._region_frac(phase.shared) if phase.shared is not None else None
        walk = self.walk_ns_per_byte
        small = 0.0
        if walk:
            mm = self.mms[phase.region.mm_id]
            small = mm.region_small_fraction(phase.region)
            if phase.shared is not None:
                f = phase.shared_fraction
                small = (1.0 - f) * small + f * mm.region_small_fraction(phase.shared)
        state = self._tab_state
        if key < len(state):
            old = state[key]
            if old is not None and old[0] is frac1 and old[1] is frac2 and old[2] == small:
                return
        else:
            state.extend([None] * (key + 1 - len(state)))
        nr = self.arrays.nr_nodes
        if self._tab_frac.shape[0] <= key:
            cap = max(2 * self._tab_frac.shape[0], key + 1)
            self._tab_frac = grown(self._tab_frac, cap, 0.0)
            self._tab_den = grown(self._tab_den, cap * nr, 0.0)
            self._tab_base = grown(self._tab_base, cap * nr, 0.0)
        frac = frac1
        if frac2 is not None:
            f = phase.shared_fraction
            frac = (1.0 - f) * frac1 + f * frac2
        # the phase's per-node inputs (read only): kept per key, cpb while its page-walk share stays
        inputs = self._tab_inputs.get(key)
        if inputs is None or inputs[0] != small:
            cpb = np.full(nr, phase.cpu_ns_per_byte, dtype=np.float64)
            if walk:
                cpb += walk * small
            if inputs is None:
                write = np.full(nr, phase.write, dtype=np.float64)
                scale = np.full(nr, phase.mlp_scale, dtype=np.float64)
            else:
                write, scale = inputs[2], inputs[3]
            self._tab_inputs[key] = (small, cpb, write, scale)
        else:
            cpb, write, scale = inputs[1], inputs[2], inputs[3]
        rows = slice(key * nr, (key + 1) * nr)
        kernel = jit.stream_table_kernel()
        if kernel is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
            kernel(frac, write, cpb, scale, self.memmodel.row_args, self._tab_den[rows], self._tab_base[rows])
        else:
            den, base = self.memmodel.stream_table(frac, write, cpb, scale)
            self._tab_den[rows] = den
            self._tab_base[rows] = base
        self._tab_frac[key] = frac
        state[key] = (frac1, frac2, small)

    def _copy_table(
        self, cop: npt.NDArray[np.int64], node: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``max(core_ns, eps)`` and the resource use (``MemModel.row_base``) of the copy rows of tasks ``cop`` on
        ``node``, computed again only for a task whose pending copy grew or that moved node since: a row depends
        on its own task's copy and node only (every element and each row's sums are computed from its row
        alone, so a row computed among others is the row computed alone)."""
        stale = (self._crow_epoch[cop] != self._copy_epoch[cop]) | (self._crow_node[cop] != node)
        if _nonzero(stale):
            self._copy_rows(cop[stale], node[stale])
        return self._crow_m[cop], self._crow_base[cop]

    def _copy_rows(self, si: npt.NDArray[np.int64], sn: npt.NDArray[np.int64]) -> None:
        """Compute again the kept copy rows of tasks ``si``, on nodes ``sn`` (see :meth:`_copy_table`)."""
        a = self.arrays
        mm_model = self.memmodel
        kernel = jit.copy_rows_kernel()
        if kernel is not None:  # the same operations in the same order, compiled (memsched.sim.fluid.jit)
            kernel(si, sn, a.copy_src, a.copy_dst, mm_model.row_args, self._crow_base, self._crow_m)
        else:
            reads, writes, core_ns = mm_model.copy_parts(sn, a.copy_src[si], a.copy_dst[si])
            self._crow_base[si] = mm_model.row_base(sn, reads, writes, core_ns)
            self._crow_m[si] = mm_model.copy_den(core_ns)
        self._crow_epoch[si] = self._copy_epoch[si]
        self._crow_node[si] = sn

    def _region_frac(self, region: Region) -> npt.NDArray[np.float64]:
        mm = self.mms[region.mm_id]
        version = mm.placement_version
        hit = self._frac_cache.get(region)
        if hit is not None and hit[0] == version:
            return hit[2]
        node_bytes = mm.region_node_bytes(region)
        # the same array when the pages that moved lie outside the region (``MmStruct.set_nodes``): the same
        # fractions, kept as the same object so the stream tables stay valid
        frac = hit[2] if hit is not None and hit[1] is node_bytes else node_bytes / float(region.nbytes)
        self._frac_cache[region] = (version, node_bytes, frac)
        return frac

    # ---- results -------------------------------------------------------------------------------------------
    def user_ns(self) -> float:
        return float(self.arrays.user_ns[: len(self.tasks)].sum())

    def system_ns(self) -> float:
        return float(self.arrays.sys_ns[: len(self.tasks)].sum())

    def task_times(self, task: FluidTask) -> tuple[float, float]:
        """User and system CPU nanoseconds of one task."""
        return float(self.arrays.user_ns[task.id]), float(self.arrays.sys_ns[task.id])

    def local_fraction(self) -> float | None:
        return self.bytes_local / self.bytes_total if self.bytes_total > 0 else None
