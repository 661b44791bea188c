"""``hackbench+cyclictest``: hackbench with a cyclictest thread per CPU.

The question the preemption models answer differently: how much SCHED_OTHER throughput (hackbench) each
model keeps, and what it costs the latency of a SCHED_FIFO thread (cyclictest) on the same CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import cost_knob, knob
from memsched.sim.sched.machine import RtMachine
from memsched.units import NSEC_PER_MSEC
from memsched.workloads.rt.base import MAX_TIMER_US, RtBuilt, RtScenario
from memsched.workloads.rt.cyclictest import CyclictestConfig, build_cyclictest, cyclictest_events, cyclictest_metrics
from memsched.workloads.rt.hackbench import HackbenchConfig, build_hackbench, hackbench_events, hackbench_metrics

__all__ = ["SCENARIO", "MixConfig"]


@dataclass(frozen=True)
class MixConfig(HackbenchConfig):
    interval_us: int = knob(1000, "cyclictest interval", min=10, max=MAX_TIMER_US)
    priority: int = knob(99, "cyclictest priority", min=1, max=99)
    work_ns: int = cost_knob(2_000, "cyclictest work per wakeup")


def _build(m: RtMachine, c: MixConfig) -> RtBuilt:
    hb = build_hackbench(m, c)
    cy = build_cyclictest(m, CyclictestConfig(c.interval_us, c.priority, c.work_ns, c.duration_ms))
    hm = hackbench_metrics(hb, c)
    cm = cyclictest_metrics(cy)
    return RtBuilt(
        {"hackbench": hb, "cyclictest": cy},
        c.duration_ms * NSEC_PER_MSEC,
        "hackbench",
        lambda mm: {**hm(mm), **cm(mm)},
    )


def _events(c: MixConfig, ncpu: int) -> int:
    cyclic = CyclictestConfig(c.interval_us, c.priority, c.work_ns, c.duration_ms)
    return hackbench_events(c, ncpu) + cyclictest_events(cyclic, ncpu)


SCENARIO = RtScenario(
    "hackbench+cyclictest", "hackbench with a cyclictest thread per CPU", MixConfig, _build, events=_events
)
