"""``grub``: the GRUB reclaiming example of ``Documentation/scheduler/sched-deadline.rst`` (section 2.2).

Two SCHED_DEADLINE tasks with runtime 4 ms and period 8 ms on one CPU (U = 0.5 each). T1 runs 2 ms and blocks
with q = 2 ms, so its 0-lag time is 8 − 2·8/4 = 4 ms; with ``SCHED_FLAG_RECLAIM`` T2's runtime drains at half
speed from then on, and T2 runs longer than its 4 ms reservation in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsched.config import knob, validate
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.uapi.sched import SchedAttr, SchedFlag
from memsched.units import NSEC_PER_MSEC
from memsched.workloads.rt.base import RtBuilt, RtScenario

__all__ = ["SCENARIO", "GrubConfig"]


@dataclass(frozen=True)
class GrubConfig:
    reclaim: bool = knob(True, "SCHED_FLAG_RECLAIM on both tasks")
    duration_ms: int = knob(8, "run length (the example's period; at most 60 s)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)


def _build(m: RtMachine, c: GrubConfig) -> RtBuilt:
    ms = NSEC_PER_MSEC
    flags = int(SchedFlag.RECLAIM) if c.reclaim else 0
    t1 = m.spawn("T1", (Run(2 * ms), Timer(8 * ms)), attr=SchedAttr.deadline(4 * ms, 8 * ms, 8 * ms, flags))
    t2 = m.spawn("T2", (Run(1000 * ms),), attr=SchedAttr.deadline(4 * ms, 8 * ms, 8 * ms, flags))
    return RtBuilt(
        {"grub": [t1, t2]},
        c.duration_ms * ms,
        metrics=lambda mm: {"grub": {"T2_ran_ms": t2.sum_exec / ms, "T1_ran_ms": t1.sum_exec / ms}},
    )


def _machine(c: Any) -> dict[str, Any]:
    """One CPU as the example has it: U_max = 1 (no RT limit), no fair_server, exact budgets, free switches."""
    return {
        "cpus": 1,
        "sched": {
            "sched_rt_runtime_us": 1_000_000,
            "rt_bandwidth": "none",
            "hrtick_dl": True,
            "ctx_switch_ns": 0,
            "cache_refill_ns": 0,
            "migration_refill_ns": 0,
        },
    }


SCENARIO = RtScenario(
    "grub",
    "GRUB reclaiming worked example (sched-deadline.rst)",
    GrubConfig,
    _build,
    cpus=1,
    machine_kwargs=_machine,
)
