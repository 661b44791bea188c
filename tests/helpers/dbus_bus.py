"""A private ``dbus-daemon`` and real GLib clients for the D-Bus tests and benchmarks/dbus_latency.py.

:class:`PrivateBus` runs Debian's ``dbus-daemon`` on a socket in a temporary directory (restartable on the
same path, to test a bus restart), with a policy that lets anyone own anything, or with a system-bus-like
policy plus extra included files (to test contrib/dbus's policy). :class:`GlibClient` runs
``glib_memory_monitor.py`` under Debian's Python with PyGObject, pointed at that bus.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

GLIB_PYTHON = "/usr/bin/python3"
CLIENT = Path(__file__).resolve().parent / "glib_memory_monitor.py"
#: What Debian packages a machine needs for these tests (.ci/run installs them).
PACKAGES = "dbus python3-gi gir1.2-glib-2.0"

_OPEN_POLICY = """
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"""

# The system bus's own defaults (/usr/share/dbus-1/system.conf): nobody owns a name unless a policy file
# allows it; everyone may send to the bus driver and receive signals.
_SYSTEM_POLICY = """
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>"""


@functools.cache
def glib_client_unavailable() -> str | None:
    """Why the GLib client cannot run here (None when it can)."""
    if shutil.which("dbus-daemon") is None:
        return f"dbus-daemon is not installed (Debian package dbus; .ci/run installs: {PACKAGES})"
    if not os.access(GLIB_PYTHON, os.X_OK):
        return f"{GLIB_PYTHON} is missing (Debian's Python, for python3-gi)"
    probe = "import gi; gi.require_version('Gio', '2.0'); from gi.repository import Gio; Gio.MemoryMonitor.dup_default"
    out = subprocess.run([GLIB_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"PyGObject with Gio 2.0 is not importable by {GLIB_PYTHON} ({last}; Debian packages {PACKAGES})"
    return None


class PrivateBus:
    """``dbus-daemon --nofork`` listening on ``<dir>/bus``; ``address`` is its D-Bus address."""

    def __init__(self, directory: Path, *, system_policy: bool = False, includes: tuple[Path, ...] = ()) -> None:
        self.directory = directory
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self.config = directory / "bus.conf"
        policy = _SYSTEM_POLICY if system_policy else _OPEN_POLICY
        inc = "".join(f"\n  <include>{p}</include>" for p in includes)
        self.config.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            f"<busconfig>\n  <listen>{self.address}</listen>\n  <auth>EXTERNAL</auth>{policy}{inc}\n</busconfig>\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateBus:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            err = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start: {err.strip()}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for f in (self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()
            self.proc = None

    def __enter__(self) -> PrivateBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GlibClient:
    """One ``GMemoryMonitor`` in its own process, on ``address`` as its system bus."""

    def __init__(self, address: str) -> None:
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address, "GIO_USE_MEMORY_MONITOR": "dbus"}
        self.proc = subprocess.Popen(
            [GLIB_PYTHON, str(CLIENT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._buf = b""
        first = self.readline(30.0)
        if first is None or not first.startswith("monitor "):
            self.close()
            raise RuntimeError(f"the GLib client did not start (first line {first!r})")
        self.implementation = first.split()[1]

    def readline(self, timeout: float) -> str | None:
        """The next line, or None if none came within ``timeout`` seconds (or the client ended)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def event(self, timeout: float) -> tuple[int, int] | None:
        """The next ``low-memory-warning``: (level byte, CLOCK_MONOTONIC ns in the callback)."""
        line = self.readline(timeout)
        if line is None:
            return None
        level, ns = line.split()
        return int(level), int(ns)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None and not f.closed:
                f.close()
