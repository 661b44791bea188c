"""Signal trials: interrupt each live command many times and count what it leaves behind.

    sudo python benchmarks/signal_trials.py [--trials 20] [--commands rt-run,watch,serve,balance] [--json]

For each command — ``rt run`` (a sleeper as SCHED_DEADLINE command), ``pressure watch`` (memcg-v1 backend on
a test cgroup), ``pressure serve`` (memcg-v1 backend) and ``numa balance`` (numad over a sleeper) — and each
of SIGINT, SIGTERM and SIGKILL, ``--trials`` times: start it in a session of its own, wait until it is
working (the command's pid printed, "watching", "listening on", the first sample), send the signal, wait for
it to end, give the kernel a moment, and count leftovers:

* **processes** still in its session (children, grandchildren, orphans), and any process carrying the trial's
  marker in its command line;
* **deadline**: those of them in SCHED_DEADLINE;
* **cgroups**: ``memsched-*`` directories in the v1 memory and v2 hierarchies that appeared during the trial
  and are still there when all trials are over (other sessions on a shared machine create and remove their
  own test cgroups meanwhile; a leftover persists);
* **sockets**: the daemon's socket file after it ended, and private ``.memsched-*`` directories next to it.

SIGINT is sent to the command's process group, as Ctrl-C on a terminal would (``rt run`` leaves it to its
command, as a shell does); SIGTERM and SIGKILL to memsched's pid alone, as ``kill`` and ``timeout`` do.
SIGKILL cannot be handled: what it leaves must be cleaned or tolerated by the next start, so after each
SIGKILL of ``serve`` the next ``serve`` on the same path is started and must come up (the stale socket
replaced) — reported as *next start ok*. A start that never gets to work (``rt run`` refused by admission
control while other programs hold the deadline bandwidth) is not a trial: it is started again, up to
``--retries`` times, its lines shown and what it left counted. Needs root (SCHED_DEADLINE, memory cgroups).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MEMSCHED = [sys.executable, "-m", "memsched"]
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def _stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _cmdline(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def leftover_processes(session: int, marker: str) -> tuple[set[int], set[int]]:
    """Living processes of ``session`` or carrying ``marker``; and which of them are SCHED_DEADLINE."""
    procs, deadline = set(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        if int(st[3]) == session or marker in _cmdline(pid):
            procs.add(int(pid))
            if int(st[38]) == 6:
                deadline.add(int(pid))
    return procs, deadline


def memsched_cgroups() -> set[str]:
    from memsched.live.cgroups import cgroup_mounts

    m = cgroup_mounts()
    out = set()
    for root in (m.v1_memory, m.v2):
        if root is not None and root.exists():
            out |= {str(p) for p in root.iterdir() if p.is_dir() and p.name.startswith("memsched-")}
    return out


def _wait_line(
    stream: IO[str], pred: Callable[[str], bool], timeout: float, seen: list[str] | None = None
) -> str | None:
    """The first line of ``stream`` for which ``pred`` holds, read on a thread (None: not within timeout);
    the lines read before it are appended to ``seen``."""
    found: list[str] = []

    def reader() -> None:
        for line in stream:
            if seen is not None:
                seen.append(line.rstrip())
            if pred(line):
                found.append(line)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return found[0] if found else None


@dataclass
class Trial:
    command: str
    signal: str
    returncode: int | None
    ready: bool
    processes: int
    deadline: int
    new_cgroups: list[str]
    cgroups: int = 0  # of new_cgroups, those still there when all trials are over
    socket_left: bool = False
    private_dirs: int = 0
    next_start_ok: bool | None = None
    notes: list[str] = field(default_factory=list)
    retries: int = 0  # starts that never got to work (and were not interrupted) before this one


class Bench:
    def __init__(self, tmp: Path, cgroup_name: str) -> None:
        self.tmp = tmp
        (tmp / "run").mkdir(mode=0o755)  # as systemd's RuntimeDirectory= would make it
        self.cgroup = "/" + cgroup_name
        self.sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(100000)"])

    def argv(self, command: str, marker: str) -> tuple[list[str], Callable[[str], bool], str]:
        """The command line, how to recognise it is working, and which stream says so."""
        if command == "rt-run":
            # 0.01 CPU (others on a shared machine may hold most of the deadline bandwidth), so a command that
            # needs little CPU to start: sh prints its pid and becomes sleep (a deadline task may not fork); the
            # marker is in sh's command line, and sleep stays in the trial's session
            shell = ["sh", "-c", f"echo $$; exec sleep 600 # {marker}"]
            return (
                [*MEMSCHED, "rt", "run", "--runtime", "1ms", "--deadline", "100ms", "--", *shell],
                str.isdigit,
                "out",
            )
        if command == "watch":
            argv = [*MEMSCHED, "pressure", "watch", "--backend", "memcg-v1", "--cgroup", self.cgroup, "--json"]
            return argv, lambda s: "watching" in s, "err"
        if command == "serve":
            argv = [*MEMSCHED, "pressure", "serve", "--socket", str(self.socket), "--backend", "memcg-v1"]
            return [*argv, "--cgroup", self.cgroup], lambda s: "listening on" in s, "err"
        if command == "balance":
            argv = [*MEMSCHED, "numa", "balance", "--policy", "numad", "--pid", str(self.sleeper.pid)]
            return [*argv, "--interval", "100ms"], lambda s: s.startswith("["), "out"
        raise ValueError(command)

    @property
    def socket(self) -> Path:
        return self.tmp / "run" / "p.sock"

    def trial(self, command: str, sig: signal.Signals, n: int) -> Trial:
        marker = f"memsched-trial-{os.getpid()}-{command}-{int(sig)}-{n}"
        argv, ready_when, stream = self.argv(command, marker)
        cgroups_before = memsched_cgroups()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        seen: list[str] = []
        notes: list[str] = []
        watched = proc.stdout if stream == "out" else proc.stderr
        ready = _wait_line(watched, lambda s: ready_when(s.strip()), 60, seen) is not None
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C: the whole foreground group
        else:
            proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not ready:  # why it never got to work (an admission refusal when others hold the bandwidth, ...)
            said = [*seen, *(proc.stderr.read().splitlines() if stream == "out" else [])]
            notes = [line for line in said if line.strip()][-2:]
        proc.stdout.close()
        proc.stderr.close()
        deadline_t = time.monotonic() + 5.0  # the kernel delivers PDEATHSIG and reparents asynchronously
        while True:
            procs, dl = leftover_processes(proc.pid, marker)
            if not procs or time.monotonic() > deadline_t:
                break
            time.sleep(0.05)
        new_cgroups = sorted(memsched_cgroups() - cgroups_before)
        t = Trial(command, sig.name, proc.returncode, ready, len(procs), len(dl), new_cgroups)
        t.notes = notes
        for pid in procs:  # clean up for the next trial, after counting
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if command == "serve":
            t.socket_left = self.socket.exists()
            t.private_dirs = sum(p.name.startswith(".memsched-") for p in self.socket.parent.iterdir())
            if sig == signal.SIGKILL:
                t.next_start_ok = self.next_start()
        return t

    def next_start(self) -> bool:
        """After a kill -9: the next serve on the same path comes up (replacing the stale socket) and ends cleanly."""
        argv, ready_when, _ = self.argv("serve", "next")
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        assert proc.stderr is not None
        ok = _wait_line(proc.stderr, ready_when, 60) is not None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        proc.stderr.close()
        return ok and code == 0 and not self.socket.exists()

    def close(self) -> None:
        self.sleeper.kill()
        self.sleeper.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--commands", default="rt-run,watch,serve,balance")
    ap.add_argument("--retries", type=int, default=3, help="new starts for a command that never got to work")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("signal_trials: needs root (SCHED_DEADLINE, memory cgroups)", file=sys.stderr)
        return 2
    from memsched.live.cgroups import MemcgV1Child

    trials: list[Trial] = []
    with (
        tempfile.TemporaryDirectory(prefix="memsched-trials-") as tmpdir,
        MemcgV1Child(f"memsched-trials-{os.getpid()}", limit_bytes=64 << 20) as cg,
    ):
        bench = Bench(Path(tmpdir), cg.path.name)
        try:
            for command in args.commands.split(","):
                for sig in SIGNALS:
                    for n in range(args.trials):
                        # a command that never got to work was not interrupted: start it again (at most
                        # --retries times; on a shared machine others may hold all the deadline bandwidth);
                        # what a failed start left behind still counts
                        tries = [bench.trial(command, sig, n)]
                        while not tries[-1].ready and len(tries) <= args.retries:
                            tries.append(bench.trial(command, sig, n))
                        t = tries[-1]
                        for f in tries[:-1]:
                            t.processes += f.processes
                            t.deadline += f.deadline
                            t.new_cgroups += f.new_cgroups
                            t.private_dirs += f.private_dirs
                            t.notes = f.notes + t.notes
                        t.retries = len(tries) - 1
                        trials.append(t)
                    print(f"{command} {sig.name}: {args.trials} trials done", file=sys.stderr, flush=True)
        finally:
            bench.close()
    time.sleep(5.0)
    remaining = memsched_cgroups()
    for t in trials:
        t.cgroups = sum(c in remaining for c in t.new_cgroups)
    if not args.json:
        for i in range(0, len(trials), args.trials):
            _print_row(trials[i : i + args.trials])
    if args.json:
        print(json.dumps([t.__dict__ for t in trials], indent=1))
    bad = [
        t
        for t in trials
        if t.processes
        or t.deadline
        or t.cgroups
        or t.private_dirs
        or not t.ready
        or (t.socket_left and t.signal != "SIGKILL")
        or t.next_start_ok is False
    ]
    if not args.json:
        print(f"{len(trials)} trials; {len(bad)} left something behind (beyond a SIGKILLed daemon's socket)")
    return 1 if bad else 0


def _print_row(rows: list[Trial]) -> None:
    r0 = rows[0]
    codes = Counter(t.returncode for t in rows)
    line = (
        f"{r0.command:8} {r0.signal:8} {len(rows):3} trials  exit {dict(codes)}  ready {sum(t.ready for t in rows)}  "
        f"leftover processes {sum(t.processes for t in rows)}, deadline {sum(t.deadline for t in rows)}, "
        f"cgroups {sum(t.cgroups for t in rows)}"
    )
    if any(t.retries for t in rows):
        line += f" (starts that never got to work, started again: {sum(t.retries for t in rows)})"
    if r0.command == "serve":
        line += f", sockets {sum(t.socket_left for t in rows)}, private dirs {sum(t.private_dirs for t in rows)}"
        if r0.signal == "SIGKILL":
            line += f", next start ok {sum(bool(t.next_start_ok) for t in rows)}/{len(rows)}"
    print(line, flush=True)
    for note in sorted({n for t in rows for n in t.notes}):
        print(f"    not ready: {note}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
