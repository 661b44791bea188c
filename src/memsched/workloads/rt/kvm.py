"""``kvm``: a guest SCHED_DEADLINE task inside a KVM guest whose vCPU is a host task (``sim/sched/kvm.py``).

The vCPU thread is SCHED_OTHER next to host CPU hogs, SCHED_FIFO, or a SCHED_DEADLINE reservation; the
guest task's misses and response times show what each host policy gives the guest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsched.config import cost_knob, knob, validate
from memsched.errors import ConfigError
from memsched.sim.sched.kvm import KvmGuest
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.sim.sched.sched import SchedConfig
from memsched.uapi.sched import SchedAttr, SchedPolicy
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC
from memsched.workloads.rt.base import DL_PERIOD_MAX_US, RtBuilt, RtScenario, periodic_events, ticks

__all__ = ["SCENARIO", "KvmConfig"]


@dataclass(frozen=True)
class KvmConfig:
    vcpu_policy: str = knob("fifo", "host policy of the vCPU thread", choices=("other", "fifo", "deadline"))
    vcpu_runtime_us: int = knob(500, "SCHED_DEADLINE vCPU: runtime per period", min=2, max=DL_PERIOD_MAX_US)
    vcpu_period_us: int = knob(1000, "SCHED_DEADLINE vCPU: period", min=100, max=DL_PERIOD_MAX_US)
    host_load: int = knob(
        2, "host SCHED_OTHER CPU hogs on the vCPU's host CPU (a deadline vCPU is not pinned there)", min=0, max=64
    )
    guest_runtime_us: int = knob(200, "guest SCHED_DEADLINE task: runtime", min=2, max=DL_PERIOD_MAX_US)
    guest_period_us: int = knob(2000, "guest SCHED_DEADLINE task: period (= deadline)", min=100, max=DL_PERIOD_MAX_US)
    guest_work_us: int = knob(100, "guest task's work per job", min=1, max=DL_PERIOD_MAX_US)
    vm_entry_ns: int = cost_knob(1_500, "cost of a VM entry after the vCPU was descheduled or halted (assumed)")
    duration_ms: int = knob(2_000, "run length (at most 60 s simulated)", min=1, max=60_000)

    def __post_init__(self) -> None:
        validate(self)
        # sched_setattr() refuses runtime > deadline (kernel/sched/deadline.c, __checkparam_dl()): say so for the
        # knob, before the run, rather than as the simulated syscall's failure.
        for who in ("vcpu", "guest"):
            runtime, period = getattr(self, f"{who}_runtime_us"), getattr(self, f"{who}_period_us")
            if runtime > period:
                why = f"must be <= {who}_period_us ({period}): runtime <= deadline <= period"
                raise ConfigError(f"{who}_runtime_us", runtime, why)


def _build(m: RtMachine, c: KvmConfig) -> RtBuilt:
    if c.vcpu_policy == "fifo":
        vattr = SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=50)
    elif c.vcpu_policy == "deadline":
        vattr = SchedAttr.deadline(c.vcpu_runtime_us * NSEC_PER_USEC, c.vcpu_period_us * NSEC_PER_USEC)
    else:
        vattr = None
    pcpu = m.nr_cpus - 1
    hogs = [m.spawn(f"host-hog{i}", (Run(10 * NSEC_PER_MSEC),), affinity=[pcpu]) for i in range(c.host_load)]
    vm = KvmGuest(
        m,
        1,
        config=SchedConfig(),
        vcpu_attr=None,
        pin=[pcpu] if vattr is None else None,
        vm_entry_ns=c.vm_entry_ns,
    )
    if vattr is not None:
        for t in vm.vcpus:
            if vattr.sched_policy == SchedPolicy.DEADLINE:
                # Not pinned: sched_setattr() refuses SCHED_DEADLINE to a task whose affinity is narrower than its
                # root domain (-EPERM in __sched_setscheduler(): kernel/sched/core.c to 6.9, syscalls.c since), so
                # it runs where global EDF finds room, away from the hogs when another CPU is free.
                m.sched_setattr(t, vattr)
            else:
                t.affinity = (pcpu,)
                t.cpu = pcpu
                m.sched_setattr(t, vattr)
    g = vm.guest
    r, p = c.guest_runtime_us * NSEC_PER_USEC, c.guest_period_us * NSEC_PER_USEC
    gt = g.spawn(
        "guest-dl", (Run(c.guest_work_us * NSEC_PER_USEC), Timer(p)), attr=SchedAttr.deadline(r, p, p)
    )

    def metrics(mm: RtMachine) -> dict[str, Any]:
        rec = g.task_record(gt, mm.engine.now)
        return {
            "kvm": {
                "vcpu_policy": c.vcpu_policy,
                "guest_task": rec,
                "vm_entries": vm.entries,
                "halts": vm.halts,
                "vcpu_sum_exec_ms": sum(t.sum_exec for t in vm.vcpus) / 1e6,
            }
        }

    return RtBuilt(
        {"vcpus": vm.vcpus, "host": hogs, "guest": [gt]}, c.duration_ms * NSEC_PER_MSEC, metrics=metrics
    )


#: Scheduler events per vCPU period or guest job: release, VM entry, completion, VM exit (the default's 2,000
#: vCPU periods and 1,000 guest jobs took 12,195 events, ticks included).
KVM_EVENTS_PER_PERIOD = 4


def _events(c: KvmConfig, ncpu: int) -> int:
    duration = c.duration_ms * NSEC_PER_MSEC
    vcpu = periodic_events(duration, c.vcpu_period_us * NSEC_PER_USEC, KVM_EVENTS_PER_PERIOD)
    guest = periodic_events(duration, c.guest_period_us * NSEC_PER_USEC, KVM_EVENTS_PER_PERIOD)
    return vcpu + guest + ticks(ncpu, c.duration_ms)


SCENARIO = RtScenario(
    "kvm",
    "a guest SCHED_DEADLINE task inside a KVM guest whose vCPU is a host task",
    KvmConfig,
    _build,
    cpus=2,
    events=_events,
)
