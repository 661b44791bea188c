"""Task programs for the exact (per-slice) scheduler: what a simulated thread does, phase by phase.

A program is a tuple of phases run in order and repeated ``loops`` times (``-1``: forever), like the
``phases`` of a thread in an rt-app JSON file (``scheduler-tools/rt-app``, ``doc/tutorial.txt``). Phases
that take CPU time say in which mode they run, because the preemption model (``preempt.py``) treats user
code, preemptible kernel code and preempt-disabled code differently:

==================  ===========  ===========================================================================
phase               mode         meaning
==================  ===========  ===========================================================================
``Run(ns)``         user         compute for ``ns`` of CPU time
``Kernel(ns)``      kernel       a system call's work; ends with a ``cond_resched()`` point (unless
                                 ``cond_resched=False``)
``NoPreempt(ns)``   kernel       ``preempt_disable()`` / spinlock-held section (raw spinlock on RT)
``Lock(name)``      kernel       take a sleeping mutex (``might_sleep`` point; blocks when contended)
``Unlock(name)``    kernel       release it, handing it to the first waiter
``Send(chan, n)``   kernel       post ``n`` messages on a channel (pipe/socket), waking a waiting reader
``Recv(chan)``      kernel       take a message; sleep until one arrives
``Alloc(cache, n)`` kernel       ``kmalloc`` ``n`` objects from a SLUB cache (``sim/mm/slub.py`` sets the cost)
``Free(cache, n)``  kernel       ``kfree`` ``n`` objects
``Nanosleep(ns)``   —            ``clock_nanosleep`` relative
``Timer(period)``   —            rt-app ``timer``: end of the current job; sleep until the next absolute
                                 release (``release + period``), drift-free; sporadic tasks add a random
                                 extra inter-arrival delay
``Yield()``         —            ``sched_yield()``
``VcpuRun()``       guest        a KVM vCPU thread entering the guest (``kvm.py``)
==================  ===========  ===========================================================================

This module declares the phases; ``interp.py`` (:class:`~memsched.sim.sched.interp.ProgramInterp`) runs
them for the core, with the mutexes and channels they name. A return from kernel to user mode (a
kernel-mode phase followed by ``Run``) is the ``RET_USER`` preemption point. Jobs: a task's first job is
released when it starts; each ``Timer`` ends one job (its response time, lateness against the task's relative
deadline) and releases the next. :class:`TaskStats` holds what the simulator measures about a task: those
jobs, its wakeup latencies and its useful work.

Deviations from the kernel: locks have no priority inheritance; channels are counters (no buffer limit);
``interp.py`` lists how the phases it runs differ from the kernel paths they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.errors import ConfigError

__all__ = [
    "K_ALLOC",
    "K_FREE",
    "K_KERNEL",
    "K_LOCK",
    "K_NANOSLEEP",
    "K_NOPREEMPT",
    "K_RECV",
    "K_RUN",
    "K_SEND",
    "K_TIMER",
    "K_UNLOCK",
    "K_VCPU",
    "K_YIELD",
    "Alloc",
    "Free",
    "Kernel",
    "Lock",
    "Nanosleep",
    "NoPreempt",
    "Phase",
    "Recv",
    "Run",
    "Send",
    "TaskStats",
    "Timer",
    "Unlock",
    "VcpuRun",
    "Yield",
]

# Phase kinds, dispatched on in the scheduler's hot path (ints compare faster than isinstance chains).
K_RUN, K_KERNEL, K_NOPREEMPT = 0, 1, 2
K_LOCK, K_UNLOCK, K_SEND, K_RECV, K_ALLOC, K_FREE = 3, 4, 5, 6, 7, 8
K_NANOSLEEP, K_TIMER, K_YIELD, K_VCPU = 9, 10, 11, 12


def _nonneg(name: str, v: int) -> None:
    if not isinstance(v, int) or v < 0:
        raise ConfigError(name, v, "must be an integer number of ns >= 0")


@dataclass(frozen=True, slots=True)
class Run:
    """User-mode computation of ``ns`` nanoseconds of CPU time."""

    ns: int
    kind = K_RUN

    def __post_init__(self) -> None:
        _nonneg("run", self.ns)


@dataclass(frozen=True, slots=True)
class Kernel:
    """Preemptible kernel work of ``ns`` (a system call); a ``cond_resched()`` point at its end unless
    ``cond_resched=False`` (kernel code that reaches its next ``might_sleep()`` without one, as a system call's
    entry reaches the mutex of ``pipe_write()``: only preemptible kernels can switch at its end)."""

    ns: int
    cond_resched: bool = True
    kind = K_KERNEL

    def __post_init__(self) -> None:
        _nonneg("kernel", self.ns)


@dataclass(frozen=True, slots=True)
class NoPreempt:
    """Kernel work with preemption disabled (spinlock held, ``preempt_disable()``) for ``ns``."""

    ns: int
    kind = K_NOPREEMPT

    def __post_init__(self) -> None:
        _nonneg("nopreempt", self.ns)


@dataclass(frozen=True, slots=True)
class Lock:
    """``mutex_lock(name)``."""

    name: str
    kind = K_LOCK


@dataclass(frozen=True, slots=True)
class Unlock:
    """``mutex_unlock(name)``."""

    name: str
    kind = K_UNLOCK


@dataclass(frozen=True, slots=True)
class Send:
    """Post ``n`` messages on channel ``chan`` (wakes one waiting reader per message)."""

    chan: str
    n: int = 1
    kind = K_SEND


@dataclass(frozen=True, slots=True)
class Recv:
    """Take one message from ``chan``, sleeping until one is there."""

    chan: str
    kind = K_RECV


@dataclass(frozen=True, slots=True)
class Alloc:
    """``kmalloc`` ``n`` objects from SLUB cache ``cache``."""

    cache: str
    n: int = 1
    kind = K_ALLOC


@dataclass(frozen=True, slots=True)
class Free:
    """``kfree`` ``n`` objects to SLUB cache ``cache``."""

    cache: str
    n: int = 1
    kind = K_FREE


@dataclass(frozen=True, slots=True)
class Nanosleep:
    """``clock_nanosleep(CLOCK_MONOTONIC, 0, ns)``: sleep ``ns`` relative to now."""

    ns: int
    kind = K_NANOSLEEP

    def __post_init__(self) -> None:
        _nonneg("nanosleep", self.ns)


@dataclass(frozen=True, slots=True)
class Timer:
    """End of a job; sleep until the next release ``period`` after the previous one (rt-app ``timer``).

    ``sporadic_mean_ns`` > 0 adds an exponentially distributed extra delay to each inter-arrival time, so
    releases are at least ``period`` apart (a sporadic task).
    """

    period: int
    sporadic_mean_ns: int = 0
    kind = K_TIMER

    def __post_init__(self) -> None:
        if not isinstance(self.period, int) or self.period <= 0:
            raise ConfigError("timer.period", self.period, "must be an integer number of ns > 0")
        _nonneg("timer.sporadic_mean_ns", self.sporadic_mean_ns)


@dataclass(frozen=True, slots=True)
class Yield:
    """``sched_yield()``."""

    kind = K_YIELD


@dataclass(frozen=True, slots=True)
class VcpuRun:
    """A KVM vCPU thread: run the guest's CPU ``vcpu`` while on a host CPU (``kvm.py``)."""

    vcpu: int
    kind = K_VCPU


