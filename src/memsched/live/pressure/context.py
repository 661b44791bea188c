"""What a backend needs to decide whether it can serve a request and to open its source."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from memsched.live.capabilities import Capabilities, capabilities, psi_privileged
from memsched.live.cgroups import CgroupMounts, OwnCgroups, cgroup_mounts, own_cgroups
from memsched.live.pressure.options import PressureOptions
from memsched.live.roots import LiveRoots
from memsched.uapi.pressure import VmpressureLevel

__all__ = ["BackendContext"]


@dataclass
class BackendContext:
    """A ``vmpressure_fd()`` request: the target cgroup (None: the caller's own, or system-wide), the lowest
    level wanted (backends register nothing below it), the options, and the injectable environment."""

    cgroup: str | None = None
    threshold: VmpressureLevel = VmpressureLevel.LOW
    options: PressureOptions = field(default_factory=PressureOptions)
    roots: LiveRoots = field(default_factory=LiveRoots)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @cached_property
    def caps(self) -> Capabilities:
        return capabilities(self.roots)

    @cached_property
    def mounts(self) -> CgroupMounts:
        return cgroup_mounts(self.roots)

    @cached_property
    def own(self) -> OwnCgroups:
        return own_cgroups(self.roots)

    @cached_property
    def privileged(self) -> bool:
        """CAP_SYS_RESOURCE: PSI triggers with any window (otherwise 2 s multiples only)."""
        return psi_privileged(self.roots)

    def levels(self) -> list[VmpressureLevel]:
        """The levels at or above the threshold, ascending."""
        return [lv for lv in VmpressureLevel if lv >= self.threshold]
