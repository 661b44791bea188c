"""rt-app JSON files on the exact machine (``memsched rt sim --rt-app FILE``).

Reads the format of rt-app (``scheduler-tools/rt-app``, ``doc/tutorial.txt``): ``{"global": {...},
"tasks": {"name": {...}}}`` with every time in µs. Thread keys: ``instance``, ``loop``, ``policy``,
``priority`` (the nice value for SCHED_OTHER), ``dl-runtime`` / ``dl-period`` (default: the runtime) /
``dl-deadline`` (default: the period), ``cpus``, ``delay`` and ``phases``; events: ``run`` and ``runtime``,
``sleep`` (``Nanosleep``), ``timer`` (an absolute periodic release, ``Timer``), ``lock`` / ``unlock`` and
``yield``. Since 6.12 rt-app passes ``dl-runtime`` as ``sched_runtime`` for fair threads too, which sets a
custom EEVDF slice. The same file drives rt-app on a real kernel.

Not supported: rt-app's other events (``mem``, ``iorun``, ``wait``/``signal``, barriers, ...) and a
``global.duration`` of -1; ``run`` (calibrated loops) and ``runtime`` (wall time) are both CPU time here.

**Validation and limits.** The whole file is checked before the first thread is created, and every error
names the file and the key (``tasks.<name>.phases.<phase>.<event>``): types (a number where rt-app takes one;
``NaN`` and ``Infinity``, which Python's JSON parser would accept, are refused), ranges (FIFO/RR priority
1..99, nice -20..19, SCHED_DEADLINE parameters by ``__checkparam_dl``), CPU ids within the machine, locks
released by their holder. A simulation must be able to end:

* every loop iteration of a thread takes time: at least one ``run``/``runtime``/``sleep`` > 0 or a ``timer``
  (a program of zero-time events — ``"sleep": 0``, ``"run": 0``, a bare lock/unlock — spun forever);
* at most :data:`MAX_ZERO_TIME_RUN` zero-time events in a row (each ``yield`` recursed through the scheduler:
  5,000 of them overflowed Python's stack);
* at most :data:`MAX_THREADS` threads, :data:`MAX_PROGRAM_EVENTS` events per thread program (phase loops
  expanded), times up to :data:`MAX_DURATION_S` seconds;
* an estimate of the scheduler events the run needs — for each thread, the iterations that fit in the duration
  at its shortest possible iteration (sum of runs and sleeps, or its timer period) times its events, plus one
  tick per CPU and millisecond — of at most :data:`MAX_EVENTS` (about 100 s on the 2-CPU development VM, which
  simulates ~100,000 events a second).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsched.admission import checkparam_dl
from memsched.config import check_name, parse_json, read_input_file
from memsched.errors import ConfigError, KernelError, UnknownNameError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Lock, Nanosleep, Phase, Run, Timer, Unlock, Yield
from memsched.sim.sched.sched import SchedTask
from memsched.uapi.sched import SchedAttr, SchedPolicy
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC, NSEC_PER_USEC
from memsched.workloads.rt.base import RtBuilt

__all__ = [
    "MAX_DURATION_S",
    "MAX_EVENTS",
    "MAX_PROGRAM_EVENTS",
    "MAX_THREADS",
    "MAX_ZERO_TIME_RUN",
    "load_rt_app",
    "parse_rt_app",
]

_POLICIES = {
    "SCHED_OTHER": SchedPolicy.NORMAL,
    "SCHED_NORMAL": SchedPolicy.NORMAL,
    "SCHED_BATCH": SchedPolicy.BATCH,
    "SCHED_IDLE": SchedPolicy.IDLE,
    "SCHED_FIFO": SchedPolicy.FIFO,
    "SCHED_RR": SchedPolicy.RR,
    "SCHED_DEADLINE": SchedPolicy.DEADLINE,
}
_THREAD_KEYS = {
    "instance", "loop", "policy", "priority", "dl-runtime", "dl-period", "dl-deadline", "cpus", "delay",
    "phases", "util_min", "util_max", "nodes_membind", "taskgroup",
}  # fmt: skip

#: Threads in one file (instances included).
MAX_THREADS = 1024
#: Events in one thread's program, phase loops expanded.
MAX_PROGRAM_EVENTS = 10_000
#: Zero-time events (yield, lock, unlock, run/sleep of 0) in a row, across loop iterations.
MAX_ZERO_TIME_RUN = 64
#: The longest ``global.duration``, and the longest time any event or delay may name.
MAX_DURATION_S = 3600
#: The most scheduler events a file may ask for (see the module docstring).
MAX_EVENTS = 10_000_000
_MAX_US = MAX_DURATION_S * 1_000_000
_MAX_LOOP = (1 << 31) - 1  # rt-app's loop counters are ints


@dataclass(frozen=True)
class _Thread:
    """One validated thread description (before ``instance`` copies are spawned)."""

    name: str
    program: list[Phase]
    loops: int
    attr: SchedAttr
    job_deadline_ns: int
    cpus: list[int] | None
    delay_ns: int
    instances: int


def _us(v: Any, field_: str, src: str) -> int:
    """A time in µs (an int or a finite float, 0..MAX_DURATION_S s) as ns."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(field_, v, "must be a number of microseconds", source=src)
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(field_, v, "must be a finite number of microseconds", source=src)
    if not 0 <= v <= _MAX_US:
        raise ConfigError(field_, v, f"must be in 0..{_MAX_US} microseconds ({MAX_DURATION_S} s)", source=src)
    return round(v * NSEC_PER_USEC)


