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


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed: object) -> None:
    """Seeds are non-negative integers."""
    with pytest.raises(ConfigError, match="'seed'"):
        Engine(seed)  # type: ignore[arg-type]
