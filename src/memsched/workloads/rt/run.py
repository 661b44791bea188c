"""Running one realtime scenario (or rt-app file) on a fresh exact machine, and the record it produces.

:func:`run_rt_scenario` splits the ``--set`` keys between the scheduler (:class:`SchedConfig` fields) and the
scenario's config, builds the machine the scenario asks for, runs it, and returns the run record (a dict, as
``memsched rt sim --json`` prints it) together with the machine. The record is assembled in one place,
:func:`rt_record`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memsched.config import from_sets
from memsched.errors import ConfigError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.sched import SchedConfig
from memsched.workloads.rt.base import RtBuilt, RtScenario, config_dict, get
from memsched.workloads.rt.rtapp import load_rt_app

__all__ = ["rt_record", "run_rt_scenario"]


def run_rt_scenario(
    taskset: str | None,
    *,
    rt_app: Path | str | None = None,
    preempt: str | None = None,
    cpus: int | None = None,
    seed: int = 0,
    sets: Mapping[str, str] | None = None,
    trace: bool = False,
) -> tuple[dict[str, Any], RtMachine]:
    """Build and run one scenario (or rt-app file); return its record and the machine."""
    sets = dict(sets or {})
    sched_fields = {f.name for f in dataclasses.fields(SchedConfig)}
    sched_sets = {k: v for k, v in sets.items() if k in sched_fields}
    other = {k: v for k, v in sets.items() if k not in sched_fields}
    scen: RtScenario | None
    if rt_app is not None:
        if other:
            k = next(iter(other))
            raise ConfigError(
                k, other[k], "is not a scheduler setting (an rt-app file takes only scheduler --set keys)"
            )
        scen = None
        config = None
        mk: dict[str, Any] = {}
    else:
        scen = get(taskset or "hackbench+cyclictest")
        config = scen.make_config(other)
        mk = scen.machine_kwargs(config)
    base = SchedConfig(**mk.pop("sched", {}))
    if preempt is not None:
        sched_sets["preempt"] = preempt
    sched = from_sets(SchedConfig, sched_sets, owner="the scheduler", base=base)
    ncpu = cpus if cpus is not None else mk.pop("cpus", scen.cpus if scen else 4)
    mk.pop("cpus", None)
    m = RtMachine(ncpu, sched, seed=seed, **mk)
    if trace:
        m.enable_trace()
    if scen is not None:
        built = scen.build(m, config)
    else:
        assert rt_app is not None
        built = load_rt_app(rt_app, m)
    if built.until_exit is not None:
        m.run_until_exit(built.groups[built.until_exit], built.duration_ns)
    else:
        m.run(built.duration_ns)
    return rt_record(m, built, scen, config, sched, seed, rt_app), m


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
