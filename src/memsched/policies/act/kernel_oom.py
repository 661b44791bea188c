"""``kernel-oom``: no user-space action at all; only the kernel's OOM killer (mm/oom_kill.c) acts.

The baseline every other policy is scored against: the backend's kernel (simulated or real) reclaims, stalls
and finally kills the task with the highest ``oom_badness()``.

Deviations from the kernel: none (this policy does nothing; the kernel side is the backend's).
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.act.base import MAX_INTERVAL_MS, ActPolicy
from memsched.units import NSEC_PER_SEC

__all__ = ["KernelOom", "KernelOomConfig"]


@dataclass(frozen=True)
class KernelOomConfig:
    interval_ms: int = knob(
        1000, "how often the (idle) policy is sampled; it never acts", min=1, max=MAX_INTERVAL_MS, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


class KernelOom(ActPolicy):
    def __init__(self, config: KernelOomConfig) -> None:
        self.config = config
        self.interval_ns = config.interval_ms * NSEC_PER_SEC // 1000
