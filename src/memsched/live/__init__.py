"""``memsched.live``: the same interfaces as the simulator, against the running Linux kernel.

Every reader takes a :class:`~memsched.live.roots.LiveRoots` (``/proc``, ``/sys``, debugfs) so tests run on
committed fixture trees; each format is parsed once, in :mod:`memsched.live.procfs`, by a pure function from text
to a named record, and :mod:`memsched.live.oserrors` is the one place that says what an errno means for a
process (gone, access denied). :func:`capabilities` is the one place that answers "does this kernel (and may
this process) do X?". A live component leaves the system
as it found it (scheduling policy restored, children reaped) even when interrupted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memsched.live.capabilities import Capabilities, Capability, capabilities
from memsched.live.roots import LiveRoots

if TYPE_CHECKING:
    from memsched.live.pressure import PressureOptions, pressure_events, vmpressure_fd

#: The pressure names are imported on first use (PEP 562), so that importing one live module (``memsched rt
#: admit`` needs ``deadline``) does not import the pressure backends too.
_LAZY = {
    "PressureOptions": "memsched.live.pressure",
    "pressure_events": "memsched.live.pressure",
    "vmpressure_fd": "memsched.live.pressure",
}

__all__ = [
    "Capabilities",
    "Capability",
    "LiveRoots",
    "PressureOptions",
    "capabilities",
    "pressure_events",
    "vmpressure_fd",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
