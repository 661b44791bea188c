"""A real GLib ``GMemoryMonitor`` client, for the D-Bus tests and benchmarks/dbus_latency.py.

Run it with a Python that has PyGObject (Debian's ``/usr/bin/python3`` with ``python3-gi`` and
``gir1.2-glib-2.0``), with ``$DBUS_SYSTEM_BUS_ADDRESS`` pointing at the bus to listen on: GLib's D-Bus memory
monitor (gio/gmemorymonitordbus.c) watches ``org.freedesktop.LowMemoryMonitor`` on ``G_BUS_TYPE_SYSTEM``. It
forces that implementation with ``$GIO_USE_MEMORY_MONITOR=dbus`` (gio/gmemorymonitor.c), so a newer GLib's
``psi`` or ``poll`` monitor can never answer instead.

Output, one line each, flushed: ``monitor <GType name>`` once, then ``<level> <CLOCK_MONOTONIC ns>`` for every
``low-memory-warning`` GLib emits (the time is taken first thing in the callback). It exits when its standard
input reaches end of file, so it never outlives the process that started it.
"""

import os
import sys
import time

os.environ.setdefault("GIO_USE_MEMORY_MONITOR", "dbus")

import gi  # after the environment that GLib reads at first use

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402


def main() -> int:
    loop = GLib.MainLoop()
    monitor = Gio.MemoryMonitor.dup_default()

    def on_warning(_monitor: object, level: object) -> None:
        now = time.monotonic_ns()
        sys.stdout.write(f"{int(level)} {now}\n")
        sys.stdout.flush()

    monitor.connect("low-memory-warning", on_warning)

    def on_stdin(_channel: object, _condition: object) -> bool:
        if not os.read(0, 4096):
            loop.quit()
            return False
        return True

    stdin = GLib.IOChannel.unix_new(0)
    GLib.io_add_watch(stdin, GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, on_stdin)
    print(f"monitor {monitor.__gtype__.name}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
