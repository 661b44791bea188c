"""Latency from a source event to GLib's ``low-memory-warning`` callback, through ``memsched pressure dbus``.

Set-up: a private ``dbus-daemon`` (Debian's), ``memsched pressure dbus --backend fifo`` on it in its own
process, and ``--clients`` real GLib ``GMemoryMonitor`` clients (PyGObject under Debian's /usr/bin/python3,
tests/helpers/glib_memory_monitor.py). For each of ``--events`` events (LOW, MEDIUM, OOM in turn) the benchmark
takes ``CLOCK_MONOTONIC``, writes the level to the FIFO, and waits until the first client reports it; the
client takes ``CLOCK_MONOTONIC`` first thing in its signal callback. One event is in flight at a time, so the
figure is the latency of an idle pipeline: FIFO -> the service's monitor thread -> its asyncio loop ->
dbus-fast -> dbus-daemon -> GDBus's worker thread -> the client's main loop -> the callback. Every event's
level is checked against the mapping (50/100/255), and the other clients must hear every event too.

Usage::

    python benchmarks/dbus_latency.py [--events 1000] [--clients 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.dbus_bus import GLIB_PYTHON, GlibClient, PrivateBus, glib_client_unavailable

TOKENS = (b"low\n", b"medium\n", b"oom\n")
BYTES = (50, 100, 255)


def _glib_version() -> str:
    code = "from gi.repository import GLib; print(f'{GLib.MAJOR_VERSION}.{GLib.MINOR_VERSION}.{GLib.MICRO_VERSION}')"
    return subprocess.run([GLIB_PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _percentile(sorted_us: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    rank = math.ceil(q / 100 * len(sorted_us))
    return sorted_us[max(0, min(len(sorted_us), rank) - 1)]


def run(events: int, n_clients: int) -> int:
    why = glib_client_unavailable()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="ms-dbus-bench-"))
    fifo = work / "fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    bus = PrivateBus(work).start()
    err = (work / "service.err").open("wb")
    cmd = [sys.executable, "-m", "memsched", "pressure", "dbus", "--bus", bus.address]
    service = subprocess.Popen(
        [*cmd, "--backend", "fifo", "--set", f"fifo_path={fifo}"],
        stderr=err,
    )
    clients: list[GlibClient] = []
    try:
        deadline = time.monotonic() + 60
        while "LowMemoryWarning levels" not in (work / "service.err").read_text():
            if service.poll() is not None or time.monotonic() > deadline:
                print((work / "service.err").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.05)
        clients = [GlibClient(bus.address) for _ in range(n_clients)]
        waiting = list(clients)
        while waiting:  # prime: GLib subscribes asynchronously once the name appears
            os.write(writer, b"low\n")
            waiting = [c for c in waiting if c.event(0.2) is None]
        while any([c.event(0.5) is not None for c in clients]):
            pass
        lat_us: list[float] = []
        wrong = missing = 0
        for i in range(events):
            t0 = time.monotonic_ns()
            os.write(writer, TOKENS[i % 3])
            for j, c in enumerate(clients):
                got = c.event(10.0)
                if got is None:
                    missing += 1
                    continue
                if got[0] != BYTES[i % 3]:
                    wrong += 1
                if j == 0:
                    lat_us.append((got[1] - t0) / 1000)
        extra = sum(c.event(0.5) is not None for c in clients)
    finally:
        for c in clients:
            c.close()
        service.terminate()
        service.wait(30)
        err.close()
        bus.stop()
        os.close(writer)
        tail = (work / "service.err").read_text().strip().splitlines()[-1:]
        shutil.rmtree(work, ignore_errors=True)
    lat_us.sort()
    print(f"memsched pressure dbus -> GLib GMemoryMonitor, {events} events, {n_clients} client(s), one in flight")
    daemon = subprocess.run(
        ["dbus-daemon", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    print(
        f"  {platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; GLib {_glib_version()}, "
        f"dbus-fast {version('dbus-fast')}, {daemon}"
    )
    print(f"  service: {tail[0] if tail else '?'}")
    print(
        f"  delivered {len(lat_us)}/{events} to the first client; wrong level {wrong}, missing {missing}, extra {extra}"
    )
    if lat_us:
        print(
            f"  latency write -> callback (us): p50 {_percentile(lat_us, 50):.0f}  p90 {_percentile(lat_us, 90):.0f}  "
            f"p99 {_percentile(lat_us, 99):.0f}  max {lat_us[-1]:.0f}  mean {statistics.fmean(lat_us):.0f}"
        )
    return 0 if not (wrong or missing or extra) and len(lat_us) == events else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=1)
    args = ap.parse_args()
    return run(args.events, args.clients)


if __name__ == "__main__":
    sys.exit(main())
