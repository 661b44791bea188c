"""What a realtime scenario is: a validated config, a ``build`` that spawns tasks, and the scenario registry.

A scenario runs on the exact machine (:class:`~memsched.sim.sched.machine.RtMachine`), not on the fluid NUMA
machine the workloads of ``memsched.workloads`` build on, so it has its own spec type and registry. Each
scenario is a frozen config dataclass plus ``build(machine, config) -> RtBuilt``; the built-in ones are
registered from the table in ``memsched.workloads.rt`` (no discovery by file name), and ``memsched rt sim``
runs them through :func:`~memsched.workloads.rt.run.run_rt_scenario`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memsched.config import from_sets
from memsched.registry import Registry
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.sched import SchedTask

__all__ = [
    "DL_PERIOD_MAX_US",
    "MAX_TIMER_US",
    "RtBuilt",
    "RtScenario",
    "config_dict",
    "get",
    "names",
    "periodic_events",
    "register",
    "ticks",
]

# ---- the largest value of each kind of scenario knob ---------------------------------------------------------
#: ``sched_deadline_period_max_us``'s default (kernel/sched/deadline.c, 6.x: ``1 << 22``, ~4 s): the longest
#: SCHED_DEADLINE period, so the longest runtime too; the kernel's own limit.
DL_PERIOD_MAX_US = 1 << 22
#: Product limit of a timer interval or a poller's chunk: 1 s (cyclictest's ``-i`` takes any int; a scenario runs
#: at most 60 s).
MAX_TIMER_US = 1_000_000


def ticks(ncpu: int, duration_ms: int) -> int:
    """One tick per CPU and millisecond: the floor of every scenario's event estimate (as rt-app files')."""
    return ncpu * duration_ms


def periodic_events(duration_ns: int, period_ns: int, per_job: int) -> int:
    """The events of a periodic activity: its releases in ``duration_ns`` times the events each takes."""
    return -(-duration_ns // period_ns) * per_job


@dataclass
class RtBuilt:
    """What a scenario created: its task groups by role, the run length, and extra figures at the end."""

    groups: dict[str, list[SchedTask]]
    duration_ns: int
    #: If set, the run ends when every task of this group has exited (hackbench), else at ``duration_ns``.
    until_exit: str | None = None
    metrics: Callable[[RtMachine], dict[str, Any]] = field(default=lambda m: {})


@dataclass(frozen=True)
class RtScenario:
    """One scenario: its id, what it shows, its config class, how to build it and the machine it needs."""

    id: str
    description: str
    config_cls: type
    build: Callable[[RtMachine, Any], RtBuilt]
    cpus: int = 4
    #: Machine arguments the config asks for: ``cpus``, ``sched`` (SchedConfig fields), ``noise``, ``isolation``.
    machine_kwargs: Callable[[Any], dict[str, Any]] = field(default=lambda c: {})
    #: ``events(config, ncpu)``: an estimate of the scheduler events a run needs (its jobs, wakeups and messages
    #: times the events each takes, plus a tick per CPU and millisecond), refused above
    #: :data:`memsched.workloads.rt.rtapp.MAX_EVENTS` as an rt-app file is. ``None``: bounded by its knobs alone.
    events: Callable[[Any, int], int] | None = None

    def make_config(self, sets: Mapping[str, str]) -> Any:
        return from_sets(self.config_cls, sets, owner=f"scenario {self.id}")


def config_dict(config: Any) -> dict[str, Any]:
    """A scenario config as the plain dict the run record carries."""
    return dataclasses.asdict(config)


#: Keyed by what ``memsched rt sim`` calls its argument.
_REGISTRY: Registry[RtScenario] = Registry("taskset")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names
