"""How a service hears memory pressure under each design: what it opens, what it waits on, what a read gives.

:func:`open_ears` registers one listener per level, as a real program would:

``rfc2012``
    ``vmpressure_fd(threshold = level)`` per level (system-wide; the RFC had no modes). A read returns the
    *current* level, which may be lower than the threshold by the time it is read.
``mainline``
    an eventfd per level on the memcg's ``memory.pressure_level`` via ``cgroup.event_control``
    (``"<level>[,<mode>]"``); an eventfd counts signals and carries no level, so the level is the
    listener's own. A window at a level signals the listeners of that level and of every lower one.
``psi``
    a trigger on ``/proc/pressure/memory`` per level it has one for: the scenario's ``[psi] medium`` and
    ``critical`` (PSI has no "low").
``none``
    nothing is opened.

A shedding service listens for medium and critical (the RFC: one ``vmpressure_fd`` at MEDIUM); a
``listener`` service for the levels it lists, and only counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memsched.sim.eventfd import SimEventfd
from memsched.sim.fluid.psi import PsiFile
from memsched.sim.fluid.task import FluidTask
from memsched.sim.mm.reclaim import Reclaim
from memsched.uapi.pressure import VmpressureConfig, VmpressureLevel

__all__ = ["AnyOf", "Ears", "open_ears"]

_RFC_LEVEL = {"low": VmpressureLevel.LOW, "medium": VmpressureLevel.MEDIUM, "critical": VmpressureLevel.OOM}


class AnyOf:
    """Wait on several wait queues at once (``poll`` on a set of fds); ready as soon as one is."""

    def __init__(self, *waitables: Any) -> None:
        self.waitables = waitables

    def poll_ready(self, task: FluidTask) -> bool:
        return any(w.poll_ready(task) for w in self.waitables)

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        for w in self.waitables:
            w.add_waiter(task, wake)


class _Trigger:
    """A PSI file as a wait queue that remembers it fired (``poll()`` consumes the event)."""

    def __init__(self, f: PsiFile, fired: list[str], level: str) -> None:
        self.f = f
        self.fired = fired
        self.level = level

    def poll_ready(self, task: FluidTask) -> bool:
        if self.f.poll():
            self.fired.append(self.level)
            return True
        return False

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self.f.add_waiter(task, wake)


@dataclass
class Ears:
    """The descriptors one service listens on."""

    waitable: Any
    #: Reads everything pending: (listener level, level of what was heard, signals).
    read: Callable[[], list[tuple[str, str, int]]]
    #: Kernel-side receiver names (eventfd, vmpressure_fd) -> the listener level they stand for.
    receivers: dict[str, str] = field(default_factory=dict)


def open_ears(
    r: Reclaim,
    design: str,
    name: str,
    levels: Sequence[str],
    *,
    mode: str = "default",
    memcg: str = "/",
    psi: dict[str, Any] | None = None,
    psi_privileged: bool = True,
) -> Ears | None:
    """Register ``name``'s listeners for ``levels`` under ``design`` (None: nothing to listen to)."""
    if design == "rfc2012":
        return _rfc(r, name, levels)
    if design == "mainline":
        return _mainline(r, name, levels, mode, memcg)
    if design == "psi":
        return _psi(r, name, levels, psi or {}, psi_privileged)
    return None


def _rfc(r: Reclaim, name: str, levels: Sequence[str]) -> Ears:
    files = {}
    for level in levels:
        fname = f"{name}:vmpressure_fd" if len(levels) == 1 else f"{name}:vmpressure_fd:{level}"
        files[level] = r.vmpressure.vmpressure_fd(VmpressureConfig(threshold=_RFC_LEVEL[level]), name=fname)

    def read() -> list[tuple[str, str, int]]:
        out = []
        for level, f in files.items():
            try:
                ev = f.read_event_nowait()
            except BlockingIOError:
                continue
            heard = "critical" if ev.level is VmpressureLevel.OOM else ev.level.name.lower()
            out.append((level, heard, 1))
        return out

    waitable = AnyOf(*(r.vmpressure.wait(f) for f in files.values()))
    return Ears(waitable, read, {f.name: level for level, f in files.items()})


def _mainline(r: Reclaim, name: str, levels: Sequence[str], mode: str, memcg: str) -> Ears:
    efds: dict[str, SimEventfd] = {}
    for level in levels:
        efd = r.memcgs.eventfd(f"{name}:{level}")
        plf = r.memcgs.open_pressure_level(memcg)
        args = level if mode == "default" else f"{level},{mode}"
        r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} {args}")
        efds[level] = efd

    def read() -> list[tuple[str, str, int]]:
        return [(lv, lv, efd.read()) for lv, efd in efds.items() if efd.count]

    # Highest level first: a shedding service that wakes for a critical window sees it as critical.
    waitable = AnyOf(*(efds[lv] for lv in sorted(efds, key=("low", "medium", "critical").index, reverse=True)))
    return Ears(waitable, read, {efd.name: level for level, efd in efds.items()})


def _psi(r: Reclaim, name: str, levels: Sequence[str], triggers: dict[str, Any], privileged: bool) -> Ears:
    files: dict[str, PsiFile] = {}
    for level in ("critical", "medium"):
        if level in levels and level in triggers:
            f = r.psi.open(privileged=privileged, name=f"{name}:psi-{level}")
            f.write(triggers[level].encode())
            files[level] = f
    fired: list[str] = []

    def read() -> list[tuple[str, str, int]]:
        for level, f in files.items():
            if f.poll():
                fired.append(level)
        out = [(level, level, fired.count(level)) for level in files if level in fired]
        fired.clear()
        return out

    return Ears(AnyOf(*(_Trigger(f, fired, lv) for lv, f in files.items())), read)
