"""``cyclictest``: one SCHED_FIFO thread per CPU woken by an absolute periodic timer, measuring latency.

As ``cyclictest -a -t -p 99 -i <interval>`` (rt-tests): each thread is pinned to its CPU; its latency is the
time from the timer's expiry to the thread running again (context switch included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from memsched.config import cost_knob, knob, validate
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Kernel, Timer
from memsched.sim.sched.sched import SchedTask
from memsched.uapi.sched import SchedAttr, SchedPolicy
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC
from memsched.workloads.rt.base import MAX_TIMER_US, RtBuilt, RtScenario, periodic_events, ticks

__all__ = ["SCENARIO", "CyclictestConfig", "build_cyclictest", "cyclictest_metrics"]


@dataclass(frozen=True)
class CyclictestConfig:
    interval_us: int = knob(1000, "timer interval (cyclictest -i, default 1000 us)", min=10, max=MAX_TIMER_US)
    priority: int = knob(99, "SCHED_FIFO priority (cyclictest -p)", min=1, max=99)
    work_ns: int = cost_knob(2_000, "clock read + bookkeeping per wakeup (assumed)")
    duration_ms: int = knob(2_000, "run length (at most 60 s simulated)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)


def build_cyclictest(m: RtMachine, c: CyclictestConfig) -> list[SchedTask]:
    prog = (Timer(c.interval_us * NSEC_PER_USEC), Kernel(c.work_ns))
    attr = SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=c.priority)
    return [m.spawn(f"cyclic{cpu}", prog, attr=attr, affinity=[cpu]) for cpu in range(m.nr_cpus)]


def cyclictest_metrics(tasks: list[SchedTask]) -> Callable[[RtMachine], dict[str, Any]]:
    """The latency figures cyclictest prints, over every thread's samples."""

    def metrics(m: RtMachine) -> dict[str, Any]:
        lat = (
            np.concatenate([np.asarray(t.stats.lat, dtype=np.float64) for t in tasks]) if tasks else np.zeros(0)
        )
        if lat.size == 0:
            return {"cyclictest": {"samples": 0}}
        return {
            "cyclictest": {
                "samples": int(lat.size),
                "mean_us": float(lat.mean()) / 1000,
                "p99_us": float(np.percentile(lat, 99)) / 1000,
                "max_us": float(lat.max()) / 1000,
            }
        }

    return metrics


def _build(m: RtMachine, c: CyclictestConfig) -> RtBuilt:
    tasks = build_cyclictest(m, c)
    return RtBuilt({"cyclictest": tasks}, c.duration_ms * NSEC_PER_MSEC, None, cyclictest_metrics(tasks))


def cyclictest_events(c: CyclictestConfig, ncpu: int) -> int:
    """A thread per CPU, two events per wakeup (timer, sleep): the default's 24,000 events exactly."""
    duration = c.duration_ms * NSEC_PER_MSEC
    return ncpu * periodic_events(duration, c.interval_us * NSEC_PER_USEC, 2) + ticks(ncpu, c.duration_ms)


SCENARIO = RtScenario(
    "cyclictest",
    "periodic SCHED_FIFO timer wakeups per CPU measuring latency",
    CyclictestConfig,
    _build,
    events=cyclictest_events,
)
