"""The simulated memory manager held against this machine's kernel, on the same workloads.

Each workload is described once (:data:`WORKLOADS`): memory cgroups with limits, the cgroup whose
``memory.pressure_level`` is listened to (one eventfd per level, default mode, as
``memsched pressure watch --backend memcg-v1`` registers them), and processes — a page-cache *writer*, a
*reader* of a file another process wrote, an anonymous *grower* — each starting at a time or when another one
exits. The description is run:

* **for real**, in a fresh cgroup-v1 memory cgroup (:class:`memsched.live.cgroups.MemcgV1Child`, removed on
  exit even when the run fails): the writer is ``dd if=/dev/zero bs=1M``, the reader ``cat``, the grower a
  Python loop appending 1 MiB ``bytearray`` objects at its rate until it is killed. Each process is started by
  ``/bin/sh`` that moves itself into its cgroup and ``exec``s the program, so a phase starts within a
  millisecond of the workload. (The v2-only side — PSI triggers on ``memory.pressure`` and ``oom_kill`` of
  ``memory.events`` — is not built: without the v1 memory controller the script stops with exit 2; saved real
  runs can still be compared with ``--real``);
* **in the simulator**, as a ``memsched pressure sim`` scenario built from the same description: the same
  limits, the same listeners (a ``listener`` service per level in the same memcg, mode ``default``), the
  processes as ``streamer`` / ``reader`` / ``allocator`` services with ``start_after``; rates the description
  does not fix (``dd`` and ``cat`` run as fast as they can) are the median of the real runs; the disk's
  bandwidths are measured once (``dd`` with ``O_DIRECT``, 256 MiB); the simulated kernel is the running one's
  version, and on a ``PREEMPT_NONE`` kernel the vmpressure work item runs a tick after it is scheduled
  (:func:`kernel_config`).

Per *phase* — the intervals between process starts and exits, named by what runs in them — it prints the
events at each exact level (a critical window bumps the low, medium and critical eventfds together: exact
counts are differences of the cumulative ones), the time from the phase's start to its first event, the share
of *phase-tenths* (each phase cut into ten equal parts) whose highest level agrees between simulator and
kernel (and between the real runs themselves), and the OOM kills.

Needs root and the v1 memory controller (``memory.pressure_level``). The real runs are short (a few seconds
each) and bounded by ``--timeout``; the machine is shared.
Usage::

    python benchmarks/pressure_vs_kernel.py [--runs 5] [--workloads issue,anon,duo] [--json]
        [--save-real FILE | --real FILE] [--disk-mib-s WRITE READ] [--sysctl KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from memsched.errors import MemschedError
from memsched.live.cgroups import MemcgV1Child, cgroup_mounts
from memsched.sim.mm.version import KERNELS
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.pressure import run_design, scenario_from_dict

LEVELS = ("low", "medium", "critical")
TOP = "box"


# ------------------------------------------------------------------------------------------ descriptions


@dataclass(frozen=True)
class Proc:
    """One process of a workload."""

    name: str
    kind: str  # writer | reader | grower
    memcg: str = ""  # "" = the workload's cgroup, else a child of it
    size_mib: int | None = None  # writer/reader: file size; grower: None = until killed
    rate_mib_s: float | None = None  # None: as fast as it goes (the simulator takes the real median)
    after: str | None = None  # start when this process exits
    file: str | None = None  # reader: the writer whose file it reads
    hold_s: float = 0.0  # grower: keep what it has for this long, then exit


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    limit_mib: int
    procs: tuple[Proc, ...]
    children: tuple[tuple[str, int | None], ...] = ()


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "issue",
            "64 MiB memcg: dd writes 400 MiB through the page cache, cat reads it back, then a grower adds "
            "1 MiB every 4 ms until the memcg OOM killer takes it",
            64,
            (
                Proc("writer", "writer", size_mib=400),
                Proc("reader", "reader", file="writer", size_mib=400, after="writer"),
                Proc("grower", "grower", rate_mib_s=256, after="reader"),
            ),
        ),
        Workload(
            "anon",
            "64 MiB memcg, no page cache: a grower adds 1 MiB every 16 ms until it is killed",
            64,
            (Proc("grower", "grower", rate_mib_s=64),),
        ),
        Workload(
            "duo",
            "two memcgs under a 96 MiB parent: dd writes 400 MiB in one while a grower takes 48 MiB in the "
            "other (256 MiB/s) and holds it for 0.5 s",
            96,
            (
                Proc("writer", "writer", memcg="a", size_mib=400),
                Proc("grower", "grower", memcg="b", size_mib=48, rate_mib_s=256, hold_s=0.5),
            ),
            children=(("a", None), ("b", None)),
        ),
    )
}


# ------------------------------------------------------------------------------------------ one run's trace


@dataclass
class Trace:
    """What one run (real or simulated) produced, in ns from the run's start."""

    procs: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # name -> (start, exit, killed)
    #: Cumulative-listener signals: (t, listener level, count); a critical window signals all three.
    signals: list[tuple[int, str, int]] = field(default_factory=list)
    oom_kills: int = 0

    def rates(self, w: Workload) -> dict[str, float]:
        """MiB/s of each sized process over its life."""
        out = {}
        for p in w.procs:
            if p.size_mib is not None and p.name in self.procs:
                t0, t1, _ = self.procs[p.name]
                out[p.name] = p.size_mib / max((t1 - t0) / NSEC_PER_SEC, 1e-6)
        return out


