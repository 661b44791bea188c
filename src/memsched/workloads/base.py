"""The workload registry of the fluid NUMA machine: stable ids, a validated config class per workload.

A workload *builds* processes on a simulated machine (``build(machine, config)``) and may add its own figures
to the run record (``metrics``: bops for SPECjbb-like runs, convergence for perf-bench). It also declares
what a comparison needs to know about it: the reference runs it is measured against (``references``: the
HARD_BIND and INVERSE_BIND variants of an autonuma-benchmark workload), the figures a table shows
(``headline``), the timeline figures its report charts (``charts``), and a note about a given machine.
Workloads register explicitly in ``memsched.workloads.__init__`` (no discovery by file name), so a broken
module fails loudly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memsched.config import from_sets
from memsched.registry import Registry
from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine

__all__ = ["Built", "Footprint", "Reference", "Sampler", "TimelineChart", "WorkloadSpec", "get", "names", "register"]


class Sampler(Instrument):
    """A workload's figure at every timeline sample (``fn()``, stored under ``"workload"`` in the timeline)."""

    def __init__(self, fn: Callable[[], dict[str, Any]]) -> None:
        self.fn = fn

    def timeline_sample(self) -> dict[str, Any]:
        return self.fn()


@dataclass
class Built:
    """What ``build`` set up: the processes' main tasks, plus a hook that adds workload figures at the end.

    Benchmarks that measure throughput over a fixed time (SPECjbb, perf bench numa) set ``duration_ns``:
    the run stops there instead of when every task has exited.
    """

    processes: list[Any]
    metrics: Callable[[FluidMachine], dict[str, Any]] = field(default=lambda m: {})
    duration_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a workload asks of the simulator, known from its config and the topology before anything is built:
    how long it runs (simulated seconds; for a benchmark that runs to completion, an estimate under its slowest
    placement), its address spaces (``mms``, the largest ``mm_mb``) and the tasks it creates. The NUMA runner
    refuses a run whose estimated work is more than the simulator can do (``memsched.workloads.numa``)."""

    duration_s: float
    mms: int
    mm_mb: int
    tasks: int


@dataclass(frozen=True, slots=True)
class Reference:
    """A run a workload is compared against: ``workload`` run without balancing, shown as ``label``."""

    label: str
    workload: str


@dataclass(frozen=True, slots=True)
class TimelineChart:
    """A workload figure to chart over simulated time, one line per run: ``key`` of its timeline samples."""

    key: str
    ylabel: str
    title: str


@dataclass(frozen=True)
class WorkloadSpec:
    id: str
    description: str
    family: str
    config_cls: type
    build: Callable[[FluidMachine, Any], Built]
    #: The runs this one is measured against in comparisons; the first is the one ratios are taken to.
    references: tuple[Reference, ...] = ()
    #: Multi-node layout tricks (bind variants) need at least this many nodes to mean anything.
    min_nodes: int = 1
    #: Workload figures the comparison table shows: (metrics key, column title, format).
    headline: tuple[tuple[str, str, str], ...] = ()
    #: Timeline figures the HTML report charts (a workload's ``Sampler`` records them).
    charts: tuple[TimelineChart, ...] = ()
    #: A note for reports about what the workload shows on a given machine (``None`` if nothing to say).
    note: Callable[[Any], str | None] = field(default=lambda topology: None)
    #: ``footprint(topology, config)``: what a run asks of the simulator (:class:`Footprint`), checked before it
    #: starts.
    footprint: Callable[[Any, Any], Footprint] | None = None

    def make_config(self, sets: Mapping[str, str]) -> Any:
        return from_sets(self.config_cls, sets, owner=f"workload {self.id}")

    def default_config(self) -> Any:
        return self.config_cls()

    def config_dict(self, config: Any) -> dict[str, Any]:
        return dataclasses.asdict(config)


_REGISTRY: Registry[WorkloadSpec] = Registry("workload")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names
