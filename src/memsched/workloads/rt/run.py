"""Running one realtime scenario (or rt-app file) on a fresh exact machine: the ``rt`` family's runner.

:class:`RtRunner` is the :class:`~memsched.workloads.runner.Runner` of the realtime scenarios: a
:class:`~memsched.workloads.runner.RunSpec` with ``family="rt"`` names the scenario (``workload``), the
preemption model (``policy``; ``None``: the scenario's), the seed, the ``--set`` keys (split between the
scheduler, :class:`SchedConfig`, and the scenario's config by :func:`memsched.config.split_sets`) and
:class:`RtOptions` (CPU count, an rt-app file instead of a scenario, a schedule trace). The figures are
assembled in one place, :func:`rt_record`; the machine travels in the record's ``extras`` for the trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from memsched.config import from_sets, split_sets
from memsched.errors import ConfigError
from memsched.record import RunRecord
from memsched.sim.sched.isolation import NoiseModel
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.preempt import parse_model
from memsched.sim.sched.sched import IDEAL_SCHED, SchedConfig
from memsched.workloads.rt.base import RtBuilt, RtScenario, config_dict, get
from memsched.workloads.rt.rtapp import MAX_EVENTS, load_rt_app
from memsched.workloads.runspec import RunSpec

__all__ = ["DEFAULT_SCENARIO", "RtOptions", "RtRunner", "rt_record", "run_rt_scenario"]

#: What ``memsched rt sim`` runs without a scenario argument.
DEFAULT_SCENARIO = "hackbench+cyclictest"


@dataclass(frozen=True)
class RtOptions:
    """How a realtime run is simulated: CPU count (``None``: the scenario's), an rt-app file, a trace."""

    cpus: int | None = None
    rt_app: str | None = None
    trace: bool = False
    #: Add every finished job to the record (``per_job``): ``memsched rt sim --per-job``.
    per_job: bool = False
    #: The machine of scheduling theory (``SchedConfig.ideal``: no switch or cache costs, no fair_server, no
    #: admission limit), under the scenario; ``--set`` keys still win. ``memsched rt sim --ideal``.
    ideal: bool = False


def run_rt_scenario(
    taskset: str | None,
    *,
    rt_app: Path | str | None = None,
    preempt: str | None = None,
    cpus: int | None = None,
    seed: int = 0,
    sets: Mapping[str, str] | None = None,
    trace: bool = False,
    per_job: bool = False,
    ideal: bool = False,
) -> tuple[dict[str, Any], RtMachine]:
    """Build and run one scenario (or rt-app file); return its figures and the machine."""
    scen, config, sched, mk = _configure(taskset, rt_app, preempt, cpus, sets or {}, ideal)
    ncpu = cpus if cpus is not None else mk.pop("cpus", scen.cpus if scen else 4)
    mk.pop("cpus", None)
    m = RtMachine(ncpu, sched, seed=seed, **mk)
    if trace:
        m.enable_trace()
    if per_job or trace:
        m.enable_job_log()
    if scen is not None:
        built = scen.build(m, config)
    else:
        assert rt_app is not None
        built = load_rt_app(rt_app, m)
    if built.until_exit is not None:
        m.run_until_exit(built.groups[built.until_exit], built.duration_ns)
    else:
        m.run(built.duration_ns)
    rec = rt_record(m, built, scen, config, sched, seed, rt_app)
    if ideal:
        rec["ideal"] = True
    if per_job:
        rec["per_job"] = m.job_records()
    return rec, m


def _check_events(scen: RtScenario, config: Any, ncpu: int) -> None:
    """Refuse a scenario whose estimated scheduler events (``RtScenario.events``) exceed the limit of rt-app files."""
    if scen.events is None:
        return
    events = scen.events(config, ncpu)
    if events > MAX_EVENTS:
        key = "duration_ms" if hasattr(config, "duration_ms") else "--set"
        raise ConfigError(
            key, getattr(config, key, None),
            f"with these settings of scenario {scen.id} on {ncpu} CPUs asks for about {events:,} scheduler events; "
            f"at most {MAX_EVENTS:,} are simulated (shorten the run, lengthen the periods or use fewer tasks)",
        )  # fmt: skip


def _configure(
    taskset: str | None,
    rt_app: Path | str | None,
    preempt: str | None,
    cpus: int | None,
    sets: Mapping[str, str],
    ideal: bool = False,
) -> tuple[RtScenario | None, Any, SchedConfig, dict[str, Any]]:
    """The scenario, its config, the scheduler's config and the machine arguments; every check, no work."""
    if preempt is not None:
        parse_model(preempt)
    if cpus is not None and cpus < 1:
        raise ConfigError("--cpus", cpus, "must be >= 1")
    scen: RtScenario | None
    if rt_app is not None:
        (sched_sets,) = split_sets(sets, (("the scheduler (an rt-app file takes only scheduler keys)", SchedConfig),))
        scen, config, mk = None, None, {}
    else:
        scen = get(taskset or DEFAULT_SCENARIO)
        owners = (("the scheduler", SchedConfig), (f"scenario {scen.id}", scen.config_cls))
        sched_sets, scen_sets = split_sets(sets, owners)
        config = scen.make_config(scen_sets)
        mk = scen.machine_kwargs(config)
        _check_events(scen, config, cpus if cpus is not None else mk.get("cpus", scen.cpus))
    base = SchedConfig(**mk.pop("sched", {}))
    if ideal:
        base = dataclasses.replace(base, **IDEAL_SCHED)
        if "noise" in mk or "isolation" in mk:  # no interrupt noise, tick cost or cache pollution either
            mk["noise"] = NoiseModel(tick_irq_ns=0, scale=0.0, pollution_ns=0)
    if preempt is not None:
        given = sched_sets.get("preempt")
        if given is not None and parse_model(given) != parse_model(preempt):
            raise ConfigError(
                "--set preempt", given, f"contradicts --preempt {preempt}: give the preemption model once"
            )
        sched_sets["preempt"] = preempt
    sched = from_sets(SchedConfig, sched_sets, owner="the scheduler", base=base)
    return scen, config, sched, mk


class RtRunner:
    """The realtime scenarios (``memsched.workloads.rt``) on the exact scheduler."""

    family: ClassVar[str] = "rt"

    @staticmethod
    def _options(spec: RunSpec) -> RtOptions:
        if spec.options is None:
            return RtOptions()
        if not isinstance(spec.options, RtOptions):
            raise ConfigError("options", spec.options, "must be RtOptions for a realtime run")
        return spec.options

    def check(self, spec: RunSpec) -> None:
        opts = self._options(spec)
        taskset = None if opts.rt_app is not None else spec.workload
        _configure(taskset, opts.rt_app, spec.policy, opts.cpus, spec.sets, opts.ideal)

    def run(self, spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
        opts = self._options(spec)
        figures, m = run_rt_scenario(
            None if opts.rt_app is not None else spec.workload,
            rt_app=opts.rt_app,
            preempt=spec.policy,
            cpus=opts.cpus,
            seed=spec.seed,
            sets=spec.sets,
            trace=opts.trace,
            per_job=opts.per_job,
            ideal=opts.ideal,
        )
        return RunRecord(
            family=self.family,
            workload=figures["taskset"],
            policy=figures["preempt"],
            label=spec.label or figures["preempt"],
            seed=spec.seed,
            figures=figures,
            role=spec.role,
            base=spec.base or figures["taskset"],
            extras={"machine": m},
        )



def rt_record(
    m: RtMachine,
    built: RtBuilt,
    scen: RtScenario | None,
    config: Any,
    sched: SchedConfig,
    seed: int,
    rt_app: Path | str | None,
) -> dict[str, Any]:
    """The record of a finished run: the machine's results, what was run, and the scenario's own figures."""
    rec = m.results()
    rec["taskset"] = scen.id if scen is not None else "rt-app"
    if rt_app is not None:
        rec["rt_app"] = str(rt_app)
    rec["seed"] = seed
    rec["config"] = config_dict(config) if config is not None else {}
    rec["sched"] = dataclasses.asdict(sched)
    rec.update(built.metrics(m))
    return rec
