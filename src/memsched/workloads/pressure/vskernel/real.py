"""The real side: one run of a :class:`~memsched.workloads.pressure.vskernel.describe.Workload` in fresh
cgroups of this machine, removed on the way out even when the run fails; and the machine facts the simulated
side needs (the disk's bandwidths, the kernel's version and preemption model).

Cgroup modes (:func:`cgroup_modes` tells which this machine can run):

``v1``
    a fresh v1 memory cgroup (:class:`memsched.live.cgroups.MemcgV1Child`) with the limit; the listener gets
    vmpressure eventfds on its ``memory.pressure_level``; counters ``memory.failcnt`` and ``oom_kill``.
``v2``
    a fresh v2 cgroup (:class:`~memsched.workloads.pressure.vskernel.v2.V2Cgroup`): ``memory.max`` is the
    limit when the v2 hierarchy has the memory controller, PSI triggers and samples on its
    ``memory.pressure``, counters from ``memory.events``. On a hybrid system whose v2 hierarchy lacks the
    memory controller, a v1 memcg twin sets the limit and gives the counters, and the v2 cgroup only the PSI
    (its ``memory.pressure`` exists without the controller; a task's stall is accounted in its v2 cgroup): the
    trace's mode is then ``v2-hybrid``. The processes run in ``<cgroup>/run`` (and its children), whose
    ``memory.pressure`` is the one sampled, while the triggers sit on ``<cgroup>``: both groups see the same
    tasks, and a reader of a group's PSI file steals that group's averaging update from its triggers —
    ``psi_show()`` moves ``avg_next_update`` on without ``update_triggers()``, which only ``psi_avgs_work()``
    calls, so unprivileged triggers on a file polled every 10 ms almost never fire (kernel/sched/psi.c, 6.18;
    measured: 0 events in 15 runs with the samples on the triggers' own cgroup).

The v1 memcg caps memory+swap (``memory.memsw.limit_in_bytes``) only when swap is on: with the memsw limit the
charge tries the memsw counter first (mm/memcontrol.c ``try_charge_memcg()``, 6.18) and that counter does not
count failures (``track_failcnt`` is set on the memory counter only, ``mem_cgroup_css_alloc()``), so
``failcnt`` would stay 0 however often the charge fails.

Processes run the programs of :mod:`memsched.live.pressure.load` (grower: ``anon_allocator`` until killed or
for its size; paced writer/reader: ``page_cache_writer`` / ``file_rereader`` at their rate); a writer or reader
without a rate is ``dd bs=1M`` (no interpreter start-up inside the phase: ``cat`` without a pipe for the
reader). Each is started by ``/bin/sh``, which moves itself into the cgroup(s) and ``exec``s the program, so a
phase starts within a millisecond of the workload; exits are waited for on pidfds (``pidfd_open``, 5.3+), so the
harness does not wake every half millisecond on a CPU the workload may share (what the kernel's scheduler
decides for the vmpressure kworker depends on who else runs there: see
``benchmarks/pressure_vs_kernel_trace.py``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from memsched.errors import ConfigError
from memsched.live.capabilities import psi_privileged
from memsched.live.cgroups import MemcgV1Child, cgroup_mounts
from memsched.live.pressure.load import anon_allocator, file_rereader, page_cache_writer
from memsched.live.roots import LiveRoots, try_read_text
from memsched.sim.mm.version import KERNELS
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.pressure.vskernel.compare import TAIL_V2_NS
from memsched.workloads.pressure.vskernel.describe import Proc, Trace, Workload
from memsched.workloads.pressure.vskernel.v2 import V2Cgroup, v2_memory_controller
from memsched.workloads.pressure.vskernel.watch import Watcher

__all__ = [
    "CGROUP_MODES",
    "DISK_METHOD",
    "cgroup_modes",
    "kernel_config",
    "measure_disk_mib_s",
    "pick_mode",
    "run_real",
]

CGROUP_MODES = ("v1", "v2", "auto")


def cgroup_modes(roots: LiveRoots | None = None) -> dict[str, str]:
    """The modes this machine can run -> what each uses (a mode that cannot run is absent)."""
    mounts = cgroup_mounts(roots)
    out = {}
    if mounts.v1_memory is not None:
        out["v1"] = f"vmpressure on a v1 memcg under {mounts.v1_memory}"
    if mounts.v2 is not None:
        if v2_memory_controller(mounts.v2):
            out["v2"] = f"PSI and memory.events of a v2 cgroup under {mounts.v2} (memory.max)"
        elif mounts.v1_memory is not None:
            out["v2"] = f"PSI of a v2 cgroup under {mounts.v2}; limit and counters from a v1 memcg twin (hybrid)"
    return out


def pick_mode(requested: str, roots: LiveRoots | None = None) -> str:
    """``v1``/``v2`` if this machine can run it, ``auto``: v2 with its memory controller, else v1, else hybrid v2."""
    modes = cgroup_modes(roots)
    if requested == "auto":
        mounts = cgroup_mounts(roots)
        if mounts.v2 is not None and v2_memory_controller(mounts.v2):
            return "v2"
        requested = "v1" if "v1" in modes else "v2"
    if requested not in CGROUP_MODES:
        raise ConfigError("--cgroup", requested, f"must be one of {', '.join(CGROUP_MODES)}")
    if requested not in modes:
        why = "no v1 memory controller is mounted" if requested == "v1" else "no usable v2 hierarchy"
        raise ConfigError("--cgroup", requested, f"cannot run here: {why}")
    return requested


def _which(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError("program", name, "is not installed")
    return found


def argv_of(p: Proc, files: dict[str, Path]) -> list[str]:
    """The program of one process (see the module's docstring)."""
    rate = None if p.rate_mib_s is None else p.rate_mib_s * MIB
    if p.kind == "grower":
        size = None if p.size_mib is None else p.size_mib * MIB
        return anon_allocator(size, hold_s=p.hold_s, rate_bytes_s=rate)
    assert p.size_mib is not None
    path = files[p.name if p.kind == "writer" else str(p.file)]
    if rate is not None:
        if p.kind == "writer":
            return page_cache_writer(path, p.size_mib * MIB, rate_bytes_s=rate)
        return file_rereader(path, 1, rate_bytes_s=rate)
    if p.kind == "writer":
        return [_which("dd"), "if=/dev/zero", f"of={path}", "bs=1M", f"count={p.size_mib}", "status=none"]
    return [_which("dd"), f"if={path}", "of=/dev/null", "bs=1M", "status=none"]


def _swap_active(roots: LiveRoots | None) -> bool:
    """Whether any swap is on (``/proc/swaps`` lists more than its header)."""
    text, _ = try_read_text((roots or LiveRoots()).proc("swaps"))
    return text is None or len(text.strip().splitlines()) > 1


def _in_cgroups(procs_files: list[Path], argv: list[str]) -> list[str]:
    """``/bin/sh`` that writes 0 (itself) into each ``cgroup.procs`` and ``exec``s ``argv``."""
    moves = "".join(f'echo 0 > "${i}" && ' for i in range(1, len(procs_files) + 1))
    return ["/bin/sh", "-c", f'{moves}shift {len(procs_files)} && exec "$@"', "sh", *map(str, procs_files), *argv]


def run_real(w: Workload, run: int, timeout_s: float, mode: str = "v1", roots: LiveRoots | None = None) -> Trace:
    """One real run of ``w`` in fresh cgroups (``mode`` ``v1`` or ``v2``); they are removed on the way out,
    also when the run fails or times out (:class:`TimeoutError`)."""
    name = f"memsched-vs-kernel-{os.getpid()}-{run}"
    limit = w.limit_mib * MIB
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memsched-vs-kernel-", dir="/var/tmp")))
        dirs: dict[str, list[Path]] = {}
        memsw = _swap_active(roots)
        if mode == "v1":
            cg1 = stack.enter_context(MemcgV1Child(name, limit_bytes=limit, roots=roots, memsw=memsw))
            dirs[""] = [cg1.path]
            for child, lim in w.children:
                dirs[child] = [cg1.child(child, limit_bytes=None if lim is None else lim * MIB)]
            watch: dict[str, Any] = {"vmpressure": cg1.path, "counters": cg1.path}
        else:
            hybrid = not v2_memory_controller(cgroup_mounts(roots).v2 or Path("/nonexistent"))
            cg2 = V2Cgroup(name, limit_bytes=None if hybrid else limit, roots=roots)
            cg1v = MemcgV1Child(name, limit_bytes=limit, roots=roots, memsw=memsw) if hybrid else None
            if cg1v is not None:
                stack.enter_context(cg1v)
            stack.enter_context(cg2)
            run_dir = cg2.child("run")  # the samples' PSI group: see the module's docstring
            dirs[""] = [run_dir] + ([cg1v.path] if cg1v else [])
            for child, lim in w.children:
                lb = None if lim is None else lim * MIB
                dirs[child] = [cg2.child(f"run/{child}", limit_bytes=None if hybrid else lb)]
                if cg1v is not None:
                    dirs[child].append(cg1v.child(child, limit_bytes=lb))
            counters = cg1v.path if cg1v is not None else cg2.path
            watch = {"psi": cg2.path, "samples": run_dir, "counters": counters, "privileged": psi_privileged(roots)}
            mode = "v2-hybrid" if hybrid else "v2"
        files = {p.name: tmp / f"{p.name}.data" for p in w.procs if p.kind == "writer"}
        trace = Trace(mode=mode)
        t0 = time.monotonic_ns()
        watcher = Watcher(t0, **watch)
        stack.callback(watcher.close)
        running: dict[str, subprocess.Popen[bytes]] = {}

        def reap() -> None:
            for proc in running.values():
                proc.kill()
                proc.wait()

        stack.callback(reap)
        pending = list(w.procs)
        deadline = time.monotonic() + timeout_s
        exits = select.poll()  # a pidfd is readable once its process has exited: no polling loop
        pidfds: dict[int, str] = {}

        def close_pidfds() -> None:
            for fd in pidfds:
                os.close(fd)

        stack.callback(close_pidfds)
        while pending or running:
            for p in [p for p in pending if p.after is None or trace.procs.get(p.after, (0, -1, False))[1] >= 0]:
                pending.remove(p)
                argv = _in_cgroups([d / "cgroup.procs" for d in dirs[p.memcg]], argv_of(p, files))
                trace.procs[p.name] = (time.monotonic_ns() - t0, -1, False)
                running[p.name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
                fd = os.pidfd_open(running[p.name].pid)
                pidfds[fd] = p.name
                exits.register(fd, select.POLLIN)
            left_ms = (deadline - time.monotonic()) * 1000
            if left_ms <= 0:
                raise TimeoutError(f"{w.name} run {run} did not finish in {timeout_s} s")
            for fd, _ in exits.poll(left_ms):
                pname = pidfds.pop(fd)
                exits.unregister(fd)
                os.close(fd)
                rc = running.pop(pname).wait()
                trace.procs[pname] = (trace.procs[pname][0], time.monotonic_ns() - t0, rc == -9)
        time.sleep(0.1 if mode == "v1" else TAIL_V2_NS / NSEC_PER_SEC)  # the last work items, the last window
        watcher.close()
        trace.signals = sorted(watcher.signals)
        trace.psi, trace.counters = watcher.psi, watcher.counters
        # oom_kill is hierarchical in both (memory_events[MEMCG_OOM_KILL], mm/memcontrol.c, mm/memcontrol-v1.c)
        trace.oom_kills = trace.counters[-1][1].get("oom_kill", 0) if trace.counters else 0
    return trace


#: What :func:`measure_disk_mib_s` measures (saved with the real runs; files without it were measured with
#: one synchronous ``O_DIRECT`` request of 1 MiB at a time, ``dd oflag=direct``/``iflag=direct``).
DISK_METHOD = "page-cache"


def measure_disk_mib_s(tmpdir: str = "/var/tmp", *, trials: int = 3, size_mib: int = 256) -> tuple[float, float]:
    """The disk's write and read bandwidths (MiB/s) as the kernel's own page-cache paths get them, the median
    of ``trials``:

    * write: ``size_mib`` of a file written with ``write()`` (dirty page cache, below the background dirty
      threshold on a machine with a few GiB), then ``fdatasync()`` timed: ``->writepages()`` submits the
      pages as the flusher does, many requests in flight;
    * read: the file's cached pages dropped (``POSIX_FADV_DONTNEED``), then read back 128 KiB at a time (as
      ``cat``), so the kernel's readahead (mm/readahead.c: windows ramped up to the device's
      ``read_ahead_kb``, the next one started asynchronously) feeds the reader.

    One synchronous ``O_DIRECT`` request at a time gives less: on this project's test VM, in 12 paired
    trials, 1.2-3.5 times less for writing (median 1.9) and a read figure within 0.3-1.8 times the readahead
    one."""
    path = Path(tmpdir) / f"memsched-vs-kernel-disk-{os.getpid()}"
    chunk = b"\0" * MIB
    writes: list[float] = []
    reads: list[float] = []
    try:
        for _ in range(trials):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for _ in range(size_mib):
                    os.write(fd, chunk)
                t0 = time.monotonic()
                os.fdatasync(fd)
                writes.append(size_mib / max(time.monotonic() - t0, 1e-9))
            finally:
                os.close(fd)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                t0 = time.monotonic()
                while os.read(fd, 128 * 1024):
                    pass
                reads.append(size_mib / max(time.monotonic() - t0, 1e-9))
            finally:
                os.close(fd)
    finally:
        path.unlink(missing_ok=True)
    return sorted(writes)[len(writes) // 2], sorted(reads)[len(reads) // 2]


def kernel_config() -> dict[str, Any]:
    """The running kernel's version and the scheduling facts the simulated work item depends on.

    ``schedule_work()`` queues ``vmpressure_work_fn()`` on the reclaiming CPU's pool (``system_wq`` is
    per-CPU). A kworker without EEVDF lag gets the CPU from a running reclaimer only once the reclaimer's
    deadline has passed, which the tick (``CONFIG_HZ``) checks, so windows filled meanwhile merge into one
    snapshot; one with lag (after such a wait) preempts at the reclaimer's next preemption point. The
    simulator models both (sim/mm/vmpressure.py) and is given this kernel's ``CONFIG_HZ`` (``sched_hz``).
    Measured here (6.18, HZ=250, PREEMPT_NONE, 64 MiB v1 memcg): ``dd``
    writing 400 MiB scans 88-89 k file pages (``pgscan_file`` of /proc/vmstat), 172-174 windows of 512 pages,
    but its listener gets 91-104 events; a re-read scans 56-72 k pages for 64-76 events. The work also runs
    whenever the reclaimer sleeps."""
    release = os.uname().release
    text = ""
    with contextlib.suppress(OSError):
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
            "tick_ns": NSEC_PER_SEC // hz if preempt == "none" else 0, "psi_privileged": psi_privileged()}
