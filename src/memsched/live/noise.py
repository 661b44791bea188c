"""Scheduling noise per CPU, measured from user space in the manner of the kernel's osnoise tracer.

osnoise (``Documentation/trace/osnoise-tracer.rst``, kernel/trace/trace_osnoise.c) runs a kernel thread per
CPU that reads the time in a tight loop with preemption enabled; any gap between two consecutive reads longer
than ``tracing_threshold`` (default 5 µs) is *noise*: an interrupt, a softirq, another thread, the
hypervisor. It reports per CPU the runtime, the summed noise, ``% CPU available`` = 100 · (runtime − noise) /
runtime, the longest single noise, and counts by source (HW, NMI, IRQ, SIRQ, THREAD).

Here the loop is Python: ``time.perf_counter_ns()`` (``clock_gettime(CLOCK_MONOTONIC)`` through the vDSO)
in a ``while`` loop with the garbage collector off, the process pinned to one CPU with
``sched_setaffinity``. The loop's own period is the **resolution**: gaps shorter than about one iteration
cannot be told from the loop's work. Every run reports it: ``resolution_ns`` is the mean uninterrupted
iteration of the measuring loop itself, ``floor_ns`` the smallest delta between two back-to-back clock reads
(a calibration pass). Both must stay well under the threshold; on the project's 2-CPU 6.18 VM the loop
iterates every ~100 ns and the floor is ~60 ns, 50× finer than the 5 µs threshold
(``benchmarks/noise_resolution.py`` measures it).

Sources cannot be traced from user space; instead each CPU's sample records how many interrupts
(``/proc/interrupts``, NMI separately), softirqs (``/proc/softirqs``) and involuntary context switches of the
measuring thread (``/proc/thread-self/status``, the THREAD column's cause) happened during its run.

Deviations from osnoise: the loop runs in user space, so a page fault or a Python-internal pause would count
as noise (the loop allocates only when it records a gap, and the GC is off); HW noise (the hypervisor, SMIs)
is not separated from the rest; by default all CPUs are measured at once by one forked child each (osnoise's
per-CPU threads), ``sequential=True`` measures one CPU after another in this process.

**Nothing spins on after memsched.** A measuring child takes the default action of SIGINT, SIGTERM and SIGHUP
(the parent's handlers would only raise an exception inside the loop), so a Ctrl-C to the process group ends it
at once; one that memsched's caller ignored (a background job of a script, ``nohup``) stays ignored, as it is in
memsched. The parent never waits for a child to finish its duration once it is interrupted: it SIGKILLs and
reaps every child it has not collected. For ``kill -9`` of memsched, each child asks for SIGKILL when its parent
dies (``PR_SET_PDEATHSIG``, :mod:`memsched.live.pdeathsig`), as ``rt run``'s command does.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from memsched.errors import ConfigError, KernelError
from memsched.live.isolation import CpuIsolation, cpu_isolation
from memsched.live.oserrors import kill_and_reap
from memsched.live.pdeathsig import set_parent_death_signal
from memsched.live.procfs import parse_interrupts, parse_softirqs, parse_status
from memsched.live.roots import LiveRoots, try_read_text
from memsched.live.sigwake import SignalWakeup
from memsched.uapi.cpumask import format_cpulist

__all__ = [
    "DEFAULT_THRESHOLD_NS",
    "CpuNoise",
    "NoiseReport",
    "SpinResult",
    "calibrate",
    "measure_cpu",
    "measure_noise",
    "spin",
]

#: osnoise's default ``tracing_threshold`` when none is set (osnoise-tracer.rst).
DEFAULT_THRESHOLD_NS = 5_000
_CALIBRATION_SAMPLES = 20_000

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class SpinResult:
    """One timing loop: how long it ran, how many iterations, and each gap above the threshold."""

    runtime_ns: int
    loops: int
    gaps_ns: tuple[int, ...]

    @property
    def noise_ns(self) -> int:
        return sum(self.gaps_ns)

    @property
    def max_single_ns(self) -> int:
        return max(self.gaps_ns, default=0)


def spin(duration_ns: int, threshold_ns: int, clock: Clock = time.perf_counter_ns) -> SpinResult:
    """Read ``clock`` in a tight loop for ``duration_ns``; keep every gap longer than ``threshold_ns``.

    Written for speed: local names only, one comparison per iteration, allocation only when a gap is recorded.
    """
    gaps: list[int] = []
    record = gaps.append
    loops = 0
    start = prev = clock()
    end = start + duration_ns
    while prev < end:
        now = clock()
        if now - prev > threshold_ns:
            record(now - prev)
        prev = now
        loops += 1
    return SpinResult(prev - start, loops, tuple(gaps))


def calibrate(samples: int = _CALIBRATION_SAMPLES, clock: Clock = time.perf_counter_ns) -> int:
    """The clock floor: the smallest delta between two back-to-back reads in a minimal Python loop."""
    if samples < 1:
        raise ConfigError("samples", samples, "must be >= 1")
    deltas = [0] * samples
    prev = clock()
    for i in range(samples):
        now = clock()
        deltas[i] = now - prev
        prev = now
    return min(deltas)


# --------------------------------------------------------------------------------------------- counters


@dataclass(frozen=True, slots=True)
class _Counters:
    irq: int | None
    nmi: int | None
    softirq: int | None
    thread: int | None


def _read_counters(cpu: int, roots: LiveRoots) -> _Counters:
    irq: int | None = None
    nmi: int | None = None
    softirq: int | None = None
    thread: int | None = None
    text, _ = try_read_text(roots.proc("interrupts"), roots)
    if text is not None and cpu in (counts := parse_interrupts(text)):
        irq, nmi = counts[cpu]
    text, _ = try_read_text(roots.proc("softirqs"), roots)
    if text is not None:
        softirq = parse_softirqs(text).get(cpu)
    path = roots.proc("thread-self", "status")
    text, _ = try_read_text(path, roots)
    if text is not None:
        thread = parse_status(text, source=str(path)).nonvoluntary_ctxt_switches
    return _Counters(irq, nmi, softirq, thread)


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


# --------------------------------------------------------------------------------------------- measurement


@dataclass(frozen=True, slots=True)
class CpuNoise:
    """osnoise's per-CPU line, plus the counters seen during the run and the loop's resolution."""

    cpu: int
    runtime_ns: int
    noise_ns: int
    max_single_ns: int
    count: int
    loops: int
    floor_ns: int
    irq: int | None
    nmi: int | None
    softirq: int | None
    thread: int | None
    threshold_ns: int

    @property
    def cpu_available_pct(self) -> float:
        return 100.0 * (self.runtime_ns - self.noise_ns) / self.runtime_ns if self.runtime_ns else 0.0

    @property
    def resolution_ns(self) -> float:
        """Mean uninterrupted iteration of the measuring loop, (runtime − noise) / (loops − gaps): the
        sampling interval, hence the shortest interruption the loop can tell from its own work."""
        clean = self.loops - self.count
        return (self.runtime_ns - self.noise_ns) / clean if clean > 0 else float("nan")

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["cpu_available_pct"] = round(self.cpu_available_pct, 4)
        d["resolution_ns"] = round(self.resolution_ns, 1)
        return d


def measure_cpu(
    cpu: int, duration_ns: int, threshold_ns: int = DEFAULT_THRESHOLD_NS, roots: LiveRoots | None = None
) -> CpuNoise:
    """Pin the calling thread to ``cpu``, calibrate, spin for ``duration_ns``; restore affinity and GC."""
    roots = roots or LiveRoots()
    old_affinity = os.sched_getaffinity(0)
    gc_was_enabled = gc.isenabled()
    try:
        os.sched_setaffinity(0, {cpu})
        gc.disable()
        floor = calibrate()
        before = _read_counters(cpu, roots)
        result = spin(duration_ns, threshold_ns)
        after = _read_counters(cpu, roots)
    finally:
        if gc_was_enabled:
            gc.enable()
        os.sched_setaffinity(0, old_affinity)
    return CpuNoise(
        cpu=cpu,
        runtime_ns=result.runtime_ns,
        noise_ns=result.noise_ns,
        max_single_ns=result.max_single_ns,
        count=len(result.gaps_ns),
        loops=result.loops,
        floor_ns=floor,
        irq=_delta(after.irq, before.irq),
        nmi=_delta(after.nmi, before.nmi),
        softirq=_delta(after.softirq, before.softirq),
        thread=_delta(after.thread, before.thread),
        threshold_ns=threshold_ns,
    )


#: What ends a measuring child: the signals memsched turns into exceptions (KeyboardInterrupt, Terminated).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[Iterable[int]]:
    """Hold the stop signals pending while children are forked, so that the parent takes one only once every
    child is recorded (and can be killed), and a child only once it has its own dispositions; yields the mask to
    restore."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield previous
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _become_measuring_child(parent: int, sigmask: Iterable[int]) -> None:
    """In a forked child, before it measures: die of the stop signals instead of raising in the loop (a signal
    ignored since memsched started stays ignored), and die with the parent."""
    for sig in _STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    if not set_parent_death_signal(signal.SIGKILL, parent):
        os._exit(128 + signal.SIGKILL)  # memsched died before the prctl: measure nothing
    signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)


