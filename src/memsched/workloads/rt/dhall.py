"""``dhall``: Dhall's effect under global EDF (Dhall and Liu, "On a Real-Time Scheduling Problem", 1978).

On M CPUs, M light tasks (ε, P−1, P−1) and one heavy task (P, P, P): the light tasks' earlier deadlines
take every CPU at each release, so the heavy task misses although the total utilisation tends to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.uapi.sched import SchedAttr
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC
from memsched.workloads.rt.base import DL_PERIOD_MAX_US, RtBuilt, RtScenario
from memsched.workloads.rt.dlsets import dl_machine, spawn_dl_set

__all__ = ["SCENARIO", "DhallConfig"]


@dataclass(frozen=True)
class DhallConfig:
    period_ms: int = knob(
        10, "P of the heavy task (P, P, P); light tasks have period P-1 ms", min=2, max=DL_PERIOD_MAX_US // 1000
    )
    epsilon_us: int = knob(100, "runtime of each light task", min=2, max=DL_PERIOD_MAX_US)
    duration_ms: int = knob(1_000, "run length (at most 60 s simulated)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)


def _build(m: RtMachine, c: DhallConfig) -> RtBuilt:
    p = c.period_ms * NSEC_PER_MSEC
    light = p - NSEC_PER_MSEC
    eps = c.epsilon_us * NSEC_PER_USEC
    tasks = spawn_dl_set(m, [(eps, light)] * m.nr_cpus, prefix="light")
    tasks.append(m.spawn("heavy", (Run(p), Timer(p)), attr=SchedAttr.deadline(p, p, p)))
    return RtBuilt({"dl": tasks}, c.duration_ms * NSEC_PER_MSEC)


SCENARIO = RtScenario(
    "dhall",
    "Dhall's effect under global EDF (M light + 1 heavy task)",
    DhallConfig,
    _build,
    machine_kwargs=dl_machine,
)
