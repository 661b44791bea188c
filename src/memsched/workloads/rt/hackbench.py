"""``hackbench``: perf bench sched messaging / hackbench ``-p`` (pipe mode) on the exact scheduler.

Groups of SCHED_OTHER senders and receivers exchange small messages through pipes. Every message is a write
system call that takes the pipe mutex, allocates a buffer from SLUB and wakes the reader while holding the
mutex (the case the 2012 -rt lazy-preemption patch was written for: a woken reader that preempts the writer
blocks on that very mutex), and a read that takes the mutex and frees the buffer. Wakeup-heavy; throughput
= messages per simulated second. The run ends when every task has exited.

The system call's entry work reaches the pipe mutex without a ``cond_resched()`` (fs/pipe.c v6.13:
``pipe_write()`` and ``pipe_read()`` first take ``pipe->mutex``, and ``mutex_lock()`` begins with
``might_sleep()``), so a reschedule requested meanwhile is honoured there by ``voluntary`` (``might_resched()``)
and waits for the copy's ``cond_resched()`` or the return to user under ``none``: the two models differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memsched.config import cost_knob, knob, validate
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Alloc, Free, Kernel, Lock, NoPreempt, Phase, Recv, Run, Send, Unlock
from memsched.sim.sched.sched import SchedTask
from memsched.units import NSEC_PER_MSEC
from memsched.workloads.rt.base import RtBuilt, RtScenario, ticks

__all__ = ["SCENARIO", "HackbenchConfig", "build_hackbench", "hackbench_metrics"]


@dataclass(frozen=True)
class HackbenchConfig:
    groups: int = knob(4, "groups of senders+receivers (hackbench -g; default 10 scaled to 4 CPUs)", min=1, max=64)
    fds: int = knob(10, "senders and receivers per group (hackbench -f, default 20)", min=1, max=64)
    loops: int = knob(40, "messages each sender sends to each receiver (hackbench -l)", min=1, max=100_000)
    syscall_ns: int = cost_knob(600, "system call entry/exit work per read or write (assumed)")
    copy_ns: int = cost_knob(400, "copy of a 100-byte message under the pipe mutex (assumed)")
    user_ns: int = cost_knob(800, "user-space work per message (assumed)")
    wakeup_ns: int = cost_knob(300, "try_to_wake_up() under the wait-queue and rq locks, preemption off (assumed)")
    slub: bool = knob(True, "allocate/free a buffer from SLUB per message")
    duration_ms: int = knob(60_000, "upper bound of the run (it ends when hackbench finishes)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)


def build_hackbench(m: RtMachine, c: HackbenchConfig, *, prefix: str = "hb") -> list[SchedTask]:
    tasks: list[SchedTask] = []
    for g in range(c.groups):
        pipes = [f"{prefix}{g}.pipe{r}" for r in range(c.fds)]
        for r, pipe in enumerate(pipes):
            prog: list[Phase] = [Kernel(c.syscall_ns, cond_resched=False), Recv(pipe), Lock(pipe), Kernel(c.copy_ns)]
            if c.slub:
                prog.append(Free("skbuff", 1))
            prog += [Unlock(pipe), Run(c.user_ns)]
            tasks.append(m.spawn(f"{prefix}{g}.recv{r}", prog, loops=c.fds * c.loops))
        for s in range(c.fds):
            prog = []
            for pipe in pipes:
                prog += [Kernel(c.syscall_ns, cond_resched=False), Lock(pipe), Kernel(c.copy_ns)]
                if c.slub:
                    prog.append(Alloc("skbuff", 1))
                prog += [NoPreempt(c.wakeup_ns), Send(pipe), Unlock(pipe), Run(c.user_ns)]
            tasks.append(m.spawn(f"{prefix}{g}.send{s}", prog, loops=c.loops))
    return tasks


def hackbench_metrics(tasks: list[SchedTask], c: HackbenchConfig) -> Callable[[RtMachine], dict[str, Any]]:
    """hackbench's own figures: its time, throughput, switches and pipe-mutex contention."""

    def metrics(m: RtMachine) -> dict[str, Any]:
        done = [t.exit_ns for t in tasks if t.exit_ns >= 0]
        finished = len(done) == len(tasks)
        elapsed = max(done) if finished else m.engine.now
        msgs = c.groups * c.fds * c.fds * c.loops
        return {
            "hackbench": {
                "finished": finished,
                "time_s": elapsed / 1e9,
                "messages": msgs,
                "throughput_msgs_per_s": msgs / (elapsed / 1e9) if elapsed else 0.0,
                "context_switches": sum(t.nvcsw + t.nivcsw for t in tasks),
                "involuntary_switches": sum(t.nivcsw for t in tasks),
                "lock_contentions": sum(
                    mx.contended for name, mx in m.core.interp.locks.items() if name.startswith("hb")
                ),
            }
        }

    return metrics


def _build(m: RtMachine, c: HackbenchConfig) -> RtBuilt:
    tasks = build_hackbench(m, c)
    return RtBuilt(
        {"hackbench": tasks}, c.duration_ms * NSEC_PER_MSEC, "hackbench", hackbench_metrics(tasks, c)
    )


#: Scheduler events per message: the default's 16,000 messages took 144,216 events (9 each, ticks included).
HACKBENCH_EVENTS_PER_MESSAGE = 10


def hackbench_events(c: HackbenchConfig, ncpu: int) -> int:
    """Every message a sender writes to every receiver of its group (they run until done, or ``duration_ms``)."""
    return c.groups * c.fds * c.fds * c.loops * HACKBENCH_EVENTS_PER_MESSAGE + ticks(ncpu, c.duration_ms)


SCENARIO = RtScenario(
    "hackbench",
    "SCHED_OTHER message passing through pipes (hackbench -p)",
    HackbenchConfig,
    _build,
    events=hackbench_events,
)