Phase = (
    Run | Kernel | NoPreempt | Lock | Unlock | Send | Recv | Alloc | Free | Nanosleep | Timer | Yield | VcpuRun
)


class TaskStats:
    """What the simulator measures about one task: rt-app jobs, wakeup latencies, useful work.

    A job is released when the task starts and by each ``Timer``; the ``Timer`` that ends a job records its
    response time and, past the job's relative deadline, its tardiness. A wakeup latency runs from a timer
    release (``Timer``) to the moment the task runs again, switch cost included (cyclictest's figure).
    """

    __slots__ = (
        "job_deadline",
        "job_log",
        "job_migr0",
        "job_nivcsw0",
        "job_open",
        "job_start",
        "jobs",
        "lat",
        "lat_release",
        "max_tardiness",
        "misses",
        "release",
        "resp",
        "sum_tardiness",
        "work_ns",
    )

    def __init__(self) -> None:
        #: Release time of the current job.
        self.release = 0
        #: A job is in progress (the program does not start with its ``Timer``).
        self.job_open = False
        #: The relative deadline a job's lateness is measured against (rt-app ``dl-deadline``); 0: the task's
        #: SCHED_DEADLINE deadline, else the ``Timer`` period.
        self.job_deadline = 0
        #: The pending timer release whose wakeup latency is still to be measured (-1: none).
        self.lat_release = -1
        self.jobs = 0
        self.misses = 0
        self.max_tardiness = 0
        self.sum_tardiness = 0
        #: Response time of every finished job, and every wakeup latency (ns).
        self.resp: list[int] = []
        self.lat: list[int] = []
        #: Work of the finished ``Run`` phases (ns): the task's useful progress.
        self.work_ns = 0
        #: Per-job records when the machine keeps them (``RtMachine(job_log=True)``), else ``None``: one
        #: ``(release, start, finish, relative deadline, preemptions, migrations)`` per finished job.
        self.job_log: list[tuple[int, int, int, int, int, int]] | None = None
        #: When the current job first ran (-1: not yet), and the task's involuntary switches and migrations
        #: when it was released.
        self.job_start = -1
        self.job_nivcsw0 = 0
        self.job_migr0 = 0
