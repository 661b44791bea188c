"""The NUMA policy registry: versioned ids, ``module:Class`` entry points, one ``make()`` (on the spec).

Ids are the contract of ``--policy`` and of result files: ``none``, ``moron``, ``balancenuma``, ``homenode``,
``autonuma``, ``numacore``, ``mainline``, ``numad``. Each carries a version (``mainline-v1``); a bare id means
its latest version. The registry fills itself, on its first use, from

1. the built-in table, ``memsched.policies.numa.builtin.BUILTIN``;
2. installed plug-ins: the entry points of the group ``memsched.numa_policies``, whose name is the policy id
   (``mypolicy``, or ``mypolicy-v2`` for a version other than 1) and whose value is ``module:Class``; the
   class's ``config`` parameter annotation names its config dataclass. Nothing is imported until the policy is
   made, and an entry point that does not load is a :class:`~memsched.errors.PolicyError`, never skipped;

and from :func:`register`, which library users call with their own :class:`PolicySpec`.

This module is in the pure layer and cannot run the conformance checker (it runs a simulation): the command
line loads policies through ``memsched.conformance.load_policy``, which checks every policy that is not built
in the first time a process loads it.
"""

from __future__ import annotations

import importlib.metadata

from memsched.errors import PolicyError
from memsched.policies.numa.builtin import BUILTIN
from memsched.policies.numa.spec import PolicySpec
from memsched.registry import VersionedRegistry, split_version

__all__ = [
    "ENTRY_POINT_GROUP",
    "PolicySpec",
    "entry_point_specs",
    "get",
    "is_builtin",
    "names",
    "register",
    "register_entry_points",
    "specs",
    "unregister",
]

ENTRY_POINT_GROUP = "memsched.numa_policies"


def entry_point_specs() -> list[PolicySpec]:
    """A spec for each installed entry point of :data:`ENTRY_POINT_GROUP` (their modules are not imported)."""
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name, version = split_version(ep.name)
        package = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an installed package"
        out.append(
            PolicySpec(
                id=name,
                version=version or 1,
                entry_point=ep.value,
                description=f"plug-in {ep.value}",
                models=f"third-party ({package})",
                rank=1000,
            )
        )
    return out


def register_entry_points() -> list[PolicySpec]:
    """Register every installed plug-in (the registry does this on first use); returns their specs."""
    found = entry_point_specs()
    for spec in found:
        try:
            register(spec)
        except ValueError as e:
            raise PolicyError(spec.id, f"entry point {spec.entry_point!r} of group {ENTRY_POINT_GROUP}: {e}") from None
    return found


def _load() -> None:
    for spec in BUILTIN:
        register(spec)
    register_entry_points()


def is_builtin(spec: PolicySpec) -> bool:
    """Whether ``spec`` is one of memsched's own policies (which the test suite runs the checker over)."""
    return spec in BUILTIN


#: Listed in report order: ``rank``, then id, then version.
_REGISTRY: VersionedRegistry[PolicySpec] = VersionedRegistry(
    "policy", order=lambda s: (s.rank, s.id, s.version), load=_load
)
register = _REGISTRY.register
unregister = _REGISTRY.unregister
get = _REGISTRY.get
names = _REGISTRY.names
specs = _REGISTRY.specs
