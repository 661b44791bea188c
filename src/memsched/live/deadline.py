"""SCHED_DEADLINE on the running kernel: the deadline tasks, the root domain, and admission prediction.

``predict_admission()`` answers "would ``sched_setattr`` admit this reservation now?" with the kernel's own
arithmetic (:mod:`memsched.admission`, shared with the simulator) applied to what the kernel exposes:

* **deadline tasks** — every thread whose ``/proc/<pid>/task/<tid>/stat`` field 41 (``policy``) is 6. Their
  reservations come from ``sched_getattr(tid)``: ``/proc/<pid>/sched`` prints only ``dl.runtime`` (the
  *remaining* runtime) and ``dl.deadline`` (the *absolute* deadline) for deadline tasks
  (``proc_sched_show_task`` in kernel/sched/debug.c, checked on 6.18), not ``dl_runtime`` / ``dl_period``,
  so it cannot give a task's bandwidth. It is parsed (:func:`memsched.live.procfs.parse_proc_sched`) to show
  the current job's state. Zombies are skipped (a dying task gives its bandwidth back on the way out, see the
  deviations), and so are schedutil's ``sugov:N`` kthreads, which carry ``SCHED_FLAG_SUGOV`` and are never accounted
  (``sched_dl_overflow`` returns early for them).
* **root domain** — the online CPUs outside ``isolcpus`` (isolated CPUs sit in the default root domain,
  kernel/sched/topology.c), with ``cpu_capacity`` from sysfs when the CPUs differ (``dl_bw_capacity``) and
  ``SCHED_CAPACITY_SCALE`` each otherwise.
* **limit** — ``/proc/sys/kernel/sched_rt_runtime_us`` / ``sched_rt_period_us`` (``-1`` disables the test);
  the parameter bounds from ``sched_deadline_period_{min,max}_us``.
* **target** (``--pid``) — the task ``sched_setattr`` would change: its CPU (``/proc/<pid>/stat`` field 39; the
  kernel checks the root domain of ``task_rq(p)``), its policy, its affinity (``Cpus_allowed_list`` of
  ``/proc/<pid>/status``, which prints ``p->cpus_mask``: ``task_cpus_allowed`` in fs/proc/array.c) and, when it
  already is SCHED_DEADLINE, its reservation. ``__sched_setscheduler`` (kernel/sched/syscalls.c, 6.18) refuses
  with ``EPERM`` a task whose affinity does not cover its root domain's span (``!cpumask_subset(span,
  p->cpus_ptr)``) whenever ``dl_bandwidth_enabled()`` (``sched_rt_runtime_us`` not -1), before admission
  control; ``sched_dl_overflow`` (kernel/sched/deadline.c, 6.18) then tests a deadline task's new bandwidth with
  its old one taken out (``__dl_overflow(dl_b, cap, p->dl.dl_bw, new_bw)``) and on success releases the old
  (``__dl_sub``) before adding the new (``__dl_add``).
* **deadline servers** — each CPU's fair_server reservation, which ``dl_server_apply_params`` adds to the
  root domain's ``total_bw`` (kernel/sched/deadline.c; measured on a 2-CPU 6.18 machine, admission stops at
  1.80 CPUs, not 1.90: the two servers' 5 % each count against the 95 % limit). Read from debugfs
  ``sched/fair_server/cpuN/{runtime,period}`` (ns) when readable, else the defaults (50 ms / 1000 ms) on
  kernels from 6.12, which the prediction states.

Deviations from the kernel: cpuset partitions (exclusive cpusets, cgroup v2 ``cpuset.cpus.partition``) that
split the root domain are not read, so a machine using them is predicted as one domain; bandwidth that the
kernel still holds for deadline tasks that exited or left SCHED_DEADLINE within their last period (released at
their 0-lag time by the inactive timer, ``task_non_contending``) is invisible from user space; the snapshot
of ``/proc`` is not atomic with respect to tasks starting or exiting meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from memsched.admission import (
    BW_UNIT,
    DL_PERIOD_MAX_US,
    DL_PERIOD_MIN_US,
    FAIR_SERVER_PERIOD_NS,
    FAIR_SERVER_RUNTIME_NS,
    SCHED_CAPACITY_SCALE,
    DlBandwidth,
    checkparam_dl,
    dl_bw_of,
    to_ratio,
)
from memsched.errors import AccessDeniedError, ConfigError, KernelError, MemschedError, ProcessGoneError
from memsched.live.isolation import CpuIsolation, cpu_isolation
from memsched.live.oserrors import process_error
from memsched.live.procfs import (
    kernel_version,
    list_pids,
    parse_int,
    parse_proc_sched,
    read_int,
    read_status,
    read_task_stat,
    thread_ids,
)
from memsched.live.roots import LiveRoots, try_read_text
from memsched.live.sched_attr import sched_getattr
from memsched.uapi.cpumask import format_cpulist
from memsched.uapi.sched import SchedAttr, SchedPolicy

__all__ = [
    "AdmissionPrediction",
    "DlSysctls",
    "DlTarget",
    "DlTask",
    "FairServers",
    "RootDomain",
    "deadline_tasks",
    "dl_sysctls",
    "dl_target",
    "fair_servers",
    "predict",
    "predict_admission",
    "root_domain",
]

#: First kernel with per-CPU fair_server deadline servers (``fair_server_init``, kernel/sched/fair.c): absent
#: in 6.8, present in 6.17 and 6.18; 6.12 is the commonly cited merge release (not checked against a 6.12 build).
FAIR_SERVER_SINCE = (6, 12)

GetattrFn = Callable[[int], SchedAttr]


# --------------------------------------------------------------------------------------------- readers


@dataclass(frozen=True, slots=True)
class DlSysctls:
    """The sysctls that bound deadline parameters and bandwidth (``/proc/sys/kernel``)."""

    rt_runtime_us: int
    rt_period_us: int
    period_min_us: int = DL_PERIOD_MIN_US
    period_max_us: int = DL_PERIOD_MAX_US
    notes: tuple[str, ...] = ()


def dl_sysctls(roots: LiveRoots | None = None) -> DlSysctls:
    """``sched_rt_{runtime,period}_us`` (required) and ``sched_deadline_period_{min,max}_us`` (defaults if
    absent)."""
    roots = roots or LiveRoots()
    kernel = roots.proc("sys", "kernel")
    notes = []
    bounds = []
    for name, default in (
        ("sched_deadline_period_min_us", DL_PERIOD_MIN_US),
        ("sched_deadline_period_max_us", DL_PERIOD_MAX_US),
    ):
        if (kernel / name).exists():
            bounds.append(read_int(kernel / name, roots))
        else:
            bounds.append(default)
            notes.append(f"{kernel / name} is missing; using the kernel default {default}")
    return DlSysctls(
        rt_runtime_us=read_int(kernel / "sched_rt_runtime_us", roots),
        rt_period_us=read_int(kernel / "sched_rt_period_us", roots),
        period_min_us=bounds[0],
        period_max_us=bounds[1],
        notes=tuple(notes),
    )


@dataclass(frozen=True, slots=True)
class RootDomain:
    """The CPUs whose deadline bandwidth a new task would share, and their capacities."""

    cpus: tuple[int, ...]
    capacities: tuple[int, ...]
    isolation: CpuIsolation

    @property
    def cpulist(self) -> str:
        return format_cpulist(self.cpus)

    @property
    def capacity(self) -> int:
        return sum(self.capacities)


def root_domain(
    roots: LiveRoots | None = None, *, isolation: CpuIsolation | None = None, cpu: int | None = None
) -> RootDomain:
    """The root domain of ``cpu`` (default: a housekeeping CPU, where an unpinned new task lands)."""
    roots = roots or LiveRoots()
    iso = isolation or cpu_isolation(roots)
    if cpu is not None and cpu not in iso.online:
        raise ConfigError("cpu", cpu, f"must be an online CPU ({format_cpulist(iso.online)})")
    cpus = sorted(iso.isolated & iso.online if cpu is not None and cpu in iso.isolated else iso.housekeeping)
    read = []
    for c in cpus:
        path = roots.sys("devices", "system", "cpu", f"cpu{c}", "cpu_capacity")
        text, _ = try_read_text(path, roots)
        read.append(parse_int(text, source=str(path)) if text is not None else SCHED_CAPACITY_SCALE)
    # dl_bw_capacity(): without asymmetric capacities the kernel uses cpus << SCHED_CAPACITY_SHIFT.
    capacities = tuple(read) if len(set(read)) > 1 else (SCHED_CAPACITY_SCALE,) * len(cpus)
    return RootDomain(tuple(cpus), capacities, iso)


@dataclass(frozen=True, slots=True)
class FairServers:
    """Per-CPU fair_server reservations ``(cpu, runtime_ns, period_ns)`` and where they came from."""

    params: tuple[tuple[int, int, int], ...]
    source: Literal["debugfs", "default", "none"]
    reason: str

    @property
    def bws(self) -> tuple[int, ...]:
        return tuple(to_ratio(period, runtime) for _, runtime, period in self.params)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "reason": self.reason,
            "servers": [{"cpu": c, "runtime_ns": r, "period_ns": p} for c, r, p in self.params],
        }


def fair_servers(cpus: Iterable[int], roots: LiveRoots | None = None) -> FairServers:
    """The fair_server reservations of ``cpus``: debugfs when readable, else the documented defaults."""
    roots = roots or LiveRoots()
    cpus = tuple(cpus)
    sched_dir = roots.debugfs("sched")
    server_dir = sched_dir / "fair_server"
    defaults = tuple((c, FAIR_SERVER_RUNTIME_NS, FAIR_SERVER_PERIOD_NS) for c in cpus)
    default_text = (
        f"{FAIR_SERVER_RUNTIME_NS // 1_000_000} ms every {FAIR_SERVER_PERIOD_NS // 1_000_000} ms per CPU"
    )
    if server_dir.is_dir():
        params = []
        for c in cpus:
            values = []
            for name in ("runtime", "period"):
                path = server_dir / f"cpu{c}" / name
                text, why = try_read_text(path, roots)
                if text is None:
                    return FairServers(defaults, "default", f"assumed the defaults ({default_text}): {why}")
                values.append(parse_int(text, source=str(path)))
            params.append((c, values[0], values[1]))
        return FairServers(tuple(params), "debugfs", f"read from {server_dir}")
    if sched_dir.is_dir():
        return FairServers(
            (), "none", f"debugfs is mounted but has no {server_dir}: no fair_server on this kernel"
        )
    release_text, why = try_read_text(roots.proc("sys", "kernel", "osrelease"), roots)
    if release_text is None:
        return FairServers(defaults, "default", f"assumed the defaults ({default_text}): {why}")
    version = kernel_version(release_text)
    if version < FAIR_SERVER_SINCE:
        return FairServers(
            (), "none", f"kernel {release_text.strip()} predates fair_server (debugfs not mounted)"
        )
    return FairServers(
        defaults,
        "default",
        f"assumed the defaults ({default_text}): debugfs is not mounted at {roots.debugfs()}",
    )


@dataclass(frozen=True, slots=True)
class DlTask:
    """A thread in SCHED_DEADLINE with its reservation (from ``sched_getattr``) and current job state."""

    pid: int
    tid: int
    comm: str
    cpu: int
    attr: SchedAttr
    runtime_left_ns: int | None = None
    abs_deadline_ns: int | None = None

    @property
    def bw(self) -> int:
        return dl_bw_of(self.attr)

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "tid": self.tid,
            "comm": self.comm,
            "cpu": self.cpu,
            "runtime_ns": self.attr.sched_runtime,
            "deadline_ns": self.attr.sched_deadline,
            "period_ns": self.attr.effective_period,
            "flags": self.attr.sched_flags,
            "bw": self.bw,
            "runtime_left_ns": self.runtime_left_ns,
            "abs_deadline_ns": self.abs_deadline_ns,
        }


def deadline_tasks(roots: LiveRoots | None = None, *, getattr_fn: GetattrFn | None = None) -> tuple[DlTask, ...]:
    """Every live SCHED_DEADLINE thread with its reservation (threads that exit meanwhile are skipped)."""
    roots = roots or LiveRoots()
    getattr_fn = getattr_fn or sched_getattr
    tasks = []
    for pid in list_pids(roots):
        for tid in thread_ids(roots, pid):
            try:
                stat = read_task_stat(roots, pid, tid)
            except ProcessGoneError:
                continue
            if stat.policy != SchedPolicy.DEADLINE or stat.state in ("Z", "X", "x"):
                continue
            if stat.is_kthread and stat.comm.startswith("sugov:"):
                continue  # SCHED_FLAG_SUGOV: a deadline task that admission control never counts
            try:
                attr = getattr_fn(tid)
            except ProcessGoneError:
                continue
            except KernelError as e:
                raise process_error(
                    e.errno or errno.EIO, f"cannot read the reservation of deadline task {tid}: {e}"
                ) from e
            if attr.sched_policy != SchedPolicy.DEADLINE:
                continue  # left SCHED_DEADLINE between the two reads
            sched_text, _ = try_read_text(roots.proc(pid, "task", tid, "sched"), roots)
            sched = parse_proc_sched(sched_text) if sched_text is not None else None
            tasks.append(
                DlTask(
                    pid=pid,
                    tid=tid,
                    comm=stat.comm,
                    cpu=stat.processor,
                    attr=attr,
                    runtime_left_ns=sched.dl_runtime_left_ns if sched else None,
                    abs_deadline_ns=sched.dl_abs_deadline_ns if sched else None,
                )
            )
    return tuple(tasks)


@dataclass(frozen=True, slots=True)
class DlTarget:
    """The task ``sched_setattr(pid, ...)`` would change, as ``__sched_setscheduler`` sees it.

    ``affinity`` is ``p->cpus_mask`` (``None`` when it could not be read: ``affinity_note`` says why);
    ``reservation`` is its current SCHED_DEADLINE reservation, the ``p->dl.dl_bw`` that ``sched_dl_overflow``
    releases, or ``None`` for a task in another policy.
    """

    pid: int
    comm: str
    cpu: int
    policy: int
    rt_priority: int
    affinity: frozenset[int] | None
    reservation: DlTask | None = None
    affinity_note: str | None = None

    @property
    def bw(self) -> int:
        return self.reservation.bw if self.reservation is not None else 0

    @property
    def policy_name(self) -> str:
        try:
            return f"SCHED_{SchedPolicy(self.policy).name}"
        except ValueError:
            return f"policy {self.policy}"

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "cpu": self.cpu,
            "policy": self.policy_name,
            "rt_priority": self.rt_priority,
            "affinity": None if self.affinity is None else format_cpulist(self.affinity),
            "affinity_note": self.affinity_note,
            "bw": self.bw,
            "reservation": None if self.reservation is None else self.reservation.to_dict(),
        }


def dl_target(roots: LiveRoots, pid: int, tasks: Iterable[DlTask] = ()) -> DlTarget:
    """Read task ``pid`` (a thread id, as ``sched_setattr`` takes it); ``tasks`` are the deadline tasks already
    read, where its reservation is found. A task whose ``stat`` is gone raises :class:`ProcessGoneError`."""
    stat = read_task_stat(roots, pid)
    note = None
    try:
        affinity = read_status(roots, pid).cpus_allowed
        if affinity is None:
            note = f"{roots.proc(pid, 'status')} has no Cpus_allowed_list (printed since 2.6.26)"
    except MemschedError as e:  # gone meanwhile, or not readable: the rule is then not predicted, and said so
        affinity, note = None, f"the affinity rule was not checked: cannot read the affinity of pid {pid}: {e}"
    reservation = next((t for t in tasks if t.tid == pid), None)
    return DlTarget(pid, stat.comm, stat.processor, stat.policy, stat.rt_priority, affinity, reservation, note)


# --------------------------------------------------------------------------------------------- prediction

Verdict = Literal["admitted", "overflow", "invalid", "no-bandwidth", "narrow-affinity"]
_EXPECTED_ERRNO: dict[str, int] = {
    "admitted": 0,
    "overflow": errno.EBUSY,
    "invalid": errno.EINVAL,
    "no-bandwidth": errno.EPERM,
    "narrow-affinity": errno.EPERM,
}


@dataclass(frozen=True, slots=True)
class AdmissionPrediction:
    """What ``sched_setattr`` would answer for ``attr`` in the current state, and the numbers behind it.

    ``total_bw`` is the kernel's ``dl_b->total_bw`` before the request: the other deadline tasks' bandwidth
    (``tasks``), the fair_servers' and the target's own reservation (``old_bw``, when it already is a deadline
    task), so ``total_bw == servers_bw + tasks_bw + old_bw``. ``target`` is the task asked about (``None``: a
    new, unpinned task).
    """

    attr: SchedAttr
    verdict: Verdict
    reason: str
    requested_bw: int
    old_bw: int
    tasks: tuple[DlTask, ...]
    servers: FairServers
    domain: RootDomain
    sysctls: DlSysctls
    bandwidth: DlBandwidth
    target: DlTarget | None = None

    @property
    def admitted(self) -> bool:
        return self.verdict == "admitted"

    @property
    def expected_errno(self) -> int:
        """0, or the errno the kernel should return (EINVAL, EPERM, EBUSY)."""
        return _EXPECTED_ERRNO[self.verdict]

    @property
    def tasks_bw(self) -> int:
        return sum(t.bw for t in self.tasks)

    @property
    def servers_bw(self) -> int:
        return sum(self.servers.bws)

    @property
    def total_bw(self) -> int:
        return self.bandwidth.total_bw

    @property
    def limit_bw(self) -> int | None:
        return self.bandwidth.limit

    @property
    def free_bw(self) -> int | None:
        """``limit - total_bw``: what is free in the root domain now, before the target's release."""
        return self.bandwidth.available

    @property
    def available_bw(self) -> int | None:
        """What the request may use: ``free_bw`` plus the target's ``old_bw``, which ``sched_dl_overflow``
        releases before adding the request."""
        free = self.free_bw
        return None if free is None else free + self.old_bw

    @property
    def notes(self) -> tuple[str, ...]:
        target_notes = () if self.target is None or self.target.affinity_note is None else (self.target.affinity_note,)
        return (*self.sysctls.notes, *target_notes)

    def to_dict(self) -> dict[str, object]:
        """The ``memsched rt admit --json`` document (bandwidths in BW_UNIT = 2**20 per CPU, and in CPUs)."""

        def cpus(bw: int | None) -> float | None:
            return None if bw is None else round(bw / BW_UNIT, 6)

        return {
            "admitted": self.admitted,
            "verdict": self.verdict,
            "expected_errno": errno.errorcode.get(self.expected_errno, "0") if self.expected_errno else None,
            "reason": self.reason,
            "requested": {
                "runtime_ns": self.attr.sched_runtime,
                "deadline_ns": self.attr.sched_deadline,
                "period_ns": self.attr.effective_period,
                "flags": self.attr.sched_flags,
            },
            "bw_unit": BW_UNIT,
            "requested_bw": self.requested_bw,
            "requested_cpus": cpus(self.requested_bw),
            "total_bw": self.total_bw,
            "total_cpus": cpus(self.total_bw),
            "total_bw_if_admitted": self.total_bw - self.old_bw + self.requested_bw,
            "tasks_bw": self.tasks_bw,
            "servers_bw": self.servers_bw,
            "old_bw": self.old_bw,
            "limit_bw": self.limit_bw,
            "limit_cpus": cpus(self.limit_bw),
            "free_bw": self.free_bw,
            "available_bw": self.available_bw,
            "available_cpus": cpus(self.available_bw),
            "root_domain": {
                "cpus": self.domain.cpulist,
                "capacity": self.domain.capacity,
                "isolated": format_cpulist(self.domain.isolation.isolated),
            },
            "sched_rt_runtime_us": self.sysctls.rt_runtime_us,
            "sched_rt_period_us": self.sysctls.rt_period_us,
            "fair_server": self.servers.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "target": None if self.target is None else self.target.to_dict(),
            "notes": list(self.notes),
        }


