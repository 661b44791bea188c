"""Settings of the live pressure backends, in one validated object (``--set key=value`` on the command line).

The PSI mapping is the one decision here that is not the kernel's: PSI measures *stall time*, not reclaim
efficiency, so "LOW / MEDIUM / OOM" must be chosen thresholds. The defaults are GLib's
``GMemoryMonitorPsi`` (gio/gmemorymonitorpsi.c, 2.86), the one mapping already built for **unprivileged**
triggers, whose windows must be multiples of 2 s (kernel/sched/psi.c, 6.5+):

==========  ==========================  ===========================================================
level       default trigger             meaning
==========  ==========================  ===========================================================
LOW         ``some 70000 2000000``      some task stalled on memory for 70 ms of the last 2 s (3.5 %)
MEDIUM      ``some 100000 2000000``     … for 100 ms of 2 s (5 %)
OOM         ``full 100000 2000000``     *all* non-idle tasks stalled together for 100 ms of 2 s
==========  ==========================  ===========================================================

low-memory-monitor and Android lmkd use the same stall amounts over 1 s, which an unprivileged process may
not arm; with ``CAP_SYS_RESOURCE`` any window up to 10 s is allowed. Each level can be set (``psi_low =
"some 150ms 2s"``, kernel µs or units) or switched off (``"off"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.uapi.pressure import PsiTrigger, VmpressureLevel
from memsched.units import parse_duration

__all__ = ["LEVEL_NAMES", "PressureOptions", "parse_level", "parse_psi_trigger"]

#: Level names accepted by the live tools: the RFC's, plus mainline's ``critical`` for OOM.
LEVEL_NAMES = ("low", "medium", "oom", "critical")
_U32_MAX = (1 << 32) - 1


def parse_level(text: str | int, *, field: str = "level") -> VmpressureLevel:
    """``low``/``medium``/``oom`` (or ``critical``, memory.pressure_level's name for it) or a constant, read as
    :meth:`VmpressureLevel.parse` reads them (ASCII only, bounded)."""
    if isinstance(text, str) and text.strip().lower() == "critical":
        return VmpressureLevel.OOM
    return VmpressureLevel.parse(text, field=field)


def _micros(token: str, field: str) -> int:
    if token.isascii() and token.isdigit():
        value = int(token)  # the kernel's own unit, a u32 in psi_trigger_create()
        if value > _U32_MAX:
            raise ConfigError(field, token, f"must be at most {_U32_MAX} microseconds")
        return value
    ns = parse_duration(token, field=field)
    if ns % 1000:
        raise ConfigError(field, token, "must be a whole number of microseconds")
    return ns // 1000


def parse_psi_trigger(text: str, *, field: str) -> PsiTrigger | None:
    """``"some 70000 2000000"`` (kernel µs), ``"some 70ms 2s"``, or ``"off"`` (None)."""
    spec = text.strip()
    if spec.lower() in ("off", "none", ""):
        return None
    parts = spec.split()
    if len(parts) != 3:
        raise ConfigError(field, text, "must be '<some|full> <stall> <window>' (e.g. 'some 70ms 2s') or 'off'")
    try:
        return PsiTrigger(parts[0], _micros(parts[1], field), _micros(parts[2], field))
    except ConfigError as e:
        raise ConfigError(field, text, f"is not a valid PSI trigger: {e}") from None


@dataclass(frozen=True, slots=True)
class PressureOptions:
    """Per-backend settings; every backend reads only its own."""

    psi_low: str = knob("some 70000 2000000", "PSI trigger meaning LOW (GLib GMemoryMonitorPsi: 70 ms per 2 s)")
    psi_medium: str = knob("some 100000 2000000", "PSI trigger meaning MEDIUM (GLib: some 100 ms per 2 s)")
    psi_oom: str = knob("full 100000 2000000", "PSI trigger meaning OOM (GLib: full 100 ms per 2 s)")
    systemd_level: str = knob(
        "medium",
        "level of an event on $MEMORY_PRESSURE_WATCH when $MEMORY_PRESSURE_WRITE armed the trigger "
        "(systemd's default 200 ms per 2 s is closest to MEDIUM)",
        choices=LEVEL_NAMES,
    )
    memcg_mode: str = knob(
        "default",
        "memory.pressure_level propagation: default, hierarchy or local (Documentation/admin-guide/cgroup-v1/"
        "memory.rst §11)",
        choices=("default", "hierarchy", "local"),
    )
    reclaim_interval_ms: int = knob(
        10,
        "reclaim-index: milliseconds between counter samples (10 ms resolves the bursts that the kernel "
        "reports as medium/critical; see benchmarks/pressure_agreement.py)",
        min=1,
        max=10_000,
    )
    reclaim_flavour: str = knob(
        "rfc2012",
        "reclaim-index levels: rfc2012 (window 256, 60/99, the RFC's defaults) or mainline (512, 60/95)",
        choices=("rfc2012", "mainline"),
    )
    fifo_path: str = knob("", "fifo backend: the FIFO (or regular file) to read events from")
    fifo_level: str = knob(
        "medium", "fifo backend: level of a written token that is not a level name", choices=LEVEL_NAMES
    )
    socket_path: str = knob("", "daemon socket; empty: $MEMSCHED_PRESSURE_SOCKET, else /run/memsched/pressure.sock")
    reconnect_timeout_ms: int = knob(
        5000,
        "daemon and dbus backends: how long to retry after the daemon or the bus went away before ending the "
        "stream (0: never)",
        min=0,
        max=3_600_000,
    )
    dbus_bus: str = knob(
        "system",
        "dbus backend: the bus whose org.freedesktop.LowMemoryMonitor to hear: system, session or a D-Bus address",
    )

    def __post_init__(self) -> None:
        validate(self)
        self.psi_triggers()  # refuses a malformed trigger at construction
        parse_level(self.systemd_level, field="systemd_level")
        parse_level(self.fifo_level, field="fifo_level")

    def psi_triggers(self) -> dict[VmpressureLevel, PsiTrigger]:
        """The enabled level -> trigger map (levels set to ``off`` are absent)."""
        out = {}
        for level, field in (
            (VmpressureLevel.LOW, "psi_low"),
            (VmpressureLevel.MEDIUM, "psi_medium"),
            (VmpressureLevel.OOM, "psi_oom"),
        ):
            trig = parse_psi_trigger(getattr(self, field), field=field)
            if trig is not None:
                out[level] = trig
        return out
