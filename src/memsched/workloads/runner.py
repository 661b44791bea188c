"""Run workloads on simulated machines and turn each run into a record (the ``--json`` contract).

``run_one`` is the unit of work: one workload, one topology, one policy, one seed. ``run_many`` fans a list of
runs out over worker processes (runs are independent and CPU-bound) and returns the records in input
order, so the output never depends on which worker finished first.

Record fields (DESIGN.md, "Command line"): ``workload``, ``policy``, ``topology``, ``seed``, ``elapsed_s``
(simulated seconds until the last task exited), ``user_s`` and ``system_s`` (CPU time of all tasks, as
``time(1)`` reports them), ``vmstat`` (``/proc/vmstat`` names), plus ``local_fraction`` (bytes served by
the local node over all bytes), ``numastat`` per node, ``timeline`` samples and workload ``metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from memsched.errors import ConfigError
from memsched.policies.numa import registry as policies
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.topology import Topology, load_topology
from memsched.units import NSEC_PER_SEC
from memsched.workloads import base as workloads

__all__ = ["RunSpec", "run_many", "run_one", "validate_spec"]


@dataclass(frozen=True)
class RunSpec:
    workload: str
    topology: str
    policy: str = "none"
    seed: int = 0
    sets: Mapping[str, str] = field(default_factory=dict)
    thp: bool = True
    sample_interval_s: float = 1.0
    #: Label for reports (defaults to the policy id; HARD_BIND reference runs use the workload's variant).
    label: str | None = None


def _split_sets(spec: RunSpec, wl: workloads.WorkloadSpec, pol: policies.PolicySpec) -> tuple[Any, Any]:
    import dataclasses

    wl_keys = {f.name for f in dataclasses.fields(wl.config_cls)}
    pol_keys = {f.name for f in dataclasses.fields(pol.config_cls)}
    wl_sets = {k: v for k, v in spec.sets.items() if k in wl_keys}
    pol_sets = {k: v for k, v in spec.sets.items() if k in pol_keys}
    unknown = sorted(set(spec.sets) - wl_keys - pol_keys)
    if unknown:
        valid = sorted(wl_keys | pol_keys)
        raise ConfigError(
            unknown[0],
            spec.sets[unknown[0]],
            f"is not a setting of workload {wl.id} or policy {pol.id}; valid settings: "
            + (", ".join(valid) if valid else "(none)"),
        )
    return wl.make_config(wl_sets), pol.make_config(pol_sets)


def validate_spec(spec: RunSpec) -> Topology:
    """Check every name and setting of a run before any work starts (so nothing is half-done)."""
    topo = load_topology(spec.topology)
    wl = workloads.get(spec.workload)
    pol = policies.get(spec.policy)
    _split_sets(spec, wl, pol)
    if spec.sample_interval_s <= 0:
        raise ConfigError("sample_interval_s", spec.sample_interval_s, "must be > 0")
    return topo


def run_one(spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Simulate one run and return its record."""
    topo = validate_spec(spec)
    wl = workloads.get(spec.workload)
    pol = policies.get(spec.policy)
    wl_cfg, pol_cfg = _split_sets(spec, wl, pol)
    machine = FluidMachine(
        topo,
        seed=spec.seed,
        config=MachineConfig(thp=spec.thp, sample_interval_ns=round(spec.sample_interval_s * NSEC_PER_SEC)),
    )
    from memsched.sim.numa.balancing import NumaBalancing, needs_mechanism

    policy = pol.make(pol_cfg)
    numa = NumaBalancing(machine, policy) if needs_mechanism(policy) else None
    if numa is not None:
        machine.add_instrument(numa)
    built = wl.build(machine, wl_cfg)
    machine.run(
        until=built.duration_ns,
        progress=(lambda now: progress(now / NSEC_PER_SEC)) if progress else None,
    )
    elapsed_ns = built.duration_ns if built.duration_ns is not None else machine.elapsed_ns
    record: dict[str, Any] = {
        "workload": spec.workload,
        "policy": spec.policy,
        "label": spec.label or spec.policy,
        "topology": topo.name,
        "seed": spec.seed,
        "thp": spec.thp,
        "config": {"workload": wl.config_dict(wl_cfg), "policy": pol.config_dict(pol_cfg)},
        "elapsed_s": _r(elapsed_ns / NSEC_PER_SEC),
        "user_s": _r(machine.user_ns() / NSEC_PER_SEC),
        "system_s": _r(machine.system_ns() / NSEC_PER_SEC),
        "local_fraction": _r(machine.local_fraction()),
        "tasks": len(machine.tasks),
        "task_node_moves": machine.sched.task_node_moves,
        "memory_bytes": int(machine.vmstat["numa_hit"] + machine.vmstat["numa_miss"]) * machine.page_size,
        "vmstat": machine.vmstat.snapshot(),
        "numastat": machine.vmstat.numastat(),
        "metrics": (workload_metrics := built.metrics(machine)) | (numa.metrics() if numa is not None else {}),
        "score": _score(wl, workload_metrics, elapsed_ns),
        "timeline": _timeline(machine),
    }
    return record


def _score(wl: workloads.WorkloadSpec, metrics: dict[str, Any], elapsed_ns: int) -> dict[str, Any]:
    """The figure a comparison ranks this run by: the workload's first headline figure, else elapsed time."""
    if wl.headline:
        key, title, _ = wl.headline[0]
        return {"name": title, "value": metrics.get(key), "higher_is_better": True}
    return {"name": "elapsed s", "value": _r(elapsed_ns / NSEC_PER_SEC), "higher_is_better": False}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _timeline(machine: FluidMachine) -> dict[str, list[Any]]:
    tl = machine.timeline.samples
    return {
        "t_s": [_r(s["t_s"]) for s in tl],
        "local_fraction": [_r(s["local_fraction"]) for s in tl],
        "node_pages": [s["node_pages"] for s in tl],
        "node_tasks": [s["node_tasks"] for s in tl],
        **({"workload": [s.get("workload") for s in tl]} if any("workload" in s for s in tl) else {}),
    }


def _worker(spec: RunSpec) -> dict[str, Any]:
    return run_one(spec)


def run_many(
    specs: Sequence[RunSpec],
    *,
    jobs: int | None = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every spec (validated up front), in parallel over ``jobs`` processes; records in input order."""
    for spec in specs:
        validate_spec(spec)
    jobs = jobs or os.cpu_count() or 1
    results: list[dict[str, Any] | None] = [None] * len(specs)
    if jobs <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            results[i] = run_one(spec)
            if on_done:
                on_done(i, results[i])  # type: ignore[arg-type]
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(specs))) as pool:
            futures = {pool.submit(_worker, spec): i for i, spec in enumerate(specs)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])  # type: ignore[arg-type]
    return [r for r in results if r is not None]
