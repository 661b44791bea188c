"""engine: the event-only loop (the exact scheduler's) and ``Engine.again``, the tick's way of re-arming itself."""

from __future__ import annotations

import pytest

from memsched.errors import SimulationError
from memsched.sim.engine import Engine, Event, Prio


def test_again_requeues_the_running_event_in_scheduling_order() -> None:
    """``again`` takes a new sequence number now: it runs after what was queued for that instant before it, and
    before what is queued after it, exactly as a fresh ``at`` would."""
    e = Engine(0)
    log: list[tuple[int, str]] = []
    holder: list[Event] = []

    def tick() -> None:
        log.append((e.now, "tick"))
        if e.now < 30:
            e.at(e.now + 10, Prio.TICK, log.append, (e.now + 10, "before"))
            e.again(holder[0], e.now + 10)
            e.at(e.now + 10, Prio.TICK, log.append, (e.now + 10, "after"))

    holder.append(e.at(10, Prio.TICK, tick))
    e.run()
    assert log == [
        (10, "tick"),
        (20, "before"),
        (20, "tick"),
        (20, "after"),
        (30, "before"),
        (30, "tick"),
        (30, "after"),
    ]
    assert e.events_processed == 7


def test_again_can_be_cancelled_and_not_into_the_past() -> None:
    e = Engine(0)
    log: list[int] = []
    holder: list[Event] = []

    def tick() -> None:
        log.append(e.now)
        ev = e.again(holder[0], e.now + 5)
        assert ev is holder[0] and ev.time == e.now + 5 and not ev.cancelled
        if e.now == 10:
            ev.cancel()
        with pytest.raises(SimulationError, match="in the past"):
            e.again(holder[0], e.now - 1)

    holder.append(e.at(5, Prio.TICK, tick))
    e.run(until=100)
    assert log == [5, 10]
    assert e.now == 100


def test_loop_counts_events_taken_by_a_handler_once() -> None:
    """A handler that serves the other events of its instant (``pop_due``) counts them; the loop does not
    count them again, and a run up to ``until`` stops there with the later events still queued."""
    e = Engine(0)
    log: list[str] = []

    def batch(name: str) -> None:
        log.append(name)
        while (nxt := e.pop_due(lambda ev: ev.fn is batch)) is not None:
            log.append(nxt.args[0])

    for name in ("a", "b", "c"):
        e.at(10, Prio.WAKEUP, batch, name)
    e.at(10, Prio.TICK, log.append, "tick")
    e.at(50, Prio.TICK, log.append, "late")
    e.run(until=20)
    assert log == ["a", "b", "c", "tick"]
    assert e.events_processed == 4 and e.now == 20 and e.peek() == 50


def test_loop_counts_an_event_whose_handler_raises() -> None:
    e = Engine(0)

    def boom() -> None:
        raise RuntimeError("boom")

    e.at(1, Prio.TIMER, lambda: None)
    e.at(2, Prio.TIMER, boom)
    e.at(3, Prio.TIMER, lambda: None)
    with pytest.raises(RuntimeError):
        e.run(until=10)
    assert e.events_processed == 2 and e.now == 2
    e.run(until=10)
    assert e.events_processed == 3 and e.now == 10
