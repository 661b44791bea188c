"""Realtime workloads for the exact machine (``sim/rtmachine.py``), by stable id.

These do not fit the NUMA registry's ``build(machine, config)`` shape (that ``machine`` is the fluid NUMA
machine), so they have their own small registry here (docs/design.md). Each scenario is a validated config
dataclass plus ``build(machine, config) -> RtBuilt``; ``memsched rt sim`` runs them.

* ``hackbench`` — perf bench sched messaging / hackbench ``-p`` (pipe mode): groups of senders and receivers
  of SCHED_OTHER tasks exchanging small messages through pipes. Every message is a write system call that
  takes the pipe mutex, allocates a buffer from SLUB and wakes the reader while holding the mutex (the 2012
  RT-lazy scenario: a woken reader that preempts the writer blocks on that very mutex), and a read that
  takes the mutex and frees the buffer. Wakeup-heavy; throughput = messages per simulated second.
* ``cyclictest`` — one SCHED_FIFO thread per CPU (``cyclictest -a -t -p 99 -i interval``), each woken by an
  absolute periodic timer; latency = wakeup-to-running time.
* ``hackbench+cyclictest`` — both at once: the SCHED_OTHER model question of the roadmap.
* ``dl-periodic`` / ``dl-sporadic`` — SCHED_DEADLINE task sets with UUniFast-Discard or RandFixedSum
  utilisations and log-uniform periods, runtime = WCET, deadline = period.
* ``dhall`` — Dhall's effect: M light tasks (ε, P−1, P−1) and one heavy (P, P, P) on M CPUs, global EDF.
* ``grub`` — the GRUB worked example of sched-deadline.rst (realtime.md §1.4).
* ``isolation`` — a polling task on an isolated (isolcpus + nohz_full + rcu_nocbs) CPU next to one on a
  housekeeping CPU, under the housekeeping noise model.
* ``rt-app`` — an rt-app JSON file (``load_rt_app``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsched.config import from_sets, knob, validate
from memsched.errors import ConfigError, UnknownNameError
from memsched.registry import Registry
from memsched.sim.rtmachine import RtMachine
from memsched.sim.sched.core import Task
from memsched.sim.sched.program import (
    Alloc,
    Free,
    Kernel,
    Lock,
    NoPreempt,
    Phase,
    Recv,
    Run,
    Send,
    Sleep,
    Timer,
    Unlock,
    Yield,
)
from memsched.uapi.sched import SchedAttr, SchedPolicy
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC, NSEC_PER_USEC
from memsched.workloads.rtgen import log_uniform_periods, randfixedsum, uunifast_discard

__all__ = [
    "RtBuilt",
    "RtScenario",
    "build_cyclictest",
    "build_hackbench",
    "get",
    "load_rt_app",
    "names",
]


@dataclass
class RtBuilt:
    """What a scenario created: its task groups by role, the run length, and extra figures at the end."""

    groups: dict[str, list[Task]]
    duration_ns: int
    #: If set, the run ends when every task of this group has exited (hackbench), else at ``duration_ns``.
    until_exit: str | None = None
    metrics: Callable[[RtMachine], dict[str, Any]] = field(default=lambda m: {})


@dataclass(frozen=True)
class RtScenario:
    id: str
    description: str
    config_cls: type
    build: Callable[[RtMachine, Any], RtBuilt]
    cpus: int = 4
    machine_kwargs: Callable[[Any], dict[str, Any]] = field(default=lambda c: {})

    def make_config(self, sets: Mapping[str, str]) -> Any:
        return from_sets(self.config_cls, sets, owner=f"scenario {self.id}")


#: Keyed by what ``memsched rt sim`` calls its argument.
_REGISTRY: Registry[RtScenario] = Registry("taskset")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names


# ---------------------------------------------------------------------------------------------------------
# hackbench


@dataclass(frozen=True)
class HackbenchConfig:
    groups: int = knob(4, "groups of senders+receivers (hackbench -g; default 10 scaled to 4 CPUs)", min=1)
    fds: int = knob(10, "senders and receivers per group (hackbench -f, default 20)", min=1)
    loops: int = knob(40, "messages each sender sends to each receiver (hackbench -l)", min=1)
    syscall_ns: int = knob(600, "system call entry/exit work per read or write (assumed)", min=0)
    copy_ns: int = knob(400, "copy of a 100-byte message under the pipe mutex (assumed)", min=0)
    user_ns: int = knob(800, "user-space work per message (assumed)", min=0)
    wakeup_ns: int = knob(
        300, "try_to_wake_up() under the wait-queue and rq locks, preemption off (assumed)", min=0
    )
    slub: bool = knob(True, "allocate/free a buffer from SLUB per message")
    duration_ms: int = knob(60_000, "upper bound of the run (it ends when hackbench finishes)", min=1)

    def __post_init__(self) -> None:
        validate(self)


def build_hackbench(m: RtMachine, c: HackbenchConfig, *, prefix: str = "hb") -> list[Task]:
    tasks: list[Task] = []
    for g in range(c.groups):
        pipes = [f"{prefix}{g}.pipe{r}" for r in range(c.fds)]
        for r, pipe in enumerate(pipes):
            prog: list[Phase] = [Kernel(c.syscall_ns), Recv(pipe), Lock(pipe), Kernel(c.copy_ns)]
            if c.slub:
                prog.append(Free("skbuff", 1))
            prog += [Unlock(pipe), Run(c.user_ns)]
            tasks.append(m.spawn(f"{prefix}{g}.recv{r}", prog, loops=c.fds * c.loops))
        for s in range(c.fds):
            prog = []
            for pipe in pipes:
                prog += [Kernel(c.syscall_ns), Lock(pipe), Kernel(c.copy_ns)]
                if c.slub:
                    prog.append(Alloc("skbuff", 1))
                prog += [NoPreempt(c.wakeup_ns), Send(pipe), Unlock(pipe), Run(c.user_ns)]
            tasks.append(m.spawn(f"{prefix}{g}.send{s}", prog, loops=c.loops))
    return tasks


def _hackbench_metrics(tasks: list[Task], c: HackbenchConfig) -> Callable[[RtMachine], dict[str, Any]]:
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
                    mx.contended for name, mx in m.core.locks.items() if name.startswith("hb")
                ),
            }
        }

    return metrics


def _hackbench(m: RtMachine, c: HackbenchConfig) -> RtBuilt:
    tasks = build_hackbench(m, c)
    return RtBuilt(
        {"hackbench": tasks}, c.duration_ms * NSEC_PER_MSEC, "hackbench", _hackbench_metrics(tasks, c)
    )


register(
    RtScenario(
        "hackbench", "SCHED_OTHER message passing through pipes (hackbench -p)", HackbenchConfig, _hackbench
    )
)


# ---------------------------------------------------------------------------------------------------------
# cyclictest


@dataclass(frozen=True)
class CyclictestConfig:
    interval_us: int = knob(1000, "timer interval (cyclictest -i, default 1000 us)", min=10)
    priority: int = knob(99, "SCHED_FIFO priority (cyclictest -p)", min=1, max=99)
    work_ns: int = knob(2_000, "clock read + bookkeeping per wakeup (assumed)", min=0)
    duration_ms: int = knob(2_000, "run length", min=1)

    def __post_init__(self) -> None:
        validate(self)


def build_cyclictest(m: RtMachine, c: CyclictestConfig) -> list[Task]:
    prog = (Timer(c.interval_us * NSEC_PER_USEC), Kernel(c.work_ns))
    attr = SchedAttr(sched_policy=SchedPolicy.FIFO, sched_priority=c.priority)
    return [m.spawn(f"cyclic{cpu}", prog, attr=attr, affinity=[cpu]) for cpu in range(m.nr_cpus)]


def _cyclic_metrics(tasks: list[Task]) -> Callable[[RtMachine], dict[str, Any]]:
    def metrics(m: RtMachine) -> dict[str, Any]:
        lat = np.concatenate([np.asarray(t.lat, dtype=np.float64) for t in tasks]) if tasks else np.zeros(0)
        if lat.size == 0:
            return {"cyclictest": {"samples": 0}}
        return {
            "cyclictest": {
                "samples": int(lat.size),
                "mean_us": float(lat.mean()) / 1000,
                "p99_us": float(np.percentile(lat, 99)) / 1000,
                "max_us": float(lat.max()) / 1000,
            }
        }

    return metrics


def _cyclictest(m: RtMachine, c: CyclictestConfig) -> RtBuilt:
    tasks = build_cyclictest(m, c)
    return RtBuilt({"cyclictest": tasks}, c.duration_ms * NSEC_PER_MSEC, None, _cyclic_metrics(tasks))


register(
    RtScenario(
        "cyclictest",
        "periodic SCHED_FIFO timer wakeups per CPU measuring latency",
        CyclictestConfig,
        _cyclictest,
    )
)


@dataclass(frozen=True)
class MixConfig(HackbenchConfig):
    interval_us: int = knob(1000, "cyclictest interval", min=10)
    priority: int = knob(99, "cyclictest priority", min=1, max=99)
    work_ns: int = knob(2_000, "cyclictest work per wakeup", min=0)


def _mix(m: RtMachine, c: MixConfig) -> RtBuilt:
    hb = build_hackbench(m, c)
    cy = build_cyclictest(m, CyclictestConfig(c.interval_us, c.priority, c.work_ns, c.duration_ms))
    hm = _hackbench_metrics(hb, c)
    cm = _cyclic_metrics(cy)
    return RtBuilt(
        {"hackbench": hb, "cyclictest": cy},
        c.duration_ms * NSEC_PER_MSEC,
        "hackbench",
        lambda mm: {**hm(mm), **cm(mm)},
    )


register(RtScenario("hackbench+cyclictest", "hackbench with a cyclictest thread per CPU", MixConfig, _mix))


# ---------------------------------------------------------------------------------------------------------
# SCHED_DEADLINE task sets


@dataclass(frozen=True)
class DlSetConfig:
    tasks: int = knob(16, "number of tasks", min=1)
    utilisation: float = knob(3.2, "total utilisation (sum of runtime/period)", min=0.001)
    generator: str = knob(
        "uunifast-discard", "utilisation generator", choices=("uunifast-discard", "randfixedsum")
    )
    period_min_ms: int = knob(10, "shortest period (log-uniform)", min=1)
    period_max_ms: int = knob(100, "longest period", min=1)
    sporadic: bool = knob(False, "sporadic releases: exponential extra inter-arrival (mean period/4)")
    duration_ms: int = knob(10_000, "run length", min=1)
    set_seed: int = knob(1, "seed of the task-set generator", min=0)

    def __post_init__(self) -> None:
        validate(self)
        if self.period_min_ms > self.period_max_ms:
            raise ConfigError(
                "period_min_ms", self.period_min_ms, f"must be <= period_max_ms ({self.period_max_ms})"
            )


def dl_taskset(c: DlSetConfig) -> list[tuple[int, int]]:
    """``(runtime_ns, period_ns)`` pairs (implicit deadlines) for the config's generator and seed."""
    rng = np.random.default_rng(c.set_seed)
    if c.generator == "randfixedsum":
        u = randfixedsum(c.tasks, c.utilisation, rng)
    else:
        u = uunifast_discard(c.tasks, c.utilisation, rng)
    periods = log_uniform_periods(
        c.tasks, c.period_min_ms * NSEC_PER_MSEC, c.period_max_ms * NSEC_PER_MSEC, rng
    )
    return [(max(1024, int(ui * p)), p) for ui, p in zip(u, periods, strict=True)]