# ------------------------------------------------------------------------------------------ the real side


def _grower_code(size_mib: int | None, rate_mib_s: float | None, hold_s: float) -> str:
    count = "itertools.count()" if size_mib is None else f"range({size_mib})"
    period = 0.0 if rate_mib_s is None else 1.0 / rate_mib_s
    return (
        "import itertools, time\n"
        "keep = []\n"
        "t = time.monotonic()\n"
        f"for _ in {count}:\n"
        "    keep.append(bytearray(1 << 20))\n"
        f"    t += {period!r}\n"
        "    d = t - time.monotonic()\n"
        "    if d > 0:\n"
        "        time.sleep(d)\n"
        f"time.sleep({hold_s!r})\n"
    )


def _paced_io_code(path: Path, size_mib: int, rate_mib_s: float, write: bool) -> str:
    op = "f.write(b)" if write else "f.readinto(b)"
    return (
        "import time\n"
        "b = bytearray(1 << 20)\n"
        "t = time.monotonic()\n"
        f"with open({str(path)!r}, {'wb' if write else 'rb'!r}, buffering=0) as f:\n"
        f"    for _ in range({size_mib}):\n"
        f"        {op}\n"
        f"        t += {1.0 / rate_mib_s!r}\n"
        "        d = t - time.monotonic()\n"
        "        if d > 0:\n"
        "            time.sleep(d)\n"
    )


def _argv(p: Proc, files: dict[str, Path]) -> list[str]:
    if p.kind == "grower":
        return [sys.executable, "-c", _grower_code(p.size_mib, p.rate_mib_s, p.hold_s)]
    assert p.size_mib is not None
    path = files[p.name if p.kind == "writer" else str(p.file)]
    if p.rate_mib_s is not None:
        return [sys.executable, "-c", _paced_io_code(path, p.size_mib, p.rate_mib_s, p.kind == "writer")]
    if p.kind == "writer":
        return [_which("dd"), "if=/dev/zero", f"of={path}", "bs=1M", f"count={p.size_mib}", "status=none"]
    return [_which("dd"), f"if={path}", "of=/dev/null", "bs=1M", "status=none"]  # cat, without a pipe


def _which(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"pressure_vs_kernel: {name} is not installed")
    return found


