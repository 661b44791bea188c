"""``none``: no automatic NUMA balancing (vanilla 3.7, ``numa_balancing=0``).

Pages stay where first touch put them and tasks move only for load balance. This is the baseline every
balancing policy is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.policies.numa.base import NumaPolicy


@dataclass(frozen=True)
class NoneConfig:
    """``none`` has no settings."""


class NoBalancing(NumaPolicy):
    """A policy with no scanner and no hooks: nothing is marked, nothing faults, nothing migrates."""

    def __init__(self, config: NoneConfig) -> None:
        self.config = config
