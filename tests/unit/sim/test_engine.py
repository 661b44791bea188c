"""engine: integer time, deterministic ordering of simultaneous events, named random streams."""

from __future__ import annotations

import pytest

from memsched.errors import ConfigError, SimulationError
from memsched.sim.engine import Engine, Prio


def test_events_run_in_time_prio_seq_order() -> None:
    """Ties at one instant break by priority, then by scheduling order."""
    e = Engine(0)
    log: list[str] = []
    e.at(10, Prio.TICK, log.append, "tick")
    e.at(10, Prio.TIMER, log.append, "timer-a")
    e.at(5, Prio.SAMPLE, log.append, "early")
    e.at(10, Prio.TIMER, log.append, "timer-b")
    e.run()
    assert log == ["early", "timer-a", "timer-b", "tick"]
    assert e.now == 10


def test_cancel_and_until() -> None:
    """A cancelled event never runs; run(until) stops before later events and sets now."""
    e = Engine(0)
    log: list[int] = []
    ev = e.at(3, Prio.TIMER, log.append, 3)
    e.at(7, Prio.TIMER, log.append, 7)
    e.at(20, Prio.TIMER, log.append, 20)
    ev.cancel()
    e.run(until=10)
    assert log == [7]
    assert e.now == 10
    assert e.peek() == 20


def test_no_events_in_the_past() -> None:
    """Scheduling before now is a SimulationError."""
    e = Engine(0)
    e.run(until=100)
    with pytest.raises(SimulationError):
        e.at(50, Prio.TIMER, lambda: None)


def test_named_rng_streams_are_stable_and_independent() -> None:
    """A stream depends only on (seed, name): creating other streams first does not change it."""
    a = Engine(7).rng("first_touch").integers(1 << 30, size=5)
    e = Engine(7)
    e.rng("something_else").integers(10, size=100)
    b = e.rng("first_touch").integers(1 << 30, size=5)
    assert (a == b).all()
    c = Engine(8).rng("first_touch").integers(1 << 30, size=5)
    assert not (a == c).all()


@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**32, 2**63])
def test_bad_seed(seed: object) -> None:
    """Seeds are integers in 0..MAX_SEED (32 bits), the range every seed option has."""
    with pytest.raises(ConfigError, match="'seed'"):
        Engine(seed)  # type: ignore[arg-type]


def test_cancel_is_the_only_way() -> None:
    """An event's cancelled flag is read-only: Event.cancel() is the one way to cancel."""
    e = Engine(0)
    ev = e.at(5, Prio.TIMER, lambda: None)
    with pytest.raises(AttributeError):
        ev.cancelled = True  # type: ignore[misc]
    ev.cancel()
    assert ev.cancelled and e.peek() is None


class _Countdown:
    """A source that completes at 10, 20 and 30 ns, then is done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.times = [10, 20, 30]
        self.fired: list[int] = []
        self.advanced: list[int] = []

    def next_time(self) -> int | None:
        return self.times[0] if self.times else None

    def advance(self, t: int) -> None:
        self.advanced.append(t)

    def fire(self) -> None:
        self.fired.append(self.engine.now)
        self.times.pop(0)

    def done(self) -> bool:
        return not self.times


def test_sources_run_in_time_order_and_win_ties() -> None:
    """A source's completion and a heap event at the same instant: the completion first; the source is advanced
    before every step; a done source ends the run at once, even with events queued at that instant."""
    e = Engine(0)
    src = _Countdown(e)
    e.add_source(src)
    log: list[tuple[str, int]] = []

    def tick() -> None:
        log.append(("tick", e.now))
        e.after(10, Prio.TICK, tick)

    e.at(10, Prio.TIMER, tick)
    e.run()
    assert src.fired == [10, 20, 30]
    assert log == [("tick", 10), ("tick", 20)]
    assert src.advanced == [10, 10, 20, 20, 30]
    assert e.now == 30 and e.peek() == 30


def test_hold_keeps_a_finished_run_going() -> None:
    """Work deferred into the future of something that happened runs even after the sources are done."""
    e = Engine(0)
    src = _Countdown(e)
    src.times = [10]
    e.add_source(src)
    log: list[int] = []
    e.at(15, Prio.TIMER, lambda: log.append(e.now))
    e.at(25, Prio.TIMER, lambda: log.append(e.now))
    e.hold(20)
    e.run(until=100)
    assert log == [15] and e.now == 15


def test_run_until_counts_only_real_events() -> None:
    """The boundary of run(until=...) is neither counted nor left in the heap."""
    e = Engine(0)
    e.at(3, Prio.TIMER, lambda: None)
    e.run(until=10)
    e.run(until=20)
    assert e.events_processed == 1 and e.now == 20 and not e.has_events()
    with pytest.raises(ConfigError, match="'until'"):
        e.run(until=5)