def affinity_refusal(target: DlTarget | None, domain: RootDomain, bandwidth: DlBandwidth) -> str | None:
    """``__sched_setscheduler``'s affinity rule (kernel/sched/syscalls.c, 6.18): with ``dl_bandwidth_enabled()``
    a task may become or stay SCHED_DEADLINE only if its affinity covers its root domain's span
    (``cpumask_subset(rq->rd->span, p->cpus_ptr)``), else ``EPERM``. ``None``: the rule passes, or the affinity
    is unknown (the prediction's notes say so)."""
    if target is None or target.affinity is None or bandwidth.bw == -1:
        return None
    if set(domain.cpus) <= target.affinity:
        return None
    return (
        f"pid {target.pid}'s CPU affinity {format_cpulist(target.affinity)} does not cover its root domain "
        f"{domain.cpulist} (the domain of CPU {target.cpu}, where it runs): a SCHED_DEADLINE task must be "
        "allowed on every CPU of its root domain"
    )


def predict(
    attr: SchedAttr,
    *,
    tasks: Iterable[DlTask],
    servers: FairServers,
    domain: RootDomain,
    sysctls: DlSysctls,
    target: DlTarget | None = None,
) -> AdmissionPrediction:
    """The kernel's decision for ``sched_setattr(target, attr)`` from already-read state (pure).

    Order as in ``__sched_setscheduler`` (kernel/sched/syscalls.c, 6.18): ``__checkparam_dl`` (EINVAL), the
    target's affinity against its root domain and a root domain without bandwidth (EPERM), then
    ``sched_dl_overflow`` (EBUSY). A target that already is a deadline task has its bandwidth replaced, not
    added; its reservation must not also be in ``tasks``.
    """
    if attr.sched_policy != SchedPolicy.DEADLINE:
        raise ConfigError(
            "policy", attr.sched_policy, "must be SCHED_DEADLINE (6) for an admission prediction"
        )
    in_domain = tuple(t for t in tasks if t.cpu in domain.cpus)
    server_bws = tuple(
        bw for (c, _, _), bw in zip(servers.params, servers.bws, strict=True) if c in domain.cpus
    )
    old_bw = target.bw if target is not None else 0
    bandwidth = DlBandwidth(
        capacities=domain.capacities,
        rt_runtime_us=sysctls.rt_runtime_us,
        rt_period_us=sysctls.rt_period_us,
        total_bw=sum(server_bws) + sum(t.bw for t in in_domain) + old_bw,
        fair_server_bw=server_bws,
    )
    requested = dl_bw_of(attr)
    verdict: Verdict
    rule = checkparam_dl(attr, period_min_us=sysctls.period_min_us, period_max_us=sysctls.period_max_us)
    narrow = affinity_refusal(target, domain, bandwidth)
    if rule is not None:
        verdict, reason = "invalid", rule
    elif narrow is not None:
        verdict, reason = "narrow-affinity", narrow
    elif bandwidth.bw == 0:
        verdict, reason = (
            "no-bandwidth",
            "sched_rt_runtime_us is 0: the root domain has no deadline bandwidth",
        )
    elif target is not None and target.reservation is not None and requested == old_bw:
        verdict, reason = "admitted", "the task already holds exactly this bandwidth"
    elif bandwidth.overflow(old_bw, requested):
        verdict, reason = "overflow", "the request does not fit in the bandwidth left in the root domain"
    else:
        verdict, reason = "admitted", "the request fits in the bandwidth left in the root domain"
    return AdmissionPrediction(
        attr=attr,
        verdict=verdict,
        reason=reason,
        requested_bw=requested,
        old_bw=old_bw,
        tasks=in_domain,
        servers=FairServers(
            tuple(p for p in servers.params if p[0] in domain.cpus), servers.source, servers.reason
        ),
        domain=domain,
        sysctls=sysctls,
        bandwidth=bandwidth,
        target=target,
    )


