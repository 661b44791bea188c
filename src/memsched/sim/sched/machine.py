"""The exact realtime machine: the per-slice scheduler of ``core.py`` with its "syscalls".

Where the fluid NUMA machine serves long bandwidth-bound runs, :class:`RtMachine` builds the exact
scheduler (its core, classes, SLUB allocator and noise sources) and simulates every context switch, tick
and timer, for the questions of the realtime roadmap (latency, deadline misses, preemption models,
isolation). It uses the same engine (integer ns, seeded named random
streams), the same :class:`~memsched.topology.Topology` and the same ``uapi`` types.

``sched_setattr(task, attr, flags)`` mirrors ``kernel/sched/syscalls.c`` (v6.13) and its errors:
``E2BIG`` for a raw ``struct sched_attr`` of the wrong size or with non-zero bytes past what we know,
``EINVAL`` for non-zero ``flags``, an unknown policy or flag, a priority outside 1..99 for FIFO/RR (or
non-zero for the others) and failed ``__checkparam_dl`` (``memsched.admission.checkparam_dl``), ``EPERM``
for a deadline task whose affinity is narrower than the root domain, ``EBUSY`` when
``memsched.admission.DlBandwidth`` refuses the bandwidth (``__dl_overflow``). ``SCHED_FLAG_KEEP_PARAMS``
fills the attr from the task's current parameters (``get_params()``: DL runtime/deadline/period/flags, RT
priority, or nice and slice) and then runs every check, so a policy change still has to pass them;
``SCHED_FLAG_KEEP_POLICY`` keeps the policy. A call that changes nothing returns at once
(``policy == p->policy`` and no parameter differs). ``sched_runtime`` on SCHED_NORMAL/BATCH sets a custom
EEVDF slice (``se->custom_slice``, clamped to 0.1–100 ms; 6.12). The task is dequeued with ``DEQUEUE_SAVE``
and enqueued again with ``ENQUEUE_RESTORE``, so a fair task keeps its lag.

Deviations from the kernel: one root domain per machine; utilisation clamps are accepted and ignored;
``SCHED_EXT`` is refused with EINVAL (no BPF scheduler is loaded); a task leaving SCHED_DEADLINE gives its
bandwidth back at once (the kernel waits for its 0-lag time, ``switched_from_dl``); no
``prio_changed``/``switched_to`` subtleties: a running task whose attributes change is rescheduled.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Sequence
from typing import Any

import numpy as np

from memsched.admission import checkparam_dl, to_ratio
from memsched.errors import ConfigError, KernelError
from memsched.sim.engine import Engine
from memsched.sim.mm.slub import Slub, SlubConfig
from memsched.sim.sched.core import SchedCore
from memsched.sim.sched.fair import SLICE_MAX_NS, SLICE_MIN_NS
from memsched.sim.sched.isolation import IsolationConfig, NoiseModel, install_noise
from memsched.sim.sched.preempt import Point, Resched
from memsched.sim.sched.program import Phase
from memsched.sim.sched.sched import (
    DEQUEUE_SAVE,
    ENQUEUE_RESTORE,
    NO_DEADLINE,
    WEIGHT_IDLEPRIO,
    SchedConfig,
    SchedTask,
    SchedTaskState,
    nice_to_weight,
)
from memsched.topology import Topology
from memsched.uapi.sched import (
    SCHED_ATTR_SIZE_VER0,
    SCHED_ATTR_SIZE_VER1,
    SCHED_FLAG_ALL,
    SchedAttr,
    SchedFlag,
    SchedPolicy,
)

__all__ = ["RtMachine", "simple_topology"]


def simple_topology(cpus: int) -> Topology:
    """A one-node machine of ``cpus`` single-threaded cores (for the realtime experiments and tests)."""
    if cpus < 1:
        raise ConfigError("cpus", cpus, "must be >= 1")
    return Topology.from_mapping(
        {
            "name": f"smp-{cpus}",
            "description": f"{cpus} CPUs, one node",
            "sockets": 1,
            "cores_per_socket": cpus,
            "node_memory": "1GiB",
            "controller_gibps": 20.0,
            "latency_local_ns": 90,
            "core_mlp_bytes": 768,
            "smt_yield": 0.6,
        }
    )


def _percentile(values: Sequence[int], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


class RtMachine:
    """A simulated SMP machine with the exact scheduler. Create tasks with :meth:`spawn`, then :meth:`run`."""

    def __init__(
        self,
        topology: Topology | int,
        config: SchedConfig | None = None,
        *,
        seed: int = 0,
        engine: Engine | None = None,
        noise: NoiseModel | None = None,
        isolation: IsolationConfig | None = None,
        slub: SlubConfig | None = None,
    ) -> None:
        self.topology = simple_topology(topology) if isinstance(topology, int) else topology
        self.cfg = config or SchedConfig()
        self.engine = engine or Engine(seed)
        self.nr_cpus = self.topology.nr_cpus
        self.slub = Slub(self.nr_cpus, slub or SlubConfig(), self.engine)
        self.core = self._make_core()
        self.isolation = isolation or IsolationConfig()
        if noise is not None or isolation is not None:
            install_noise(self.core, noise or NoiseModel(), self.isolation)
        self._next_id = 0
        #: Keep a record of every finished job (:meth:`job_records`); off by default (memory).
        self.job_log = False

    def _make_core(self) -> SchedCore:
        return SchedCore(self.engine, self.nr_cpus, self.cfg, slub=self.slub)

    # ---- tasks ------------------------------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        program: Sequence[Phase],
        *,
        loops: int = -1,
        attr: SchedAttr | None = None,
        affinity: Sequence[int] | None = None,
        start_ns: int = 0,
        job_deadline_ns: int = 0,
    ) -> SchedTask:
        """Create a thread running ``program`` ``loops`` times (-1: forever) from ``start_ns``."""
        if not program:
            raise ConfigError("program", name, "must have at least one phase")
        if affinity is None:
            aff = self.core.housekeeping
        else:
            aff = tuple(sorted(set(affinity)))
            bad = [c for c in aff if not 0 <= c < self.nr_cpus]
            if bad or not aff:
                raise ConfigError("affinity", list(affinity), f"must be CPU ids in 0..{self.nr_cpus - 1}")
        t = SchedTask(self._next_id, name, program, loops, aff, self.core.fair_class)
        self._next_id += 1
        t.stats.job_deadline = job_deadline_ns
        if self.job_log:
            t.stats.job_log = []
        t.cpu = aff[t.id % len(aff)]
        if attr is not None:
            self.sched_setattr(t, attr)
        self.core.add_task(t, t.cpu, start_ns)
        return t

    @property
    def tasks(self) -> list[SchedTask]:
        return self.core.tasks

    # ---- sched_setattr(2) -------------------------------------------------------------------------------------
    def sched_setattr(self, task: SchedTask, attr: SchedAttr | bytes, flags: int = 0) -> None:
        """``sched_setattr(pid, attr, flags)`` with the kernel's checks and errno values."""
        if flags != 0:
            raise KernelError(errno.EINVAL, f"sched_setattr: flags must be 0 (got {flags})")
        if isinstance(attr, (bytes, bytearray)):
            attr = self._copy_attr(bytes(attr))
        if task.state == SchedTaskState.EXITED:
            raise KernelError(errno.ESRCH, f"sched_setattr: task {task.name} has exited")
        if attr.sched_flags & ~SCHED_FLAG_ALL:
            raise KernelError(errno.EINVAL, f"sched_setattr: unknown sched_flags {attr.sched_flags:#x}")
        policy = task.policy if attr.sched_flags & SchedFlag.KEEP_POLICY else attr.sched_policy
        if attr.sched_flags & SchedFlag.KEEP_PARAMS:
            attr = self._get_params(task, attr)  # sys_sched_setattr(): get_params(), then every check
        if policy not in (0, 1, 2, 3, 5, 6):
            raise KernelError(errno.EINVAL, f"sched_setattr: invalid policy {policy}")
        if policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            if not 1 <= attr.sched_priority <= 99:
                raise KernelError(
                    errno.EINVAL, f"sched_setattr: FIFO/RR priority must be 1..99 (got {attr.sched_priority})"
                )
        elif attr.sched_priority != 0:
            raise KernelError(errno.EINVAL, f"sched_setattr: priority must be 0 for policy {policy}")
        if policy == SchedPolicy.DEADLINE:
            why = checkparam_dl(attr)
            if why is not None:
                raise KernelError(errno.EINVAL, f"sched_setattr: {why}")
        if self._unchanged(task, policy, attr):
            return None
        if policy == SchedPolicy.DEADLINE:
            if set(task.affinity) != set(self.core.all_cpus):
                raise KernelError(
                    errno.EPERM, "sched_setattr: a deadline task's affinity must span its root domain"
                )
            dl = self.core.dl_class
            old_bw = task.dl.dl_bw if task.policy == SchedPolicy.DEADLINE else 0
            new_bw = to_ratio(attr.effective_period, attr.sched_runtime)
            if dl.dl_b.overflow(old_bw, new_bw):
                raise KernelError(
                    errno.EBUSY,
                    f"sched_setattr: deadline bandwidth {new_bw / (1 << 20):.4f} does not fit "
                    f"(admitted {dl.dl_b.total_bw / (1 << 20):.4f} of {(dl.dl_b.limit or 0) / (1 << 20):.4f})",
                )
        self._apply(task, policy, attr)
        return None

    def _get_params(self, task: SchedTask, attr: SchedAttr) -> SchedAttr:
        """``get_params()``: overwrite ``attr``'s fields of the task's current class with its parameters."""
        if task.policy == SchedPolicy.DEADLINE:
            dl_flags = int(SchedFlag.RECLAIM | SchedFlag.DL_OVERRUN)  # SCHED_DL_FLAGS (SUGOV aside)
            return dataclasses.replace(
                attr,
                sched_priority=0,
                sched_runtime=task.dl.dl_runtime,
                sched_deadline=task.dl.dl_deadline,
                sched_period=task.dl.dl_period,
                sched_flags=(attr.sched_flags & ~dl_flags) | (task.dl.flags & dl_flags),
            )
        if task.policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            return dataclasses.replace(attr, sched_priority=task.prio)
        return dataclasses.replace(
            attr, sched_nice=task.nice, sched_runtime=task.se.slice or self.core.fair_class.base_slice
        )

    @staticmethod
    def _unchanged(task: SchedTask, policy: int, attr: SchedAttr) -> bool:
        """``__sched_setscheduler()``: same policy and no parameter differs — nothing to do."""
        if policy != task.policy:
            return False
        if policy in (SchedPolicy.NORMAL, SchedPolicy.BATCH):
            return attr.sched_nice == task.nice and not (
                attr.sched_runtime and attr.sched_runtime != task.se.slice
            )
        if policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            return attr.sched_priority == task.prio
        if policy == SchedPolicy.DEADLINE:  # !dl_param_changed()
            dl_flags = int(SchedFlag.RECLAIM | SchedFlag.DL_OVERRUN)
            dl_se = task.dl
            return (
                dl_se.dl_runtime == attr.sched_runtime
                and dl_se.dl_deadline == attr.sched_deadline
                and dl_se.dl_period == attr.sched_period
                and dl_se.flags == attr.sched_flags & dl_flags
            )
        return True  # SCHED_IDLE has no parameters

    @staticmethod
    def _copy_attr(raw: bytes) -> SchedAttr:
        """``sched_copy_attr()``: sizes below VER0 or unknown non-zero tails are E2BIG."""
        if len(raw) < SCHED_ATTR_SIZE_VER0:
            raise KernelError(
                errno.E2BIG, f"sched_setattr: struct sched_attr of {len(raw)} bytes is too small"
            )
        size = int.from_bytes(raw[:4], "little")
        if size and size != len(raw):
            raise KernelError(
                errno.E2BIG, f"sched_setattr: attr.size {size} does not match the {len(raw)} bytes given"
            )
        if len(raw) > SCHED_ATTR_SIZE_VER1 and any(raw[SCHED_ATTR_SIZE_VER1:]):
            raise KernelError(errno.E2BIG, "sched_setattr: non-zero bytes beyond the known struct sched_attr")
        try:
            return SchedAttr.unpack(raw[:SCHED_ATTR_SIZE_VER1] if len(raw) >= SCHED_ATTR_SIZE_VER1 else raw)
        except ConfigError as e:
            raise KernelError(errno.EINVAL, f"sched_setattr: {e}") from None

    def _apply(self, t: SchedTask, policy: int, attr: SchedAttr) -> None:
        core = self.core
        dl_class = core.dl_class
        dl_se = t.dl
        se = t.se
        rq = core.rqs[t.cpu]
        running = t.state == SchedTaskState.RUNNABLE
        is_curr = rq.curr is t
        if running:
            if is_curr:
                core.update_curr(rq)
            t.sched_class.dequeue_task(rq, t, DEQUEUE_SAVE)  # a class change, not a sleep
        was_dl = t.policy == SchedPolicy.DEADLINE
        if was_dl:
            dl_class.dl_b.sub(dl_se.dl_bw)
            dl_class.update_extra_bw(dl_se.dl_bw)
            rq.dl_this_bw -= dl_se.dl_bw
            if running:
                pass  # dequeue_task above already removed its running_bw
            elif dl_se.non_contending:
                dl_se.non_contending = False
                if dl_se.inactive_timer is not None:
                    dl_se.inactive_timer.cancel()
                    dl_se.inactive_timer = None
                rq.dl_running_bw -= dl_se.dl_bw
            if dl_se.dl_timer is not None:
                dl_se.dl_timer.cancel()
                dl_se.dl_timer = None
            dl_se.throttled = False
            dl_se.dl_bw = 0
        t.policy = policy
        if policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            t.prio = attr.sched_priority
        else:
            t.prio = 0
        if policy in (SchedPolicy.NORMAL, SchedPolicy.BATCH):
            t.nice = attr.sched_nice
            se.weight = nice_to_weight(attr.sched_nice)
            if attr.sched_runtime:  # __setscheduler_params(): a custom slice (6.12)
                se.custom_slice = True
                se.slice = min(max(attr.sched_runtime, SLICE_MIN_NS), SLICE_MAX_NS)
            else:
                se.custom_slice = False
                se.slice = core.fair_class.base_slice
        elif policy == SchedPolicy.IDLE:
            se.weight = WEIGHT_IDLEPRIO
        if policy == SchedPolicy.DEADLINE:
            dl_se.dl_runtime = attr.sched_runtime
            dl_se.dl_deadline = attr.sched_deadline
            dl_se.dl_period = attr.effective_period
            dl_se.dl_bw = to_ratio(dl_se.dl_period, dl_se.dl_runtime)
            dl_se.dl_density = to_ratio(dl_se.dl_deadline, dl_se.dl_runtime)
            dl_se.flags = attr.sched_flags
            if not was_dl:
                # A task new to SCHED_DEADLINE has no current deadline: the next enqueue sets one up
                dl_se.deadline = NO_DEADLINE
                dl_se.runtime = 0
            dl_class.dl_b.add(dl_se.dl_bw)
            dl_class.update_extra_bw(-dl_se.dl_bw)
            rq.dl_this_bw += dl_se.dl_bw
            t.sched_class = dl_class
        elif policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            t.sched_class = core.rt_class
        else:
            t.sched_class = core.fair_class
        if running:
            t.sched_class.enqueue_task(rq, t, ENQUEUE_RESTORE)
            if is_curr:
                t.sched_class.set_next_task(rq, t)
                core.resched(rq, Resched.NOW, Point.ASYNC)
            else:
                core.check_preempt(rq, t, Point.ASYNC)

    # ---- running ----------------------------------------------------------------------------------------------
    def run(self, until_ns: int) -> None:
        """Simulate up to ``until_ns`` (absolute simulated time)."""
        if until_ns < self.engine.now:
            raise ConfigError("until", until_ns, f"must be >= the current time {self.engine.now}")
        self.engine.run(until=until_ns)
        self._close_busy()

    def run_until_exit(self, tasks: Sequence[SchedTask], limit_ns: int) -> None:
        """Simulate until every task in ``tasks`` has exited, or until ``limit_ns``."""
        eng = self.engine
        pending = [t for t in tasks if t.state != SchedTaskState.EXITED]
        while pending:
            nxt = eng.peek()
            if nxt is None or nxt > limit_ns:
                eng.run(until=limit_ns)
                break
            # run in bursts between checks: checking every event would cost more than the events
            for _ in range(256):
                nxt = eng.peek()
                if nxt is None or nxt > limit_ns:
                    break
                eng.step()
            pending = [t for t in pending if t.state != SchedTaskState.EXITED]
        self._close_busy()

    def _close_busy(self) -> None:
        now = self.engine.now
        for rq in self.core.rqs:
            if rq.busy_since >= 0:
                rq.busy_ns += now - rq.busy_since
                rq.busy_since = now

    def enable_trace(self) -> None:
        self.core.trace = []

    def enable_job_log(self) -> None:
        """Record every finished job of every task (spawned or to be spawned) for :meth:`job_records`."""
        self.job_log = True
        for t in self.core.tasks:
            if t.stats.job_log is None:
                t.stats.job_log = []

    def job_records(self) -> list[dict[str, Any]]:
        """Every finished job, by task then release: times in ns, as the task totals count them.

        ``start`` is when the job was first switched in (before the switch cost), ``finish`` when it reached
        its ``Timer``; ``deadline`` is absolute (release + the relative deadline its lateness is measured
        against); ``preemptions`` and ``migrations`` are the task's involuntary switches and migrations
        between the job's release and its end. A job still running when the run ends is not listed (the
        task's ``jobs`` and ``deadline_misses`` do not count it either).
        """
        out: list[dict[str, Any]] = []
        for t in self.core.tasks:
            log = t.stats.job_log
            if not log:
                continue
            for i, (release, start, finish, d, preempt, migr) in enumerate(log):
                out.append(
                    {
                        "task": t.name,
                        "job": i,
                        "release_ns": release,
                        "start_ns": start if start >= 0 else None,
                        "finish_ns": finish,
                        "deadline_ns": release + d,
                        "response_ns": finish - release,
                        "missed": finish - release > d,
                        "preemptions": preempt,
                        "migrations": migr,
                    }
                )
        return out

    # ---- results ----------------------------------------------------------------------------------------------
    def task_record(self, t: SchedTask, elapsed: int) -> dict[str, Any]:
        st = t.stats
        rec: dict[str, Any] = {
            "id": t.id,
            "name": t.name,
            "policy": SchedPolicy(t.policy).name.lower(),
            "jobs": st.jobs,
            "deadline_misses": st.misses,
            "max_tardiness_us": st.max_tardiness / 1000,
            "mean_tardiness_us": (st.sum_tardiness / st.misses / 1000) if st.misses else 0.0,
            "sum_exec_ms": t.sum_exec / 1e6,
            "work_ms": st.work_ns / 1e6,
            "throughput": st.work_ns / elapsed if elapsed else 0.0,
            "nvcsw": t.nvcsw,
            "nivcsw": t.nivcsw,
            "migrations": t.nr_migrations,
        }
        if t.policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            rec["priority"] = t.prio
        elif t.policy == SchedPolicy.DEADLINE:
            dl_se = t.dl
            rec.update(
                dl_runtime_us=dl_se.dl_runtime / 1000,
                dl_deadline_us=dl_se.dl_deadline / 1000,
                dl_period_us=dl_se.dl_period / 1000,
                dl_overruns=dl_se.overruns,
            )
        else:
            rec["nice"] = t.nice
        if st.resp:
            rec["response_us"] = {
                "mean": float(np.mean(st.resp)) / 1000,
                "p99": _percentile(st.resp, 99) / 1000,
                "max": max(st.resp) / 1000,
            }
        if st.lat:
            rec["latency_us"] = {
                "mean": float(np.mean(st.lat)) / 1000,
                "p99": _percentile(st.lat, 99) / 1000,
                "max": max(st.lat) / 1000,
                "samples": len(st.lat),
            }
        return rec

    def results(self) -> dict[str, Any]:
        now = self.engine.now
        core = self.core
        self._close_busy()
        tasks = [self.task_record(t, now) for t in core.tasks]
        return {
            "cpus": self.nr_cpus,
            "preempt": core.cfg.preempt,
            "fair": core.cfg.fair,
            "hz": core.cfg.hz,
            "elapsed_s": now / 1e9,
            "events": self.engine.events_processed,
            "context_switches": sum(t.nvcsw + t.nivcsw for t in core.tasks),
            "involuntary_switches": sum(t.nivcsw for t in core.tasks),
            "migrations": sum(t.nr_migrations for t in core.tasks),
            "deadline_misses": sum(t.stats.misses for t in core.tasks),
            "cpu_utilisation": [round(rq.busy_ns / now, 6) if now else 0.0 for rq in core.rqs],
            "noise": [
                {
                    "cpu": rq.cpu,
                    "noise_us": rq.noise_ns / 1000,
                    "events": rq.noise_events,
                    "max_single_us": rq.noise_max / 1000,
                }
                for rq in core.rqs
            ],
            "dl": {
                "admitted_bw": core.dl_class.dl_b.total_bw / (1 << 20),
                "throttled": core.dl_class.nr_throttled,
                "fair_server_runs": sum(
                    rq.fair_server.nr_runs for rq in core.rqs if rq.fair_server is not None
                ),
            },
            "rt_throttles": core.rt_class.nr_throttles,
            "slub": self.slub.stats(),
            "tasks": tasks,
        }
