"""The discrete-event core: one clock in integer nanoseconds, one event heap, seeded randomness.

Modelled on SimPy's ``Environment``: all state hangs off one object, and heap entries are
``(time_ns, prio, seq, event)`` so that simultaneous events run in a fixed order. ``prio`` orders the kinds
of work at one instant (a lower number runs first); ``seq`` is a global counter, so ties never fall back to
``id()`` or to set order and the same seed always gives the same run.

Only the engine moves simulated time, in one place (:meth:`Engine._advance_to`, called by :meth:`step`),
as SimPy's ``Environment.step()`` does, except where its only source fires through a run of its own
completions with nothing else in between (``fire_through``: the fluid integrator's compiled loop), which
moves the clock to each of them as that place would. Everything else either schedules an event (:meth:`at`,
:meth:`after`) or is a :class:`Source`: something that changes continuously between events and can say
when it next needs attention. The fluid NUMA machine's integrator is one: every running task progresses at
a constant rate between two events, so the integrator knows its next phase completion and the engine's
loop asks it, next to the heap, which comes first.

Defense of design
-----------------
*Integer time.* Kernel timers, periods and runtimes are integers of nanoseconds; float time makes EDF ties
and CBS arithmetic depend on rounding. Fluid progress (``sim/fluid/state.py``) uses float rates between
events, and every completion time is rounded **up** to the next nanosecond so that work is never finished
early.

*Cancellation by flag.* Removing an entry from a heap is O(n); a cancelled :class:`Event` stays in the heap
and is skipped when popped (the kernel's hrtimer code does the equivalent with ``hrtimer_try_to_cancel``).
:meth:`Event.cancel` is the only way to cancel: ``cancelled`` is read-only.

*A source wins a tie.* When a source's completion and a heap event fall on the same nanosecond, the
completion runs first: the task got there before the timer that would look at it.

*``run(until=T)`` ends at T.* As in SimPy, the run stops with ``now == T`` even when nothing happened
near T, so a following ``run`` or a report reads a clock that means what the caller asked for. The one
exception is a run whose sources say they are *done* (every simulated task has exited): its clock stops at
the last thing that happened, and events still queued (periodic scanners, samplers) are left unrun —
except up to the :meth:`Engine.hold` horizon: work deferred into the future of something that already
happened (the vmpressure calls of a reclaim stall that ended in an OOM kill) still runs.

*Named random streams.* ``rng(name)`` derives an independent ``numpy.random.Generator`` from the run's seed
and a stable hash of the name, so adding a new random component never shifts the numbers another one sees.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from memsched.config import check_seed
from memsched.errors import ConfigError, SimulationError

__all__ = ["Engine", "Event", "Prio", "Source"]


class Prio:
    """Order of event kinds at the same instant (lower runs first)."""

    TIMER = 0  # hrtimers, replenishments, job releases
    WAKEUP = 10  # task wakeups and completions of blocking phases
    DEFERRED = 20  # work that must see every wakeup of the instant first (first-touch allocation, ...)
    TICK = 30  # scheduler tick, periodic scanners and balancers
    SAMPLE = 90  # statistics sampling: sees the state after everything else at that instant
    STOP = 1 << 30  # the end of ``run(until=...)``: after everything else at that instant


class Event:
    """A scheduled callback; :meth:`cancel` makes it a no-op."""

    __slots__ = ("_cancelled", "args", "fn", "prio", "seq", "time")

    def __init__(self, time: int, prio: int, seq: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.time = time
        self.prio = prio
        self.seq = seq
        self.fn = fn
        self.args = args
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """The event will not run (it stays in the heap and is skipped when it comes up)."""
        self._cancelled = True

    def __repr__(self) -> str:
        state = ", cancelled" if self._cancelled else ""
        return f"Event(t={self.time}, prio={self.prio}, seq={self.seq}, fn={self.fn!r}{state})"


class Source(Protocol):
    """Continuous state the engine integrates between events (the fluid machine's task progress).

    A lone source may also have ``fire_through(t, t_ev) -> bool``: what the engine's loop does from
    ``_advance_to(t)`` and ``fire()`` on, while the source's next completion comes at or before the next event
    ``t_ev`` (None: no event) and nothing else needs to run; the same steps, with ``Engine.now`` at each
    completion in turn. It returns False when it did nothing, and the loop steps itself."""

    def next_time(self) -> int | None:
        """The next instant this source needs to act (a phase completes), or ``None``."""

    def advance(self, t: int) -> None:
        """Bring the source's state forward to ``t`` (called just before the clock moves to ``t``)."""

    def fire(self) -> None:
        """Handle what completes at ``now`` (the instant :meth:`next_time` gave)."""

    def done(self) -> bool:
        """Nothing is left to simulate: queued events alone do not keep the run going."""


class Engine:
    """Clock, heap, sources and random streams of one simulation run."""

    def __init__(self, seed: int) -> None:
        self.seed = check_seed(seed, "seed")
        self.now = 0
        self._heap: list[tuple[int, int, int, Event]] = []
        self._seq = 0
        self._rngs: dict[str, np.random.Generator] = {}
        self._sources: list[Source] = []
        self._stop: Event | None = None
        self._horizon = 0
        #: Events run so far (the ``run(until=...)`` boundary is not counted).
        self.events_processed = 0

    # ---- scheduling --------------------------------------------------------------------------------------
    def at(self, time: int, prio: int, fn: Callable[..., Any], *args: Any) -> Event:
        """Run ``fn(*args)`` at absolute time ``time`` (ns)."""
        if time < self.now:
            raise SimulationError(f"event scheduled in the past: {time} < now {self.now} ({fn!r})")
        self._seq += 1
        ev = Event(int(time), prio, self._seq, fn, args)
        heapq.heappush(self._heap, (ev.time, prio, self._seq, ev))
        return ev

    def again(self, ev: Event, time: int) -> Event:
        """Run the event that is running now once more at ``time``, as :meth:`at` with its ``prio``, ``fn`` and
        ``args`` would, without a new :class:`Event` (the exact scheduler's tick re-arms itself this way)."""
        if time < self.now:
            raise SimulationError(f"event scheduled in the past: {time} < now {self.now} ({ev.fn!r})")
        seq = self._seq = self._seq + 1
        ev.time = time
        ev.seq = seq
        ev._cancelled = False
        heapq.heappush(self._heap, (time, ev.prio, seq, ev))
        return ev

    def after(self, delay: int, prio: int, fn: Callable[..., Any], *args: Any) -> Event:
        """Run ``fn(*args)`` ``delay`` ns from now: work deferred to a later instant of simulated time."""
        return self.at(self.now + int(delay), prio, fn, *args)

    def hold(self, t: int) -> None:
        """A finished run (sources done) must still run the events due up to ``t``: deferred consequences
        of what already happened."""
        self._horizon = max(self._horizon, t)

    def add_source(self, source: Source) -> None:
        """Integrate ``source`` between events from now on (see :class:`Source`)."""
        self._sources.append(source)

    # ---- inspecting the queue ----------------------------------------------------------------------------
    def peek(self) -> int | None:
        """Time of the next live event, or ``None`` if the heap is empty."""
        heap = self._heap
        while heap and heap[0][3]._cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def has_events(self, *, except_prio: int | None = None) -> bool:
        """Whether any live event is queued (optionally ignoring events of one priority; never the run's end)."""
        return any(
            not ev._cancelled and ev.prio not in (except_prio, Prio.STOP) for _, _, _, ev in self._heap
        )

    def pop_due(self, pred: Callable[[Event], bool]) -> Event | None:
        """Take the next live event if it is due now and ``pred`` accepts it (counted as run): a handler that
        serves several events of one instant at once (the hrtimer interrupt's expired timers) takes them here."""
        heap = self._heap
        while heap and heap[0][3]._cancelled:
            heapq.heappop(heap)
        if not heap or heap[0][0] != self.now:
            return None
        ev = heap[0][3]
        if ev is self._stop or not pred(ev):
            return None
        heapq.heappop(heap)
        self.events_processed += 1
        return ev

    # ---- running -----------------------------------------------------------------------------------------
    def _advance_to(self, t: int) -> None:
        """The one place simulated time moves: every source is brought to ``t``, then the clock."""
        if self._sources:
            for src in self._sources:
                src.advance(t)
        self.now = t

    def step(self) -> None:
        """Pop and run the next live event (the caller has checked ``peek()``)."""
        heap = self._heap
        while True:
            time, _, _, ev = heapq.heappop(heap)
            if not ev._cancelled:
                break
        self._advance_to(time)
        if ev is self._stop:
            self._stop = None
            return
        self.events_processed += 1
        ev.fn(*ev.args)

    def _run_events(self, stop: Event | None) -> None:
        """:meth:`run` without sources: :meth:`peek` and :meth:`step` inlined (the exact scheduler's loop runs
        once per event, so its calls are a large share of the per-event cost)."""
        heap = self._heap
        pop = heapq.heappop
        n = self.events_processed
        try:
            while heap:
                time, _, _, ev = pop(heap)
                if ev._cancelled:
                    continue
                self.now = time
                if ev is stop:
                    self._stop = None
                    return
                n += 1
                self.events_processed = n
                ev.fn(*ev.args)
                n = self.events_processed  # a handler may count events it takes itself (pop_due)
                if self._stop is not stop:
                    return
        finally:
            self.events_processed = n

    def _next_source(self) -> tuple[int | None, Source | None]:
        best: int | None = None
        who: Source | None = None
        for src in self._sources:
            t = src.next_time()
            if t is not None and (best is None or t < best):
                best, who = t, src
        return best, who

    def run(self, until: int | None = None) -> None:
        """Run events and source completions in time order until ``until`` (then ``now == until``), until
        nothing is left, or until the sources are done (see the module's defense of design)."""
        if until is not None:
            if until < self.now:
                raise ConfigError("until", until, f"must be >= the current time {self.now}")
            self._stop = self.at(until, Prio.STOP, _noop)
        stop = self._stop
        sources = self._sources
        single = sources[0] if len(sources) == 1 else None
        # (a lone source that can fire through its own completions up to the next event: see Source)
        through: Callable[[int, int | None], bool] | None = getattr(single, "fire_through", None)
        try:
            if not sources:  # the exact scheduler: events only
                self._run_events(stop)
                return
            while stop is None or self._stop is stop:
                src: Source | None
                if single is not None:  # the fluid machine: one source, asked directly
                    t_src, src = single.next_time(), single
                else:
                    t_src, src = self._next_source()
                t_ev = self.peek()
                if t_src is None and (
                    t_ev is None or (t_ev > self._horizon and any(s.done() for s in sources))
                ):
                    break
                if src is not None and t_src is not None and (t_ev is None or t_src <= t_ev):
                    if through is None or not through(t_src, t_ev):
                        self._advance_to(t_src)
                        src.fire()
                else:
                    self.step()
        finally:
            if self._stop is not None:
                self._stop.cancel()
                self._stop = None

    # ---- randomness --------------------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The named random stream of this run (created on first use, stable across code changes)."""
        gen = self._rngs.get(name)
        if gen is None:
            ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(zlib.crc32(name.encode()),))
            gen = np.random.Generator(np.random.PCG64(ss))
            self._rngs[name] = gen
        return gen


def _noop() -> None:
    """The event that marks the end of ``run(until=...)``."""
