"""What a simulated run is (:class:`RunSpec`) and what every workload family provides to run it (:class:`Runner`).

The families — the NUMA workloads (``workloads/numa.py``), the realtime scenarios (``workloads/rt/run.py``)
and the memory-pressure scenarios (``workloads/pressure/run.py``) — each implement :class:`Runner`;
``workloads/runner.py`` dispatches a spec to its family's runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, get_args

from memsched.config import check_seed
from memsched.errors import ConfigError
from memsched.record import Role, RunRecord

__all__ = ["RunSpec", "Runner"]


@dataclass(frozen=True)
class RunSpec:
    """One run: a workload of a family, the policy under test, where, with which seed and settings.

    ``policy`` is the NUMA policy (``numa``), the preemption model (``rt``; ``None``: the scenario's) or
    the notification design (``pressure``). ``topology`` is a preset or a TOML file (``numa``; the other
    families take their machine from the scenario). ``role``, ``base`` and ``label`` place the run in a
    comparison. ``options`` are the family's own (:class:`NumaOptions`, ``RtOptions``).
    """

    workload: str
    topology: str | None = None
    policy: str | None = None
    seed: int = 0
    sets: Mapping[str, str] = field(default_factory=dict)
    family: str = "numa"
    label: str | None = None
    role: Role = "policy"
    base: str | None = None
    options: Any = None

    def __post_init__(self) -> None:
        """The types a spec from Python code may hold, checked here rather than deep in a run."""
        if not isinstance(self.workload, str) or not self.workload:
            raise ConfigError("workload", self.workload, "must be a workload id (a non-empty str)")
        if self.topology is not None and not isinstance(self.topology, str | os.PathLike):
            raise ConfigError("topology", self.topology, "must be a preset name or a TOML file's path, or None")
        for name in ("policy", "label", "base"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(name, value, "must be a str or None")
        object.__setattr__(self, "seed", check_seed(self.seed, "seed"))  # (a numpy integer is stored as an int)
        if not isinstance(self.sets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.sets.items()
        ):
            raise ConfigError("sets", self.sets, "must map --set keys to their values, both str")
        if not isinstance(self.family, str):
            raise ConfigError("family", self.family, "must be a str: numa, rt or pressure")
        if self.role not in get_args(Role):
            raise ConfigError("role", self.role, "must be one of: " + ", ".join(get_args(Role)))


class Runner(Protocol):
    """What every workload family provides to run its workloads."""

    family: ClassVar[str]

    def check(self, spec: RunSpec) -> None:
        """Validate every name and setting of ``spec``; raise :class:`~memsched.errors.ConfigError`."""

    def run(self, spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
        """Simulate ``spec`` and return its record; ``progress`` gets simulated seconds (or a fraction)."""
