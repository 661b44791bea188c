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

Deviations from the kernel: no ``__GFP_*`` filter (every simulated reclaim is for user pages, which pass it);
reclaimed slab pages do not exist, so ``reclaimed > scanned`` never happens in simulated runs.
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

__all__ = ["FileWait", "Sample", "SimVmpressure", "VmpressureOp"]

_SOCKET_PRESSURE_NS = 1_000_000_000  # memcg->socket_pressure = jiffies + HZ
#: The deferred calls of a shrink pass run after the work items due at the same instant.
_PRIO_PASS = Prio.TIMER + 1


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
    ) -> None:
        self.engine = engine
        self.memcgs = memcgs
        self.rfc = RfcVmpressure(rfc or Rfc2012VmpressureConfig())
        self.mainline = mainline or memcgs.config
        self.workqueue_latency_ns = workqueue_latency_ns
        self.watchers = WatcherList()
        self.file_waiters: dict[int, list[tuple[FluidTask, Callable[[FluidTask], None]]]] = {}
        self.samples: list[Sample] = []
        self._pending: dict[int, tuple[int, Event | None]] = {}
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
        self.engine.at(t, _PRIO_PASS, self._account, ops)
        self.engine.hold(t + self.workqueue_latency_ns)  # even if the stall ends in killing the last task

    def _account(self, ops: list[VmpressureOp]) -> None:
        t = self.engine.now
        self._run_due(t)
        for op in ops:
            if op.kind == "lruvec":
                if self.rfc.vmpressure(op.scanned, op.reclaimed, memcg_reclaim=op.memcg_reclaim):
                    self._schedule(-1, t)
            elif op.kind == "prio":
                if self.rfc.vmpressure_prio(op.priority, memcg_reclaim=op.memcg_reclaim):
                    self._schedule(-1, t)
                if self.memcgs.memcgs[op.memcg].vmpr.vmpressure_prio(op.priority):
                    self._schedule(op.memcg, t)
            elif op.kind == "tree":
                if self.memcgs.memcgs[op.memcg].vmpr.vmpressure(op.scanned, op.reclaimed, tree=True):
                    self._schedule(op.memcg, t)
            elif op.kind == "memcg":
                m = self.memcgs.memcgs[op.memcg]
                level = m.vmpr.vmpressure(op.scanned, op.reclaimed, tree=False)
                if isinstance(level, MemcgLevel) and level > MemcgLevel.LOW:
                    m.socket_pressure_until = t + _SOCKET_PRESSURE_NS
                    m.socket_pressure_events += 1
            else:  # pragma: no cover - programming error
                raise ValueError(op.kind)

    def _schedule(self, key: int, t: int) -> None:
        """``schedule_work()``: the work of ``key`` (-1: the RFC's global work, else a memcg) runs later.

        It becomes an engine event only if someone listens; otherwise the next vmpressure call (or
        :meth:`flush`) runs it at its due time, which gives the same snapshots without the event."""
        if key in self._pending:
            return
        run_at = t + self.workqueue_latency_ns
        ev: Event | None = None
        if self._has_listeners(key):
            ev = self.engine.at(run_at, Prio.TIMER, self._work_event, key)
        self._pending[key] = (run_at, ev)

    def _has_listeners(self, key: int) -> bool:
        if key < 0:
            return len(self.watchers) > 0
        return any(self.memcgs.listeners_path(key))

    def flush(self) -> None:
        """Run the work items due by now (reports call this before reading :attr:`samples`)."""
        self._run_due(self.engine.now)

    def _run_due(self, t: int) -> None:
        while self._pending:
            key, (run_at, _) = min(self._pending.items(), key=lambda kv: (kv[1][0], kv[0]))
            if run_at > t:
                return
            self._run_work(key)

    def _work_event(self, key: int) -> None:
        if key in self._pending:
            self._run_due(self.engine.now)

    def _run_work(self, key: int) -> None:
        run_at, ev = self._pending.pop(key)
        if ev is not None:
            ev.cancel()
        if key < 0:
            self._rfc_work(run_at)
        else:
            self._memcg_work(key, run_at)

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
