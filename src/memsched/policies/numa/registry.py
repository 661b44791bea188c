"""The NUMA policy registry: stable ids, a validated config class per policy, one ``make()``.

Ids are the contract of ``--policy`` and of result files: ``none``, ``moron``, ``balancenuma``, ``homenode``,
``autonuma``, ``numacore``, ``mainline``, ``numad``. Policies register explicitly from
``memsched.policies.numa.builtin`` (no discovery by file name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memsched.config import from_sets
from memsched.registry import Registry

__all__ = ["PolicySpec", "get", "names", "register", "unregister"]


@dataclass(frozen=True)
class PolicySpec:
    id: str
    description: str
    #: The patch set / code the policy models, for reports and ``memsched list policies``.
    models: str
    config_cls: type
    factory: Callable[[Any], Any]
    #: Position in listings and comparisons (the order of the debate: baseline first, later designs after).
    rank: int = 100

    def make_config(self, sets: Mapping[str, str]) -> Any:
        return from_sets(self.config_cls, sets, owner=f"policy {self.id}")

    def make(self, config: Any | None = None) -> Any:
        return self.factory(config if config is not None else self.config_cls())

    def config_dict(self, config: Any) -> dict[str, Any]:
        return dataclasses.asdict(config)


def _load_builtin() -> None:
    from memsched.policies.numa import builtin  # noqa: F401  (registers the built-in policies)


#: Listed in report order: ``rank``, then id.
_REGISTRY: Registry[PolicySpec] = Registry("policy", order=lambda s: (s.rank, s.id), load=_load_builtin)
register = _REGISTRY.register
unregister = _REGISTRY.unregister
get = _REGISTRY.get
names = _REGISTRY.names