def _int(v: Any, field_: str, src: str, lo: int, hi: int, what: str = "an integer") -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(field_, v, f"must be {what} in {lo}..{hi}", source=src)
    if not lo <= v <= hi:
        raise ConfigError(field_, v, f"must be in {lo}..{hi}", source=src)
    return v


def _events(obj: Mapping[str, Any], src: str, where: str) -> list[Phase]:
    out: list[Phase] = []
    for key, val in obj.items():
        if key in _THREAD_KEYS:
            continue
        field_ = f"{where}.{key}"
        if key.startswith("runtime"):
            out.append(Run(_us(val, field_, src)))  # wall-clock run, approximated as CPU time
        elif key.startswith("run"):
            out.append(Run(_us(val, field_, src)))
        elif key.startswith("sleep"):
            out.append(Nanosleep(_us(val, field_, src)))
        elif key.startswith("timer"):
            if not isinstance(val, Mapping) or "period" not in val:
                raise ConfigError(field_, val, 'must be {"ref": ..., "period": us}', source=src)
            period = val["period"]
            if not isinstance(period, bool) and isinstance(period, int | float) and not period > 0:
                raise ConfigError(f"{field_}.period", period, "must be a number of microseconds > 0", source=src)
            out.append(Timer(max(1, _us(period, f"{field_}.period", src))))
        elif key.startswith(("unlock", "lock")):
            check_name(val, field_, source=src, what="mutex name")
            out.append(Unlock(val) if key.startswith("unlock") else Lock(val))
        elif key.startswith("yield"):
            out.append(Yield())
        else:
            raise ConfigError(
                field_, val, "is not a supported rt-app event (run, runtime, sleep, timer, lock, unlock, yield)",
                source=src,
            )  # fmt: skip
    return out


def _program(spec: Mapping[str, Any], src: str, where: str) -> list[Phase]:
    """The thread's events, phase loops expanded (bounded by :data:`MAX_PROGRAM_EVENTS`)."""
    if "phases" not in spec:
        return _events(spec, src, where)
    phases = spec["phases"]
    if not isinstance(phases, Mapping):
        raise ConfigError(f"{where}.phases", phases, "must be an object of phases", source=src)
    prog: list[Phase] = []
    for pname, ph in phases.items():
        pwhere = f"{where}.phases.{pname}"
        if not isinstance(ph, Mapping):
            raise ConfigError(pwhere, ph, "must be an object of events", source=src)
        evs = _events(ph, src, pwhere)
        loop = _int(ph.get("loop", 1), f"{pwhere}.loop", src, 1, MAX_PROGRAM_EVENTS)
        if len(prog) + len(evs) * loop > MAX_PROGRAM_EVENTS:
            raise ConfigError(
                f"{pwhere}.loop", loop, f"expands the program beyond {MAX_PROGRAM_EVENTS} events", source=src
            )
        prog += evs * loop
    return prog


def _iteration_ns(prog: list[Phase]) -> int:
    """The shortest time one loop iteration can take: its runs and sleeps, or its longest timer period."""
    busy = sum(p.ns for p in prog if isinstance(p, Run | Nanosleep))
    timer = max((p.period for p in prog if isinstance(p, Timer)), default=0)
    return max(busy, timer)


