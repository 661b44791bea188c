"""The ``psi`` backend: PSI triggers on a cgroup v2 ``memory.pressure`` or ``/proc/pressure/memory``.

Kernel facts (Documentation/accounting/psi.rst; kernel/sched/psi.c ``psi_write()``/``psi_trigger_create()``/
``psi_trigger_poll()``, 6.18; see also ``memsched.uapi.pressure.PsiTrigger``):

* A trigger ``"<some|full> <stall µs> <window µs>"`` is written to a descriptor opened ``O_RDWR |
  O_NONBLOCK``, **with its terminating NUL**: ``psi_write()`` replaces the last byte written by ``'\\0'``, so
  ``"some 150000 2000000"`` without it is parsed as a 200 ms window. One trigger per descriptor (a second
  write is ``EBUSY``), so each level gets its own descriptor.
* Events arrive as ``POLLPRI``, at most one per window. ``POLLERR`` means the source is gone (the cgroup was
  removed): the stream ends with :class:`~memsched.pressure.fd.SourceGoneError`.
* Without ``CAP_SYS_RESOURCE`` (6.5+) the window must be a multiple of 2 s; such triggers are evaluated on
  the averaging clock. This is checked before writing, so a bad window is a clear configuration error rather
  than the kernel's bare ``EINVAL``.

Levels: one trigger per level, the map in :class:`~memsched.live.pressure.options.PressureOptions` (GLib's by
default: LOW ``some 70ms/2s``, MEDIUM ``some 100ms/2s``, OOM ``full 100ms/2s``). Only the levels at or above
the file's threshold are armed.

Spurious first event (bun issue #42783, reported for unprivileged triggers: the window is said to be seeded
from the wrong clock, so all stall since boot looks like growth): the ``some``/``full`` total is read before
arming and again at every ``POLLPRI`` through the trigger's own descriptor (``pread`` at 0), and an event whose
stall growth since the previous one is below the trigger's threshold is dropped and counted. Since events
are at least one window apart, a real event's growth since the previous one is at least its window growth.

systemd (docs/MEMORY_PRESSURE.md, v254; ``sd_event_add_memory_pressure(3)``): when no cgroup is named and
``$MEMORY_PRESSURE_WATCH`` is set, it wins: ``/dev/null`` means "disabled by the service manager"; a regular
file is a PSI file — ``$MEMORY_PRESSURE_WRITE`` (Base64, NUL included) is written verbatim as the one trigger
and its events get the ``systemd_level`` option's level, or, without it, the level triggers are armed on that
file; a FIFO or socket is watched for ``POLLIN`` (:mod:`memsched.live.pressure.fifo`).

A regular file there must be on procfs or a cgroup file system (``statfs`` ``f_type``), or inside a copied
fixture tree given as a root; anything else is a :class:`~memsched.errors.ConfigError` naming
``MEMORY_PRESSURE_WATCH`` before the file is opened. Before, an ordinary file whose first line looked like PSI
(a saved copy of ``/proc/pressure/memory``) was opened ``O_RDWR`` and had the trigger written into it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import select
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.kfile import decode_kernel_text, file_kind
from memsched.live.capabilities import Capability
from memsched.live.cgroups import CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, fs_type, resolve_cgroup_dir
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.fifo import FifoSource
from memsched.live.pressure.options import parse_level
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.live.procfs import parse_psi
from memsched.live.roots import LiveRoots
from memsched.uapi.pressure import PsiTrigger, VmpressureLevel

__all__ = ["PsiSource", "PsiTarget", "check", "open_source", "psi_target"]

_POLL_GONE = select.POLLERR | select.POLLNVAL | select.POLLHUP

#: ``statfs(2)`` ``f_type`` of procfs (include/uapi/linux/magic.h): ``/proc/pressure/memory`` lives there.
PROC_SUPER_MAGIC = 0x9FA0
#: The file systems a PSI file can be on: procfs (system-wide) and the cgroup file systems (``memory.pressure``).
_PSI_FS = frozenset({PROC_SUPER_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC})


@dataclass(frozen=True, slots=True)
class PsiTarget:
    """Where the ``psi`` backend would look, and why there."""

    path: Path
    origin: str
    write_data: bytes | None = None
    is_cgroup: bool = False


def _decode_write(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("MEMORY_PRESSURE_WRITE", value, "must be Base64 (systemd encodes the trigger)") from None


def psi_target(ctx: BackendContext) -> PsiTarget:
    """The file to watch, or :class:`KernelError` (``ENOENT``) with the reason there is none."""
    watch = ctx.environ.get("MEMORY_PRESSURE_WATCH")
    if ctx.cgroup is None and watch:
        if watch == "/dev/null":
            raise KernelError(errno.ENOENT, "MEMORY_PRESSURE_WATCH=/dev/null: the service manager disabled it")
        write = ctx.environ.get("MEMORY_PRESSURE_WRITE")
        data = _decode_write(write) if write else None
        return PsiTarget(Path(watch), "systemd $MEMORY_PRESSURE_WATCH", data, is_cgroup=True)
    if ctx.cgroup is not None:
        if ctx.mounts.v2 is None:
            raise KernelError(errno.ENOENT, "the cgroup v2 hierarchy is not mounted (no memory.pressure files)")
        d = resolve_cgroup_dir(ctx.cgroup, ctx.mounts.v2, ctx.mounts)
        path = d / "memory.pressure"
        if not path.exists():
            raise KernelError(errno.ENOENT, f"{path} does not exist (not a cgroup v2 directory, or PSI is off)")
        return PsiTarget(path, f"cgroup {ctx.cgroup}", is_cgroup=True)
    own = ctx.own
    if own.v2 is not None and own.v2_path not in (None, "/") and (own.v2 / "memory.pressure").exists():
        return PsiTarget(own.v2 / "memory.pressure", f"the caller's cgroup {own.v2_path}", is_cgroup=True)
    system = ctx.roots.proc("pressure", "memory")
    return PsiTarget(system, "system-wide (the caller is in the root cgroup)")


def _in_copied_tree(path: Path, roots: LiveRoots) -> bool:
    """``path`` (resolved) lies inside a fixture tree given as ``proc_root`` or ``sys_root`` (not the real
    ``/proc`` or ``/sys``): the stand-in for procfs and cgroupfs there is an ordinary file."""
    real = Path(os.path.realpath(path))
    for root, system in ((roots.proc_root, "/proc"), (roots.sys_root, "/sys")):
        rroot = Path(os.path.realpath(root))
        if rroot not in (Path("/"), Path(system)) and rroot in real.parents:
            return True
    return False


def _check_psi_file(path: Path, roots: LiveRoots) -> None:
    """A regular file named by ``$MEMORY_PRESSURE_WATCH`` is on procfs or a cgroup file system (or in a fixture
    tree), or :class:`ConfigError`: a trigger is written into it, so an ordinary file would be corrupted."""
    if _in_copied_tree(path, roots):
        return
    try:
        got = fs_type(path)
    except OSError as e:
        code = e.errno or errno.EIO
        raise KernelError(code, f"psi: cannot statfs $MEMORY_PRESSURE_WATCH={path}: {os.strerror(code)}") from e
    if got not in _PSI_FS:
        allowed = f"must be a PSI file on procfs or cgroupfs, a FIFO or a socket (this file's f_type is {got:#x})"
        raise ConfigError("MEMORY_PRESSURE_WATCH", str(path), allowed)


def _armed_triggers(ctx: BackendContext) -> dict[VmpressureLevel, PsiTrigger]:
    triggers = {lv: t for lv, t in ctx.options.psi_triggers().items() if lv >= ctx.threshold}
    if not triggers:
        raise ConfigError("psi_low/psi_medium/psi_oom", "off", f"must arm at least one level >= {ctx.threshold.name}")
    for level, trig in triggers.items():
        try:
            trig.check_privilege(ctx.privileged)
        except ConfigError as e:
            raise ConfigError(f"psi_{level.name.lower()}", trig.format(), e.allowed) from None
    return triggers


def check(ctx: BackendContext) -> Capability:
    try:
        target = psi_target(ctx)
    except KernelError as e:
        return Capability(False, str(e))
    except ConfigError as e:
        return Capability(False, str(e))
    if target.origin.startswith("systemd"):
        if not target.path.exists():
            return Capability(False, f"$MEMORY_PRESSURE_WATCH={target.path} does not exist")
        return Capability(True, f"{target.origin} = {target.path}")
    if target.path == ctx.roots.proc("pressure", "memory"):
        cap = ctx.caps.psi_triggers
    else:
        try:
            fd = os.open(target.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            return Capability(False, f"cannot open {target.path} for writing: {os.strerror(e.errno or errno.EIO)}")
        os.close(fd)
        cap = Capability(True, f"{target.path} accepts triggers")
    if not cap.available:
        return cap
    try:
        triggers = _armed_triggers(ctx)
    except ConfigError as e:
        return Capability(False, str(e))
    armed = ", ".join(f"{lv.name.lower()}={t.format()}" for lv, t in triggers.items())
    who = "CAP_SYS_RESOURCE" if ctx.privileged else "unprivileged, 2 s windows"
    return Capability(True, f"triggers on {target.path} ({target.origin}; {who}): {armed}")


@dataclass(slots=True)
class _Armed:
    fd: int
    level: VmpressureLevel
    trigger: PsiTrigger | None  # None: systemd's data could not be parsed (no spurious-event guard)
    last_total_us: int


class PsiSource(PressureSource):
    """One descriptor per armed trigger, each waiting for ``POLLPRI``."""

    backend = "psi"

    def __init__(
        self,
        path: Path,
        triggers: Mapping[VmpressureLevel, PsiTrigger] | None,
        *,
        origin: str,
        is_cgroup: bool,
        raw_trigger: bytes | None = None,
        raw_level: VmpressureLevel = VmpressureLevel.MEDIUM,
    ) -> None:
        self.path = path
        self.origin = origin
        self.is_cgroup = is_cgroup
        self.description = f"PSI {path} ({origin})"
        self.spurious = 0
        self._armed: dict[int, _Armed] = {}
        try:
            if raw_trigger is not None:
                try:
                    parsed: PsiTrigger | None = PsiTrigger.parse_write(raw_trigger, privileged=True)
                except KernelError:
                    parsed = None
                self._arm(raw_level, parsed, raw_trigger)
            for level, trig in sorted((triggers or {}).items()):
                self._arm(level, trig, trig.encode())
        except BaseException:
            self.close()
            raise

    def _total(self, fd: int, kind: str) -> int:
        try:
            text = decode_kernel_text(os.pread(fd, 4096, 0))  # a PSI file is two lines
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                raise self.gone(f"{self.path} is gone (the cgroup was removed)") from e
            raise
        stats = parse_psi(text, source=str(self.path))
        line = stats.full if kind == "full" else stats.some
        if line is None:
            raise KernelError(errno.EINVAL, f"{self.path} has no '{kind}' line")
        return line.total_us

    def _arm(self, level: VmpressureLevel, trig: PsiTrigger | None, data: bytes) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            code = e.errno or errno.EIO
            hint = " (kernels 5.13-6.4 need CAP_SYS_RESOURCE to write triggers)" if code == errno.EPERM else ""
            raise KernelError(code, f"psi: cannot open {self.path} for writing: {os.strerror(code)}{hint}") from e
        self._armed[fd] = _Armed(fd, level, trig, 0)
        if trig is not None:
            self._armed[fd].last_total_us = self._total(fd, trig.kind)
        try:
            os.write(fd, data)
        except OSError as e:
            code = e.errno or errno.EIO
            raise KernelError(code, f"psi: {self.path} refused trigger {data!r}: {os.strerror(code)}") from e

    def fds(self) -> Sequence[tuple[int, int]]:
        return [(fd, select.POLLPRI) for fd in self._armed]

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        armed = self._armed[fd]
        if revents & _POLL_GONE:
            what = "the cgroup was removed" if self.is_cgroup else "the PSI source is gone"
            raise self.gone(f"POLLERR on {self.path}: {what}")
        if not revents & select.POLLPRI:
            return []
        details: dict[str, object] = {"path": str(self.path), "origin": self.origin}
        if armed.trigger is not None:
            total = self._total(fd, armed.trigger.kind)
            growth = total - armed.last_total_us
            armed.last_total_us = total
            if growth < armed.trigger.threshold_us:
                self.spurious += 1
                return []
            details.update(trigger=armed.trigger.format(), growth_us=growth)
        with contextlib.suppress(OSError, KernelError):
            stats = parse_psi(decode_kernel_text(os.pread(fd, 4096, 0)), source=str(self.path))
            details.update(some_avg10=stats.some.avg10)
            if stats.full is not None:
                details.update(full_avg10=stats.full.avg10)
        return [self.record(armed.level, now_ns, **details)]

    def info(self) -> dict[str, object]:
        triggers = {
            a.level.name.lower(): (a.trigger.format() if a.trigger is not None else "systemd")
            for a in self._armed.values()
        }
        return {**super().info(), "path": str(self.path), "origin": self.origin, "triggers": triggers}

    def close(self) -> None:
        for fd in list(self._armed):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._armed.clear()


def open_source(ctx: BackendContext) -> PressureSource:
    target = psi_target(ctx)
    if target.origin.startswith("systemd"):
        try:
            mode = os.stat(target.path).st_mode
        except OSError as e:
            code = e.errno or errno.EIO
            raise KernelError(code, f"psi: $MEMORY_PRESSURE_WATCH={target.path}: {os.strerror(code)}") from e
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            # systemd's protocol knows a PSI file, a FIFO and a socket; /dev/zero or a directory is a bad value.
            allowed = f"must be a PSI file, a FIFO or a socket ({file_kind(mode)})"
            raise ConfigError("MEMORY_PRESSURE_WATCH", str(target.path), allowed)
        if stat.S_ISREG(mode):
            _check_psi_file(target.path, ctx.roots)
        level = parse_level(ctx.options.systemd_level, field="systemd_level")
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return FifoSource(
                target.path,
                default_level=level,
                write_data=target.write_data or b"",
                backend="psi",
                origin=target.origin,
            )
        if target.write_data is not None:
            return PsiSource(
                target.path, None, origin=target.origin, is_cgroup=True, raw_trigger=target.write_data, raw_level=level
            )
    return PsiSource(target.path, _armed_triggers(ctx), origin=target.origin, is_cgroup=target.is_cgroup)
