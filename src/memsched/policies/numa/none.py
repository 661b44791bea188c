"""``none``: no automatic NUMA balancing (vanilla 3.7, ``numa_balancing=0``).

Pages stay where first touch put them and tasks move only for load balance. This is the baseline every
balancing policy is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.policies.numa.base import NumaPolicy
from memsched.policies.numa.registry import PolicySpec, register


@dataclass(frozen=True)
class NoneConfig:
    """``none`` has no settings."""


class NoBalancing(NumaPolicy):
    """A policy with no scanner and no hooks: nothing is marked, nothing faults, nothing migrates."""

    id = "none"

    def __init__(self, config: NoneConfig) -> None:
        self.config = config


register(
    PolicySpec(
        id="none",
        description="no automatic NUMA balancing: first touch and the load balancer only",
        models="vanilla v3.7 (numa_balancing=0)",
        config_cls=NoneConfig,
        factory=NoBalancing,
        rank=0,
    )
)
