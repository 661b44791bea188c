"""Overhead of the live pressure tools: the reclaim-index monitor's CPU use, and the daemon's with 100 subscribers.

1. **reclaim-index monitor**: a fresh Python process opens ``vmpressure_fd(backend="reclaim-index")``
   (system-wide, ``/proc/vmstat``) and sleeps; its CPU time (user + system, ``time.process_time()``) over
   ``--seconds`` after a 1 s warm-up, as a share of one CPU, at the default 10 ms and at 100 ms. A process
   that only sleeps is measured the same way and subtracted.
2. **daemon, 100 subscribers**: ``memsched pressure serve`` (fifo backend) with ``--clients`` connected
   subscribers that read everything; its CPU time (``/proc/<pid>/stat`` utime + stime) while idle, and while
   events are injected at ``--rate`` per second, and the CPU time per event delivered to all subscribers;
   then the same with a memcg-v1 backend under real pressure (a page-cache writer in a 64 MiB cgroup), if
   the machine has the v1 memory controller. Every subscriber's event count is checked.

Usage::

    python benchmarks/pressure_overhead.py [--seconds 20] [--clients 100] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from memsched.live.capabilities import capabilities
from memsched.live.cgroups import MemcgV1Child
from memsched.live.pressure.load import page_cache_writer
from memsched.live.pressure.protocol import HELLO_SIZE, Hello
from memsched.uapi.pressure import VmpressureConfig

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _child_cpu(code: str, seconds: float) -> float:
    """CPU seconds a child spends in ``seconds`` after running ``code`` and a 1 s warm-up."""
    prog = (
        f"{code}\n"
        "import time\n"
        "time.sleep(1.0)\n"
        "t0 = time.process_time()\n"
        f"time.sleep({seconds})\n"
        "print(time.process_time() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True, timeout=seconds + 60)
    return float(out.stdout.strip().splitlines()[-1])


def monitor_overhead(seconds: float) -> None:
    base = _child_cpu("pass", seconds)
    print(f"reclaim-index monitor, {seconds:g} s after warm-up (a sleeping process: {base * 1e3:.1f} ms CPU)")
    for interval in (10, 100):
        code = (
            "from memsched.live import vmpressure_fd, PressureOptions\n"
            f"f = vmpressure_fd(backend='reclaim-index', options=PressureOptions(reclaim_interval_ms={interval}))\n"
        )
        cpu = _child_cpu(code, seconds) - base
        samples = seconds * 1000 / interval
        print(
            f"  interval {interval:3} ms: {cpu:.3f} s CPU = {100 * cpu / seconds:.2f} % of one CPU, "
            f"{cpu / samples * 1e6:.0f} us per sample"
        )


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


class Subscribers:
    """``n`` subscribers on one selector thread, counting the records each receives."""

    def __init__(self, path: Path, n: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.counts = [0] * n
        self.socks = []
        for i in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(path))
            hello = b""
            while len(hello) < HELLO_SIZE:
                hello += s.recv(HELLO_SIZE - len(hello))
            Hello.unpack(hello)
            s.sendall(VmpressureConfig().pack())
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, i)
            self.socks.append(s)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            for key, _ in self.sel.select(0.1):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                self.counts[key.data] += len(data) // 4

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        for s in self.socks:
            s.close()


def _serve(path: Path, args: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsched", "pressure", "serve", "--socket", str(path), *args],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the daemon did not start")
        time.sleep(0.05)
    return proc


def daemon_overhead(seconds: float, clients: int, rate: int) -> None:
    with tempfile.TemporaryDirectory(prefix="memsched-bench-") as tmpdir:
        tmp = Path(tmpdir)
        fifo = tmp / "fifo"
        os.mkfifo(fifo)
        path = tmp / "p.sock"
        proc = _serve(path, ["--backend", "fifo", "--set", f"fifo_path={fifo}", "--max-clients", str(clients + 10)])
        try:
            subs = Subscribers(path, clients)
            time.sleep(1.0)
            c0 = _proc_cpu(proc.pid)
            time.sleep(seconds / 2)
            idle = _proc_cpu(proc.pid) - c0
            wfd = os.open(fifo, os.O_WRONLY)
            words = [b"low\n", b"medium\n", b"oom\n"]
            n = int(rate * seconds)
            c0 = _proc_cpu(proc.pid)
            t0 = time.monotonic()
            for i in range(n):
                os.write(wfd, words[i % 3])
                time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
            busy_wall = time.monotonic() - t0
            time.sleep(0.5)
            busy = _proc_cpu(proc.pid) - c0
            os.close(wfd)
            subs.close()
            got = sorted(subs.counts)
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"daemon (fifo backend), {clients} subscribers")
        print(f"  idle: {idle:.3f} s CPU in {seconds / 2:g} s = {100 * idle / (seconds / 2):.2f} % of one CPU")
        print(
            f"  {n} events at {rate}/s over {busy_wall:.1f} s: {busy:.3f} s CPU "
            f"= {100 * busy / busy_wall:.2f} % of one CPU, "
            f"{busy / n * 1e6:.0f} us per event ({busy / n / clients * 1e6:.1f} us per event and subscriber); "
            f"events received per subscriber min {got[0]} / max {got[-1]} of {n}"
        )

    caps = capabilities()
    if not caps.memcg_v1_pressure_level.available or os.geteuid() != 0:
        print(f"daemon (memcg-v1 backend): skipped ({caps.memcg_v1_pressure_level.reason})")
        return
    with tempfile.TemporaryDirectory(prefix="memsched-bench-", dir="/var/tmp") as tmpdir:
        tmp = Path(tmpdir)
        path = tmp / "p.sock"
        with MemcgV1Child(f"memsched-bench-daemon-{os.getpid()}", limit_bytes=64 << 20) as cg:
            proc = _serve(
                path, ["--backend", "memcg-v1", "--cgroup", "/" + cg.path.name, "--max-clients", str(clients + 10)]
            )
            try:
                subs = Subscribers(path, clients)
                time.sleep(1.0)
                c0 = _proc_cpu(proc.pid)
                t0 = time.monotonic()
                for _ in range(max(1, int(seconds // 2))):
                    cg.run(page_cache_writer(tmp / "cache", 256 << 20)).wait(120)
                wall = time.monotonic() - t0
                time.sleep(0.5)
                cpu = _proc_cpu(proc.pid) - c0
                subs.close()
                got = sorted(subs.counts)
            finally:
                proc.terminate()
                proc.wait(30)
        print(f"daemon (memcg-v1 backend, page-cache writer in a 64 MiB cgroup), {clients} subscribers")
        print(
            f"  {wall:.1f} s of pressure: {cpu:.3f} s CPU = {100 * cpu / wall:.2f} % of one CPU; "
            f"records received per subscriber min {got[0]} / max {got[-1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=200, help="events per second injected into the daemon")
    args = parser.parse_args()
    monitor_overhead(args.seconds)
    daemon_overhead(args.seconds, args.clients, args.rate)


if __name__ == "__main__":
    main()