def _check_program(prog: list[Phase], src: str, where: str) -> None:
    """Each iteration takes time; zero-time events come in short runs; locks are released by their holder."""
    if _iteration_ns(prog) == 0:
        raise ConfigError(
            where, "zero-time program",
            "must take time in every loop: a run, runtime or sleep > 0, or a timer (it would spin forever)",
            source=src,
        )  # fmt: skip
    longest = streak = 0
    for p in prog + prog:  # twice: a streak can wrap from one iteration into the next
        zero = not (isinstance(p, Timer) or (isinstance(p, Run | Nanosleep) and p.ns > 0))
        streak = streak + 1 if zero else 0
        longest = max(longest, streak)
    if longest > MAX_ZERO_TIME_RUN:
        raise ConfigError(
            where, f"{longest} zero-time events in a row",
            f"may have at most {MAX_ZERO_TIME_RUN} events in a row that take no time (yield, lock, unlock, 0 µs)",
            source=src,
        )  # fmt: skip
    held: list[str] = []
    for p in prog:
        if isinstance(p, Lock):
            if p.name in held:
                raise ConfigError(where, p.name, "must not lock a mutex it already holds (deadlock)", source=src)
            held.append(p.name)
        elif isinstance(p, Unlock):
            if p.name not in held:
                raise ConfigError(where, p.name, "must not unlock a mutex it does not hold", source=src)
            held.remove(p.name)
    if held:
        raise ConfigError(where, held[0], "must unlock every mutex it locks within one loop", source=src)


def _attr(spec: Mapping[str, Any], policy: SchedPolicy, src: str, where: str) -> tuple[SchedAttr, int]:
    """The thread's ``sched_attr`` and its job deadline (SCHED_DEADLINE), checked as the kernel would."""
    if policy == SchedPolicy.DEADLINE:
        runtime = spec.get("dl-runtime", 0)
        period = spec.get("dl-period", runtime)
        deadline = spec.get("dl-deadline", period)
        rt = _us(runtime, f"{where}.dl-runtime", src)
        per = _us(period, f"{where}.dl-period", src)
        dl = _us(deadline, f"{where}.dl-deadline", src)
        attr = SchedAttr.deadline(rt, dl, per)
        rule = checkparam_dl(attr)
        if rule is not None:
            raise ConfigError(
                f"{where}.dl-runtime/dl-deadline/dl-period", f"{runtime}/{deadline}/{period} us",
                f"are refused by __checkparam_dl: {rule}", source=src,
            )  # fmt: skip
        return attr, dl
    if policy in (SchedPolicy.FIFO, SchedPolicy.RR):
        prio = _int(spec.get("priority", 0), f"{where}.priority", src, 1, 99, "a realtime priority")
        return SchedAttr(sched_policy=policy, sched_priority=prio), 0
    nice = _int(spec.get("priority", 0), f"{where}.priority", src, -20, 19, "a nice value")
    # rt-app passes dl-runtime as sched_runtime for fair threads too: a custom EEVDF slice (6.12+)
    slice_ns = 0
    if "dl-runtime" in spec and policy != SchedPolicy.IDLE:
        slice_ns = _us(spec["dl-runtime"], f"{where}.dl-runtime", src)
    return SchedAttr(
        sched_policy=policy, sched_nice=nice if policy != SchedPolicy.IDLE else 0, sched_runtime=slice_ns
    ), 0


def _cpus(v: Any, ncpu: int, src: str, where: str) -> list[int] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v or len(v) > ncpu:
        raise ConfigError(f"{where}.cpus", v, f"must be a non-empty list of CPU ids in 0..{ncpu - 1}", source=src)
    for c in v:
        _int(c, f"{where}.cpus", src, 0, ncpu - 1, "a CPU id")
    return list(v)


def _duration(glob: Mapping[str, Any], src: str) -> int:
    d = glob.get("duration", 10)
    # The range test alone refuses NaN (every comparison with it is false) and never converts a huge int to a
    # float (math.isfinite(10**400) raises OverflowError).
    if isinstance(d, bool) or not isinstance(d, int | float) or not 0 < d <= MAX_DURATION_S:
        raise ConfigError(
            "global.duration", d, f"must be a number of seconds in (0, {MAX_DURATION_S}] (-1 is not supported)",
            source=src,
        )  # fmt: skip
    return int(d * NSEC_PER_SEC)


