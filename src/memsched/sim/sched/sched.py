"""The exact scheduler's shared types, like ``kernel/sched/sched.h``: runqueue, entities, task, class interface.

Models the declarations of ``kernel/sched/sched.h`` and ``include/linux/sched.h`` (v6.13) that every part of
the scheduler shares, so that the class modules (``deadline.py``, ``rt.py``, ``fair.py``, ``stop_task.py``)
and the core (``core.py``) depend on this module and never on each other's construction:

* :class:`Rq` — ``struct rq`` of one CPU, with its ``cfs_rq`` / ``rt_rq`` / ``dl_rq`` parts inline and its
  per-CPU ``fair_server`` (:class:`FairServer`);
* :class:`SchedTask` — ``struct task_struct`` as far as the scheduler sees it: identity, state, policy and
  program position, embedding one entity per class: ``se`` (:class:`SchedEntity`, ``struct sched_entity``),
  ``rt`` (:class:`RtEntity`, ``struct sched_rt_entity``) and ``dl`` (:class:`DlEntity`,
  ``struct sched_dl_entity``), plus the simulator's measurements (:class:`~memsched.sim.sched.program.TaskStats`);
* :class:`DlEntity` — embedded by a deadline task and by the fair_server alike, so that the CBS rules of
  ``deadline.py`` (``replenish_dl_entity`` and the others) are written once for both;
* :class:`SchedClass` — ``struct sched_class``, the operations the core calls on a task's class, with the
  ``ENQUEUE_*`` / ``DEQUEUE_*`` flags passed to them;
* :class:`CoreOps` — what a class or the task-program interpreter (``interp.py``) may ask of the core, so
  neither needs an import of ``core.py``;
* ``sched_prio_to_weight`` (kernel/sched/core.c) and :class:`SchedConfig`, the scheduler's knobs.

The default :class:`SchedClass` methods are the kernel's "optional hook absent" behaviour
(``if (p->sched_class->hook)``): ``migrate_task_rq``, ``yield_task``, ``put_prev_task``, ``set_next_task`` and
``task_woken`` do nothing, ``balance`` finds nothing to pull (so ``prev_balance()`` goes on to the next class),
``select_task_rq`` keeps the previous CPU, ``pick_task`` finds nothing. Used as it is, the base is the idle
class (rank 4, ``kernel/sched/idle.c``), which never has a queued task.

Deviations from the kernel: the flag values are this simulator's own (only their names follow ``sched.h``:
``ENQUEUE_INITIAL`` is 0x80 there); ``ENQUEUE_RESTORE`` / ``DEQUEUE_SAVE`` mark the dequeue/enqueue pair around
a ``sched_setattr()`` change (``__sched_setscheduler``); classes return a
:class:`~memsched.sim.sched.preempt.Resched` level from ``update_curr`` / ``task_tick`` / ``wakeup_preempt``
instead of calling ``resched_curr()``. ``sum_exec_runtime`` and ``nr_migrations`` (in the kernel's
``sched_entity``) are kept on the task, because :class:`SchedEntity` here is the fair class's entity only.
A runqueue keeps its queues as lists (insertion order breaks ties), not rb-trees.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from memsched.admission import to_ratio
from memsched.config import cost_knob, knob, validate
from memsched.errors import ConfigError
from memsched.sim.engine import Engine, Event
from memsched.sim.sched.preempt import PreemptModel, Resched
from memsched.sim.sched.program import Phase, TaskStats
from memsched.uapi.sched import SchedPolicy
from memsched.units import NSEC_PER_SEC

if TYPE_CHECKING:
    from memsched.sim.mm.slub import Slub

__all__ = [
    "DEQUEUE_SAVE",
    "DEQUEUE_SLEEP",
    "ENQUEUE_INITIAL",
    "ENQUEUE_MIGRATED",
    "ENQUEUE_REPLENISH",
    "ENQUEUE_RESTORE",
    "ENQUEUE_WAKEUP",
    "IDEAL_SCHED",
    "NICE_0_LOAD",
    "NO_DEADLINE",
    "SCHED_PRIO_TO_WEIGHT",
    "WEIGHT_IDLEPRIO",
    "CoreOps",
    "DlEntity",
    "FairServer",
    "GuestHooks",
    "Rq",
    "RtEntity",
    "SchedClass",
    "SchedConfig",
    "SchedEntity",
    "SchedTask",
    "SchedTaskState",
    "div_s64",
    "nice_to_weight",
]

ENQUEUE_WAKEUP = 0x01
ENQUEUE_INITIAL = 0x02
ENQUEUE_MIGRATED = 0x04
ENQUEUE_REPLENISH = 0x08
ENQUEUE_RESTORE = 0x10
DEQUEUE_SLEEP = 0x01
DEQUEUE_SAVE = 0x02
#: The absolute deadline of a DL entity that never had one. The kernel's is 0, long before ``rq_clock()``
#: (which counts from boot), and so is its "next period" ``0 - dl_deadline + dl_period``; simulated time starts
#: at 0, so "long before" has to be spelt out.
NO_DEADLINE = -(1 << 62)

#: ``sched_prio_to_weight[40]``, nice -20 .. 19 (kernel/sched/core.c).
SCHED_PRIO_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_0_LOAD = 1024
#: SCHED_IDLE tasks' weight (kernel/sched/sched.h).
WEIGHT_IDLEPRIO = 3


def nice_to_weight(nice: int) -> int:
    """``sched_prio_to_weight[nice + 20]``: the load weight of a fair task at ``nice``."""
    if not -20 <= nice <= 19:
        raise ConfigError("nice", nice, "must be in -20..19")
    return SCHED_PRIO_TO_WEIGHT[nice + 20]


def div_s64(a: int, b: int) -> int:
    """``div_s64()``: C division of a signed dividend truncates toward zero (Python's ``//`` floors)."""
    q = abs(a) // b
    return q if a >= 0 else -q


#: What :meth:`SchedConfig.ideal` (``memsched rt sim --ideal``) changes: every switch and cache cost off, no
#: fair_server or RT throttling, no admission limit.
IDEAL_SCHED: dict[str, Any] = {
    "ctx_switch_ns": 0,
    "cache_refill_ns": 0,
    "migration_refill_ns": 0,
    "rt_bandwidth": "none",
    "sched_rt_runtime_us": -1,
}


#: ``sched_rt_period_us``, ``sched_rt_runtime_us`` and ``sched_rr_timeslice_ms`` are ``int`` sysctls
#: (kernel/sched/rt.c, 6.x: ``proc_dointvec``, or ``proc_dointvec_minmax`` to ``SYSCTL_INT_MAX``): ``INT_MAX``.
SYSCTL_INT_MAX = (1 << 31) - 1
#: ``fair_server_period_max`` (kernel/sched/debug.c, 6.12): ``(1UL << 22) * NSEC_PER_USEC``, ~4 s; the runtime is at
#: most the period.
FAIR_SERVER_PERIOD_MAX_NS = (1 << 22) * 1000
#: ``base_slice_ns`` is a ``debugfs_create_u32`` file (kernel/sched/debug.c, 6.6+).
U32_MAX = (1 << 32) - 1
#: Product limit of the periodic load balance interval: 60 s, the longest scenario.
MAX_BALANCE_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class SchedConfig:
    """Knobs of the exact scheduler. Field names follow the sysctl / Kconfig / debugfs knob they mirror."""

    preempt: str = knob(
        "lazy",
        "preemption model (Kconfig.preempt, 6.13)",
        choices=("none", "voluntary", "full", "lazy", "rt-lazy"),
    )
    hz: int = knob(1000, "CONFIG_HZ: scheduler tick rate (x86 defaults 250 or 1000)", min=100, max=10000)
    fair: str = knob("eevdf", "fair class flavour: eevdf (6.6+) or cfs (<= 6.5)", choices=("eevdf", "cfs"))
    ctx_switch_ns: int = cost_knob(2_000, "cost of one context switch (LITMUS^RT-order estimate, ~1-5 us)")
    cache_refill_ns: int = cost_knob(
        3_000, "extra work after switching to a task that did not run last here (estimate)"
    )
    migration_refill_ns: int = cost_knob(10_000, "extra work after a migration: cold L1/L2 (estimate)")
    hrtick_dl: bool = knob(
        False, "SCHED_FEAT(HRTICK_DL): enforce DL runtime with an hrtimer (default off: at the tick)"
    )
    sched_rt_runtime_us: int = knob(
        950_000, "/proc/sys/kernel/sched_rt_runtime_us (-1: unlimited)", min=-1, max=SYSCTL_INT_MAX
    )
    sched_rt_period_us: int = knob(1_000_000, "/proc/sys/kernel/sched_rt_period_us", min=1, max=SYSCTL_INT_MAX)
    rt_bandwidth: str = knob(
        "fair-server",
        "RT bandwidth control: fair-server (6.12+), throttle (<= 6.11), none",
        choices=("fair-server", "throttle", "none"),
    )
    fair_server_runtime_ns: int = knob(
        50_000_000, "debugfs sched/fair_server/cpuN/runtime (50 ms)", min=0, max=FAIR_SERVER_PERIOD_MAX_NS
    )
    fair_server_period_ns: int = knob(
        1_000_000_000, "debugfs sched/fair_server/cpuN/period (1 s)", min=1, max=FAIR_SERVER_PERIOD_MAX_NS
    )
    sched_rr_timeslice_ms: int = knob(
        100, "/proc/sys/kernel/sched_rr_timeslice_ms (RR_TIMESLICE)", min=1, max=SYSCTL_INT_MAX
    )
    base_slice_ns: int = knob(
        0, "EEVDF sysctl_sched_base_slice; 0 = 0.75 ms x (1 + ilog2(min(ncpus, 8)))", min=0, max=U32_MAX
    )
    run_to_parity: bool = knob(True, "SCHED_FEAT(RUN_TO_PARITY)")
    preempt_short: bool = knob(True, "SCHED_FEAT(PREEMPT_SHORT) (6.12)")
    balance_interval_ms: int = knob(
        4, "periodic fair load balance interval (sd->balance_interval, 1 ms x cpus)", min=1, max=MAX_BALANCE_INTERVAL_MS
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.sched_rt_runtime_us > self.sched_rt_period_us:
            raise ConfigError(
                "sched_rt_runtime_us", self.sched_rt_runtime_us, "must be <= sched_rt_period_us"
            )

    @property
    def tick_ns(self) -> int:
        return NSEC_PER_SEC // self.hz

    @classmethod
    def ideal(cls, **overrides: Any) -> SchedConfig:
        """The machine of scheduling theory: free context switches, no fair_server, no admission limit."""
        base: dict[str, Any] = dict(IDEAL_SCHED)
        base.update(overrides)
        return cls(**base)


class SchedTaskState(enum.IntEnum):
    RUNNABLE = 0
    BLOCKED = 1
    EXITED = 2
    NEW = 3


class SchedEntity:
    """``struct sched_entity`` of a fair task: load weight, virtual runtime and the EEVDF request."""

    __slots__ = (
        "custom_slice",
        "prev_sum_exec_runtime",
        "rel_deadline",
        "slice",
        "vdeadline",
        "vlag",
        "vruntime",
        "weight",
    )

    def __init__(self) -> None:
        #: ``se->load.weight`` (``sched_prio_to_weight``; 3 for SCHED_IDLE).
        self.weight = NICE_0_LOAD
        self.vruntime = 0
        #: ``se->deadline``: the virtual deadline of the current request.
        self.vdeadline = 0
        #: ``se->vlag``: the lag kept across a dequeue; while running, the deadline stashed at pick
        #: (RUN_TO_PARITY).
        self.vlag = 0
        self.slice = 0
        #: ``se->custom_slice``: ``slice`` was set by sched_setattr(sched_runtime) on a fair policy (6.12+).
        self.custom_slice = False
        #: ``se->rel_deadline``: ``vdeadline`` holds deadline − vruntime across a non-sleep dequeue (6.12+).
        self.rel_deadline = False
        #: ``se->prev_sum_exec_runtime``: the task's ``sum_exec`` when it was picked (CFS slice accounting).
        self.prev_sum_exec_runtime = 0


class RtEntity:
    """``struct sched_rt_entity``: what a FIFO/RR task has beyond its priority."""

    __slots__ = ("time_slice",)

    def __init__(self) -> None:
        #: ``rt_se->time_slice``: what is left of an RR task's slice (ns).
        self.time_slice = 0


class DlEntity:
    """``struct sched_dl_entity``: the reservation and CBS state of a deadline task or of a fair_server."""

    __slots__ = (
        "deadline",
        "dl_bw",
        "dl_deadline",
        "dl_density",
        "dl_period",
        "dl_runtime",
        "dl_timer",
        "flags",
        "inactive_timer",
        "non_contending",
        "overruns",
        "queued",
        "runtime",
        "task",
        "throttled",
        "yielded",
    )

    def __init__(self, task: SchedTask | None) -> None:
        #: The task this entity schedules (``dl_task_of()``); ``None`` for a deadline server.
        self.task = task
        # the reservation (sched_setattr's runtime, deadline, period, flags)
        self.dl_runtime = 0
        self.dl_deadline = 0
        self.dl_period = 0
        self.dl_bw = 0
        self.dl_density = 0
        self.flags = 0
        #: ``dl_se->deadline``: the absolute scheduling deadline.
        self.deadline = NO_DEADLINE
        #: ``dl_se->runtime``: the runtime left in the current period.
        self.runtime = 0
        self.throttled = False
        self.yielded = False
        self.non_contending = False
        #: ``on_dl_rq()``: in its runqueue's ``dl`` queue (not throttled, not sleeping).
        self.queued = False
        #: The replenishment timer (``dl_se->dl_timer``); a server's zero-laxity timer too.
        self.dl_timer: Event | None = None
        #: The GRUB 0-lag timer (``dl_se->inactive_timer``).
        self.inactive_timer: Event | None = None
        #: SIGXCPU signals sent (``SCHED_FLAG_DL_OVERRUN``).
        self.overruns = 0


class FairServer:
    """``rq->fair_server``: a per-CPU deadline entity whose "task" is the fair class (``dl_server``, 6.12+)."""

    __slots__ = ("active", "cpu", "dl", "nr_runs")

    def __init__(self, cpu: int, runtime: int, period: int) -> None:
        self.cpu = cpu
        dl = self.dl = DlEntity(None)
        dl.dl_runtime = runtime
        dl.dl_deadline = period
        dl.dl_period = period
        dl.dl_bw = to_ratio(period, runtime)
        dl.deadline = 0
        #: ``dl_server_active``: started (charged by fair execution), whether or not it is queued.
        self.active = False
        #: How many times the server was enqueued to run fair tasks ahead of RT.
        self.nr_runs = 0


class GuestHooks(Protocol):
    """What the scheduler asks of a KVM guest (``kvm.py``): its vCPU threads and halted vCPUs."""

    def enter(self, t: SchedTask, vcpu: int) -> None:
        """Host side: vCPU thread ``t`` reaches ``VcpuRun`` (VM entry)."""

    def leave(self, t: SchedTask) -> None:
        """Host side: vCPU thread ``t`` is switched out (the guest CPU freezes)."""

    def kick(self, rq: Rq) -> None:
        """Guest side: a reschedule on a frozen or halted guest CPU (``kvm_vcpu_kick``)."""


class SchedTask:
    """A simulated thread for the exact scheduler (``struct task_struct``): identity, state, policy, program
    position, one embedded entity per class (``se``, ``rt``, ``dl``) and its measurements (``stats``)."""

    __slots__ = (
        "affinity",
        "cpu",
        "dl",
        "exit_ns",
        "guest",
        "id",
        "last_cpu",
        "lazy_count",
        "locks_held",
        "loops",
        "loops_done",
        "name",
        "nice",
        "nivcsw",
        "nr_migrations",
        "nvcsw",
        "on_rq",
        "pc",
        "plen",
        "policy",
        "preempt_count",
        "prio",
        "program",
        "rem",
        "rt",
        "sched_class",
        "se",
        "start_ns",
        "state",
        "stats",
        "sum_exec",
        "user",
    )

    def __init__(
        self,
        tid: int,
        name: str,
        program: Sequence[Phase],
        loops: int,
        affinity: tuple[int, ...],
        sched_class: SchedClass,
    ) -> None:
        self.id = tid
        self.name = name
        self.program = tuple(program)
        self.plen = len(self.program)
        self.loops = loops
        self.loops_done = 0
        self.affinity = affinity
        self.policy: int = SchedPolicy.NORMAL
        #: ``rt_priority`` of a FIFO/RR task (1..99), else 0.
        self.prio = 0
        self.nice = 0
        self.sched_class = sched_class
        self.state = SchedTaskState.NEW
        self.on_rq = False
        self.cpu = -1
        self.last_cpu = -1
        #: Program counter, and the work left in the current phase (-1: the phase has not started).
        self.pc = 0
        self.rem = -1
        self.user = True
        self.preempt_count = 0
        #: ``preempt_lazy_count`` of the 2012 -rt patch: raised while a sleeping lock is held.
        self.lazy_count = 0
        self.locks_held = 0
        self.se = SchedEntity()
        self.rt = RtEntity()
        self.dl = DlEntity(self)
        #: The KVM guest whose vCPU this host thread runs (``kvm.py``), if any.
        self.guest: GuestHooks | None = None
        self.stats = TaskStats()
        #: ``se.sum_exec_runtime``: CPU time charged to the task (switch overhead included).
        self.sum_exec = 0
        self.nvcsw = 0
        self.nivcsw = 0
        self.nr_migrations = 0
        self.start_ns = 0
        self.exit_ns = -1

    def __repr__(self) -> str:
        return f"SchedTask({self.id}, {self.name!r}, policy={self.policy}, cpu={self.cpu})"


class Rq:
    """``struct rq`` of one CPU, with the class-private parts (``cfs_rq``, ``rt_rq``, ``dl_rq``) inline."""

    __slots__ = (
        "balance_tick",
        "budget_at",
        "budget_ev",
        "busy_ns",
        "busy_since",
        "complete_ev",
        "cpu",
        "curr",
        "dl",
        "dl_extra_bw",
        "dl_running_bw",
        "dl_this_bw",
        "exec_start",
        "fair",
        "fair_server",
        "in_advance",
        "irq_until",
        "isolated",
        "last_task",
        "min_vruntime",
        "need_resched",
        "nohz_full",
        "noise_events",
        "noise_max",
        "noise_ns",
        "nr_running",
        "nr_switches",
        "ovh_until",
        "paused",
        "rt",
        "rt_throttled",
        "rt_time",
        "run_until",
        "stolen",
        "stolen_mark",
        "sum_w",
        "sum_wv",
        "tick_ev",
        "tick_stopped",
        "trace_start",
    )

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.curr: SchedTask | None = None
        self.nr_running = 0
        self.need_resched = 0
        #: The core is advancing ``curr``'s program: a reschedule waits for its next phase boundary.
        self.in_advance = False
        #: A guest CPU whose vCPU thread is not running on the host (``kvm.py``).
        self.paused = False
        self.exec_start = 0
        #: Interrupt time stolen from this CPU so far, and its value at the last accounting.
        self.stolen = 0
        self.stolen_mark = 0
        #: Until when an interruption, the switch overhead, and the current phase keep the CPU.
        self.irq_until = 0
        self.ovh_until = 0
        self.run_until = 0
        self.complete_ev: Event | None = None
        self.budget_ev: Event | None = None
        self.budget_at = 0
        self.tick_ev: Event | None = None
        #: nohz_full: the next tick is the residual 1 Hz one (``sched_can_stop_tick()`` said yes).
        self.tick_stopped = False
        self.balance_tick = 0
        self.last_task: SchedTask | None = None
        self.nr_switches = 0
        # dl_rq: queued (not throttled) DL entities, the fair server's included; GRUB bandwidths
        self.dl: list[DlEntity] = []
        self.dl_running_bw = 0
        self.dl_this_bw = 0
        self.dl_extra_bw = 0
        self.fair_server: FairServer | None = None
        # rt_rq: queued FIFO/RR tasks, highest priority first; RT throttling
        self.rt: list[SchedTask] = []
        self.rt_time = 0
        self.rt_throttled = False
        # cfs_rq: every on_rq fair task, curr included; Σw and Σw·v for EEVDF's V
        self.fair: list[SchedTask] = []
        self.sum_w = 0
        self.sum_wv = 0
        self.min_vruntime = 0
        # isolation
        self.isolated = False
        self.nohz_full = False
        # statistics
        self.busy_ns = 0
        self.busy_since = -1
        self.noise_ns = 0
        self.noise_events = 0
        self.noise_max = 0
        self.trace_start = 0


class CoreOps(Protocol):
    """What a scheduling class or the task-program interpreter may ask of the core (``core.py``'s ``SchedCore``).

    The core constructs the classes and the interpreter (``interp.py``) and hands itself to them as this
    protocol, so neither imports ``core.py``: the kernel's classes likewise call ``resched_curr()``,
    ``update_curr()`` and the rest through ``sched.h``.
    """

    @property
    def engine(self) -> Engine: ...

    @property
    def cfg(self) -> SchedConfig: ...

    @property
    def nr_cpus(self) -> int: ...

    @property
    def rqs(self) -> list[Rq]: ...

    @property
    def tick_ns(self) -> int: ...

    @property
    def model(self) -> PreemptModel: ...

    @property
    def slub(self) -> Slub | None: ...

    @property
    def stop_class(self) -> SchedClass: ...

    @property
    def fair_class(self) -> SchedClass: ...

    def at(self, time: int, prio: int, fn: Callable[..., Any], *args: Any) -> Event:
        """Schedule a CPU-side event (gated on the vCPU for a guest's scheduler)."""

    def update_curr(self, rq: Rq) -> None:
        """Charge the running task for the time since the last accounting."""

    def rearm_budget(self, rq: Rq) -> None:
        """The depletion rate of the running DL entity changed: account and re-arm its hrtick."""

    def tick_dep(self, rq: Rq) -> None:
        """``sched_update_tick_dependency()`` after an enqueue."""

    def check_preempt(self, rq: Rq, p: SchedTask, point: int) -> None:
        """``wakeup_preempt()``."""

    def resched(self, rq: Rq, level: int, point: int) -> None:
        """``resched_curr()`` / ``resched_curr_lazy()``."""

    def move_queued(self, t: SchedTask, src: Rq, dst: Rq) -> None:
        """Migrate a queued, not running task."""

    def schedule(self, rq: Rq) -> None:
        """``__schedule()`` on ``rq``'s CPU."""

    def block(self, rq: Rq, t: SchedTask) -> None:
        """The running ``t`` goes to sleep (dequeued with ``DEQUEUE_SLEEP``), then ``__schedule()``."""

    def task_dead(self, rq: Rq, t: SchedTask) -> None:
        """The running ``t`` exits (``do_task_dead()``), then ``__schedule()``."""

    def wake_up(self, t: SchedTask, src_cpu: int, point: int) -> None:
        """``try_to_wake_up()`` of a sleeping ``t`` from ``src_cpu``."""

    def hrtimer_expire(self, fn: Callable[..., None], t: SchedTask, *args: Any) -> None:
        """A task's timer expires: ``fn(t, *args)``, with the other timers of its CPU due at that instant."""


class SchedClass:
    """``struct sched_class``: the operations every scheduling class provides.

    ``rank`` orders the classes (stop 0 < dl 1 < rt 2 < fair 3 < idle 4; lower runs first). Accounting is
    done in :meth:`update_curr`, which may ask for a reschedule by returning a :class:`Resched` level.
    """

    rank = 4
    name = "idle"

    def __init__(self, core: CoreOps) -> None:
        self.core = core

    def enqueue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        raise NotImplementedError

    def dequeue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        raise NotImplementedError

    def pick_task(self, rq: Rq) -> SchedTask | None:
        return None

    def put_prev_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def set_next_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def update_curr(self, rq: Rq, p: SchedTask, delta: int) -> int:
        return Resched.NONE

    def task_tick(self, rq: Rq, p: SchedTask) -> int:
        return Resched.NONE

    def wakeup_preempt(self, rq: Rq, p: SchedTask) -> int:
        return Resched.NONE

    def select_task_rq(self, p: SchedTask, prev_cpu: int, waker_cpu: int) -> int:
        return prev_cpu

    def yield_task(self, rq: Rq, p: SchedTask) -> None:
        return None

    def migrate_task_rq(self, p: SchedTask, src: Rq, dst: Rq) -> None:
        return None

    def balance(self, rq: Rq, prev: SchedTask) -> bool:
        """``class->balance(rq, prev)`` in ``prev_balance()``: pull work before picking.

        Returns True when a task of this class or a higher one is runnable, which ends the balance pass
        (the kernel walks the classes from ``prev``'s down to idle and stops at the first True).
        """
        return False

    def task_woken(self, rq: Rq, p: SchedTask) -> None:
        """``class->task_woken``: after a wakeup that did not make ``p`` run, push work away; optional."""
        return None

    def post_switch(self, rq: Rq) -> None:
        """The balance callback ``set_next_task`` queues when ``p`` is switched in (push); optional."""
        return None
