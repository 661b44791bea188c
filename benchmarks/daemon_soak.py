"""Soak of the pressure daemon: 1,000 subscribers, 10 % of them misbehaving, under real memory-cgroup pressure.

    sudo python benchmarks/daemon_soak.py [--clients 1000] [--bad 0.10] [--seconds 30] [--json]

The daemon (``PressureDaemon`` with the memcg-v1 backend on a fresh 64 MiB v1 memory cgroup) runs in its own
process; page-cache writers and anonymous allocators run inside the cgroup for ``--seconds``, so the kernel's
own vmpressure events drive everything. One client process holds every subscriber on one epoll:

* well-behaved subscribers (90 %) read everything as it comes and stamp each record on arrival;
* misbehaving ones (10 %, in equal parts): *stuck* (subscribe, never read), *garbage* (bytes after the
  subscription), *silent* (never subscribe: the handshake timeout), *churn* (connect, subscribe, leave, again),
  *slow* (read one record a second), *half-closed* (``shutdown(SHUT_WR)`` after subscribing, then read
  promptly — it must lose nothing either).

The daemon's process logs the time each event left its source (``CLOCK_MONOTONIC``, shared by every process).
Reported: events the daemon fanned out; **events lost per well-behaved client** (fanned out minus received;
the daemon coalesces only for a client whose socket buffer is full); the **daemon's fan-out time** from the
source's read to the record written to every subscriber, and the **fan-out latency** from the source's read to
each subscriber's ``recv`` (p50, p99, max over every record of every well-behaved client; this includes the
one client process's own time to get round its 900 sockets); the daemon's **RSS** before the
clients, with them connected, and after the soak, and its **CPU** over the soak; what became of the
misbehaving clients (the daemon's counters). Needs root and the v1 memory controller.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS_BAD = ("stuck", "garbage", "silent", "churn", "slow", "half-closed")


# ---------------------------------------------------------------------------------------------- the daemon


def daemon_main(sock_path: str, cgroup: str, out_path: str) -> int:
    """In the daemon's process: serve the memcg-v1 source, logging when each event left it."""
    from memsched.live.pressure.backends import open_backend
    from memsched.live.pressure.context import BackendContext
    from memsched.live.pressure.daemon import PressureDaemon
    from memsched.live.pressure.source import PressureRecord, PressureSource

    events: list[tuple[int, int]] = []

    class Logged(PressureSource):
        """The real source, with every record's read time written down."""

        def __init__(self, inner: PressureSource) -> None:
            self.inner = inner
            self.backend = inner.backend  # type: ignore[misc]
            self.description = inner.description

        def fds(self) -> Any:
            return self.inner.fds()

        def next_wakeup_ns(self) -> int | None:
            return self.inner.next_wakeup_ns()

        def _log(self, recs: list[PressureRecord]) -> list[PressureRecord]:
            events.extend((r.monotonic_ns, int(r.level)) for r in recs)
            return recs

        def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
            return self._log(self.inner.on_ready(fd, revents, now_ns))

        def on_timer(self, now_ns: int) -> list[PressureRecord]:
            return self._log(self.inner.on_timer(now_ns))

        def close(self) -> None:
            self.inner.close()

    def factory() -> PressureSource:
        source, _ = open_backend("memcg-v1", BackendContext(cgroup=cgroup))
        return Logged(source)

    done: list[float] = []  # per record: source read -> written to every subscriber, in ms

    class Timed(PressureDaemon):
        def _fan_out(self, records: list[PressureRecord]) -> None:
            super()._fan_out(records)
            end = time.monotonic_ns()
            done.extend((end - r.monotonic_ns) / 1e6 for r in records)

    daemon = Timed(
        Path(sock_path), factory, max_clients=4096, max_clients_per_uid=4096, handshake_timeout_ns=2_000_000_000
    ).open()
    signal.signal(signal.SIGTERM, lambda s, f: daemon.request_stop())
    signal.set_wakeup_fd(daemon.signal_wakeup_fd, warn_on_full_buffer=False)
    print("ready", flush=True)
    status = daemon.serve()
    stopped_ns = time.monotonic_ns()
    stats = daemon.stats
    daemon.close()
    Path(out_path).write_text(
        json.dumps(
            {
                "events": events,
                "stats": dataclasses.asdict(stats),
                "status": status,
                "stopped_ns": stopped_ns,
                "daemon_fanout_ms": done,
            }
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------- the clients


@dataclass
class Client:
    kind: str
    sock: socket.socket | None = None
    buf: bytes = b""
    stage: str = "hello"
    received: list[tuple[int, int]] = field(default_factory=list)
    next_read: float = 0.0
    rounds: int = 0


def _connect(path: Path) -> socket.socket | None:
    """A non-blocking connection (None while the daemon's backlog is full: never stall the other clients)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    code = s.connect_ex(str(path))
    if code == 0:
        return s
    s.close()
    if code in (errno.EAGAIN, errno.EINPROGRESS):
        return None
    raise OSError(code, os.strerror(code))


class Clients:
    """Every subscriber on one selector (see the module docstring)."""

    def __init__(self, path: Path, n: int, bad_share: float) -> None:
        from memsched.live.pressure.protocol import HELLO_SIZE
        from memsched.uapi.pressure import VmpressureConfig

        self.hello_size = HELLO_SIZE
        self.config = VmpressureConfig().pack()
        self.path = path
        self.sel = selectors.DefaultSelector()
        n_bad = round(n * bad_share)
        self.clients = [Client(KINDS_BAD[i % len(KINDS_BAD)]) for i in range(n_bad)]
        self.clients += [Client("good") for _ in range(n - n_bad)]
        self.draining = False
        self.bad = [c for c in self.clients if c.kind not in ("good", "half-closed")]
        self._next_upkeep = 0.0
        for c in self.clients:
            while c.sock is None:  # the well-behaved must all be in before the pressure starts
                self._open(c)
                if c.sock is None:
                    self.poll(0.01)

    def _open(self, c: Client) -> None:
        c.sock = _connect(self.path)
        c.buf, c.stage = b"", "hello"
        if c.sock is not None and c.kind not in ("stuck", "slow"):  # those two are read on the upkeep timer
            self.sel.register(c.sock, selectors.EVENT_READ, c)

    def _close(self, c: Client) -> None:
        if c.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def _subscribe(self, c: Client) -> None:
        assert c.sock is not None
        if c.kind == "silent":
            return
        try:
            c.sock.sendall(self.config)
            c.stage = "events"
            if c.kind == "garbage":
                c.sock.sendall(b"\xde\xad\xbe\xef" * 4)
            elif c.kind == "half-closed":
                c.sock.shutdown(socket.SHUT_WR)
        except OSError:  # the daemon closed it already (a garbage client, or the daemon stopping)
            self._close(c)

    def _read(self, c: Client, now_ns: int) -> None:
        assert c.sock is not None
        try:
            data = c.sock.recv(4 if c.kind == "slow" else 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        c.buf += data
        if c.stage == "hello" and len(c.buf) >= self.hello_size:
            c.buf = c.buf[self.hello_size :]
            self._subscribe(c)
        if c.stage == "events":
            n = len(c.buf) // 4 * 4
            for off in range(0, n, 4):
                c.received.append((now_ns, int.from_bytes(c.buf[off : off + 4], sys.byteorder)))
            c.buf = c.buf[n:]

    def poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            self._read(key.data, time.monotonic_ns())
        now = time.monotonic()
        if self.draining or now < self._next_upkeep:
            return
        self._next_upkeep = now + 0.05
        for c in self.bad:
            if c.kind in ("stuck", "slow") and c.sock is not None and c.stage == "hello":
                try:  # the hello, then the subscription; a stuck client never reads again
                    hello = c.sock.recv(self.hello_size)
                except BlockingIOError:
                    continue
                if len(hello) == self.hello_size:
                    self._subscribe(c)
            elif c.kind == "slow" and c.sock is not None and now >= c.next_read:
                c.next_read = now + 1.0  # one record a second
                self._read(c, time.monotonic_ns())
            elif c.kind == "churn" and c.stage == "events" and c.received:
                self._close(c)
                c.rounds += 1
                c.received.clear()
                self._open(c)
            elif c.kind in ("garbage", "silent", "churn") and c.sock is None and now >= c.next_read:
                c.rounds += 1  # dropped by the daemon, as they should be: come back misbehaving, at most 10/s
                c.next_read = now + 0.1
                self._open(c)

    def drain(self, timeout: float) -> None:
        """After the daemon stopped: read what it delivered until every reading client sees the end."""
        self.draining = True
        end = time.monotonic() + timeout
        readers = [c for c in self.clients if c.kind in ("good", "half-closed")]
        while any(c.sock is not None for c in readers) and time.monotonic() < end:
            self.poll(0.05)

    def close(self) -> None:
        for c in self.clients:
            self._close(c)


# ---------------------------------------------------------------------------------------------- measuring


def _proc(pid: int) -> tuple[int, float]:
    """RSS (bytes) and CPU seconds of ``pid``."""
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return rss, (int(fields[11]) + int(fields[12])) / CLK_TCK


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def soak(n: int, bad: float, seconds: float) -> dict[str, Any]:
    from memsched.live.cgroups import MemcgV1Child
    from memsched.live.pressure.load import anon_allocator, page_cache_writer

    with (
        tempfile.TemporaryDirectory(prefix="memsched-soak-", dir="/var/tmp") as tmpdir,
        MemcgV1Child(f"memsched-soak-{os.getpid()}", limit_bytes=64 << 20) as cg,
    ):
        tmp = Path(tmpdir)
        sock, out = tmp / "p.sock", tmp / "daemon.json"
        daemon = subprocess.Popen(
            [sys.executable, __file__, "--daemon", str(sock), "/" + cg.path.name, str(out)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert daemon.stdout is not None and daemon.stdout.readline().strip() == "ready"
            rss_start, _ = _proc(daemon.pid)
            clients = Clients(sock, n, bad)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                clients.poll(0.05)
            rss_connected, cpu0 = _proc(daemon.pid)
            load = []
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                if not any(p.poll() is None for p in load):
                    argv = page_cache_writer(tmp / "cache", 256 << 20) if k % 3 else anon_allocator(96 << 20)
                    load.append(cg.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                    k += 1
                clients.poll(0.01)
            while any(p.poll() is None for p in load):  # keep reading while the last load finishes
                clients.poll(0.01)
            end = time.monotonic() + 2.0  # let the last events arrive
            while time.monotonic() < end:
                clients.poll(0.05)
            rss_end, cpu1 = _proc(daemon.pid)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            clients.drain(30.0)  # what the daemon wrote before it closed is in the sockets: read it all
            clients.close()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        doc = json.loads(out.read_text())
    events = doc["events"]
    times = [t for t, _ in events]
    good = [c for c in clients.clients if c.kind in ("good", "half-closed")]
    lost = {"good": [], "half-closed": []}
    latencies: list[float] = []
    for c in good:
        lost[c.kind].append(len(events) - len(c.received))
        if len(c.received) == len(events):
            latencies += [(tr - te) / 1e6 for (tr, _), te in zip(c.received, times, strict=True)]
    per_kind = Counter(c.kind for c in clients.clients)
    return {
        "clients": dict(per_kind),
        "seconds": seconds,
        "events": len(events),
        "events_by_level": dict(Counter(str(level) for _, level in events)),
        "lost_per_good_client": {
            "max": max(lost["good"], default=0),
            "total": sum(lost["good"]),
            "clients_with_loss": sum(x > 0 for x in lost["good"]),
        },
        "lost_per_half_closed_client": {"max": max(lost["half-closed"], default=0)},
        "daemon_fanout_ms": {
            "p50": _pct(doc["daemon_fanout_ms"], 0.50),
            "p99": _pct(doc["daemon_fanout_ms"], 0.99),
            "max": max(doc["daemon_fanout_ms"], default=float("nan")),
        },
        "fanout_ms": {
            "p50": _pct(latencies, 0.50),
            "p99": _pct(latencies, 0.99),
            "max": max(latencies, default=float("nan")),
            "records": len(latencies),
        },
        "daemon_rss_mib": {
            "start": rss_start / 2**20,
            "clients_connected": rss_connected / 2**20,
            "end": rss_end / 2**20,
        },
        "daemon_cpu": {"seconds": cpu1 - cpu0, "share_of_one_cpu": (cpu1 - cpu0) / seconds},
        "daemon_stats": doc["stats"],
        "misbehaving": {
            "stuck_received": sum(len(c.received) for c in clients.clients if c.kind == "stuck"),
            "slow_received_max": max((len(c.received) for c in clients.clients if c.kind == "slow"), default=0),
            "churn_rounds": sum(c.rounds for c in clients.clients if c.kind == "churn"),
            "garbage_and_silent_reconnects": sum(c.rounds for c in clients.clients if c.kind in ("garbage", "silent")),
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--bad", type=float, default=0.10, help="share of misbehaving clients")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long the cgroup is put under pressure")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--daemon", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.daemon:
        return daemon_main(*args.daemon)
    if os.geteuid() != 0:
        print("daemon_soak: needs root (a memory cgroup and its event_control)", file=sys.stderr)
        return 2
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.clients + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.clients + 100), hard))
    r = soak(args.clients, args.bad, args.seconds)
    if args.json:
        print(json.dumps(r, indent=1, sort_keys=True))
        return 0
    print(
        f"subscribers: {r['clients']}; {r['seconds']:g} s of memcg pressure; "
        f"{r['events']} events {r['events_by_level']}"
    )
    lg = r["lost_per_good_client"]
    print(
        f"lost per well-behaved client: max {lg['max']}, total {lg['total']} "
        f"({lg['clients_with_loss']} clients lost any); "
        f"half-closed: max {r['lost_per_half_closed_client']['max']}"
    )
    f = r["fanout_ms"]
    d = r["daemon_fanout_ms"]
    print(
        f"daemon fan-out (source read -> written to all {r['clients']['good']} + others): p50 {d['p50']:.2f} ms, "
        f"p99 {d['p99']:.2f} ms, max {d['max']:.2f} ms"
    )
    print(
        f"fan-out latency (source read -> subscriber recv): p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f} ms, "
        f"max {f['max']:.2f} ms over {f['records']} records"
    )
    m = r["daemon_rss_mib"]
    print(
        f"daemon RSS: {m['start']:.1f} MiB before the clients, {m['clients_connected']:.1f} MiB with them, "
        f"{m['end']:.1f} MiB after the soak; CPU {r['daemon_cpu']['seconds']:.2f} s "
        f"({100 * r['daemon_cpu']['share_of_one_cpu']:.1f} % of one CPU)"
    )
    print(f"daemon counters: {r['daemon_stats']}; misbehaving: {r['misbehaving']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
