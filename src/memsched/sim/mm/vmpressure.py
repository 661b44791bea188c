"""vmpressure in the simulated kernel: both flavours fed by vmscan, their work items, and delivery.

The arithmetic and the state machines are the pure layer's (``memsched.pressure``); this module wires them
to the simulated reclaimer and clock, as mm/vmpressure.c is wired to mm/vmscan.c:

* **rfc2012** (the ``vmpressure_fd()`` RFC, Nov 2012): one system-wide accumulator fed by
  ``shrink_lruvec()`` after each lruvec scan and by ``vmpressure_prio()`` on each priority step of
  ``do_try_to_free_pages()``; memcg-limit reclaim is ignored, as in the RFC. Its work item broadcasts the
  level to every ``vmpressure_fd`` watcher (the RFC's system-wide mode), through
  :class:`~memsched.pressure.fd.VmpressureFile`.
* **mainline** (mm/vmpressure.c, 4.5+): ``shrink_node()`` feeds ``vmpressure(tree=true)`` of the reclaim
  target (the root memcg for global reclaim) and ``vmpressure(tree=false)`` of each memcg it scanned (socket
  pressure only); ``do_try_to_free_pages()`` calls ``vmpressure_prio()`` for direct and memcg-limit reclaim,
  not kswapd. Its work item computes one level per snapshot and signals the eventfds of
  ``memory.pressure_level`` listeners along the path to the root with the default / hierarchy / local rules
  (3.10 rules with ``MainlineVmpressureConfig.v3_10()``).

Both flavours always run side by side: they only observe reclaim, so one simulation shows what each design
would have reported. Every computed window is kept in :attr:`SimVmpressure.samples` (time, flavour, memcg,
scanned, reclaimed, index, level) for reports.

Timing. A reclaim stall is computed at once but spans ``cost`` ns of simulated time; each of its shrink
passes ends at an offset inside it. The vmpressure calls of a pass are deferred through the engine to the
instant the pass ends (:meth:`SimVmpressure.account`), and a scheduled work item runs
``workqueue_latency_ns`` later on the system workqueue. So several windows filled by one long stall still
merge into one snapshot when the work has not run yet — as they do in the kernel. Passes of different
reclaimers are taken in the order they were computed (a later-computed pass never runs before an earlier
one, as ``vmpr->sr_lock`` serialises the accumulators). A work item with nobody listening is not an
event: it runs, at its own time, when the next pass or :meth:`SimVmpressure.flush` finds it due.

When the work runs. ``schedule_work()`` queues it on the system workqueue's pool of the reclaimer's CPU
(kernel/workqueue.c: ``queue_work_on(WORK_CPU_UNBOUND)`` takes the local CPU for a per-CPU workqueue) and
wakes that pool's kworker, which runs when its CPU next schedules:

* at once if the reclaimer sleeps (:meth:`SimVmpressure.sleep`): ``reclaim_throttle()`` (mm/vmscan.c 6.18:
  ``schedule_timeout()`` on the pgdat's wait queue, which schedules even when it returns at once), waiting
  for writeback (``folio_wait_writeback()``), or for the disk in ``filemap_read()`` (``filemap_get_pages()``
  → ``folio_wait_locked()``/``folio_put_wait_locked()`` on a folio under read I/O);
* otherwise by the scheduler's wakeup rule. On EEVDF (6.6+; ``MmBehaviour.eevdf``) the woken kworker is
  placed with the lag it kept when it last went to sleep (``place_entity()`` with PLACE_LAG: with the
  reclaimer alone on the queue, ``v = V - 2*vlag``); ``check_preempt_wakeup_fair()`` first runs
  ``update_curr()``, which gives the running reclaimer a new deadline once its vruntime passed the old one,
  then ``__pick_eevdf()`` decides (kernel/sched/fair.c 6.18):

  - **positive lag**: the reclaimer is no longer eligible (its vruntime is above the new average), so it has
    no slice protection and the eligible kworker is picked: it runs at the reclaimer's next preemption point;
  - **zero or negative lag**: the reclaimer is eligible and keeps the CPU while protected
    (``RUN_TO_PARITY``: ``set_protect_slice()`` protects it to its deadline when all slices are equal), so
    the kworker runs when the reclaimer's deadline has passed: at the wakeup if it already has, else at the
    first tick (``CONFIG_HZ``, ``task_tick_fair()`` → ``update_curr()``) at or after it. The deadline is set
    when the reclaimer gets the CPU (after its sleep, or after the kworker ran) to that time plus the base
    slice, and renewed by ``update_curr()`` at the first tick past it.

  The switch itself comes ``workqueue_latency_ns`` later (the reclaimer's next ``cond_resched()``). The
  kworker's lag when it goes back to sleep is ``V - v`` of the two-entity queue: its old lag plus half of
  (the time the reclaimer ran since the wakeup minus the kworker's own run, ``kworker_run_ns`` per work
  item), clamped to ``max(2*slice, TICK_NSEC)`` (``update_entity_lag()``). So a kworker that had to wait for
  a deadline leaves with a large positive lag and then runs after every window until its own runs use the
  lag up; one that ran at once keeps about what it had. When the reclaimer sleeps with work pending, the
  kworker runs then and the same rule applies (the sleeping reclaimer, no longer eligible, stays queued as
  a delayed entity, ``DELAY_DEQUEUE``). Before EEVDF (3.10, 5.10), CFS placed the long-sleeping kworker
  ``sched_latency/2`` behind ``min_vruntime``, more than the wakeup granularity: it preempts at once,
  ``workqueue_latency_ns`` after ``schedule_work()``. Work items queued on a CPU whose kworker is already
  woken run in that same kworker run.

Deviations from the kernel: no ``__GFP_*`` filter (every simulated reclaim is for user pages, which pass it);
reclaimed slab pages do not exist, so ``reclaimed > scanned`` never happens in simulated runs. The wakeup
rule assumes the reclaimer and the kworker are the only runnable tasks on their CPU: other tasks there (the
listener the kworker wakes, for one) move both lags, which the fluid machine does not keep; a kworker whose
lag turns negative is treated as placed at zero lag (the kernel keeps it queued as a delayed entity until it
is eligible, a few microseconds of the reclaimer's run). Ticks fall on multiples of the tick
period from time 0; kswapd's passes (no CPU of their own here) use the rule with a deadline renewed at every
tick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsched.pressure.accounting import RfcVmpressure, propagate
from memsched.pressure.fd import VmpressureFile, WatcherList
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.sim.engine import Engine, Event, Prio
from memsched.sim.eventfd import SimEventfd
from memsched.sim.mm.memcontrol import ROOT_MEMCG, MemcgTree
from memsched.uapi.pressure import MemcgLevel, VmpressureConfig, VmpressureLevel

if TYPE_CHECKING:
    from memsched.sim.fluid.task import FluidTask

__all__ = ["FileWait", "Sample", "SimVmpressure", "VmpressureOp", "base_slice_ns"]

_SOCKET_PRESSURE_NS = 1_000_000_000  # memcg->socket_pressure = jiffies + HZ
#: The deferred calls of a shrink pass run after the work items due at the same instant.
_PRIO_PASS = Prio.TIMER + 1
#: ``normalized_sysctl_sched_base_slice`` (kernel/sched/fair.c 6.15+: 0.70 ms; 0.75 ms in 6.6-6.14).
_BASE_SLICE_NS = 700_000


def base_slice_ns(nr_cpus: int) -> int:
    """``sysctl_sched_base_slice`` after ``update_sysctl()`` with the default ``SCHED_TUNABLESCALING_LOG``:
    the normalized slice times ``1 + ilog2(min(CPUs, 8))``."""
    return _BASE_SLICE_NS * (1 + max(1, min(nr_cpus, 8)).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class Sample:
    """One computed window (both flavours): when, which flavour and memcg, the snapshot and the result."""

    t_ns: int
    flavour: str
    memcg: int
    scanned: int
    reclaimed: int
    index: int
    level: int
    delivered: int


@dataclass(frozen=True, slots=True)
class VmpressureOp:
    """One deferred call: ``lruvec`` (RFC per-lruvec hook), ``memcg`` (tree=false), ``tree`` or ``prio``."""

    kind: str
    memcg: int
    scanned: int = 0
    reclaimed: int = 0
    priority: int = 0
    memcg_reclaim: bool = False


class FileWait:
    """A :class:`~memsched.sim.fluid.task.Waitable` over a ``VmpressureFile``: ready while an event is pending."""

    def __init__(self, vmp: SimVmpressure, f: VmpressureFile) -> None:
        self._vmp = vmp
        self.file = f

    def poll_ready(self, task: FluidTask) -> bool:
        return self.file.pending

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self._vmp.file_waiters.setdefault(id(self.file), []).append((task, wake))


class SimVmpressure:
    """Both vmpressure flavours of one simulated machine."""

    def __init__(
        self,
        engine: Engine,
        memcgs: MemcgTree,
        *,
        rfc: Rfc2012VmpressureConfig | None = None,
        mainline: MainlineVmpressureConfig | None = None,
        workqueue_latency_ns: int = 10_000,
        kworker_run_ns: int = 2_000,
        eevdf: bool = False,
        tick_ns: int = 4_000_000,
        slice_ns: int = 1_400_000,
    ) -> None:
        self.engine = engine
        self.memcgs = memcgs
        self.rfc = RfcVmpressure(rfc or Rfc2012VmpressureConfig())
        self.mainline = mainline or memcgs.config
        self.workqueue_latency_ns = workqueue_latency_ns
        self.kworker_run_ns = kworker_run_ns
        self.eevdf = eevdf
        self.tick_ns = tick_ns
        self.slice_ns = slice_ns
        #: The CPU whose task is reclaiming now (set by the fault path; -1: none known, e.g. kswapd).
        self.current_cpu = -1
        #: When the task on each CPU last got it (its EEVDF deadline is this plus the slice).
        self._picked: dict[int, int] = {}
        #: The kworker of each CPU: its EEVDF lag (ns of vruntime, nice 0 like the reclaimer) and, from its
        #: wakeup to its first work item of that run, when it was woken.
        self._lag: dict[int, int] = {}
        self._woke: dict[int, int] = {}
        self.watchers = WatcherList()
        self.file_waiters: dict[int, list[tuple[FluidTask, Callable[[FluidTask], None]]]] = {}
        self.samples: list[Sample] = []
        #: Queued work items: key -> (when it runs, its engine event if someone listens, the CPU it was queued on).
        self._pending: dict[int, tuple[int, Event | None, int]] = {}
        self._last_pass = 0
        #: Every event delivered: (t_ns, design, receiver name, level name).
        self.deliveries: list[tuple[int, str, str, str]] = []

    # ---- the "syscall" ------------------------------------------------------------------------------------
    def vmpressure_fd(
        self, config: VmpressureConfig | bytes | None = None, *, name: str = "[vmpressure]"
    ) -> VmpressureFile:
        """``vmpressure_fd(struct vmpressure_config *)``: a new system-wide watcher."""
        if isinstance(config, bytes | bytearray):
            config = VmpressureConfig.unpack(bytes(config))
        return self.watchers.open(config or VmpressureConfig(), name=name)

    def wait(self, f: VmpressureFile) -> FileWait:
        """The waitable a simulated task blocks on (``select`` on the fd)."""
        return FileWait(self, f)

    # ---- hooks called by vmscan ---------------------------------------------------------------------------
    def account(self, at: int, ops: list[VmpressureOp]) -> None:
        """The vmpressure calls of one shrink pass, which ends at simulated time ``at`` (>= now): deferred
        through the engine to that instant (or to the previous pass's, if that is later)."""
        if not ops:
            return
        t = max(at, self.engine.now, self._last_pass)
        self._last_pass = t
        self.engine.at(t, _PRIO_PASS, self._account, ops, self.current_cpu)
        # even if the stall ends in killing the last task
        self.engine.hold(t + self.workqueue_latency_ns + (self.tick_ns + self.slice_ns if self.eevdf else 0))

    def sleep(self, at: int, ns: float, *, cpu: int | None = None) -> None:
        """The task reclaiming on ``cpu`` (default :attr:`current_cpu`) sleeps ``ns`` from simulated time
        ``at`` (>= now), or exits (``ns`` 0): the kworker of its CPU runs then (the work items queued there run
        at that instant), and the task gets its CPU back when it wakes. Deferred through the engine in order
        with the shrink passes."""
        cpu = self.current_cpu if cpu is None else cpu
        if cpu < 0:
            return
        t = max(at, self.engine.now, self._last_pass)
        self._last_pass = t
        self.engine.at(t, _PRIO_PASS, self._sleep, cpu, round(ns))
        self.engine.hold(t)

    def _sleep(self, cpu: int, ns: int) -> None:
        t = self.engine.now
        self._run_due(t)
        for key, (_, ev, on) in list(self._pending.items()):
            if on == cpu:
                self._pending[key] = (t, ev, on)
        self._run_due(t)
        self._picked[cpu] = max(self._picked.get(cpu, t), t + ns)

    def _account(self, ops: list[VmpressureOp], cpu: int) -> None:
        t = self.engine.now
        self._run_due(t)
        for op in ops:
            if op.kind == "lruvec":
                if self.rfc.vmpressure(op.scanned, op.reclaimed, memcg_reclaim=op.memcg_reclaim):
                    self._schedule(-1, t, cpu)
            elif op.kind == "prio":
                if self.rfc.vmpressure_prio(op.priority, memcg_reclaim=op.memcg_reclaim):
                    self._schedule(-1, t, cpu)
                if self.memcgs.memcgs[op.memcg].vmpr.vmpressure_prio(op.priority):
                    self._schedule(op.memcg, t, cpu)
            elif op.kind == "tree":
                if self.memcgs.memcgs[op.memcg].vmpr.vmpressure(op.scanned, op.reclaimed, tree=True):
                    self._schedule(op.memcg, t, cpu)
            elif op.kind == "memcg":
                m = self.memcgs.memcgs[op.memcg]
                level = m.vmpr.vmpressure(op.scanned, op.reclaimed, tree=False)
                if isinstance(level, MemcgLevel) and level > MemcgLevel.LOW:
                    m.socket_pressure_until = t + _SOCKET_PRESSURE_NS
                    m.socket_pressure_events += 1
            else:  # pragma: no cover - programming error
                raise ValueError(op.kind)

    def _schedule(self, key: int, t: int, cpu: int) -> None:
        """``schedule_work()`` on ``cpu``: the work of ``key`` (-1: the RFC's global work, else a memcg) runs
        when that CPU's kworker gets the CPU (:meth:`work_time`, or earlier if the reclaimer sleeps).

        It becomes an engine event only if someone listens; otherwise the next vmpressure call (or
        :meth:`flush`) runs it at its due time, which gives the same snapshots without the event."""
        if key in self._pending:
            return
        # The kworker of ``cpu`` already woken (an item queued there is pending): this one joins its worklist
        # and runs in that same run.
        run_at = next((r for r, _, on in self._pending.values() if on == cpu), None) if cpu >= 0 else None
        if run_at is None:
            run_at = self.work_time(t, cpu)
            if cpu >= 0:
                self._woke[cpu] = t
        ev: Event | None = None
        if self._has_listeners(key):
            ev = self.engine.at(run_at, Prio.TIMER, self._work_event, key)
        self._pending[key] = (run_at, ev, cpu)

    def work_time(self, t: int, cpu: int) -> int:
        """When the kworker woken at ``t`` on ``cpu`` runs, the reclaimer staying on the CPU (see the module
        docstring: CFS preempts at once; EEVDF when the reclaimer's deadline has passed, checked at the wakeup
        and at each tick)."""
        lat = self.workqueue_latency_ns
        if not self.eevdf or self._lag.get(cpu, 0) > 0:  # CFS, or an EEVDF kworker with positive lag
            return t + lat
        tick, s = self.tick_ns, self.slice_ns
        picked = self._picked.get(cpu)
        # Deadlines renewed at ticks long before t repeat with the same phase: start a few periods back.
        start = t - 4 * (tick + s)
        d = picked + s if picked is not None and picked > start else (start // tick) * tick + s
        nxt = -(-d // tick) * tick  # the first tick at or after the deadline
        while nxt <= t:  # update_curr() at that tick renews the deadline
            d = nxt + s
            nxt = -(-d // tick) * tick
        if t >= d:
            return t + lat
        return nxt + lat

    def _has_listeners(self, key: int) -> bool:
        if key < 0:
            return len(self.watchers) > 0
        return any(self.memcgs.listeners_path(key))

    def flush(self) -> None:
        """Run the work items due by now (reports call this before reading :attr:`samples`)."""
        self._run_due(self.engine.now)

    def _run_due(self, t: int) -> None:
        while self._pending:
            key, (run_at, _, _) = min(self._pending.items(), key=lambda kv: (kv[1][0], kv[0]))
            if run_at > t:
                return
            self._run_work(key)

    def _work_event(self, key: int) -> None:
        if key in self._pending:
            self._run_due(self.engine.now)

    def _run_work(self, key: int) -> None:
        run_at, ev, cpu = self._pending.pop(key)
        if ev is not None:
            ev.cancel()
        if cpu >= 0:  # the reclaimer gets its CPU back after the kworker (unless it is asleep until later)
            self._picked[cpu] = max(self._picked.get(cpu, run_at), run_at)
            woke = self._woke.pop(cpu, None)
            if self.eevdf:
                self._kworker_ran(cpu, run_at, woke)
        if key < 0:
            self._rfc_work(run_at)
        else:
            self._memcg_work(key, run_at)

    def _kworker_ran(self, cpu: int, run_at: int, woke: int | None) -> None:
        """The kworker of ``cpu``, woken at ``woke`` (None: earlier in this same run), ran one work item at
        ``run_at``: its lag when it goes back to sleep (``update_entity_lag()``, see the module docstring). The
        reclaimer's run since the wakeup counts once per kworker run, ``kworker_run_ns`` once per item."""
        reclaimer_ran = run_at - woke if woke is not None else 0
        limit = max(2 * self.slice_ns, self.tick_ns)
        lag = self._lag.get(cpu, 0) + (reclaimer_ran - self.kworker_run_ns) // 2
        self._lag[cpu] = max(-limit, min(limit, lag))

    # ---- work items ---------------------------------------------------------------------------------------
    def _rfc_work(self, t: int) -> None:
        s = self.rfc.work_fn()
        sample = Sample(
            t, "rfc2012", ROOT_MEMCG, s.scanned, s.reclaimed, s.index, s.level, len(self.watchers)
        )
        self.samples.append(sample)
        if len(self.watchers):
            self._rfc_deliver(s.level)

    def _rfc_deliver(self, level: int) -> None:
        now = self.engine.now
        for f in self.watchers.broadcast(level):
            self.deliveries.append((now, "rfc2012", f.name, _rfc_name(level)))
            for task, wake in self.file_waiters.pop(id(f), []):
                wake(task)

    def _memcg_work(self, mid: int, t: int) -> None:
        m = self.memcgs.memcgs[mid]
        s = m.vmpr.work_fn()
        if s is None:
            return
        level = MemcgLevel(s.level)
        fired = propagate(level, self.memcgs.listeners_path(mid), modes=self.mainline.modes)
        self.samples.append(Sample(t, "mainline", mid, s.scanned, s.reclaimed, s.index, s.level, len(fired)))
        if fired:
            self._memcg_deliver([ev.target for ev in fired], level)

    def _memcg_deliver(self, targets: list[SimEventfd], level: MemcgLevel) -> None:
        now = self.engine.now
        for efd in targets:
            efd.signal(1)
            self.deliveries.append((now, "mainline", efd.name, level.text))


def _rfc_name(level: int) -> str:
    return VmpressureLevel(level).name.lower()
