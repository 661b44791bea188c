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

__all__ = ["RtBuilt", "RtScenario", "config_dict", "get", "names", "register"]


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
