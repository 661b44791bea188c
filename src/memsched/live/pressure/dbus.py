"""The low-memory-monitor D-Bus interface: names, the level mapping, bus addresses, and the signal gate.

Desktop Linux already has a consumer of memory-pressure levels: GLib's ``GMemoryMonitor`` (GTK and GNOME
applications, and the Flatpak portal's ``org.freedesktop.portal.MemoryMonitor``, which forwards what the host's
``GMemoryMonitor`` hears to sandboxed applications: xdg-desktop-portal src/memory-monitor.c). On the system bus
it listens to Bastien Nocera's low-memory-monitor. memsched serves the same interface
(:mod:`memsched.live.pressure.dbus_service`) and listens to it (:mod:`memsched.live.pressure.dbus_client`);
this module holds what both sides share.

The interface, from low-memory-monitor's own files (gitlab.freedesktop.org/hadess/low-memory-monitor,
``src/org.freedesktop.LowMemoryMonitor.xml`` and ``src/low-memory-monitor.c``, 2.1):

* well-known name and interface ``org.freedesktop.LowMemoryMonitor``, object path
  ``/org/freedesktop/LowMemoryMonitor``, on the **system** bus (``g_bus_own_name (G_BUS_TYPE_SYSTEM, ...)``,
  flags ``G_BUS_NAME_OWNER_FLAGS_NONE``: no replacement, and a second instance exits);
* one signal, ``LowMemoryWarning``, one argument ``level`` of type ``y`` (a byte, 0-255, "the higher the
  number, the more urgent"); the values in use are 50, 100 and 255 (``level_enum_to_byte()``).

The client side, GLib's ``gio/gmemorymonitordbus.c`` (2.64 and later; 2.74 is Debian 12's): it watches the
name on ``G_BUS_TYPE_SYSTEM`` (so ``$DBUS_SYSTEM_BUS_ADDRESS`` points it elsewhere, ``gio/gdbusaddress.c``),
builds a ``GDBusProxy`` for that path and interface when the name appears, and on ``LowMemoryWarning`` reads
``(y)`` and emits ``low-memory-warning`` with the byte unchanged, as a ``GMemoryMonitorWarningLevel``
(``gio/gioenums.h``: ``LOW = 50``, ``MEDIUM = 100``, ``CRITICAL = 255``). It is the default
``GMemoryMonitor`` outside Flatpak (extension-point priority 30: ``portal`` 40 inside a sandbox, ``psi`` 20 and
``poll`` 10 in newer GLib); ``$GIO_USE_MEMORY_MONITOR=dbus`` forces it.

The mapping (the 2012 RFC's three levels onto GLib's three; both scales mean "free some", "free more or quit",
"the kernel is about to kill"):

=================  =========  ================================  ============================
memsched level     byte sent  ``GMemoryMonitorWarningLevel``    low-memory-monitor's trigger
=================  =========  ================================  ============================
``LOW``            50         ``..._WARNING_LEVEL_LOW``         PSI ``some`` 70 ms per 1 s
``MEDIUM``         100        ``..._WARNING_LEVEL_MEDIUM``      PSI ``some`` 100 ms per 1 s
``OOM`` (critical) 255        ``..._WARNING_LEVEL_CRITICAL``    PSI ``full`` 100 ms per 1 s
=================  =========  ================================  ============================

Back from a byte (the ``dbus`` backend): GLib asks applications to treat the level as ranges because "new
values might be added" (``gioenums.h``), so 0-99 is LOW, 100-254 MEDIUM, 255 OOM.

Deviations from low-memory-monitor: it drops a level's signal while ``MemAvailable`` is at least half of
``MemTotal``, repeats a level at most every 15 s (``RECOVERY_INTERVAL``), and defers a rising level to an idle
callback; memsched forwards every event of its source at or above ``--level`` (the sources already pace
themselves: a vmpressure window, a PSI window), with an optional per-level minimum interval
(:class:`SignalGate`). It never triggers the kernel OOM killer (low-memory-monitor's ``TriggerKernelOom``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from memsched.errors import ConfigError
from memsched.uapi.pressure import VmpressureLevel

__all__ = [
    "BUS_NAME",
    "INTERFACE",
    "LMM_LEVELS",
    "OBJECT_PATH",
    "SIGNAL",
    "SIGNATURE",
    "SYSTEM_BUS_DEFAULT",
    "BusAddress",
    "SignalGate",
    "level_from_lmm",
    "lmm_level",
    "resolve_bus",
]

#: Well-known name, interface and object path (low-memory-monitor src/low-memory-monitor.c).
BUS_NAME = "org.freedesktop.LowMemoryMonitor"
INTERFACE = "org.freedesktop.LowMemoryMonitor"
OBJECT_PATH = "/org/freedesktop/LowMemoryMonitor"
SIGNAL = "LowMemoryWarning"
SIGNATURE = "y"

#: memsched level -> ``LowMemoryWarning`` byte (= ``GMemoryMonitorWarningLevel``).
LMM_LEVELS: Mapping[VmpressureLevel, int] = {
    VmpressureLevel.LOW: 50,
    VmpressureLevel.MEDIUM: 100,
    VmpressureLevel.OOM: 255,
}

#: The D-Bus specification's default system bus socket ("Well-known Message Bus Instances"), which libdbus,
#: GDBus and dbus-fast all use when ``$DBUS_SYSTEM_BUS_ADDRESS`` is unset.
SYSTEM_BUS_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"


def lmm_level(level: VmpressureLevel) -> int:
    """The byte a memsched level is sent as."""
    return LMM_LEVELS[VmpressureLevel(level)]


def level_from_lmm(byte: int) -> VmpressureLevel:
    """A received byte as a memsched level, by GLib's ranges: below 100 LOW, below 255 MEDIUM, 255 OOM."""
    if not 0 <= byte <= 255:
        raise ValueError(f"a LowMemoryWarning level is a byte (got {byte})")
    if byte < LMM_LEVELS[VmpressureLevel.MEDIUM]:
        return VmpressureLevel.LOW
    if byte < LMM_LEVELS[VmpressureLevel.OOM]:
        return VmpressureLevel.MEDIUM
    return VmpressureLevel.OOM


