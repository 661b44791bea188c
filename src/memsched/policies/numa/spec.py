"""What the registry knows about one NUMA policy: its id and version, where its class lives, one ``make()``.

A spec names its policy class and config class by ``module:Class`` entry points, as Gymnasium's ``EnvSpec``
does, so a table of specs imports no policy module; the class is imported when a policy is made (or its
config class is asked for). ``make()`` is the one way to create a policy: it builds the config if none is
given, calls the class, and tells the object its id (``policy.id``), which is written nowhere else.

A class or a callable may stand in for an entry point string (``register()`` from a library user's own
code). An entry point that does not load, or a class with no annotated ``config`` parameter, is the plug-in's
fault: :class:`~memsched.errors.PolicyError` naming the policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from memsched.policies.numa.base import NumaPolicy
from memsched.policies.plugin import PluginSpec, load_entry_point

__all__ = ["PolicySpec", "load_entry_point"]


@dataclass(frozen=True, kw_only=True)
class PolicySpec(PluginSpec[NumaPolicy]):
    """A NUMA policy's spec (the fields and ``make()`` are :class:`~memsched.policies.plugin.PluginSpec`'s)."""

    def config_dict(self, config: Any) -> dict[str, Any]:
        return dataclasses.asdict(config)
