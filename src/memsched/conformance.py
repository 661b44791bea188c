"""The public conformance checker for NUMA policies (Gymnasium's ``check_env`` for our plug-ins).

``check_numa_policy(policy_id)`` verifies that a registered policy can be trusted by the mechanism:

1. **Config**: the default config builds; every knob's default, written as a string, goes back through
   ``--set`` unchanged (so the command line reaches every knob).
2. **Hooks well-formed**: only known hook names are overridden, with the interface's signatures; every hook
   call on a real run returns a sequence of actions from ``memsched.policies.numa.actions`` (``lb_score``:
   ``None`` or a number).
3. **Views not mutated**: every array a view or fault batch hands out is read-only, and the machine state a
   policy could see (task placement, page placement, free memory) is identical before and after each hook.
4. **Determinism under a seed**: two runs with one seed give identical records.

It runs the policy for real on a small multi-node case (numa02_SMT on the 2-node preset by default) through
a proxy that watches every hook call. The test suite runs it over every registered policy.

``load_policy(name, sets)`` is how the command line gets a policy: memsched's own policies are trusted (the
test suite checks them), any other (``register()``, an installed entry point) must pass the checker the first
time a process loads it, or :class:`~memsched.errors.PolicyError` names it and its first problems. The
policy registry cannot do this itself: it is in the pure layer, and the checker runs the simulator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsched.config import from_sets
from memsched.errors import PolicyError
from memsched.policies.numa import registry
from memsched.policies.numa.actions import ACTION_TYPES
from memsched.policies.numa.base import HOOKS, NumaPolicy, overridden_hooks
from memsched.policies.numa.views import FaultBatch
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.numa.balancing import NumaBalancing, needs_mechanism
from memsched.topology import load_topology
from memsched.workloads import base as workloads
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

__all__ = ["ConformanceReport", "check_numa_policy", "checked_spec", "load_policy"]


@dataclass
class ConformanceReport:
    policy: str
    problems: list[str] = field(default_factory=list)
    hook_calls: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_config(spec: registry.PolicySpec, report: ConformanceReport) -> None:
    try:
        default = spec.config_cls()
    except Exception as e:
        report.problems.append(f"default config does not build: {e}")
        return
    sets = {}
    for f in dataclasses.fields(default):
        value = getattr(default, f.name)
        sets[f.name] = str(value).lower() if isinstance(value, bool) else str(value)
    try:
        again: object = from_sets(spec.config_cls, sets, owner=spec.id)
    except Exception as e:
        report.problems.append(f"defaults do not round-trip through --set: {e}")
        return
    if again != default:
        report.problems.append("defaults changed after a round trip through --set")


def _check_hook_signatures(policy: NumaPolicy, report: ConformanceReport) -> None:
    for name in dir(type(policy)):
        if name.startswith("on_") and name not in HOOKS:
            report.problems.append(f"unknown hook {name!r} (known: {', '.join(HOOKS)})")
    for hook in overridden_hooks(policy):
        mine = inspect.signature(getattr(type(policy), hook))
        base = inspect.signature(getattr(NumaPolicy, hook))
        if list(mine.parameters) != list(base.parameters):
            report.problems.append(f"{hook} takes {list(mine.parameters)}, the interface {list(base.parameters)}")


def _state_digest(machine: FluidMachine) -> str:
    h = hashlib.sha256()
    h.update(np.array([t.cpu for t in machine.tasks], dtype=np.int64).tobytes())
    for mm in machine.mms:
        h.update(mm.page_node.tobytes())
    h.update(machine.page_alloc.free_pages.tobytes())
    return h.hexdigest()


def _watch(policy: NumaPolicy, machine: FluidMachine, report: ConformanceReport) -> None:
    """Wrap each overridden hook of ``policy`` (instance attributes) with the checks."""

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any) -> Any:
            report.hook_calls[name] = report.hook_calls.get(name, 0) + 1
            for arg in args:
                if isinstance(arg, FaultBatch):
                    for f in dataclasses.fields(arg):
                        value = getattr(arg, f.name)
                        if isinstance(value, np.ndarray) and value.flags.writeable:
                            report.problems.append(f"{name}: FaultBatch.{f.name} is writeable")
            before = _state_digest(machine)
            result = fn(*args)
            if _state_digest(machine) != before:
                report.problems.append(f"{name} changed machine state directly (policies must return actions)")
            if name == "lb_score":
                if result is not None and not isinstance(result, int | float):
                    report.problems.append(f"lb_score returned {type(result).__name__}, not None or a number")
            else:
                try:
                    items = list(result)
                except TypeError:
                    report.problems.append(f"{name} returned {type(result).__name__}, not a sequence of actions")
                    return result
                bad = [a for a in items if not isinstance(a, ACTION_TYPES)]
                if bad:
                    report.problems.append(f"{name} returned non-actions: {bad[:3]!r}")
                result = items
            return result

        return checked

    for hook in overridden_hooks(policy):
        setattr(policy, hook, wrap(hook, getattr(policy, hook)))


def check_numa_policy(
    policy_id: str, *, topology: str = "sandybridge-2n32", workload: str = "numa02_SMT", seed: int = 7
) -> ConformanceReport:
    """Run every check on one registered policy; ``report.ok`` tells whether it conforms."""
    spec = registry.get(policy_id)
    report = ConformanceReport(policy_id)
    _check_config(spec, report)
    policy: object = spec.make()
    if not isinstance(policy, NumaPolicy):
        report.problems.append("the factory does not return a NumaPolicy")
        return report
    if policy.id != spec.id:
        report.problems.append(f"policy.id is {policy.id!r}, registered as {spec.id!r}")
    _check_hook_signatures(policy, report)
    # A watched run on the real mechanism.
    topo = load_topology(topology)
    machine = FluidMachine(topo, seed=seed, config=MachineConfig())
    _watch(policy, machine, report)
    if needs_mechanism(policy):
        machine.add_instrument(NumaBalancing(machine, policy))
    wl = workloads.get(workload)
    wl.build(machine, wl.default_config())
    try:
        machine.run()
    except Exception as e:
        report.problems.append(f"the run failed: {type(e).__name__}: {e}")
        return report
    # Determinism: the full record twice.
    a = run_one(RunSpec(workload, topology, policy_id, seed))
    b = run_one(RunSpec(workload, topology, policy_id, seed))
    if json.dumps(a.to_json(), sort_keys=True) != json.dumps(b.to_json(), sort_keys=True):
        report.problems.append("two runs with the same seed gave different records")
    return report


#: Versioned ids of the plug-ins this process has checked (the checker runs three simulations).
_CHECKED: set[str] = set()

#: How many of a failing plug-in's problems the error message lists.
_PROBLEMS_SHOWN = 3


def checked_spec(name: str) -> registry.PolicySpec:
    """The spec of policy ``name`` (an id or a versioned id), after checking it if it is not built in.

    A plug-in is checked once per process; one that does not conform raises :class:`PolicyError` naming it
    and its first problems, and so does one that crashes the checker.
    """
    spec = registry.get(name)
    if registry.is_builtin(spec) or spec.versioned_id in _CHECKED:
        return spec
    try:
        report = check_numa_policy(spec.versioned_id)
    except PolicyError:
        raise
    except Exception as e:  # the plug-in's code crashed the check: its fault, not the user's
        raise PolicyError(spec.id, f"the conformance check crashed: {type(e).__name__}: {e}") from e
    if not report.ok:
        shown = "; ".join(report.problems[:_PROBLEMS_SHOWN])
        more = len(report.problems) - _PROBLEMS_SHOWN
        raise PolicyError(
            spec.id, f"fails the conformance check: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    _CHECKED.add(spec.versioned_id)
    return spec


def load_policy(name: str, sets: Mapping[str, str] | None = None) -> tuple[registry.PolicySpec, NumaPolicy]:
    """The spec of policy ``name`` and a policy made with ``--set`` values ``sets`` (checked as above)."""
    spec = checked_spec(name)
    return spec, spec.make(spec.make_config(sets or {}))
