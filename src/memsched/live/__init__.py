"""``memsched.live``: the same interfaces as the simulator, against the running Linux kernel.

Every reader takes a :class:`~memsched.live.roots.LiveRoots` (``/proc``, ``/sys``, debugfs) so tests run on
committed fixture trees; each format is parsed once, in :mod:`memsched.live.procfs`, by a pure function from text
to a named record, and :mod:`memsched.live.oserrors` is the one place that says what an errno means for a
process (gone, access denied). :func:`capabilities` is the one place that answers "does this kernel (and may
this process) do X?". A live component leaves the system
as it found it (scheduling policy restored, children reaped) even when interrupted.
"""

from memsched.live.capabilities import Capabilities, Capability, capabilities
from memsched.live.pressure import PressureOptions, pressure_events, vmpressure_fd
from memsched.live.roots import LiveRoots

__all__ = [
    "Capabilities",
    "Capability",
    "LiveRoots",
    "PressureOptions",
    "capabilities",
    "pressure_events",
    "vmpressure_fd",
]
