"""The action-policy interface: one mandatory hook and an optional sampling period.

``on_sample(view)``
    One :class:`~memsched.policies.act.views.MemoryView`; returns a sequence of actions
    (:mod:`memsched.policies.act.actions`), possibly empty. Policies keep their own state between samples
    (earlyoom's pending SIGTERM, systemd-oomd's "above the limit since", lmkd's thrashing baseline), exactly
    as the daemons keep it between two passes of their main loops.
``next_interval_ns(view)``
    When the backend should sample again: earlyoom's adaptive sleep, systemd-oomd's 1 s / 150 ms timers,
    lmkd's 10 ms / 100 ms polling after a PSI event. The default is ``interval_ns``.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsched.config import LIMIT_BYTES, LIMIT_INTERVAL_NS
from memsched.policies.act.actions import Action
from memsched.policies.act.views import MemoryView
from memsched.units import MIB, NSEC_PER_MSEC, NSEC_PER_SEC

__all__ = ["MAX_FILL_RATE_MIB_S", "MAX_INTERVAL_MS", "MAX_INTERVAL_S", "ActPolicy"]

# ---- the largest value of a knob the modelled tool takes without a maximum of its own (or hard-codes) ---------------
#: A period, delay, timeout or duration: one hour (:data:`memsched.config.LIMIT_INTERVAL_NS`), longer than any
#: simulated scenario (600 s) and than every daemon's default (systemd-oomd's 30 s, earlyoom's 10 s kill wait).
MAX_INTERVAL_MS = LIMIT_INTERVAL_NS // NSEC_PER_MSEC
MAX_INTERVAL_S = LIMIT_INTERVAL_NS // NSEC_PER_SEC
#: An expected fill rate: 1 TiB/s (:data:`memsched.config.LIMIT_BYTES` per second), above any memory bandwidth.
MAX_FILL_RATE_MIB_S = LIMIT_BYTES // MIB


class ActPolicy:
    """Base class of action policies. ``id`` is set by the spec the policy is made from."""

    id: str = "unregistered"
    interval_ns: int = 100 * NSEC_PER_MSEC

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        return ()

    def next_interval_ns(self, view: MemoryView) -> int:
        return self.interval_ns

    def metrics(self) -> dict[str, object]:
        """Policy-specific figures for the run record (kills by reason, ...)."""
        return {}
