"""Automatic NUMA balancing: attaching a policy to a simulated machine.

With the ``none`` policy nothing is attached: no PTE scanning, no hinting faults, no migrations, exactly as a
3.7 kernel (or ``numa_balancing=0``). The scanning and fault machinery that the balancing policies drive is
added here by the NUMA balancing work (issue 3).
"""

from __future__ import annotations

from typing import Any

from memsched.errors import ConfigError
from memsched.sim.machine import Machine

__all__ = ["attach", "metrics"]


def attach(machine: Machine, policy: Any) -> None:
    """Attach ``policy`` to ``machine`` (before any task is created)."""
    if getattr(policy, "id", None) != "none":
        raise ConfigError("policy", getattr(policy, "id", policy), "must be 'none' (no balancing mechanism yet)")


def metrics(machine: Machine) -> dict[str, Any]:
    """Policy-specific figures for the run record."""
    return {}
