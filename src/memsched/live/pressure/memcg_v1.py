"""The ``memcg-v1`` backend: the kernel's own vmpressure levels, through cgroup v1 ``memory.pressure_level``.

Registration (Documentation/admin-guide/cgroup-v1/memory.rst §11; mm/memcontrol-v1.c
``memcg_write_event_control()``, mm/vmpressure.c ``vmpressure_register_event()``, 6.18): create an eventfd,
open ``memory.pressure_level``, write ``"<eventfd> <fd of memory.pressure_level> <level>[,<mode>]"`` to
``cgroup.event_control``. The eventfd then counts signals (8-byte counter); it carries no level.

One eventfd per level: mainline signals a listener for its level **or any higher one**
(``vmpressure_event()``: ``if (level < ev->level) continue``), so one critical window increments the low,
medium and critical eventfds together. The counts per exact level follow from the cumulative totals:
``critical = T[critical]``, ``medium = T[medium] - T[critical]``, ``low = T[low] - T[medium]``. The kernel
signals while we read, so the order matters: ``vmpressure_register_event()`` puts each new listener at the
*head* of the list (``list_add``), so registering low, medium, critical in that order makes the kernel signal
critical, then medium, then low for one event; reading low, then medium, then critical means an event seen
in a lower counter has already reached the higher ones. A half-signalled event can then only make a lower
level's exact count *lag* (never lead), so a level is reported once its exact cumulative count exceeds what
was already reported — never a spurious low event for an in-flight critical one. Only the levels at or above
the file's threshold are registered. Levels map to the RFC constants (critical is the RFC's OOM).

Mode (``memcg_mode``): ``default`` (the event goes to the nearest listening memcg on the path up), ``hierarchy``
(every ancestor listener fires too) or ``local`` (only pressure in this very memcg). The ``default`` mode is
registered as the bare level, which every kernel since 3.10 accepts.

Cleanup: closing an eventfd makes the kernel drop the registration (``memcg_event_wake()`` on ``EPOLLHUP``).
Removal: ``mem_cgroup_css_offline()`` unregisters every event and signals each eventfd once ("notify
userspace the event is going away"). That signal would read as a critical event, so each wake-up first checks
that the cgroup directory still exists; if not, the stream ends with
:class:`~memsched.pressure.fd.SourceGoneError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from collections.abc import Sequence
from pathlib import Path

from memsched.errors import KernelError
from memsched.live.capabilities import Capability
from memsched.live.cgroups import resolve_cgroup_dir
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.uapi.pressure import MemcgLevel, MemcgMode, memcg_to_rfc_level, rfc_to_memcg_level

__all__ = ["MemcgV1Source", "check", "memcg_dir", "open_source", "split_counts"]


def memcg_dir(ctx: BackendContext) -> Path:
    """The v1 memory cgroup to listen on: ``ctx.cgroup`` resolved under the v1 mount, or the caller's."""
    if ctx.mounts.v1_memory is None:
        raise KernelError(
            errno.ENOENT,
            "the cgroup v1 memory controller is not mounted (cgroup v2 has no memory.pressure_level; "
            "CONFIG_MEMCG_V1 defaults to n since 6.11)",
        )
    if ctx.cgroup is not None:
        return resolve_cgroup_dir(ctx.cgroup, ctx.mounts.v1_memory, ctx.mounts)
    if ctx.own.v1_memory is None:
        raise KernelError(errno.ENOENT, "the caller has no v1 memory cgroup in /proc/self/cgroup")
    return ctx.own.v1_memory


def check(ctx: BackendContext) -> Capability:
    try:
        d = memcg_dir(ctx)
    except KernelError as e:
        return Capability(False, str(e))
    level, control = d / "memory.pressure_level", d / "cgroup.event_control"
    for f in (level, control):
        if not f.exists():
            return Capability(False, f"{f} does not exist")
    if not os.access(control, os.W_OK):
        return Capability(False, f"{control} is not writable by this process (root or a delegated cgroup needed)")
    return Capability(True, f"eventfds on {level} (mode {ctx.options.memcg_mode})")


def split_counts(totals: dict[MemcgLevel, int]) -> dict[MemcgLevel, int]:
    """Cumulative per-listener totals -> cumulative events at exactly each level (may be negative while an
    event is half-signalled; see the module docstring)."""
    levels = sorted(totals)
    return {lv: totals[lv] - (totals[levels[i + 1]] if i + 1 < len(levels) else 0) for i, lv in enumerate(levels)}


class MemcgV1Source(PressureSource):
    """One eventfd per registered level on one memcg's ``memory.pressure_level``."""

    backend = "memcg-v1"

    def __init__(self, directory: Path, levels: Sequence[MemcgLevel], mode: MemcgMode) -> None:
        self.directory = directory
        self.mode = mode
        self.description = f"{directory}/memory.pressure_level ({mode.text})"
        self._level_fd = -1
        self._efds: dict[int, MemcgLevel] = {}
        #: Cumulative eventfd counts per listener, and events already reported per exact level.
        self.totals = dict.fromkeys(levels, 0)
        self.reported = dict.fromkeys(levels, 0)
        try:
            self._level_fd = os.open(directory / "memory.pressure_level", os.O_RDONLY | os.O_CLOEXEC)
            control = os.open(directory / "cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
            try:
                for level in sorted(levels):  # ascending: see the module docstring
                    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                    self._efds[efd] = level
                    args = level.text if mode is MemcgMode.DEFAULT else f"{level.text},{mode.text}"
                    os.write(control, f"{efd} {self._level_fd} {args}".encode())
            finally:
                os.close(control)
        except OSError as e:
            self.close()
            code = e.errno or errno.EIO
            raise KernelError(
                code, f"memcg-v1: cannot register on {directory}/memory.pressure_level: {os.strerror(code)}"
            ) from e

    def fds(self) -> Sequence[tuple[int, int]]:
        return [(fd, select.POLLIN) for fd in self._efds]

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        # Read every counter on any wake-up (one event bumps several), lowest level first.
        for efd, level in sorted(self._efds.items(), key=lambda kv: kv[1]):
            with contextlib.suppress(BlockingIOError):
                self.totals[level] += os.eventfd_read(efd)
        if not self.directory.is_dir():
            raise self.gone(f"{self.directory} was removed")
        records = []
        for level, exact in sorted(split_counts(self.totals).items()):
            n = exact - self.reported[level]
            if n > 0:
                self.reported[level] = exact
                records.append(
                    self.record(
                        memcg_to_rfc_level(level),
                        now_ns,
                        kernel_level=level.text,
                        count=n,
                        mode=self.mode.text,
                        cgroup=str(self.directory),
                    )
                )
        return records

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "cgroup": str(self.directory),
            "mode": self.mode.text,
            "levels": [lv.text for lv in self.totals],
        }

    def close(self) -> None:
        for efd in list(self._efds):
            with contextlib.suppress(OSError):
                os.close(efd)
        self._efds.clear()
        if self._level_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._level_fd)
            self._level_fd = -1


def open_source(ctx: BackendContext) -> PressureSource:
    d = memcg_dir(ctx)
    levels = sorted({rfc_to_memcg_level(lv) for lv in ctx.levels()})
    return MemcgV1Source(d, levels, MemcgMode.parse(ctx.options.memcg_mode, field="memcg_mode"))