class _V1Listener:
    """One eventfd per level on ``memory.pressure_level`` (default mode), read on a thread."""

    def __init__(self, directory: Path, t0: int) -> None:
        self.t0 = t0
        self.signals: list[tuple[int, str, int]] = []
        self._stop = threading.Event()
        self._level_fd = os.open(directory / "memory.pressure_level", os.O_RDONLY | os.O_CLOEXEC)
        self._efds: dict[int, str] = {}
        control = os.open(directory / "cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
        try:
            for level in LEVELS:
                efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                self._efds[efd] = level
                os.write(control, f"{efd} {self._level_fd} {level}".encode())
        finally:
            os.close(control)
        self._thread = threading.Thread(target=self._loop, name="vmpressure-listener", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        poll = select.poll()
        for efd in self._efds:
            poll.register(efd, select.POLLIN)
        while not self._stop.is_set():
            if not poll.poll(20):
                continue
            now = time.monotonic_ns() - self.t0
            for efd, level in self._efds.items():  # low first: see live/pressure/memcg_v1.py
                with contextlib.suppress(BlockingIOError):
                    self.signals.append((now, level, os.eventfd_read(efd)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for efd in self._efds:
            os.close(efd)
        os.close(self._level_fd)


def run_real(w: Workload, run: int, timeout_s: float) -> Trace:
    """One real run of ``w`` in a fresh v1 memory cgroup (removed on the way out, also on failure)."""
    trace = Trace()
    with (
        tempfile.TemporaryDirectory(prefix="memsched-vs-kernel-", dir="/var/tmp") as tmp,
        MemcgV1Child(f"memsched-vs-kernel-{os.getpid()}-{run}", limit_bytes=w.limit_mib * MIB) as cg,
    ):
        dirs = {"": cg.path}
        for child, limit in w.children:
            dirs[child] = cg.child(child, limit_bytes=None if limit is None else limit * MIB)
        files = {p.name: Path(tmp) / f"{p.name}.data" for p in w.procs if p.kind == "writer"}
        t0 = time.monotonic_ns()
        listener = _V1Listener(cg.path, t0)
        running: dict[str, subprocess.Popen[bytes]] = {}
        try:
            pending = list(w.procs)
            deadline = time.monotonic() + timeout_s
            while pending or running:
                for p in [p for p in pending if p.after is None or trace.procs.get(p.after, (0, -1, False))[1] >= 0]:
                    pending.remove(p)
                    argv = ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(dirs[p.memcg] / "cgroup.procs")]
                    start = time.monotonic_ns() - t0
                    running[p.name] = subprocess.Popen(argv + _argv(p, files), stdin=subprocess.DEVNULL)
                    trace.procs[p.name] = (start, -1, False)
                for name, proc in list(running.items()):
                    rc = proc.poll()
                    if rc is not None:
                        start = trace.procs[name][0]
                        trace.procs[name] = (start, time.monotonic_ns() - t0, rc == -9)
                        del running[name]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{w.name} run {run} did not finish in {timeout_s} s")
                time.sleep(0.0005)
            time.sleep(0.1)  # the last work items
        finally:
            for proc in running.values():
                proc.kill()
                proc.wait()
            listener.close()
        trace.signals = sorted(listener.signals)
        # oom_kill in memory.oom_control is hierarchical (memory_events[MEMCG_OOM_KILL], mm/memcontrol-v1.c)
        text = (cg.path / "memory.oom_control").read_text()
        trace.oom_kills = int(dict(line.split() for line in text.splitlines()).get("oom_kill", 0))
    return trace


def measure_disk_mib_s(tmpdir: str = "/var/tmp") -> tuple[float, float]:
    """Write and read back 256 MiB with O_DIRECT (bypassing the page cache): the disk's bandwidths, MiB/s."""
    path = Path(tmpdir) / f"memsched-vs-kernel-disk-{os.getpid()}"
    out = []
    try:
        for argv in (
            [_which("dd"), "if=/dev/zero", f"of={path}", "bs=1M", "count=256", "oflag=direct", "status=none"],
            [_which("dd"), f"if={path}", "of=/dev/null", "bs=1M", "iflag=direct", "status=none"],
        ):
            t0 = time.monotonic()
            subprocess.run(argv, check=True)
            out.append(256 / (time.monotonic() - t0))
    finally:
        path.unlink(missing_ok=True)
    return out[0], out[1]


def kernel_config() -> dict[str, Any]:
    """The running kernel's version and the scheduling facts the simulated work item depends on.

    ``schedule_work()`` queues ``vmpressure_work_fn()`` on the reclaiming CPU's pool (``system_wq`` is
    per-CPU). On a ``CONFIG_PREEMPT_NONE`` kernel (or ``preempt=none``) a reclaimer that keeps the CPU is
    rescheduled only from the tick (``CONFIG_HZ``), so the woken kworker runs about a tick later and windows
    filled meanwhile merge into its one snapshot: the simulated work item then runs ``workqueue_latency_ns`` =
    one tick after it was scheduled. Measured here (6.18, HZ=250, PREEMPT_NONE, 64 MiB v1 memcg): ``dd``
    writing 400 MiB scans 88-89 k file pages (``pgscan_file`` of /proc/vmstat), 172-174 windows of 512 pages,
    but its listener gets 91-104 events; a re-read scans 56-72 k pages for 64-76 events. Otherwise the work
    runs at the reclaimer's next ``cond_resched()`` (the simulator's default)."""
    release = os.uname().release
    text = ""
    with contextlib.suppress(OSError):
        import gzip

        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    if not text:
        with contextlib.suppress(OSError):
            text = Path(f"/boot/config-{release}").read_text()
    conf = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_") and "=" in line)
    hz = int(conf.get("CONFIG_HZ", "250"))
    preempt = "none" if conf.get("CONFIG_PREEMPT_NONE") == "y" else "voluntary"
    if conf.get("CONFIG_PREEMPT") == "y":
        preempt = "full"
    with contextlib.suppress(OSError):  # a PREEMPT_DYNAMIC kernel's mode, when debugfs shows it
        for word in Path("/sys/kernel/debug/sched/preempt").read_text().split():
            if word.startswith("(") and word.endswith(")"):
                preempt = word[1:-1]
    with contextlib.suppress(OSError):
        for arg in Path("/proc/cmdline").read_text().split():
            if arg.startswith("preempt="):
                preempt = arg.split("=", 1)[1]
    major_minor = tuple(int(x) for x in release.split("-")[0].split(".")[:2])
    known = sorted(KERNELS, key=lambda k: tuple(int(x) for x in k.split(".")))
    sim_kernel = next((k for k in reversed(known) if tuple(int(x) for x in k.split(".")) <= major_minor), known[0])
    return {"release": release, "hz": hz, "preempt": preempt, "sim_kernel": sim_kernel,
            "tick_ns": NSEC_PER_SEC // hz if preempt == "none" else 0}


# ------------------------------------------------------------------------------------------ the simulated side


def scenario_doc(
    w: Workload,
    rates: dict[str, float],
    disk: tuple[float, float],
    duration_s: float,
    kernel: dict[str, Any] | None = None,
    sysctl: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``memsched pressure sim`` scenario of ``w``: same limits, listeners and rates, the running kernel's
    version and work-item timing (:func:`kernel_config`), and any ``sysctl`` overrides."""
    top = f"/{TOP}"
    services: list[dict[str, Any]] = [
        {
            "name": "listener",
            "kind": "listener",
            "levels": list(LEVELS),
            "mode": "default",
            "memcg": top,
            "limit": f"{w.limit_mib}MiB",
        }
    ]
    limits = dict(w.children)
    for p in w.procs:
        svc: dict[str, Any] = {"name": p.name, "chunk": "1MiB", "memcg": f"{top}/{p.memcg}" if p.memcg else top}
        if p.memcg and limits.get(p.memcg) is not None:
            svc["limit"] = f"{limits[p.memcg]}MiB"
        rate = p.rate_mib_s if p.rate_mib_s is not None else rates.get(p.name)
        if rate is not None:
            svc["rate"] = f"{max(1, round(rate))}MiB"
        if p.after is not None:
            svc["start_after"] = p.after
        if p.kind == "writer":
            svc |= {"kind": "streamer", "size": f"{p.size_mib}MiB"}
        elif p.kind == "reader":
            svc |= {"kind": "reader", "file": p.file}
        else:
            size = p.size_mib if p.size_mib is not None else 16 * w.limit_mib  # until killed
            svc |= {"kind": "allocator", "size": f"{size}MiB"}
            if p.size_mib is not None:
                svc["hold"] = f"{round(p.hold_s * 1000)}ms"
        services.append(svc)
    return {
        "name": f"vs-kernel-{w.name}",
        "description": w.description,
        "memory": "1GiB",
        "duration": f"{round(duration_s * 1000)}ms",
        "designs": ["mainline"],
        "sysctl": {
            "disk_write_bytes_per_s": f"{round(disk[0])}MiB",
            "disk_read_bytes_per_s": f"{round(disk[1])}MiB",
            "flusher_tick_ns": "1ms",
            **({"kernel": kernel["sim_kernel"]} if kernel else {}),
            **({"workqueue_latency_ns": int(kernel["tick_ns"])} if kernel and kernel["tick_ns"] else {}),
            **(sysctl or {}),
        },
        "service": services,
    }


def run_sim(
    w: Workload,
    rates: dict[str, float],
    disk: tuple[float, float],
    duration_s: float,
    kernel: dict[str, Any] | None = None,
    sysctl: dict[str, str] | None = None,
) -> Trace:
    """The simulated run of ``w``, as a :class:`Trace`."""
    doc = scenario_doc(w, rates, disk, duration_s, kernel, sysctl)
    sc = scenario_from_dict(doc, source=f"benchmark {w.name}")
    fig = run_design(sc, "mainline")
    trace = Trace(oom_kills=int(fig["oom_kills"]))
    for p in w.procs:
        s = fig["services"][p.name]
        end = s["end_s"] if s["end_s"] is not None else fig["duration_s"]
        start = s["start_s"] if s["start_s"] is not None else end
        trace.procs[p.name] = (round(start * NSEC_PER_SEC), round(end * NSEC_PER_SEC), bool(s["oom_killed"]))
    for level, times in fig["services"]["listener"]["signal_times_s"].items():
        trace.signals += [(round(t * NSEC_PER_SEC), level, 1) for t in times]
    trace.signals.sort()
    return trace


# ------------------------------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class Phase:
    name: str
    t0: int
    t1: int


def phases(trace: Trace) -> list[Phase]:
    """Intervals between process starts and exits, named by what runs in them (empty intervals dropped)."""
    cuts = sorted({t for t0, t1, _ in trace.procs.values() for t in (t0, t1)})
    out = []
    for a, b in itertools.pairwise(cuts):
        running = [n for n, (t0, t1, _) in trace.procs.items() if t0 <= a and b <= t1]
        if running and b > a:
            out.append(Phase("+".join(running), a, b))
    return out


def _exact(signals: Sequence[tuple[int, str, int]], t0: int, t1: int) -> dict[str, int]:
    """Events at exactly each level in [t0, t1): differences of the cumulative listeners' counts."""
    tot = {lv: sum(n for t, l2, n in signals if l2 == lv and t0 <= t < t1) for lv in LEVELS}
    return {"low": tot["low"] - tot["medium"], "medium": tot["medium"] - tot["critical"], "critical": tot["critical"]}


def _top(signals: Sequence[tuple[int, str, int]], t0: int, t1: int) -> str:
    top = "none"
    for t, level, _ in signals:
        if t0 <= t < t1 and (top == "none" or LEVELS.index(level) > LEVELS.index(top)):
            top = level
    return top


#: Events up to this long after the last process exits count in the last phase: the work item of the last
#: windows may run after the OOM victim is gone (the real run listens 0.1 s more).
TAIL_NS = 100_000_000


def phase_stats(trace: Trace) -> dict[str, dict[str, Any]]:
    """Per phase: exact events per level, ms from the phase's start to its first event, top level per tenth
    (the last phase's counts and first event include :data:`TAIL_NS` after it; its tenths do not)."""
    out = {}
    all_phases = phases(trace)
    for i, ph in enumerate(all_phases):
        end = ph.t1 + TAIL_NS if i == len(all_phases) - 1 else ph.t1
        first = min((t for t, _, _ in trace.signals if ph.t0 <= t < end), default=None)
        edges = [ph.t0 + (ph.t1 - ph.t0) * i // 10 for i in range(11)]
        out[ph.name] = {
            "ms": (ph.t1 - ph.t0) / 1e6,
            "events": _exact(trace.signals, ph.t0, end),
            "first_ms": None if first is None else (first - ph.t0) / 1e6,
            "tenths": [_top(trace.signals, edges[i], edges[i + 1]) for i in range(10)],
        }
    return out


def agreement(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> float | None:
    """Share of phase-tenths (over the phases both have) whose top level is the same."""
    same = total = 0
    for name in a.keys() & b.keys():
        for x, y in zip(a[name]["tenths"], b[name]["tenths"], strict=True):
            same += x == y
            total += 1
    return same / total if total else None


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def compare(w: Workload, real: list[Trace], sim: Trace) -> dict[str, Any]:
    """The figures of one workload: per phase, sim vs the real median; agreements; OOM kills."""
    rs = [phase_stats(t) for t in real]
    ss = phase_stats(sim)
    names = [n for n in ss if all(n in r for r in rs)] or list(ss)
    rows = []
    for name in names:
        row: dict[str, Any] = {"phase": name, "sim_ms": ss[name]["ms"]}
        present = [r[name] for r in rs if name in r]
        row["real_ms"] = _median([p["ms"] for p in present])
        for lv in LEVELS:
            row[f"sim_{lv}"] = ss[name]["events"][lv]
            vals = [p["events"][lv] for p in present]
            row[f"real_{lv}"] = _median(vals)
            row[f"real_{lv}_range"] = (min(vals), max(vals)) if vals else None
            r, s = row[f"real_{lv}"], row[f"sim_{lv}"]
            row[f"within_1.5x_{lv}"] = (r == s == 0) or (min(r, s) > 0 and max(r, s) / min(r, s) <= 1.5)
        row["sim_first_ms"] = ss[name]["first_ms"]
        firsts = [p["first_ms"] for p in present if p["first_ms"] is not None]
        row["real_first_ms"] = _median(firsts) if firsts else None
        rows.append(row)
    sim_vs_real = [x for x in (agreement(ss, r) for r in rs) if x is not None]
    real_vs_real = [
        x for i, a in enumerate(rs) for b in rs[i + 1 :] if (x := agreement(a, b)) is not None
    ]
    return {
        "workload": w.name,
        "description": w.description,
        "phases": rows,
        "agreement_sim_vs_real": _median(sim_vs_real),
        "agreement_sim_vs_real_min": min(sim_vs_real, default=float("nan")),
        "agreement_real_vs_real": _median(real_vs_real),
        "oom_kills_sim": sim.oom_kills,
        "oom_kills_real": [t.oom_kills for t in real],
        "sim_tenths": {n: ss[n]["tenths"] for n in names},
    }


def _fmt(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


def print_table(res: dict[str, Any]) -> None:
    print(f"\n{res['workload']}: {res['description']}")
    print(f"{'phase':14} {'ms sim/real':>13} " + " ".join(f"{lv + ' sim/real (range)':>26}" for lv in LEVELS)
          + f" {'1st ms sim/real':>16}")
    for row in res["phases"]:
        cells = []
        for lv in LEVELS:
            rng = row[f"real_{lv}_range"]
            mark = "" if row[f"within_1.5x_{lv}"] else " *"
            cells.append(f"{row[f'sim_{lv}']:>5} / {_fmt(row[f'real_{lv}']):>5} ({rng[0]}-{rng[1]}){mark}".rjust(26))
        print(
            f"{row['phase'][:14]:14} {_fmt(row['sim_ms']):>6}/{_fmt(row['real_ms']):<6} " + " ".join(cells)
            + f" {_fmt(row['sim_first_ms']):>7}/{_fmt(row['real_first_ms']):<8}"
        )
    print(
        f"phase-tenth agreement: sim vs real {_fmt(res['agreement_sim_vs_real'] * 100)} % "
        f"(min {_fmt(res['agreement_sim_vs_real_min'] * 100)} %), real vs real "
        f"{_fmt(res['agreement_real_vs_real'] * 100)} %; OOM kills sim {res['oom_kills_sim']}, "
        f"real {res['oom_kills_real']}   (* = outside x1.5 of the real median)"
    )


def _traces(doc: list[dict[str, Any]]) -> list[Trace]:
    out = []
    for d in doc:
        t = Trace(oom_kills=d["oom_kills"])
        t.procs = {k: (int(v[0]), int(v[1]), bool(v[2])) for k, v in d["procs"].items()}
        t.signals = [(int(a), str(b), int(c)) for a, b, c in d["signals"]]
        out.append(t)
    return out


def _fail(msg: str) -> NoReturn:
    print(f"pressure_vs_kernel: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="real runs per workload")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a real run may take")
    parser.add_argument("--real", type=Path, help="compare with real runs saved by --save-real (no real runs)")
    parser.add_argument("--save-real", type=Path, help="save the real runs (disk and kernel figures too) as JSON")
    parser.add_argument("--disk-mib-s", type=float, nargs=2, metavar=("WRITE", "READ"),
                        help="the disk's bandwidths instead of measuring them (or of the saved ones)")
    parser.add_argument("--sysctl", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the simulated scenario's [sysctl] table (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    args = parser.parse_args()
    names = args.workloads.split(",")
    for n in names:
        if n not in WORKLOADS:
            _fail(f"--workloads: unknown workload {n!r} (known: {', '.join(WORKLOADS)})")
    if args.runs < 1:
        _fail(f"--runs: must be >= 1, not {args.runs}")
    sysctl = {}
    for item in args.sysctl:
        key, eq, value = item.partition("=")
        if not eq or not key:
            _fail(f"--sysctl: {item!r} is not KEY=VALUE")
        sysctl[key] = value
    if args.real is not None:
        try:
            saved = json.loads(args.real.read_text())
            disk = tuple(float(x) for x in saved["disk_mib_s"])
            kernel = saved["kernel"]
            reals = {n: _traces(saved["runs"][n]) for n in names}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            _fail(f"--real {args.real}: not a file saved by --save-real with {','.join(names)} ({e!r})")
        if args.disk_mib_s:
            disk = tuple(args.disk_mib_s)
    else:
        if cgroup_mounts().v1_memory is None:
            _fail("needs the cgroup v1 memory controller (memory.pressure_level); the v2 side is not built")
        kernel = kernel_config()
        disk = tuple(args.disk_mib_s) if args.disk_mib_s else measure_disk_mib_s()
        reals = {}
        for n in names:
            reals[n] = []
            for run in range(args.runs):
                reals[n].append(run_real(WORKLOADS[n], run, args.timeout))
                print(f"{n} run {run}: done", file=sys.stderr)
        if args.save_real is not None:
            runs = {n: [asdict(t) for t in ts] for n, ts in reals.items()}
            doc = {"disk_mib_s": disk, "kernel": kernel, "runs": runs}
            args.save_real.write_text(json.dumps(doc))
    results = []
    for n in names:
        w = WORKLOADS[n]
        real = reals[n]
        rates = {p.name: _median([t.rates(w)[p.name] for t in real]) for p in w.procs if p.size_mib is not None}
        span = _median([max(t1 for _, t1, _ in t.procs.values()) for t in real]) / NSEC_PER_SEC
        try:
            sim = run_sim(w, rates, (float(disk[0]), float(disk[1])), 2 * span + 1.0, kernel, sysctl)
        except MemschedError as e:
            _fail(f"--sysctl: {e}")
        results.append(compare(w, real, sim) | {"rates_mib_s": rates, "disk_mib_s": list(disk), "kernel": kernel})
    if args.json:
        json.dump(results, sys.stdout, indent=1, sort_keys=True)
        print()
        return
    tick = f"a tick later ({kernel['tick_ns'] / 1e6:g} ms)" if kernel["tick_ns"] else "the next cond_resched()"
    print(
        f"kernel {kernel['release']} (preempt={kernel['preempt']}, HZ={kernel['hz']}; simulated as "
        f"{kernel['sim_kernel']}, vmpressure work at {tick}); disk {disk[0]:.0f} MiB/s write, {disk[1]:.0f} "
        f"MiB/s read; {len(reals[names[0]])} real runs per workload"
        + (f"; sysctl {sysctl}" if sysctl else "")
    )
    for res in results:
        print_table(res)


if __name__ == "__main__":
    main()