def _measure_in_child(
    cpu: int, duration_ns: int, threshold_ns: int, roots: LiveRoots, sigmask: Iterable[int]
) -> tuple[int, int]:
    """Fork a child that measures ``cpu`` and writes the result as JSON to a pipe: ``(pid, read_fd)``. Called
    with the stop signals blocked; the child restores ``sigmask`` once its dispositions are set."""
    parent = os.getpid()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which always _exits
        code = 1
        try:
            os.close(read_fd)
            _become_measuring_child(parent, sigmask)
            data = json.dumps(asdict(measure_cpu(cpu, duration_ns, threshold_ns, roots))).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
            code = 0
        except BaseException as e:  # report, never return into the parent's code
            with contextlib.suppress(OSError):
                os.write(write_fd, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _read_to_eof(fd: int, wake: SignalWakeup) -> bytes:
    chunks = []
    while chunk := wake.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _result(cpu: int, data: bytes, status: int) -> CpuNoise:
    """The child's measurement, or :class:`KernelError` saying why there is none."""
    if not data:
        how = (
            f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
            if os.WIFSIGNALED(status)
            else f"exited with status {os.waitstatus_to_exitcode(status)}"
        )
        raise KernelError(0, f"noise measurement of CPU {cpu} failed: the measuring child {how} without a result")
    doc = json.loads(data)
    if "error" in doc:
        raise KernelError(0, f"noise measurement failed: {doc['error']}")
    return CpuNoise(**doc)


def _measure_in_children(
    cpus: Sequence[int], duration_ns: int, threshold_ns: int, roots: LiveRoots
) -> tuple[CpuNoise, ...]:
    """One child per CPU, all at once. Each child's pipe is read to its end (the child writes once, then exits)
    and the child reaped; an interruption or failure meanwhile SIGKILLs and reaps every child not yet reaped,
    without waiting for the rest of the duration."""
    running: dict[int, int] = {}  # pid -> read end of its pipe, until the child is reaped
    collected: list[CpuNoise] = []
    try:
        with _stop_signals_blocked() as sigmask:
            for cpu in cpus:
                pid, fd = _measure_in_child(cpu, duration_ns, threshold_ns, roots, sigmask)
                running[pid] = fd
        with SignalWakeup() as wake:  # a stop signal just before a wait below ends it at once (live/sigwake.py)
            for cpu, (pid, fd) in zip(cpus, list(running.items()), strict=True):
                data = _read_to_eof(fd, wake)
                status = wake.waitpid(pid)
                os.close(running.pop(pid))
                collected.append(_result(cpu, data, status))
    finally:
        for pid, fd in running.items():
            kill_and_reap(pid)
            os.close(fd)
    return tuple(collected)


@dataclass(frozen=True, slots=True)
class NoiseReport:
    """Noise of every measured CPU and the machine's isolation state."""

    cpus: tuple[CpuNoise, ...]
    isolation: CpuIsolation
    duration_ns: int
    threshold_ns: int
    parallel: bool
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "duration_ns": self.duration_ns,
            "threshold_ns": self.threshold_ns,
            "parallel": self.parallel,
            "isolation": self.isolation.to_dict(),
            "cpus": [dict(c.to_dict(), isolation=self.isolation.describe(c.cpu)) for c in self.cpus],
            "resolution_ns": round(max((c.resolution_ns for c in self.cpus), default=0.0), 1),
            "floor_ns": min((c.floor_ns for c in self.cpus), default=None),
            "notes": list(self.notes),
        }


