"""``vmpressure-shed``: the intent of the 2012 ``vmpressure_fd()`` RFC — services give memory back when the
kernel says pressure is MEDIUM, everything they can on CRITICAL (the RFC's OOM level), and the kernel's OOM
killer stays the backstop.

Source: "[RFC] vmpressure_fd(): A system call to get notified about memory pressure" (Anton Vorontsov,
linux-mm, 7 Nov 2012): "Medium: the system is reclaiming ... applications may free caches", "OOM: ... the
system is about to run out of memory"; the merged levels of mm/vmpressure.c (3.10: low/medium/critical).
The shed fraction on MEDIUM (25 %) and the 1 s cool-down are the same as the simulated pressure scenarios'
shedding services (``docs/pressure.md``).

Deviations: the policy asks every registered service (the RFC leaves the choice to each listener); a service
decides itself what its shed callback frees (``bytes`` is a request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.act.actions import Action, Shed
from memsched.policies.act.base import MAX_INTERVAL_MS, ActPolicy
from memsched.policies.act.views import MemoryView
from memsched.units import NSEC_PER_MSEC

__all__ = ["VmpressureShed", "VmpressureShedConfig"]


@dataclass(frozen=True)
class VmpressureShedConfig:
    medium_fraction: float = knob(0.25, "share of its sheddable memory a service gives back on MEDIUM", min=0, max=1)
    critical_fraction: float = knob(1.0, "share given back on CRITICAL (the RFC's OOM level: everything)", min=0, max=1)
    cooldown_ms: int = knob(1000, "a service is asked again at most this often", min=0, max=MAX_INTERVAL_MS, limit=True)
    interval_ms: int = knob(100, "sampling period of the level heard", min=1, max=MAX_INTERVAL_MS, limit=True)

    def __post_init__(self) -> None:
        validate(self)


class VmpressureShed(ActPolicy):
    def __init__(self, config: VmpressureShedConfig) -> None:
        self.config = config
        self.interval_ns = config.interval_ms * NSEC_PER_MSEC
        self._last: dict[str, int] = {}
        self.requests = 0

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        if view.vmpressure not in ("medium", "critical"):
            return ()
        fraction = self.config.medium_fraction if view.vmpressure == "medium" else self.config.critical_fraction
        cooldown = self.config.cooldown_ms * NSEC_PER_MSEC
        out: list[Action] = []
        for svc in view.services:
            last = self._last.get(svc.name)
            if last is not None and view.now_ns - last < cooldown:
                continue
            want = int(svc.sheddable * fraction)
            if want <= 0:
                continue
            self._last[svc.name] = view.now_ns
            self.requests += 1
            out.append(
                Shed(svc.name, want, view.vmpressure, f"vmpressure {view.vmpressure}",
                     {"level": view.vmpressure, "fraction": fraction, "sheddable": svc.sheddable})
            )
        return out

    def metrics(self) -> dict[str, object]:
        return {"shed_requests": self.requests}
