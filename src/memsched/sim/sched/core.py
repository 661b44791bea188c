"""The exact scheduler core: runqueues, scheduling classes, context switches, ticks, wakeups.

This is the per-slice counterpart of the fluid NUMA machine: every context switch, tick, timer and wakeup
is an event at an integer nanosecond, so latencies, deadline misses and context-switch counts are exact
consequences of the rules, not averages. It follows ``kernel/sched/core.c`` (v6.13; checked
with the search tool): ``__schedule()`` picks the next task by asking the classes in order
stop > deadline > rt > fair > idle (``pick_next_task``: the first class with a runnable task wins);
``try_to_wake_up()`` asks the task's class where to run (``select_task_rq``), enqueues it, calls
``wakeup_preempt()`` (a higher class always preempts a lower one; the same class decides by itself) and then
the class's ``task_woken`` (RT/DL push); ``__schedule()`` first runs ``prev_balance()`` (each class from
``prev``'s down asks ``balance``, stopping at the first with a runnable task) and, after a switch, the
balance callback ``set_next_task`` queued (RT/DL push); ``sched_tick()`` first promotes a pending
``TIF_NEED_RESCHED_LAZY`` to ``TIF_NEED_RESCHED`` (``dynamic_preempt_lazy()``), then accounts the running task
and calls its class's ``task_tick``, so a lazy request raised by that tick's accounting is honoured at the
next tick (or at the return to user mode). Classes answer with a
:class:`~memsched.sim.sched.preempt.Resched` level and ``preempt.py`` decides when that becomes a switch.

Timers of one CPU that expire at the same nanosecond (job releases, nanosleeps, task starts) run in one
interrupt, as ``__hrtimer_run_queues()`` (kernel/time/hrtimer.c) runs every expired timer before the
interrupt returns: all their wakeups are enqueued, then the CPU reschedules once (:meth:`SchedCore.hrtimer_expire`).

nohz_full (``kernel/time/tick-sched.c`` and ``sched_can_stop_tick()`` in core.c, 6.13): the tick of a
nohz_full CPU stops (leaving the residual 1 Hz tick) only while no SCHED_DEADLINE entity is queued, at most
one SCHED_RR task is, and either a FIFO task is queued or at most one fair task; an enqueue that breaks
this restarts it (``sched_update_tick_dependency()`` from ``add_nr_running()``).

What a CPU spends, and on whom
------------------------------
* ``ctx_switch_ns``: the cost of ``__schedule()`` + ``context_switch()``, paid by the incoming task before its
  work resumes (charged to its runtime, as the kernel charges the time between two ``update_curr()``).
* cache refill: after a switch to a task that did not run last on this CPU, ``cache_refill_ns`` extra work;
  after a migration ``migration_refill_ns`` (a cold L1/L2: the cost of losing cache affinity, which a
  per-slice simulator that charged only the switch itself would miss).
* interrupts (tick, noise sources of ``isolation.py``, KVM exits): *stolen* time. The interrupted phase
  finishes that much later, and the time is not charged to budgets or vruntime
  (``CONFIG_IRQ_TIME_ACCOUNTING``); a cache-pollution penalty is added to the interrupted task's work.

Defense of design
-----------------
*Phase completions are the only per-task events.* A running task has one pending completion event (and a
DL task one budget event when ``hrtick_dl`` is on); accounting happens where the kernel does it (ticks,
schedule, wakeup preemption), so most simulated nanoseconds cost nothing.

*The core builds the classes and the interpreter.* :class:`SchedCore` creates the stop, deadline, RT, fair
and idle classes and the task-program interpreter (``interp.py``: what the running task does between two
events, phase by phase) and hands itself to them as :class:`~memsched.sim.sched.sched.CoreOps`; the class
modules and the interpreter import only ``sched.py`` (the shared types, as ``sched.h`` is in the kernel),
never this module, so there is no import cycle. The core calls the interpreter after every switch and
every ``__schedule()`` that keeps the running task; the interpreter calls back into :meth:`~SchedCore.block`,
:meth:`~SchedCore.task_dead`, :meth:`~SchedCore.wake_up` and :meth:`~SchedCore.schedule`.

*Re-entrancy.* A task program may wake others (``Send``, ``Unlock``) while it is being advanced; a
reschedule of the CPU that is advancing is not done at once but checked at the next phase boundary, with
the preemption point that boundary is (``Rq.in_advance``).

Deviations from the kernel: no PELT, no hrtick for the fair class, no EAS/capacity scaling (all CPUs have
capacity 1024 and run at full frequency); idle exit latency is not modelled; the stop class exists only for
completeness (stop-machine work given as a task program); an idle CPU asked to reschedule that finds nothing
to run tries a newidle pull (the kernel leaves that to the idle balancer); nohz_full has no tick
dependencies other than the scheduler's (no POSIX CPU timers, perf events or RCU callbacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memsched.errors import ConfigError
from memsched.sim.engine import Engine, Event, Prio
from memsched.sim.sched.deadline import DlClass
from memsched.sim.sched.fair import FairClass
from memsched.sim.sched.interp import ProgramInterp, work_start
from memsched.sim.sched.preempt import Point, PreemptModel, Resched, parse_model
from memsched.sim.sched.program import K_TIMER
from memsched.sim.sched.rt import RtClass
from memsched.sim.sched.sched import (
    DEQUEUE_SLEEP,
    ENQUEUE_INITIAL,
    ENQUEUE_MIGRATED,
    ENQUEUE_WAKEUP,
    GuestHooks,
    Rq,
    SchedClass,
    SchedConfig,
    SchedTask,
    SchedTaskState,
)
from memsched.sim.sched.stop_task import StopClass
from memsched.uapi.sched import SchedPolicy
from memsched.units import NSEC_PER_SEC

if TYPE_CHECKING:
    from memsched.sim.mm.slub import Slub

__all__ = ["SchedCore"]

#: A DL task's budget hrtick goes after a phase completion of the same instant (``interp.PRIO_COMPLETE``): a
#: job that ends exactly as its runtime does is not throttled (nor by the accounting another event of that
#: instant brings forward: ``deadline.DlClass.update_curr``).
PRIO_BUDGET = Prio.TIMER + 6
#: hrtick_start() (core.c): the shortest hrtick delay, 10 us.
HRTICK_MIN_NS = 10_000


class SchedCore:
    """The scheduler of one machine: runqueues, classes, ``__schedule()``, wakeups, ticks and accounting."""

    def __init__(
        self, engine: Engine, nr_cpus: int, config: SchedConfig, *, slub: Slub | None = None
    ) -> None:
        if nr_cpus < 1:
            raise ConfigError("cpus", nr_cpus, "must be >= 1")
        self.engine = engine
        self.cfg = config
        self.model: PreemptModel = parse_model(config.preempt)
        self.nr_cpus = nr_cpus
        self.all_cpus = tuple(range(nr_cpus))
        self.rqs = [Rq(c) for c in range(nr_cpus)]
        self.tick_ns = config.tick_ns
        #: sched_tick() promotes a pending lazy request at the tick (the mainline lazy model only).
        self.lazy_tick_promotion = self.model is PreemptModel.LAZY
        #: Ticks between two periodic fair load balances.
        self.balance_ticks = config.balance_interval_ms * config.hz // 1000
        self.slub = slub
        self.stop_class = StopClass(self)
        self.dl_class = DlClass(self)
        self.rt_class = RtClass(self)
        self.fair_class = FairClass(self, self.dl_class)
        self.idle_class = SchedClass(self)
        #: Kernel order: for_each_class() walks stop, dl, rt, fair, idle.
        self.classes: tuple[SchedClass, ...] = (
            self.stop_class,
            self.dl_class,
            self.rt_class,
            self.fair_class,
            self.idle_class,
        )
        self.tasks: list[SchedTask] = []
        #: The task-program interpreter (``interp.py``); it owns the programs' mutexes and channels.
        self.interp = ProgramInterp(self)
        self.ctx_switch_ns = config.ctx_switch_ns
        self.cache_refill_ns = config.cache_refill_ns
        self.migration_refill_ns = config.migration_refill_ns
        self.hrtick_dl = config.hrtick_dl
        self.trace: list[tuple[int, int, int, int]] | None = None
        #: Housekeeping CPUs for unbound work and load balancing (isolation.py narrows it).
        self.housekeeping: tuple[int, ...] = self.all_cpus
        #: Set on a guest machine's core: the guest whose vCPUs back these runqueues.
        self.hooks_vcpu: GuestHooks | None = None
        #: Per-tick interrupt cost and the cache refill it causes (isolation.py sets them).
        self.tick_cost_ns = 0
        self.tick_pollution_ns = 0
        #: Inside one hrtimer interrupt serving several timers (:meth:`hrtimer_expire`): the runqueues whose
        #: reschedule waits for the interrupt's exit; ``None`` outside.
        self.irq_rqs: list[Rq] | None = None
        #: Schedule a CPU-side event: the engine's ``at`` itself (one call layer less on every event); a guest
        #: machine (``kvm.py``) replaces it to gate events on its vCPUs.
        self.at: Callable[..., Event] = engine.at
        self.dl_class.init_rqs()

    # ---- events --------------------------------------------------------------------------------------------

    def hrtimer_expire(self, fn: Callable[..., None], t: SchedTask, *args: Any) -> None:
        """A task's timer expires (a job release, a nanosleep, a start): ``fn(t, *args)`` wakes it.

        ``__hrtimer_run_queues()`` (kernel/time/hrtimer.c, v6.13) runs every timer of the CPU's bases that
        has expired before the interrupt returns, and the reschedule they ask for happens once, at the
        interrupt's exit. So timers of one CPU due at the same nanosecond are served here together: their
        wakeups are all enqueued first, then each runqueue they asked to reschedule picks once (no task is
        switched in and preempted at the same instant). A lone timer takes the direct path.
        """
        if self.irq_rqs is not None:
            fn(t, *args)
            return
        cpu = t.cpu
        expire = self.hrtimer_expire

        def same_irq(ev: Event) -> bool:
            return ev.fn == expire and ev.prio == Prio.WAKEUP and ev.args[1].cpu == cpu

        nxt = self.engine.pop_due(same_irq)
        if nxt is None:
            fn(t, *args)
            return
        pending: list[Rq] = []
        self.irq_rqs = pending
        try:
            fn(t, *args)
            while nxt is not None:
                nxt.fn(*nxt.args)
                nxt = self.engine.pop_due(same_irq)
        finally:
            self.irq_rqs = None
        for rq in sorted(set(pending), key=lambda r: r.cpu):  # irq_exit(): each CPU's reschedule, once
            curr = rq.curr
            if rq.need_resched and (
                curr is None
                or self.model.allows(rq.need_resched, Point.IRQ_EXIT, curr.user, curr.preempt_count, curr.lazy_count)
            ):
                self.schedule(rq)

    # ---- task lifecycle ------------------------------------------------------------------------------------
    def add_task(self, t: SchedTask, cpu: int, start_ns: int) -> None:
        t.cpu = cpu
        self.tasks.append(t)
        t.start_ns = start_ns
        self.at(start_ns, Prio.WAKEUP, self.hrtimer_expire, self._start_task, t)

    def _start_task(self, t: SchedTask) -> None:
        now = self.engine.now
        st = t.stats
        st.release = now
        st.job_open = bool(t.program) and t.program[0].kind != K_TIMER
        st.job_start = -1
        t.state = SchedTaskState.RUNNABLE
        cpu = t.sched_class.select_task_rq(t, t.cpu, t.cpu)
        t.cpu = cpu
        rq = self.rqs[cpu]
        t.on_rq = True
        rq.nr_running += 1
        t.sched_class.enqueue_task(rq, t, ENQUEUE_INITIAL)
        self.tick_dep(rq)
        self.check_preempt(rq, t, Point.IRQ_EXIT)
        t.sched_class.task_woken(rq, t)  # wake_up_new_task() calls task_woken too

    # ---- nohz_full -----------------------------------------------------------------------------------------
    @staticmethod
    def sched_can_stop_tick(rq: Rq) -> bool:
        """``sched_can_stop_tick()`` (core.c 6.13): may a nohz_full CPU run without its tick?"""
        if rq.dl:
            return False  # deadline entities, even a single one, need the tick
        rr = 0
        for t in rq.rt:
            if t.policy == SchedPolicy.RR:
                rr += 1
        if rr:
            return rr == 1
        if rq.rt:
            return True  # FIFO only: no forced preemption among FIFO tasks
        return len(rq.fair) <= 1

    def tick_dep(self, rq: Rq) -> None:
        """``sched_update_tick_dependency()`` after an enqueue: restart a stopped nohz_full tick if needed."""
        if rq.tick_stopped and not self.sched_can_stop_tick(rq):
            rq.tick_stopped = False
            ev = rq.tick_ev
            if ev is not None:
                ev.cancel()
                tick = self.tick_ns
                rq.tick_ev = self.at((self.engine.now // tick + 1) * tick, Prio.TICK, self._tick, rq)

    # ---- reschedule ----------------------------------------------------------------------------------------
    def resched(self, rq: Rq, level: int, point: int) -> None:
        """``resched_curr()`` / ``resched_curr_lazy()``, then the model decides whether to switch now."""
        level = self.model.level(level)
        rq.need_resched = max(rq.need_resched, level)
        curr = rq.curr
        if rq.paused:
            assert self.hooks_vcpu is not None  # only a guest's runqueues are ever paused
            self.hooks_vcpu.kick(rq)
            return
        if self.irq_rqs is not None:
            self.irq_rqs.append(rq)  # in a hardirq serving several timers: at its exit
            return
        if curr is None:
            if not rq.in_advance:
                self.schedule(rq)
            return
        if point == Point.ASYNC and not self.model.sends_ipi(rq.need_resched):
            return
        if rq.in_advance:
            return  # honoured at the next phase boundary of the task being advanced
        if self.model.allows(rq.need_resched, point, curr.user, curr.preempt_count, curr.lazy_count):
            self.schedule(rq)

    def check_preempt(self, rq: Rq, p: SchedTask, point: int) -> None:
        """``wakeup_preempt()``: a higher class preempts; the same class decides."""
        curr = rq.curr
        if curr is None:
            self.resched(rq, Resched.NOW, point)
            return
        cls = p.sched_class
        ccls = curr.sched_class
        if cls is ccls:
            self.update_curr(rq)
            lvl = cls.wakeup_preempt(rq, p)
            if lvl:
                self.resched(rq, lvl, point)
            elif rq.need_resched:
                self.resched(rq, Resched.NONE, point)
        elif cls.rank < ccls.rank:
            self.resched(rq, Resched.NOW, point)

    # ---- accounting ----------------------------------------------------------------------------------------
    def update_curr(self, rq: Rq) -> None:
        curr = rq.curr
        if curr is None:
            return
        now = self.engine.now
        delta = now - rq.exec_start - (rq.stolen - rq.stolen_mark)
        rq.exec_start = now
        rq.stolen_mark = rq.stolen
        if delta <= 0:
            return
        curr.sum_exec += delta
        lvl = curr.sched_class.update_curr(rq, curr, delta)
        if lvl > rq.need_resched:
            rq.need_resched = self.model.level(lvl)

    # ---- blocking, waking, exiting -------------------------------------------------------------------------
    def block(self, rq: Rq, t: SchedTask) -> None:
        """The running ``t`` sleeps: ``__schedule()`` with a ``prev`` that leaves the queue (``DEQUEUE_SLEEP``)."""
        self.update_curr(rq)
        t.state = SchedTaskState.BLOCKED
        t.on_rq = False
        rq.nr_running -= 1
        t.sched_class.dequeue_task(rq, t, DEQUEUE_SLEEP)
        self.schedule(rq)

    def task_dead(self, rq: Rq, t: SchedTask) -> None:
        """The running ``t`` ends its program: ``do_exit()`` → ``do_task_dead()``, a last ``__schedule()``."""
        self.update_curr(rq)
        t.state = SchedTaskState.EXITED
        t.exit_ns = self.engine.now
        t.on_rq = False
        rq.nr_running -= 1
        # A dead DL task leaves like a sleeper: its bandwidth is released at its 0-lag time
        # (task_non_contending() / inactive_task_timer() with TASK_DEAD), not at once.
        t.sched_class.dequeue_task(rq, t, DEQUEUE_SLEEP)
        self.schedule(rq)

    def wake_up(self, t: SchedTask, src_cpu: int, point: int) -> None:
        """``try_to_wake_up()``."""
        if t.state != SchedTaskState.BLOCKED:
            return
        t.state = SchedTaskState.RUNNABLE
        prev = t.cpu
        cpu = t.sched_class.select_task_rq(t, prev, src_cpu)
        flags = ENQUEUE_WAKEUP
        if cpu != prev:
            self._migrate_bookkeeping(t, self.rqs[prev], self.rqs[cpu])
            flags |= ENQUEUE_MIGRATED
        rq = self.rqs[cpu]
        t.on_rq = True
        rq.nr_running += 1
        t.sched_class.enqueue_task(rq, t, flags)
        self.tick_dep(rq)
        self.check_preempt(rq, t, point if cpu == src_cpu else Point.ASYNC)
        t.sched_class.task_woken(rq, t)

    def _migrate_bookkeeping(self, t: SchedTask, src: Rq, dst: Rq) -> None:
        t.sched_class.migrate_task_rq(t, src, dst)
        t.cpu = dst.cpu
        t.nr_migrations += 1

    def move_queued(self, t: SchedTask, src: Rq, dst: Rq) -> None:
        """Migrate a queued, not running task (push/pull/load balance): dequeue, move, enqueue."""
        cls = t.sched_class
        cls.dequeue_task(src, t, 0)
        src.nr_running -= 1
        self._migrate_bookkeeping(t, src, dst)
        dst.nr_running += 1
        cls.enqueue_task(dst, t, ENQUEUE_MIGRATED)
        self.tick_dep(dst)

    # ---- __schedule() ----------------------------------------------------------------------------------------
    def pick_next(self, rq: Rq) -> SchedTask | None:
        """``pick_next_task()``: the first class, in :attr:`classes` order, with a task to run.

        A class is asked only when its queue on ``rq`` is not empty (the stop class: when it ever had
        work): an empty queue's ``pick_task`` finds nothing, and the calls were a visible share of
        ``__schedule()``.
        """
        stop = self.stop_class
        if stop.queues:
            p = stop.pick_task(rq)
            if p is not None:
                return p
        if rq.dl:
            p = self.dl_class.pick_task(rq)
            if p is not None:
                return p
        if rq.rt:
            p = self.rt_class.pick_task(rq)
            if p is not None:
                return p
        if rq.fair:
            return self.fair_class.pick_task(rq)
        return None

    def schedule(self, rq: Rq) -> None:
        now = self.engine.now
        prev = rq.curr
        if prev is not None:
            self.update_curr(rq)
            ev = rq.complete_ev
            if ev is not None:
                ev.cancel()
                rq.complete_ev = None
                r = rq.run_until - work_start(rq, now)
                prev.rem = r if r > 0 else 0
            if rq.budget_ev is not None:
                rq.budget_ev.cancel()
                rq.budget_ev = None
            # prev_balance(): from prev's class down, until a class reports a runnable task
            classes = self.classes
            for i in range(prev.sched_class.rank, len(classes)):
                if classes[i].balance(rq, prev):
                    break
            if prev.on_rq:
                prev.sched_class.put_prev_task(rq, prev)
        nxt = self.pick_next(rq)
        if nxt is None and prev is None:
            # An idle CPU asked to reschedule with nothing to run: try a newidle pull as well (the kernel
            # would leave this to the idle balancer).
            self.fair_class.newidle_balance(rq)
            nxt = self.pick_next(rq)
        rq.need_resched = 0
        if nxt is prev:
            if prev is None:
                return
            rq.exec_start = now
            rq.stolen_mark = rq.stolen
            self._arm_budget(rq, prev)
            self.interp.run_program(rq, prev, Point.KERNEL)
            return
        if prev is not None:
            if prev.on_rq:
                prev.nivcsw += 1
            else:
                prev.nvcsw += 1
            if self.trace is not None:
                self.trace.append((rq.cpu, prev.id, rq.trace_start, now))
            if prev.guest is not None:
                prev.guest.leave(prev)
        rq.nr_switches += 1
        if nxt is None:
            rq.curr = None
            if rq.busy_since >= 0:
                rq.busy_ns += now - rq.busy_since
                rq.busy_since = -1
            return
        if rq.busy_since < 0:
            rq.busy_since = now
        self._switch_in(rq, nxt, now)

    def _switch_in(self, rq: Rq, nxt: SchedTask, now: int) -> None:
        start = rq.irq_until if rq.irq_until > now else now
        if nxt.last_cpu != rq.cpu and nxt.last_cpu >= 0:
            penalty = self.migration_refill_ns
        elif rq.last_task is not nxt:
            penalty = self.cache_refill_ns
        else:
            penalty = 0
        rq.ovh_until = start + self.ctx_switch_ns + penalty
        rq.curr = nxt
        rq.exec_start = now
        rq.stolen_mark = rq.stolen
        rq.last_task = nxt
        rq.trace_start = now
        nxt.last_cpu = rq.cpu
        st = nxt.stats
        if st.job_start < 0:
            st.job_start = now
        if st.lat_release >= 0:
            st.lat.append(start + self.ctx_switch_ns - st.lat_release)
            st.lat_release = -1
        nxt.sched_class.set_next_task(rq, nxt)
        if rq.tick_ev is None:
            tick = self.tick_ns
            rq.tick_ev = self.at((now // tick + 1) * tick, Prio.TICK, self._tick, rq)
            rq.tick_stopped = False
        self._arm_budget(rq, nxt)
        # The balance callback set_next_task_{rt,dl}() queued: push what no longer runs here. A resched of
        # this CPU from inside it is honoured at the task's first preemption point.
        rq.in_advance = True
        nxt.sched_class.post_switch(rq)
        self.interp.run_program(rq, nxt, Point.KERNEL)

    def _arm_budget(self, rq: Rq, t: SchedTask) -> None:
        if self.hrtick_dl:
            wall = self.dl_class.budget_wall_ns(rq, t)
            if wall is not None:
                now = self.engine.now
                base = rq.irq_until if rq.irq_until > now else now
                # hrtick_start(): "Don't schedule slices shorter than 10000ns" (an entity picked with q <= 0
                # is then throttled 10 us later instead of re-arming at the same instant forever)
                rq.budget_at = base + (wall if wall > HRTICK_MIN_NS else HRTICK_MIN_NS)
                rq.budget_ev = self.at(rq.budget_at, PRIO_BUDGET, self._budget_expired, rq)

    def rearm_budget(self, rq: Rq) -> None:
        """The depletion rate of the running DL entity changed (GRUB): account and re-arm its hrtick."""
        if rq.budget_ev is not None:
            rq.budget_ev.cancel()
            rq.budget_ev = None
        if rq.curr is not None and self.hrtick_dl:
            self.update_curr(rq)
            self._arm_budget(rq, rq.curr)

    def _budget_expired(self, rq: Rq) -> None:
        rq.budget_ev = None
        self.update_curr(rq)
        curr = rq.curr
        if rq.need_resched and curr is not None:
            if self.model.allows(
                rq.need_resched, Point.IRQ_EXIT, curr.user, curr.preempt_count, curr.lazy_count
            ):
                self.schedule(rq)
        elif curr is not None:
            self._arm_budget(rq, curr)

    # ---- the tick --------------------------------------------------------------------------------------------
    def _tick(self, rq: Rq) -> None:
        curr = rq.curr
        now = self.engine.now
        if curr is None:
            rq.tick_ev = None  # NO_HZ_IDLE: the tick stops on an idle CPU
            rq.tick_stopped = False
            return
        if self.tick_cost_ns:
            self.steal(rq, self.tick_cost_ns, self.tick_pollution_ns)
        if rq.need_resched == Resched.LAZY and self.lazy_tick_promotion:
            # sched_tick() (6.13), before task_tick(): a lazy request pending since before this tick
            # becomes TIF_NEED_RESCHED; one raised by this tick's own accounting waits for the next tick.
            rq.need_resched = Resched.NOW
        # update_curr(rq), inlined: the tick is half of all events
        delta = now - rq.exec_start - (rq.stolen - rq.stolen_mark)
        rq.exec_start = now
        rq.stolen_mark = rq.stolen
        cls = curr.sched_class
        if delta > 0:
            curr.sum_exec += delta
            lvl = cls.update_curr(rq, curr, delta)
            if lvl > rq.need_resched:
                rq.need_resched = self.model.level(lvl)
        lvl = cls.task_tick(rq, curr)
        if lvl > rq.need_resched:
            rq.need_resched = self.model.level(lvl)
        rq.balance_tick += 1
        if rq.balance_tick >= self.balance_ticks:
            rq.balance_tick = 0
            self.fair_class.periodic_balance(rq)
        if rq.nohz_full and self.sched_can_stop_tick(rq):
            nxt = now + NSEC_PER_SEC  # nohz_full: only the residual 1 Hz tick
            rq.tick_stopped = True
        else:
            nxt = now + self.tick_ns
            rq.tick_stopped = False
        ev = rq.tick_ev
        if ev is not None and ev.time == now and self.hooks_vcpu is None:
            # The event that runs this tick (not one tick_dep() armed meanwhile, which is in the future), on a
            # machine whose events are the engine's own (a guest's are wrapped): queue it again.
            self.engine.again(ev, nxt)
        else:
            rq.tick_ev = self.at(nxt, Prio.TICK, self._tick, rq)
        curr = rq.curr
        if (
            curr is not None
            and rq.need_resched
            and self.model.allows(rq.need_resched, Point.IRQ_EXIT, curr.user, curr.preempt_count, curr.lazy_count)
        ):
            self.schedule(rq)

    # ---- stolen time -----------------------------------------------------------------------------------------
    def steal(self, rq: Rq, duration: int, pollution: int) -> None:
        """An interruption of ``duration`` ns on ``rq``'s CPU; the running task also refills ``pollution``."""
        now = self.engine.now
        if rq.irq_until > now:
            rq.irq_until += duration
        else:
            rq.irq_until = now + duration
        rq.stolen += duration
        rq.noise_ns += duration
        rq.noise_events += 1
        rq.noise_max = max(rq.noise_max, duration)
        ev = rq.complete_ev
        if ev is not None:
            ev.cancel()
            rq.run_until += duration + pollution
            rq.complete_ev = self.at(rq.run_until, ev.prio, ev.fn, *ev.args)
        ev = rq.budget_ev
        if ev is not None:
            ev.cancel()
            rq.budget_at += duration
            rq.budget_ev = self.at(rq.budget_at, ev.prio, ev.fn, *ev.args)