def spawn_dl_set(
    m: RtMachine, pairs: list[tuple[int, int]], *, sporadic: bool = False, prefix: str = "dl"
) -> list[Task]:
    out = []
    for i, (c_ns, p_ns) in enumerate(pairs):
        prog = (Run(c_ns), Timer(p_ns, p_ns // 4 if sporadic else 0))
        out.append(m.spawn(f"{prefix}{i}", prog, attr=SchedAttr.deadline(c_ns, p_ns, p_ns)))
    return out


def _dlset(m: RtMachine, c: DlSetConfig) -> RtBuilt:
    tasks = spawn_dl_set(m, dl_taskset(c), sporadic=c.sporadic)
    return RtBuilt({"dl": tasks}, c.duration_ms * NSEC_PER_MSEC)


def _dl_machine(c: Any) -> dict[str, Any]:
    return {"sched": {"sched_rt_runtime_us": -1, "rt_bandwidth": "none"}}


register(
    RtScenario(
        "dl-periodic",
        "periodic SCHED_DEADLINE task set (UUniFast-Discard / RandFixedSum), global EDF",
        DlSetConfig,
        _dlset,
        machine_kwargs=_dl_machine,
    )
)


@dataclass(frozen=True)
class DlSporadicConfig(DlSetConfig):
    sporadic: bool = knob(True, "sporadic releases")


register(
    RtScenario(
        "dl-sporadic",
        "sporadic SCHED_DEADLINE task set",
        DlSporadicConfig,
        _dlset,
        machine_kwargs=_dl_machine,
    )
)


@dataclass(frozen=True)
class DhallConfig:
    period_ms: int = knob(10, "P of the heavy task (P, P, P); light tasks have period P-1 ms", min=2)
    epsilon_us: int = knob(100, "runtime of each light task", min=2)
    duration_ms: int = knob(1_000, "run length", min=1)

    def __post_init__(self) -> None:
        validate(self)


def _dhall(m: RtMachine, c: DhallConfig) -> RtBuilt:
    p = c.period_ms * NSEC_PER_MSEC
    light = p - NSEC_PER_MSEC
    eps = c.epsilon_us * NSEC_PER_USEC
    tasks = spawn_dl_set(m, [(eps, light)] * m.nr_cpus, prefix="light")
    tasks.append(m.spawn("heavy", (Run(p), Timer(p)), attr=SchedAttr.deadline(p, p, p)))
    return RtBuilt({"dl": tasks}, c.duration_ms * NSEC_PER_MSEC)


register(
    RtScenario(
        "dhall",
        "Dhall's effect under global EDF (M light + 1 heavy task)",
        DhallConfig,
        _dhall,
        machine_kwargs=_dl_machine,
    )
)


@dataclass(frozen=True)
class GrubConfig:
    reclaim: bool = knob(True, "SCHED_FLAG_RECLAIM on both tasks")
    duration_ms: int = knob(8, "run length (the example's period)", min=1)

    def __post_init__(self) -> None:
        validate(self)


def _grub(m: RtMachine, c: GrubConfig) -> RtBuilt:
    from memsched.uapi.sched import SchedFlag

    ms = NSEC_PER_MSEC
    flags = int(SchedFlag.RECLAIM) if c.reclaim else 0
    t1 = m.spawn("T1", (Run(2 * ms), Timer(8 * ms)), attr=SchedAttr.deadline(4 * ms, 8 * ms, 8 * ms, flags))
    t2 = m.spawn("T2", (Run(1000 * ms),), attr=SchedAttr.deadline(4 * ms, 8 * ms, 8 * ms, flags))
    return RtBuilt(
        {"grub": [t1, t2]},
        c.duration_ms * ms,
        metrics=lambda mm: {"grub": {"T2_ran_ms": t2.sum_exec / ms, "T1_ran_ms": t1.sum_exec / ms}},
    )


def _grub_machine(c: Any) -> dict[str, Any]:
    return {
        "cpus": 1,
        "sched": {
            "sched_rt_runtime_us": 1_000_000,
            "rt_bandwidth": "none",
            "hrtick_dl": True,
            "ctx_switch_ns": 0,
            "cache_refill_ns": 0,
            "migration_refill_ns": 0,
        },
    }


register(
    RtScenario(
        "grub",
        "GRUB reclaiming worked example (sched-deadline.rst)",
        GrubConfig,
        _grub,
        cpus=1,
        machine_kwargs=_grub_machine,
    )
)


# ---------------------------------------------------------------------------------------------------------
# CPU isolation


@dataclass(frozen=True)
class IsolationScenarioConfig:
    isolated_cpu: int = knob(3, "the CPU given to isolcpus=domain, nohz_full and rcu_nocbs", min=1)
    housekeeping_cpu: int = knob(1, "the housekeeping CPU running the comparison poller", min=0)
    chunk_us: int = knob(1000, "poller work per loop iteration", min=1)
    noise_scale: float = knob(1.0, "multiplies every noise rate", min=0.0)
    pollution_ns: int = knob(4_000, "cache refill per interruption", min=0)
    background: bool = knob(True, "a hackbench load on the housekeeping CPUs")
    duration_ms: int = knob(5_000, "run length", min=1)

    def __post_init__(self) -> None:
        validate(self)


def _isolation_machine(c: Any) -> dict[str, Any]:
    from memsched.sim.sched.isolation import IsolationConfig, NoiseModel

    cpu = c.isolated_cpu
    return {
        "noise": NoiseModel(scale=c.noise_scale, pollution_ns=c.pollution_ns),
        "isolation": IsolationConfig(isolcpus=(cpu,), nohz_full=(cpu,), rcu_nocbs=(cpu,)),
    }


def _isolation(m: RtMachine, c: IsolationScenarioConfig) -> RtBuilt:
    if c.isolated_cpu >= m.nr_cpus or c.housekeeping_cpu >= m.nr_cpus or c.isolated_cpu == c.housekeeping_cpu:
        raise ConfigError(
            "isolated_cpu", c.isolated_cpu, f"and housekeeping_cpu must be two different CPUs < {m.nr_cpus}"
        )
    prog = (Run(c.chunk_us * NSEC_PER_USEC),)
    iso = m.spawn("poll-isolated", prog, affinity=[c.isolated_cpu])
    hk = m.spawn("poll-housekeeping", prog, affinity=[c.housekeeping_cpu])
    groups = {"pollers": [iso, hk]}
    if c.background:
        others = [x for x in m.core.housekeeping if x != c.housekeeping_cpu]
        if others:
            bg = []
            for i in range(4 * len(others)):
                bg.append(m.spawn(f"bg{i}", (Run(200_000), Sleep(100_000)), affinity=others))
            groups["background"] = bg

    def metrics(mm: RtMachine) -> dict[str, Any]:
        el = mm.engine.now
        out = {}
        for t in (iso, hk):
            rq = mm.core.rqs[t.affinity[0]]
            out[t.name] = {
                "cpu": rq.cpu,
                "throughput": t.work_ns / el,
                "noise_us_per_s": rq.noise_ns / 1000 / (el / 1e9),
                "noise_events_per_s": rq.noise_events / (el / 1e9),
                "max_single_noise_us": rq.noise_max / 1000,
                "cpu_available_pct": 100.0 * (1 - rq.noise_ns / el),
            }
        a, b = out["poll-isolated"]["throughput"], out["poll-housekeeping"]["throughput"]
        return {"isolation": {**out, "throughput_gain_pct": 100.0 * (a / b - 1) if b else 0.0}}

    return RtBuilt(groups, c.duration_ms * NSEC_PER_MSEC, metrics=metrics)


register(
    RtScenario(
        "isolation",
        "polling task on an isolated CPU vs a housekeeping CPU, with housekeeping noise",
        IsolationScenarioConfig,
        _isolation,
        machine_kwargs=_isolation_machine,
    )
)


# ---------------------------------------------------------------------------------------------------------
# KVM guest


@dataclass(frozen=True)
class KvmConfig:
    vcpu_policy: str = knob("fifo", "host policy of the vCPU thread", choices=("other", "fifo", "deadline"))
    vcpu_runtime_us: int = knob(500, "SCHED_DEADLINE vCPU: runtime per period", min=2)
    vcpu_period_us: int = knob(1000, "SCHED_DEADLINE vCPU: period", min=100)
    host_load: int = knob(2, "host SCHED_OTHER CPU hogs sharing the vCPU's host CPU", min=0)
    guest_runtime_us: int = knob(200, "guest SCHED_DEADLINE task: runtime", min=2)
    guest_period_us: int = knob(2000, "guest SCHED_DEADLINE task: period (= deadline)", min=100)
    guest_work_us: int = knob(100, "guest task's work per job", min=1)
    vm_entry_ns: int = knob(
        1_500, "cost of a VM entry after the vCPU was descheduled or halted (assumed)", min=0
    )
    duration_ms: int = knob(2_000, "run length", min=1)

    def __post_init__(self) -> None:
        validate(self)


def _kvm(m: RtMachine, c: KvmConfig) -> RtBuilt:
    from memsched.sim.kvm import KvmGuest
    from memsched.sim.sched.core import SchedConfig

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


register(
    RtScenario(
        "kvm",
        "a guest SCHED_DEADLINE task inside a KVM guest whose vCPU is a host task",
        KvmConfig,
        _kvm,
        cpus=2,
    )
)


# ---------------------------------------------------------------------------------------------------------
# rt-app JSON


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


def _us(v: Any, field_: str, src: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(field_, v, "must be a number of microseconds >= 0", source=src)
    return round(v * NSEC_PER_USEC)


def _events(obj: Mapping[str, Any], src: str, where: str) -> list[Phase]:
    out: list[Phase] = []
    for key, val in obj.items():
        if key in _THREAD_KEYS:
            continue
        if key.startswith("runtime"):
            out.append(Run(_us(val, f"{where}.{key}", src)))  # wall-clock run, approximated as CPU time
        elif key.startswith("run"):
            out.append(Run(_us(val, f"{where}.{key}", src)))
        elif key.startswith("sleep"):
            out.append(Sleep(_us(val, f"{where}.{key}", src)))
        elif key.startswith("timer"):
            if not isinstance(val, Mapping) or "period" not in val:
                raise ConfigError(f"{where}.{key}", val, 'must be {"ref": ..., "period": us}', source=src)
            out.append(Timer(max(1, _us(val["period"], f"{where}.{key}.period", src))))
        elif key.startswith("unlock"):
            out.append(Unlock(str(val)))
        elif key.startswith("lock"):
            out.append(Lock(str(val)))
        elif key.startswith("yield"):
            out.append(Yield())
        else:
            raise ConfigError(
                f"{where}.{key}",
                val,
                "is not a supported rt-app event (run, runtime, sleep, timer, lock, unlock, yield)",
                source=src,
            )
    return out


def load_rt_app(path: Path | str, m: RtMachine, *, duration_ns: int | None = None) -> RtBuilt:
    """Create the threads of an rt-app JSON file (``doc/tutorial.txt``; times in µs) on ``m``."""
    src = str(path)
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError("--rt-app", src, f"must be a readable file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ConfigError("--rt-app", src, f"must be valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tasks"), Mapping) or not doc["tasks"]:
        raise ConfigError(
            "tasks",
            doc.get("tasks") if isinstance(doc, Mapping) else doc,
            "must be a non-empty object of threads",
            source=src,
        )
    glob = doc.get("global", {})
    if not isinstance(glob, Mapping):
        raise ConfigError("global", glob, "must be an object", source=src)
    default_policy = str(glob.get("default_policy", "SCHED_OTHER"))
    dur = duration_ns
    if dur is None:
        d = glob.get("duration", 10)
        if isinstance(d, bool) or not isinstance(d, int | float) or d <= 0:
            raise ConfigError(
                "global.duration", d, "must be a number of seconds > 0 (-1 is not supported)", source=src
            )
        dur = int(d * NSEC_PER_SEC)
    tasks: list[Task] = []
    for name, spec in doc["tasks"].items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"tasks.{name}", spec, "must be an object", source=src)
        pol_name = str(spec.get("policy", default_policy))
        if pol_name not in _POLICIES:
            raise UnknownNameError(f"tasks.{name}.policy", pol_name, list(_POLICIES))
        policy = _POLICIES[pol_name]
        if "phases" in spec:
            if not isinstance(spec["phases"], Mapping):
                raise ConfigError(f"tasks.{name}.phases", spec["phases"], "must be an object", source=src)
            prog: list[Phase] = []
            for pname, ph in spec["phases"].items():
                evs = _events(ph, src, f"tasks.{name}.phases.{pname}")
                prog += evs * int(ph.get("loop", 1))
        else:
            prog = _events(spec, src, f"tasks.{name}")
        if not prog:
            raise ConfigError(f"tasks.{name}", dict(spec), "must have at least one event", source=src)
        loops = int(spec.get("loop", -1))
        prio = int(spec.get("priority", 0))
        attr: SchedAttr | None
        job_deadline = 0
        if policy == SchedPolicy.DEADLINE:
            rt = _us(spec.get("dl-runtime", 0), f"tasks.{name}.dl-runtime", src)
            per = _us(spec.get("dl-period", spec.get("dl-runtime", 0)), f"tasks.{name}.dl-period", src)
            dl = _us(
                spec.get("dl-deadline", spec.get("dl-period", spec.get("dl-runtime", 0))),
                f"tasks.{name}.dl-deadline",
                src,
            )
            attr = SchedAttr.deadline(rt, dl, per)
            job_deadline = dl
        elif policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            attr = SchedAttr(sched_policy=policy, sched_priority=prio)
        else:
            # rt-app passes dl-runtime as sched_runtime for fair threads too: a custom EEVDF slice (6.12+)
            slice_ns = 0
            if "dl-runtime" in spec and policy != SchedPolicy.IDLE:
                slice_ns = _us(spec["dl-runtime"], f"tasks.{name}.dl-runtime", src)
            attr = SchedAttr(
                sched_policy=policy,
                sched_nice=prio if policy != SchedPolicy.IDLE else 0,
                sched_runtime=slice_ns,
            )
        cpus = spec.get("cpus")
        delay = _us(spec.get("delay", 0), f"tasks.{name}.delay", src)
        for i in range(int(spec.get("instance", 1))):
            tname = name if int(spec.get("instance", 1)) == 1 else f"{name}-{i}"
            tasks.append(
                m.spawn(
                    tname,
                    prog,
                    loops=loops,
                    attr=attr,
                    affinity=cpus,
                    start_ns=delay,
                    job_deadline_ns=job_deadline,
                )
            )
    return RtBuilt({"rt-app": tasks}, dur)


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


# ---------------------------------------------------------------------------------------------------------
# Running a scenario


def run_scenario(
    taskset: str | None,
    *,
    rt_app: Path | str | None = None,
    preempt: str | None = None,
    cpus: int | None = None,
    seed: int = 0,
    sets: Mapping[str, str] | None = None,
    trace: bool = False,
) -> tuple[dict[str, Any], RtMachine]:
    """Build and run one scenario (or rt-app file); return its record and the machine."""
    from memsched.sim.sched.core import SchedConfig

    sets = dict(sets or {})
    sched_fields = {f.name for f in dataclasses.fields(SchedConfig)}
    sched_sets = {k: v for k, v in sets.items() if k in sched_fields}
    other = {k: v for k, v in sets.items() if k not in sched_fields}
    if rt_app is not None:
        if other:
            k = next(iter(other))
            raise ConfigError(
                k, other[k], "is not a scheduler setting (an rt-app file takes only scheduler --set keys)"
            )
        scen = None
        config = None
        mk: dict[str, Any] = {}
    else:
        scen = get(taskset or "hackbench+cyclictest")
        config = scen.make_config(other)
        mk = scen.machine_kwargs(config)
    base = SchedConfig(**mk.pop("sched", {}))
    if preempt is not None:
        sched_sets["preempt"] = preempt
    sched = from_sets(SchedConfig, sched_sets, owner="the scheduler", base=base)
    ncpu = cpus if cpus is not None else mk.pop("cpus", scen.cpus if scen else 4)
    mk.pop("cpus", None)
    m = RtMachine(ncpu, sched, seed=seed, **mk)
    if trace:
        m.enable_trace()
    built = load_rt_app(rt_app, m) if rt_app is not None else scen.build(m, config)  # type: ignore[union-attr]
    if built.until_exit is not None:
        m.run_until_exit(built.groups[built.until_exit], built.duration_ns)
    else:
        m.run(built.duration_ns)
    rec = m.results()
    rec["taskset"] = "rt-app" if rt_app is not None else scen.id  # type: ignore[union-attr]
    if rt_app is not None:
        rec["rt_app"] = str(rt_app)
    rec["seed"] = seed
    rec["config"] = config_dict(config) if config is not None else {}
    rec["sched"] = dataclasses.asdict(sched)
    rec.update(built.metrics(m))
    return rec, m