def measure_noise(
    cpus: Iterable[int] | None = None,
    *,
    duration_ns: int,
    threshold_ns: int = DEFAULT_THRESHOLD_NS,
    sequential: bool = False,
    roots: LiveRoots | None = None,
) -> NoiseReport:
    """Measure every CPU in ``cpus`` (default: all CPUs this process may use) for ``duration_ns`` each."""
    roots = roots or LiveRoots()
    if duration_ns <= 0:
        raise ConfigError("--duration", duration_ns, "must be > 0")
    if threshold_ns <= 0:
        raise ConfigError("--threshold", threshold_ns, "must be > 0")
    allowed = os.sched_getaffinity(0)
    chosen: Sequence[int] = sorted(allowed if cpus is None else set(cpus))
    bad = [c for c in chosen if c not in allowed]
    if bad or not chosen:
        raise ConfigError(
            "--cpus", format_cpulist(bad), f"must be CPUs this process may run on ({format_cpulist(allowed)})"
        )
    iso = cpu_isolation(roots)
    notes = []
    if sequential or len(chosen) == 1:
        results = tuple(measure_cpu(c, duration_ns, threshold_ns, roots) for c in chosen)
    else:
        results = _measure_in_children(chosen, duration_ns, threshold_ns, roots)
    worst = max(c.resolution_ns for c in results)
    if worst * 4 > threshold_ns:
        notes.append(
            f"the loop resolves only ~{worst:.0f} ns, close to the {threshold_ns} ns threshold: "
            "gaps near the threshold "
            "are blurred by the loop's own period"
        )
    return NoiseReport(
        results,
        iso,
        duration_ns,
        threshold_ns,
        parallel=not sequential and len(chosen) > 1,
        notes=tuple(notes),
    )
