"""``isolation``: a polling task on an isolated CPU next to one on a housekeeping CPU, under housekeeping noise.

The isolated CPU is given to ``isolcpus=domain``, ``nohz_full`` and ``rcu_nocbs`` (``sim/sched/isolation.py``);
the figures compare what each poller gets done and how much noise its CPU saw, osnoise-style.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from memsched.config import cost_knob, knob, validate
from memsched.errors import ConfigError
from memsched.sim.sched.isolation import IsolationConfig, NoiseModel
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Nanosleep, Run
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC
from memsched.workloads.rt.base import MAX_TIMER_US, RtBuilt, RtScenario, periodic_events, ticks

__all__ = ["SCENARIO", "IsolationScenarioConfig"]


@dataclass(frozen=True)
class IsolationScenarioConfig:
    isolated_cpu: int = knob(3, "the CPU given to isolcpus=domain, nohz_full and rcu_nocbs", min=1, max=1023)
    housekeeping_cpu: int = knob(1, "the housekeeping CPU running the comparison poller", min=0, max=1023)
    chunk_us: int = knob(1000, "poller work per loop iteration", min=1, max=MAX_TIMER_US)
    noise_scale: float = knob(1.0, "multiplies every noise rate", min=0.0, max=1000.0)
    pollution_ns: int = cost_knob(4_000, "cache refill per interruption")
    background: bool = knob(True, "a hackbench load on the housekeeping CPUs")
    duration_ms: int = knob(5_000, "run length (at most 60 s simulated)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)


def _machine(c: Any) -> dict[str, Any]:
    cpu = c.isolated_cpu
    return {
        "noise": NoiseModel(scale=c.noise_scale, pollution_ns=c.pollution_ns),
        "isolation": IsolationConfig(isolcpus=(cpu,), nohz_full=(cpu,), rcu_nocbs=(cpu,)),
    }


def _build(m: RtMachine, c: IsolationScenarioConfig) -> RtBuilt:
    if c.isolated_cpu >= m.nr_cpus or c.housekeeping_cpu >= m.nr_cpus or c.isolated_cpu == c.housekeeping_cpu:
        raise ConfigError(
            "isolated_cpu", c.isolated_cpu, f"and housekeeping_cpu must be two different CPUs < {m.nr_cpus}"
        )
    prog = (Run(c.chunk_us * NSEC_PER_USEC),)
    iso = m.spawn("poll-isolated", prog, affinity=[c.isolated_cpu])
    hk = m.spawn("poll-housekeeping", prog, affinity=[c.housekeeping_cpu])
    groups = {"pollers": [iso, hk]}
    if c.background:
        others = [x for x in m.core.housekeeping if x != c.housekeeping_cpu]
        if others:
            bg = []
            load = (Run(BACKGROUND_RUN_US * NSEC_PER_USEC), Nanosleep(BACKGROUND_SLEEP_US * NSEC_PER_USEC))
            for i in range(BACKGROUND_PER_CPU * len(others)):
                bg.append(m.spawn(f"bg{i}", load, affinity=others))
            groups["background"] = bg

    def metrics(mm: RtMachine) -> dict[str, Any]:
        el = mm.engine.now
        out = {}
        for t in (iso, hk):
            rq = mm.core.rqs[t.affinity[0]]
            out[t.name] = {
                "cpu": rq.cpu,
                "throughput": t.stats.work_ns / el,
                "noise_us_per_s": rq.noise_ns / 1000 / (el / 1e9),
                "noise_events_per_s": rq.noise_events / (el / 1e9),
                "max_single_noise_us": rq.noise_max / 1000,
                "cpu_available_pct": 100.0 * (1 - rq.noise_ns / el),
            }
        a, b = out["poll-isolated"]["throughput"], out["poll-housekeeping"]["throughput"]
        return {"isolation": {**out, "throughput_gain_pct": 100.0 * (a / b - 1) if b else 0.0}}

    return RtBuilt(groups, c.duration_ms * NSEC_PER_MSEC, metrics=metrics)


#: The background load's program: run 200 us, sleep 100 us, four tasks per housekeeping CPU.
BACKGROUND_RUN_US, BACKGROUND_SLEEP_US, BACKGROUND_PER_CPU = 200, 100, 4


def _events(c: IsolationScenarioConfig, ncpu: int) -> int:
    """Both pollers' chunks, every noise interruption (the noise model's rates times ``noise_scale`` per CPU),
    the background's runs and sleeps, two events each, and the ticks (the default asks for 576,344; it takes
    123,369: the background tasks share their CPUs and sleep less often than alone)."""
    duration = c.duration_ms * NSEC_PER_MSEC
    noise = NoiseModel()
    rate_hz = (noise.rcu_rate_hz + noise.kworker_rate_hz + noise.timer_rate_hz) * c.noise_scale
    events = 2 * periodic_events(duration, c.chunk_us * NSEC_PER_USEC, 2)
    events += 2 * math.ceil(rate_hz * ncpu * c.duration_ms / 1000)
    if c.background:
        cycle = (BACKGROUND_RUN_US + BACKGROUND_SLEEP_US) * NSEC_PER_USEC
        events += BACKGROUND_PER_CPU * ncpu * periodic_events(duration, cycle, 2)
    return events + ticks(ncpu, c.duration_ms)


SCENARIO = RtScenario(
    "isolation",
    "polling task on an isolated CPU vs a housekeeping CPU, with housekeeping noise",
    IsolationScenarioConfig,
    _build,
    machine_kwargs=_machine,
    events=_events,
)
