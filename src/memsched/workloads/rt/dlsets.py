"""``dl-periodic`` / ``dl-sporadic``: random SCHED_DEADLINE task sets under global EDF.

Utilisations from UUniFast-Discard or RandFixedSum (``rtgen.py``) give each job's execution time, with
log-uniform periods and deadline = period (implicit deadlines). The reservation's runtime leaves a margin over
the execution time (``runtime_margin_pct``, 10 % by default, plus one switch-in and migration cost; see
:func:`reservation_runtime`), as a user following sched-deadline.rst's ``runtime >= WCET`` does; with
``--set runtime_margin_pct=0 --ideal`` the runtime is the execution time of the textbook model. The machine
runs without admission limit or fair_server, as the task-set generators of the schedulability literature
assume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memsched.config import MAX_SEED, knob, validate
from memsched.errors import ConfigError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.sim.sched.sched import SchedTask
from memsched.uapi.sched import SchedAttr
from memsched.units import NSEC_PER_MSEC
from memsched.workloads.rt.base import RtBuilt, RtScenario, periodic_events, ticks
from memsched.workloads.rtgen import log_uniform_periods, randfixedsum, uunifast_discard

__all__ = [
    "PERIODIC",
    "SPORADIC",
    "DlSetConfig",
    "DlSporadicConfig",
    "dl_machine",
    "dl_taskset",
    "spawn_dl_set",
]


@dataclass(frozen=True)
class DlSetConfig:
    tasks: int = knob(16, "number of tasks (at most 256)", min=1, max=256)
    utilisation: float = knob(3.2, "total utilisation (sum of runtime/period)", min=0.001, max=256.0)
    generator: str = knob(
        "uunifast-discard", "utilisation generator", choices=("uunifast-discard", "randfixedsum")
    )
    period_min_ms: int = knob(10, "shortest period (log-uniform)", min=1, max=10_000)
    period_max_ms: int = knob(100, "longest period (at most 10 s)", min=1, max=10_000)
    sporadic: bool = knob(False, "sporadic releases: exponential extra inter-arrival (mean period/4)")
    duration_ms: int = knob(10_000, "run length (at most 60 s simulated)", min=1, max=60_000)
    set_seed: int = knob(1, "seed of the task-set generator", min=0, max=MAX_SEED)
    runtime_margin_pct: float = knob(
        10.0, "runtime over each job's execution time (%), on top of one switch-in and migration cost", min=0.0,
        max=1000.0,
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.period_min_ms > self.period_max_ms:
            raise ConfigError(
                "period_min_ms", self.period_min_ms, f"must be <= period_max_ms ({self.period_max_ms})"
            )


@dataclass(frozen=True)
class DlSporadicConfig(DlSetConfig):
    sporadic: bool = knob(True, "sporadic releases")


def dl_taskset(c: DlSetConfig) -> list[tuple[int, int]]:
    """``(runtime_ns, period_ns)`` pairs (implicit deadlines) for the config's generator and seed."""
    rng = np.random.default_rng(c.set_seed)
    if c.generator == "randfixedsum":
        u = randfixedsum(c.tasks, c.utilisation, rng)
    else:
        u = uunifast_discard(c.tasks, c.utilisation, rng)
    periods = log_uniform_periods(
        c.tasks, c.period_min_ms * NSEC_PER_MSEC, c.period_max_ms * NSEC_PER_MSEC, rng
    )
    return [(max(1024, int(ui * p)), p) for ui, p in zip(u, periods, strict=True)]


def reservation_runtime(m: RtMachine, exec_ns: int, period_ns: int, margin_pct: float) -> int:
    """The runtime a user reserves for jobs of ``exec_ns``: the margin over it, plus what the kernel charges a
    job that is switched in on another CPU (``ctx_switch_ns + migration_refill_ns``), at most the period.

    Documentation/scheduler/sched-deadline.rst (section 3.4) maps a real-time task to SCHED_DEADLINE with
    ``runtime >= WCET``, and the WCET a reservation sees includes what is charged to the task besides its
    own work: here the switch and cache-refill costs (``core.py``), 2 us + 10 us by default. A reservation
    of the bare execution time overruns on every job that is switched in, is throttled until its next
    period and misses its deadline.
    """
    cfg = m.cfg
    runtime = exec_ns + int(exec_ns * margin_pct / 100) + cfg.ctx_switch_ns + cfg.migration_refill_ns
    return min(runtime, period_ns)


def spawn_dl_set(
    m: RtMachine,
    pairs: list[tuple[int, int]],
    *,
    sporadic: bool = False,
    prefix: str = "dl",
    margin_pct: float | None = None,
) -> list[SchedTask]:
    """One periodic (or sporadic) SCHED_DEADLINE task per ``(exec_ns, period_ns)`` pair.

    Without ``margin_pct`` the reservation's runtime is the execution time (the textbook mapping); with it,
    :func:`reservation_runtime`.
    """
    out = []
    for i, (c_ns, p_ns) in enumerate(pairs):
        prog = (Run(c_ns), Timer(p_ns, p_ns // 4 if sporadic else 0))
        runtime = c_ns if margin_pct is None else reservation_runtime(m, c_ns, p_ns, margin_pct)
        out.append(m.spawn(f"{prefix}{i}", prog, attr=SchedAttr.deadline(runtime, p_ns, p_ns)))
    return out


def dl_machine(c: Any) -> dict[str, Any]:
    """The machine of the schedulability literature: no admission limit, no fair_server."""
    return {"sched": {"sched_rt_runtime_us": -1, "rt_bandwidth": "none"}}


def _build(m: RtMachine, c: DlSetConfig) -> RtBuilt:
    tasks = spawn_dl_set(m, dl_taskset(c), sporadic=c.sporadic, margin_pct=c.runtime_margin_pct)
    return RtBuilt({"dl": tasks}, c.duration_ms * NSEC_PER_MSEC)


#: Scheduler events per job: its release and its completion (dl-periodic's default: 51,721 events for 4,990 jobs
#: and 40,000 ticks; 256 tasks of 1 ms for 1 s: 514,684 for 256,000 jobs and 4,000 ticks).
DL_EVENTS_PER_JOB = 2


def _events(c: DlSetConfig, ncpu: int) -> int:
    """Every task's jobs in the run, at its period (a sporadic release only comes later)."""
    duration = c.duration_ms * NSEC_PER_MSEC
    jobs = sum(periodic_events(duration, period, DL_EVENTS_PER_JOB) for _, period in dl_taskset(c))
    return jobs + ticks(ncpu, c.duration_ms)


PERIODIC = RtScenario(
    "dl-periodic",
    "periodic SCHED_DEADLINE task set (UUniFast-Discard / RandFixedSum), global EDF",
    DlSetConfig,
    _build,
    machine_kwargs=dl_machine,
    events=_events,
)

SPORADIC = RtScenario(
    "dl-sporadic",
    "sporadic SCHED_DEADLINE task set",
    DlSporadicConfig,
    _build,
    machine_kwargs=dl_machine,
    events=_events,
)
