"""The exact scheduler's task-program interpreter: what the running thread of a CPU does, phase by phase.

:class:`ProgramInterp` advances ``rq.curr`` through its program (``program.py``) from one event to the next:
it runs the instantaneous phases at once, arms one completion event for a phase that takes CPU time, and
hands the CPU back to the core (``core.py``) when the task blocks, exits or is preempted. Each phase stands
for a kernel path, and the interpreter asks the preemption model (``preempt.py``) at the preemption point
that path has (v6.13):

* the return from a kernel-mode phase to a ``Run`` phase, and a ``Timer`` whose next release is already
  due, are ``exit_to_user_mode_loop()`` (kernel/entry/common.c); the end of a ``Kernel`` phase is a
  ``cond_resched()``, the end of a ``NoPreempt`` phase the ``preempt_enable()`` that closes it; the end of a
  ``Run`` phase and of the other instantaneous phases are plain instruction boundaries (a switch there only
  in a preemptible kernel);
* ``Lock`` / ``Unlock`` are ``mutex_lock()`` / ``mutex_unlock()`` (kernel/locking/mutex.c): ``might_sleep()``
  before the acquisition, a FIFO queue of sleeping waiters, a wakeup of the first waiter at unlock; while a
  task holds one, its ``preempt_lazy_count`` is raised (the 2012 -rt lazy-preemption patch, Thomas Gleixner,
  26 Oct 2012: sleeping locks defer a lazy reschedule, which the end of the ``Unlock`` then honours);
* ``Send`` / ``Recv`` are a pipe's ``pipe_write()`` / ``pipe_read()`` (fs/pipe.c): a reader with nothing to
  read sleeps, and a write wakes it;
* ``Nanosleep`` is ``clock_nanosleep()`` (kernel/time/hrtimer.c): the hrtimer wakes the task from interrupt
  context; ``Yield`` is ``sched_yield()`` (``do_sched_yield()``, kernel/sched/syscalls.c): the class's
  ``yield_task``, then ``schedule()``;
* ``Alloc`` / ``Free`` take the cost ``sim/mm/slub.py`` gives (mm/slub.c); a slow path runs with preemption
  disabled, as ``___slab_alloc()`` does;
* ``Timer`` is rt-app's ``timer`` event (``scheduler-tools/rt-app``, ``doc/tutorial.txt``): the job ends,
  the task sleeps until the next absolute release, and that release's wakeup latency is measured;
* ``VcpuRun`` enters a KVM guest (``kvm.py``).

Defense of design
-----------------
*Dispatch on ints.* Every phase carries a small-int ``kind``; the loop compares those instead of walking an
``isinstance`` chain, because it runs at every phase boundary of every task (the simulator's hot path).

*Event handlers take the runqueue or the task first.* A guest's scheduler (``kvm.py``) gates each event on
the vCPU of its first argument, so the completion, release and timer events name ``rq`` or ``t`` first.

*The core stays the core.* Blocking, exiting, waking and ``__schedule()`` are the core's; the interpreter
reaches them through :class:`~memsched.sim.sched.sched.CoreOps`, and this module does not import
``core.py``, which imports :func:`work_start` from here to keep what is left of a preempted phase.

Deviations from the kernel: preemption inside a phase happens only at interrupt exits and reschedule IPIs
(the core's ticks, timers and wakeups), elsewhere only at phase boundaries; mutexes have no priority
inheritance (no ``rt_mutex``) and no optimistic spinning, and ``mutex_unlock()`` always hands the lock to
the first waiter, who owns it when it runs (the kernel wakes it to compete for the lock unless it asked for
a handoff, ``MUTEX_FLAG_HANDOFF``); a channel is a message counter without a buffer limit (a pipe's writer
would block when its 16 pages are full) and each message wakes one reader.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from memsched.errors import ConfigError, SimulationError
from memsched.sim.engine import Prio
from memsched.sim.sched.preempt import Point
from memsched.sim.sched.program import (
    K_ALLOC,
    K_FREE,
    K_KERNEL,
    K_LOCK,
    K_NANOSLEEP,
    K_NOPREEMPT,
    K_RECV,
    K_RUN,
    K_SEND,
    K_TIMER,
    K_UNLOCK,
    K_VCPU,
    K_YIELD,
)
from memsched.uapi.sched import SchedPolicy

if TYPE_CHECKING:
    from memsched.sim.sched.sched import CoreOps, Rq, SchedTask

__all__ = ["PRIO_COMPLETE", "Channel", "Mutex", "ProgramInterp", "work_start"]

#: A running task reaching the end of a phase goes before timers and wakeups of the same instant (it got
#: there first).
PRIO_COMPLETE = Prio.TIMER + 5


class Mutex:
    """A sleeping lock of the task programs (``struct mutex``): its owner and its FIFO queue of waiters."""

    __slots__ = ("contended", "name", "owner", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: SchedTask | None = None
        self.waiters: deque[SchedTask] = deque()
        #: Acquisitions that found the lock held and slept.
        self.contended = 0


class Channel:
    """A pipe between task programs: messages posted and not yet taken, and the readers waiting for one."""

    __slots__ = ("count", "name", "sent", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        #: Messages posted so far.
        self.sent = 0
        self.waiters: deque[SchedTask] = deque()


def work_start(rq: Rq, now: int) -> int:
    """When the current task's work can go on: after the switch overhead and any interruption."""
    ovh = rq.ovh_until
    irq = rq.irq_until
    start = ovh if ovh > irq else irq
    return start if start > now else now