def parse_rt_app(doc: Any, src: str, ncpu: int, *, duration_ns: int | None = None) -> tuple[list[_Thread], int]:
    """Validate a parsed rt-app document for a machine of ``ncpu`` CPUs: its threads and the run length."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tasks"), Mapping) or not doc["tasks"]:
        raise ConfigError(
            "tasks", doc.get("tasks") if isinstance(doc, Mapping) else doc, "must be a non-empty object of threads",
            source=src,
        )  # fmt: skip
    glob = doc.get("global", {})
    if not isinstance(glob, Mapping):
        raise ConfigError("global", glob, "must be an object", source=src)
    default_policy = glob.get("default_policy", "SCHED_OTHER")
    if not isinstance(default_policy, str) or default_policy not in _POLICIES:
        raise UnknownNameError("global.default_policy", default_policy, list(_POLICIES), source=src)
    dur = duration_ns if duration_ns is not None else _duration(glob, src)
    threads: list[_Thread] = []
    total = 0
    for name, spec in doc["tasks"].items():
        where = f"tasks.{name}"
        check_name(name, where, source=src, what="thread name")
        if not isinstance(spec, Mapping):
            raise ConfigError(where, spec, "must be an object", source=src)
        pol_name = spec.get("policy", default_policy)
        if not isinstance(pol_name, str) or pol_name not in _POLICIES:
            raise UnknownNameError(f"{where}.policy", pol_name, list(_POLICIES), source=src)
        prog = _program(spec, src, where)
        if not prog:
            raise ConfigError(where, dict(spec), "must have at least one event", source=src)
        _check_program(prog, src, where)
        loops = spec.get("loop", -1)
        if loops != -1:
            loops = _int(loops, f"{where}.loop", src, 1, _MAX_LOOP, "-1 (forever) or a count")
        instances = _int(spec.get("instance", 1), f"{where}.instance", src, 1, MAX_THREADS)
        total += instances
        if total > MAX_THREADS:
            raise ConfigError(
                f"{where}.instance", instances, f"brings the file above {MAX_THREADS} threads", source=src
            )
        attr, job_deadline = _attr(spec, _POLICIES[pol_name], src, where)
        threads.append(
            _Thread(
                name, prog, loops, attr, job_deadline, _cpus(spec.get("cpus"), ncpu, src, where),
                _us(spec.get("delay", 0), f"{where}.delay", src), instances,
            )
        )  # fmt: skip
    _check_work(threads, dur, ncpu, src)
    return threads, dur


def _check_work(threads: list[_Thread], duration_ns: int, ncpu: int, src: str) -> None:
    """Refuse a file whose estimated scheduler events exceed :data:`MAX_EVENTS` (see the module docstring)."""
    events = ncpu * duration_ns // NSEC_PER_MSEC
    for t in threads:
        iterations = -(-max(0, duration_ns - t.delay_ns) // _iteration_ns(t.program))
        if t.loops > 0:
            iterations = min(iterations, t.loops)
        events += t.instances * iterations * len(t.program)
    if events > MAX_EVENTS:
        raise ConfigError(
            "global.duration", duration_ns / NSEC_PER_SEC,
            f"with these threads asks for about {events:,} scheduler events; at most {MAX_EVENTS:,} are "
            "simulated (shorten the duration, lengthen the periods or use fewer threads)",
            source=src,
        )  # fmt: skip


def load_rt_app(path: Path | str, m: RtMachine, *, duration_ns: int | None = None) -> RtBuilt:
    """Create the threads of an rt-app JSON file (``doc/tutorial.txt``; times in µs) on ``m``."""
    src = check_name(str(path), "--rt-app", what="file name")
    doc = parse_json(read_input_file(Path(path), "--rt-app", "JSON file"), "--rt-app", src)
    threads, dur = parse_rt_app(doc, src, m.nr_cpus, duration_ns=duration_ns)
    tasks: list[SchedTask] = []
    for t in threads:
        for i in range(t.instances):
            tname = t.name if t.instances == 1 else f"{t.name}-{i}"
            try:
                task = m.spawn(
                    tname, t.program, loops=t.loops, attr=t.attr, affinity=t.cpus, start_ns=t.delay_ns,
                    job_deadline_ns=t.job_deadline_ns,
                )  # fmt: skip
            except KernelError as e:  # admission control (EBUSY), a deadline thread pinned (EPERM), ...
                raise ConfigError(f"tasks.{t.name}", tname, f"cannot be created: {e}", source=src) from None
            tasks.append(task)
    return RtBuilt({"rt-app": tasks}, dur)
