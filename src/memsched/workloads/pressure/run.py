"""The ``pressure`` family's runner: one memory-pressure scenario under one notification design.

A :class:`~memsched.workloads.runner.RunSpec` with ``family="pressure"`` names the scenario (``workload``: a
built-in name or a TOML file) and the design (``policy``: ``none``, ``rfc2012``, ``mainline`` or ``psi``).
The scenario file holds every setting, so ``--set`` keys are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from memsched.errors import ConfigError, UnknownNameError
from memsched.record import RunRecord
from memsched.workloads.pressure.scenario import DESIGNS, Scenario, load_scenario
from memsched.workloads.pressure.services import PressureRun
from memsched.workloads.runspec import RunSpec

__all__ = ["PressureRunner", "run_design"]


def run_design(
    scenario: Scenario, design: str, *, seed: int = 0, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Run ``scenario`` under one notification design; returns its figures."""
    if design not in DESIGNS:
        raise UnknownNameError("design", design, DESIGNS)
    return PressureRun(scenario, design, seed).run(progress)


class PressureRunner:
    """Memory-pressure scenarios (``memsched.workloads.pressure``) under each notification design."""

    family: ClassVar[str] = "pressure"

    def check(self, spec: RunSpec) -> None:
        self._scenario(spec)

    def _scenario(self, spec: RunSpec) -> Scenario:
        if spec.sets:
            key = next(iter(spec.sets))
            raise ConfigError(key, spec.sets[key], "is not a --set key: a pressure scenario's settings are in its file")
        if spec.policy is None or spec.policy not in DESIGNS:
            raise UnknownNameError("design", spec.policy, DESIGNS)
        if spec.seed < 0:
            raise ConfigError("seed", spec.seed, "must be >= 0")
        return load_scenario(spec.workload)

    def run(self, spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
        scenario = self._scenario(spec)
        assert spec.policy is not None
        figures = run_design(scenario, spec.policy, seed=spec.seed, progress=progress)
        return RunRecord(
            family=self.family,
            workload=scenario.name,
            policy=spec.policy,
            label=spec.label or spec.policy,
            seed=spec.seed,
            figures=figures,
            role=spec.role,
            base=spec.base or scenario.name,
        )