class ProgramInterp:
    """Runs the task programs of one scheduler core; owns the programs' mutexes and channels by name."""

    __slots__ = ("chans", "core", "engine", "locks", "model", "slub")

    def __init__(self, core: CoreOps) -> None:
        self.core = core
        self.engine = core.engine
        self.model = core.model
        self.slub = core.slub
        self.locks: dict[str, Mutex] = {}
        self.chans: dict[str, Channel] = {}

    def run_program(self, rq: Rq, t: SchedTask, point: int) -> None:
        """Advance ``t`` (``rq.curr``) through instantaneous phases until it runs, blocks or is preempted."""
        core = self.core
        model = self.model
        prog = t.program
        rq.in_advance = True
        while True:
            if rq.need_resched and model.allows(
                rq.need_resched, point, t.user, t.preempt_count, t.lazy_count
            ):
                rq.in_advance = False
                core.schedule(rq)
                return
            pc = t.pc
            if pc >= t.plen:
                t.loops_done += 1
                if 0 <= t.loops <= t.loops_done:
                    rq.in_advance = False
                    core.task_dead(rq, t)
                    return
                t.pc = pc = 0
            ph = prog[pc]
            k = ph.kind
            if k <= K_NOPREEMPT:
                if k == K_RUN:
                    if not t.user:
                        t.user = True
                        if rq.need_resched and model.allows(rq.need_resched, Point.RET_USER, True, 0, 0):
                            rq.in_advance = False
                            core.schedule(rq)
                            return
                else:
                    t.user = False
                    if k == K_NOPREEMPT and t.rem < 0:
                        t.preempt_count += 1
                if t.rem < 0:
                    t.rem = ph.ns  # type: ignore[union-attr]
                rq.in_advance = False
                self._arm(rq, t)
                return
            # instantaneous phases (kernel mode unless sleeping)
            point = Point.KERNEL
            if k == K_SEND:
                t.user = False
                t.pc = pc + 1
                self._send(t, ph.chan, ph.n)  # type: ignore[union-attr]
            elif k == K_RECV:
                t.user = False
                ch = self.chans.get(ph.chan)  # type: ignore[union-attr]
                if ch is None:
                    ch = self.chans[ph.chan] = Channel(ph.chan)  # type: ignore[union-attr]
                if ch.count > 0:
                    ch.count -= 1
                    t.pc = pc + 1
                else:
                    ch.waiters.append(t)
                    rq.in_advance = False
                    core.block(rq, t)
                    return
            elif k == K_LOCK:
                t.user = False
                if rq.need_resched and model.allows(
                    rq.need_resched, Point.MIGHT_SLEEP, False, t.preempt_count, t.lazy_count
                ):
                    rq.in_advance = False
                    core.schedule(rq)
                    return
                m = self.locks.get(ph.name)  # type: ignore[union-attr]
                if m is None:
                    m = self.locks[ph.name] = Mutex(ph.name)  # type: ignore[union-attr]
                if m.owner is None:
                    m.owner = t
                    t.locks_held += 1
                    t.lazy_count += 1
                    t.pc = pc + 1
                else:
                    m.contended += 1
                    m.waiters.append(t)
                    rq.in_advance = False
                    core.block(rq, t)
                    return
            elif k == K_UNLOCK:
                t.pc = pc + 1
                self._unlock(t, ph.name)  # type: ignore[union-attr]
                point = Point.UNLOCK
            elif k == K_TIMER:
                t.pc = pc + 1
                if self._job_end(rq, t, ph):
                    return
                point = Point.RET_USER
            elif k == K_NANOSLEEP:
                t.pc = pc + 1
                t.user = True
                rq.in_advance = False
                core.at(self.engine.now + ph.ns, Prio.WAKEUP, core.hrtimer_expire, self._timer_wake, t)  # type: ignore[union-attr]
                core.block(rq, t)
                return
            elif k == K_YIELD:
                t.pc = pc + 1
                t.user = True
                rq.in_advance = False
                core.update_curr(rq)
                t.sched_class.yield_task(rq, t)
                core.schedule(rq)
                return
            elif k in (K_ALLOC, K_FREE):
                t.user = False
                if t.rem >= 0:  # resuming a preempted (fast-path) allocation
                    rq.in_advance = False
                    self._arm_alloc(rq, t, False)
                    return
                if self.slub is None:
                    raise ConfigError("program", ph, "uses SLUB but the machine has no slub allocator")
                cost, slow = self.slub.op(rq.cpu, ph.cache, ph.n, k == K_ALLOC)  # type: ignore[union-attr]
                if cost > 0:
                    # The allocation runs as a kernel phase; its slow path with preemption disabled.
                    t.rem = cost
                    if slow:
                        t.preempt_count += 1
                    rq.in_advance = False
                    self._arm_alloc(rq, t, slow)
                    return
                t.pc = pc + 1
            elif k == K_VCPU:
                rq.in_advance = False
                if t.guest is None:
                    raise ConfigError("program", ph, "VcpuRun needs a KVM guest (sim/sched/kvm.py)")
                t.guest.enter(t, ph.vcpu)  # type: ignore[union-attr]
                return
            else:  # pragma: no cover
                raise SimulationError(f"unknown phase {ph!r}")

    # ---- phases that take CPU time -------------------------------------------------------------------------
    def _arm(self, rq: Rq, t: SchedTask) -> None:
        rq.run_until = work_start(rq, self.engine.now) + t.rem
        rq.complete_ev = self.core.at(rq.run_until, PRIO_COMPLETE, self._phase_done, rq)

    def _phase_done(self, rq: Rq) -> None:
        """End of a ``Run``, ``Kernel`` or ``NoPreempt`` phase (allocations end in :meth:`_alloc_done`)."""
        t = rq.curr
        rq.complete_ev = None
        if t is None:  # pragma: no cover - cancelled events never run
            raise SimulationError("phase completion on an idle CPU")
        ph = t.program[t.pc]
        k = ph.kind
        t.rem = -1
        t.pc += 1
        if k == K_RUN:
            t.stats.work_ns += ph.ns  # type: ignore[union-attr]
            point = Point.KERNEL
        elif k == K_KERNEL:
            point = Point.COND_RESCHED if ph.cond_resched else Point.KERNEL  # type: ignore[union-attr]
        else:  # K_NOPREEMPT: preempt_enable() at its end
            t.preempt_count -= 1
            point = Point.PREEMPT_ENABLE
        self.run_program(rq, t, point)

    def _arm_alloc(self, rq: Rq, t: SchedTask, slow: bool) -> None:
        rq.run_until = work_start(rq, self.engine.now) + t.rem
        rq.complete_ev = self.core.at(rq.run_until, PRIO_COMPLETE, self._alloc_done, rq, slow)

    def _alloc_done(self, rq: Rq, slow: bool) -> None:
        t = rq.curr
        rq.complete_ev = None
        assert t is not None
        t.rem = -1
        t.pc += 1
        if slow:
            t.preempt_count -= 1
            self.run_program(rq, t, Point.PREEMPT_ENABLE)
        else:
            self.run_program(rq, t, Point.KERNEL)

    # ---- jobs and timers -----------------------------------------------------------------------------------
    def _job_end(self, rq: Rq, t: SchedTask, ph: Any) -> bool:
        """rt-app ``timer``: close the current job, sleep until the next release. True if it blocked."""
        now = self.engine.now
        st = t.stats
        if st.job_open:
            resp = now - st.release
            st.jobs += 1
            st.resp.append(resp)
            # Lateness against the job's relative deadline: rt-app's dl-deadline or the task's
            # SCHED_DEADLINE deadline (constrained sets), else the period (implicit deadline).
            d = st.job_deadline or (t.dl.dl_deadline if t.policy == SchedPolicy.DEADLINE else 0) or ph.period
            if resp > d:
                st.misses += 1
                tard = resp - d
                st.sum_tardiness += tard
                st.max_tardiness = max(st.max_tardiness, tard)
            if st.job_log is not None:
                st.job_log.append(
                    (st.release, st.job_start, now, d, t.nivcsw - st.job_nivcsw0, t.nr_migrations - st.job_migr0)
                )
        st.job_open = True
        nxt = st.release + ph.period
        if ph.sporadic_mean_ns:
            nxt += int(self.engine.rng(f"sporadic/{t.name}").exponential(ph.sporadic_mean_ns))
        st.release = nxt
        # the next job: it starts now if already due (the task runs on), else when it is next switched in
        st.job_start = now if nxt <= now else -1
        st.job_nivcsw0 = t.nivcsw
        st.job_migr0 = t.nr_migrations
        t.user = True
        if nxt > now:
            rq.in_advance = False
            self.core.at(nxt, Prio.WAKEUP, self.core.hrtimer_expire, self._release, t, nxt)
            self.core.block(rq, t)
            return True
        return False

    def _release(self, t: SchedTask, when: int) -> None:
        t.stats.lat_release = when
        self._timer_wake(t)

    def _timer_wake(self, t: SchedTask) -> None:
        self.core.wake_up(t, t.cpu, Point.IRQ_EXIT)

    # ---- channels and mutexes ------------------------------------------------------------------------------
    def _send(self, t: SchedTask, name: str, n: int) -> None:
        ch = self.chans.get(name)
        if ch is None:
            ch = self.chans[name] = Channel(name)
        ch.sent += n
        for _ in range(n):
            if ch.waiters:
                w = ch.waiters.popleft()
                w.pc += 1  # its Recv completes with this message
                self.core.wake_up(w, t.cpu, Point.ASYNC)
            else:
                ch.count += 1

    def _unlock(self, t: SchedTask, name: str) -> None:
        m = self.locks.get(name)
        if m is None or m.owner is not t:
            raise SimulationError(f"{t.name} unlocks {name!r} which it does not hold")
        t.locks_held -= 1
        t.lazy_count -= 1
        if m.waiters:
            w = m.waiters.popleft()
            m.owner = w  # handoff: the waiter owns the lock when it runs
            w.locks_held += 1
            w.lazy_count += 1
            w.pc += 1
            self.core.wake_up(w, t.cpu, Point.ASYNC)
        else:
            m.owner = None