def predict_admission(
    attr: SchedAttr,
    *,
    roots: LiveRoots | None = None,
    pid: int | None = None,
    getattr_fn: GetattrFn | None = None,
) -> AdmissionPrediction:
    """Read the machine and predict ``sched_setattr(pid, attr)`` (``pid`` None: a new, unpinned task).

    ``pid`` given: the root domain is that of the task's CPU, its affinity must cover that domain, and if it is
    already a deadline task its current bandwidth is replaced rather than added (``old_bw`` in
    ``__dl_overflow``). A ``pid`` that does not exist raises :class:`~memsched.errors.ProcessGoneError`
    (``ESRCH``, as ``sched_setattr`` would).
    """
    roots = roots or LiveRoots()
    gone: tuple[type[Exception], ...] = ()
    if pid == 0:
        pid = threading.get_native_id()  # sched_setattr(0, ...) means the calling thread
        gone = (ProcessGoneError,)  # ... which may not be in a copied tree
    tasks = deadline_tasks(roots, getattr_fn=getattr_fn)
    target = None
    # A pid that is not there is an error (sched_setattr would fail with ESRCH, not admit anything); one this
    # user may not read is predicted as a new, unpinned task.
    with contextlib.suppress(AccessDeniedError, *gone):
        target = dl_target(roots, pid, tasks) if pid else None
    domain = root_domain(roots, cpu=target.cpu if target is not None else None)
    return predict(
        attr,
        tasks=tuple(t for t in tasks if target is None or t is not target.reservation),
        servers=fair_servers(domain.cpus, roots),
        domain=domain,
        sysctls=dl_sysctls(roots),
        target=target,
    )
