"""The discrete-event core: one clock in integer nanoseconds, one event heap, seeded randomness.

Modelled on SimPy's ``Environment``: all state hangs off one object, and heap entries are
``(time_ns, prio, seq, event)`` so that simultaneous events run in a fixed order. ``prio`` orders the kinds
of work at one instant (a lower number runs first); ``seq`` is a global counter, so ties never fall back to
``id()`` or to set order and the same seed always gives the same run.

Defense of design
-----------------
*Integer time.* Kernel timers, periods and runtimes are integers of nanoseconds; float time makes EDF ties
and CBS arithmetic depend on rounding. Fluid progress (``sim/machine.py``) uses float rates between events,
and every completion time is rounded **up** to the next nanosecond so that work is never finished early.

*Cancellation by flag.* Removing an entry from a heap is O(n); a cancelled :class:`Event` stays in the heap
and is skipped when popped (the kernel's hrtimer code does the equivalent with ``hrtimer_try_to_cancel``).

*Named random streams.* ``rng(name)`` derives an independent ``numpy.random.Generator`` from the run's seed
and a stable hash of the name, so adding a new random component never shifts the numbers another one sees.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsched.errors import ConfigError, SimulationError

__all__ = ["Engine", "Event", "Prio"]


class Prio:
    """Order of event kinds at the same instant (lower runs first)."""

    TIMER = 0  # hrtimers, replenishments, job releases
    WAKEUP = 10  # task wakeups and completions of blocking phases
    DEFERRED = 20  # work that must see every wakeup of the instant first (first-touch allocation, ...)
    TICK = 30  # scheduler tick, periodic scanners and balancers
    SAMPLE = 90  # statistics sampling: sees the state after everything else at that instant


@dataclass(order=False, eq=False, slots=True)
class Event:
    """A scheduled callback. ``cancel()`` makes it a no-op."""

    time: int
    prio: int
    seq: int
    fn: Callable[..., Any]
    args: tuple[Any, ...] = field(default=())
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class Engine:
    """Clock, heap and random streams of one simulation run."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError("seed", seed, "must be an integer >= 0")
        self.seed = seed
        self.now = 0
        self._heap: list[tuple[int, int, int, Event]] = []
        self._seq = 0
        self._rngs: dict[str, np.random.Generator] = {}
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

    def after(self, delay: int, prio: int, fn: Callable[..., Any], *args: Any) -> Event:
        """Run ``fn(*args)`` ``delay`` ns from now."""
        return self.at(self.now + int(delay), prio, fn, *args)

    def peek(self) -> int | None:
        """Time of the next live event, or ``None`` if the heap is empty."""
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def has_events(self, *, except_prio: int | None = None) -> bool:
        """Whether any live event is queued (optionally ignoring events of one priority)."""
        return any(not ev.cancelled and ev.prio != except_prio for _, _, _, ev in self._heap)

    def step(self) -> None:
        """Pop and run the next live event (the caller has checked ``peek()``)."""
        heap = self._heap
        while True:
            time, _, _, ev = heapq.heappop(heap)
            if not ev.cancelled:
                break
        self.now = time
        self.events_processed += 1
        ev.fn(*ev.args)

    def run(self, until: int | None = None) -> None:
        """Run events until the heap is empty or the next event is after ``until``; then set now = until."""
        while True:
            t = self.peek()
            if t is None or (until is not None and t > until):
                break
            self.step()
        if until is not None and until > self.now:
            self.now = until

    # ---- randomness --------------------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The named random stream of this run (created on first use, stable across code changes)."""
        gen = self._rngs.get(name)
        if gen is None:
            ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(zlib.crc32(name.encode()),))
            gen = np.random.Generator(np.random.PCG64(ss))
            self._rngs[name] = gen
        return gen
