"""SLUB costs: the list_lock is taken at the engine's simulated time."""

from __future__ import annotations

from memsched.sim.engine import Engine
from memsched.sim.mm.slub import Slub, SlubConfig


def test_list_lock_wait_is_measured_on_the_engine_clock() -> None:
    """A node-list free 100 ns after another waits for the lock's holder by the engine's clock (no copied clock)."""
    eng = Engine(0)
    cfg = SlubConfig(cpu_partial=False, remote_free_prob=1.0, list_lock_hold_ns=250, node_partial_ns=400)
    slub = Slub(2, cfg, eng)
    assert slub.op(0, "c", 1, False) == (400, True)
    eng.run(until=100)
    assert slub.op(1, "c", 1, False) == (400 + 150, True)  # the first holder keeps list_lock until 250
    eng.run(until=1_000)
    assert slub.op(0, "c", 1, False) == (400, True)