@dataclass(frozen=True, slots=True)
class BusAddress:
    """Which bus, in words (``system``, ``session`` or ``bus at ADDRESS``), and its D-Bus address."""

    label: str
    address: str

    def __str__(self) -> str:
        """``system bus (unix:path=...)``, or ``bus at ADDRESS`` for a bus named by its address."""
        return self.label if self.address in self.label else f"{self.label} ({self.address})"

    def unix_path(self) -> Path | None:
        """The socket file of a ``unix:path=`` address (the first one), else None (abstract, tcp, ...)."""
        for part in self.address.split(";"):
            transport, _, params = part.partition(":")
            if transport != "unix":
                continue
            for kv in params.split(","):
                key, _, value = kv.partition("=")
                if key == "path":
                    return Path(_unescape(value))
        return None


def _unescape(value: str) -> str:
    """D-Bus address values escape bytes as ``%xx`` (the specification's "Server Addresses")."""
    out = bytearray()
    i = 0
    raw = value.encode()
    while i < len(raw):
        if raw[i] == ord("%") and i + 2 < len(raw):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def resolve_bus(spec: str, environ: Mapping[str, str] | None = None, *, field_name: str = "--bus") -> BusAddress:
    """``system`` (``$DBUS_SYSTEM_BUS_ADDRESS``, else the standard socket), ``session``
    (``$DBUS_SESSION_BUS_ADDRESS``, else ``$XDG_RUNTIME_DIR/bus``, systemd's user bus), or an address
    (``unix:path=/run/x/bus``)."""
    env = os.environ if environ is None else environ
    text = spec.strip()
    if text == "system":
        return BusAddress("system bus", env.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS_DEFAULT)
    if text == "session":
        addr = env.get("DBUS_SESSION_BUS_ADDRESS")
        if not addr and env.get("XDG_RUNTIME_DIR"):
            addr = f"unix:path={env['XDG_RUNTIME_DIR']}/bus"
        if not addr:
            raise ConfigError(
                field_name, spec, "names the session bus, but $DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR are unset"
            )
        return BusAddress("session bus", addr)
    transports = [part.partition(":")[0] for part in text.split(";") if part]
    if not transports or any(not t or "=" in t for t in transports) or ":" not in text:
        raise ConfigError(field_name, spec, "must be system, session or a D-Bus address such as unix:path=/run/bus")
    return BusAddress(f"bus at {text}", text)


@dataclass(slots=True)
class SignalGate:
    """Per-level pacing: a level is sent again only ``min_interval_ns`` after the last signal at that level or
    above; a level above the last one sent always goes out at once (an escalation is never held back).
    ``min_interval_ns = 0`` sends every event."""

    min_interval_ns: int = 0
    _last_ns: dict[VmpressureLevel, int] = field(default_factory=dict)

    def admit(self, level: VmpressureLevel, now_ns: int) -> bool:
        if self.min_interval_ns <= 0:
            return True
        recent = [t for lv, t in self._last_ns.items() if lv >= level]
        if recent and now_ns - max(recent) < self.min_interval_ns:
            return False
        self._last_ns[level] = now_ns
        return True
