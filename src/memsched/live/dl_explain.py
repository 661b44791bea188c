"""``sched_setattr`` with errors that say why: the explaining layer above the raw calls of :mod:`.sched_attr`.

Error mapping follows ``kernel/sched/syscalls.c`` (6.10+; ``kernel/sched/core.c`` before) and
``kernel/sched/deadline.c`` (Linux 6.18):

* ``EINVAL`` — ``__checkparam_dl()`` failed (the message names the rule, via
  :func:`memsched.admission.checkparam_dl` with this kernel's ``sched_deadline_period_{min,max}_us``),
  unknown ``sched_flags``, or utilisation clamps with a 48-byte struct.
* ``EBUSY`` — ``sched_dl_overflow()``: admission control refused; the message gives the requested and the
  available bandwidth in CPUs and in ``BW_UNIT`` (from :func:`memsched.live.deadline.predict_admission`).
* ``EPERM`` — ``user_check_sched_setscheduler()`` wants ``CAP_SYS_NICE`` for *any* change to
  SCHED_DEADLINE ("Can't set/change SCHED_DEADLINE policy at all for now"; ``RLIMIT_RTPRIO`` only lets
  unprivileged users use SCHED_FIFO/SCHED_RR); or the task's affinity is smaller than its root domain; or the
  root domain has no deadline bandwidth (``sched_rt_runtime_us = 0``). Raised as
  :class:`~memsched.errors.AccessDeniedError`.
* ``E2BIG`` — ``sched_copy_attr()`` did not accept our struct size; the kernel writes the size it knows into
  ``attr.size``, and :func:`sched_setattr` retries once with the 48-byte layout when that is enough.
* ``ESRCH`` — no such task (:class:`~memsched.errors.ProcessGoneError`). ``ENOSYS`` — a kernel without
  ``sched_setattr`` (before 3.14).

The facts used to explain an error are gathered after the failure (:func:`gather_context`), so the
explanation describes the machine a moment later (a concurrent exit may have freed bandwidth meanwhile); it is
a diagnosis, not a replay. :func:`deadline_privilege` gathers the ``EPERM`` facts; ``live.capabilities()``
uses it too, to say whether this process may use SCHED_DEADLINE at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, replace

from memsched.admission import BW_UNIT, DL_PERIOD_MAX_US, DL_PERIOD_MIN_US, checkparam_dl, dl_bw_of
from memsched.errors import MemschedError, ProcessGoneError, UnsupportedError
from memsched.live.deadline import AdmissionPrediction, dl_sysctls, predict_admission, root_domain
from memsched.live.oserrors import process_error
from memsched.live.procfs import CAP_SYS_NICE, parse_limits, parse_status, read_task_stat
from memsched.live.roots import LiveRoots, try_read_text
from memsched.live.sched_attr import raw_sched_setattr
from memsched.uapi.cpumask import format_cpulist
from memsched.uapi.sched import (
    SCHED_ATTR_SIZE_VER0,
    SCHED_ATTR_SIZE_VER1,
    SCHED_FLAG_ALL,
    SchedAttr,
    SchedFlag,
    SchedPolicy,
)
from memsched.units import format_ns

__all__ = [
    "DeadlinePrivilege",
    "SetattrContext",
    "caller_permission",
    "deadline_privilege",
    "describe_attr",
    "eperm_causes",
    "format_bw",
    "gather_context",
    "sched_setattr",
    "setattr_error",
    "target_permission",
]


@dataclass(frozen=True, slots=True)
class SetattrContext:
    """What the kernel looked at when it refused a ``sched_setattr``, gathered afterwards to explain it.

    ``None`` means "not known" and is left out of the message rather than guessed.
    """

    period_min_us: int = DL_PERIOD_MIN_US
    period_max_us: int = DL_PERIOD_MAX_US
    has_cap_sys_nice: bool | None = None
    rlimit_rtprio: int | None = None
    affinity: frozenset[int] | None = None
    domain_cpus: frozenset[int] | None = None
    rt_runtime_us: int | None = None
    prediction: AdmissionPrediction | None = None
    kernel_size: int | None = None


def format_bw(bw: int) -> str:
    """``524288`` -> ``"0.500 CPUs (524288/1048576 BW_UNIT)"``."""
    return f"{bw / BW_UNIT:.3f} CPUs ({bw}/{BW_UNIT} BW_UNIT)"


def describe_attr(attr: SchedAttr) -> str:
    """One line naming the policy and, for SCHED_DEADLINE, the reservation and its bandwidth."""
    policy = attr.policy
    name = f"SCHED_{policy.name}" if isinstance(policy, SchedPolicy) else f"policy {policy}"
    if attr.sched_policy != SchedPolicy.DEADLINE:
        return name
    flags = SchedFlag(attr.sched_flags & SCHED_FLAG_ALL)
    flag_text = f", flags {flags.name.lower().replace('_', '-')}" if flags and flags.name else ""
    period = attr.effective_period
    bw = f", {dl_bw_of(attr) / BW_UNIT:.3f} CPUs" if period else ""
    return (
        f"{name} runtime {format_ns(attr.sched_runtime)} / deadline {format_ns(attr.sched_deadline)} / "
        f"period {format_ns(period)}{bw}{flag_text}"
    )


def eperm_causes(
    *,
    has_cap_sys_nice: bool | None,
    rlimit_rtprio: int | None,
    affinity: frozenset[int] | None,
    domain_cpus: frozenset[int] | None,
    rt_runtime_us: int | None,
) -> list[str]:
    """Which of ``__sched_setscheduler``'s EPERM rules for SCHED_DEADLINE the facts break (an unknown fact,
    ``None``, breaks none)."""
    causes = []
    if has_cap_sys_nice is False:
        rt = ""
        if rlimit_rtprio is not None:
            rt = f" ({'unlimited' if rlimit_rtprio == -1 else rlimit_rtprio} here)"
        causes.append(
            "the caller lacks CAP_SYS_NICE, which every change to SCHED_DEADLINE requires; RLIMIT_RTPRIO"
            f"{rt} only lets unprivileged users use SCHED_FIFO/SCHED_RR, not SCHED_DEADLINE"
        )
    if affinity is not None and domain_cpus is not None and not domain_cpus <= affinity:
        causes.append(
            f"the task's CPU affinity {format_cpulist(affinity)} is smaller than its root domain "
            f"{format_cpulist(domain_cpus)}: a SCHED_DEADLINE task must be allowed on every CPU of its root "
            "domain (partition with exclusive cpusets instead of sched_setaffinity)"
        )
    if rt_runtime_us == 0:
        causes.append("the root domain has no deadline bandwidth (sched_rt_runtime_us is 0)")
    return causes


@dataclass(frozen=True, slots=True)
class DeadlinePrivilege:
    """The facts ``__sched_setscheduler`` checks before it lets a task become SCHED_DEADLINE."""

    has_cap_sys_nice: bool | None
    rlimit_rtprio: int | None
    affinity: frozenset[int] | None
    domain_cpus: frozenset[int] | None
    rt_runtime_us: int | None

    def problems(self) -> list[str]:
        return eperm_causes(
            has_cap_sys_nice=self.has_cap_sys_nice,
            rlimit_rtprio=self.rlimit_rtprio,
            affinity=self.affinity,
            domain_cpus=self.domain_cpus,
            rt_runtime_us=self.rt_runtime_us,
        )


def deadline_privilege(roots: LiveRoots | None = None, *, pid: int = 0) -> DeadlinePrivilege:
    """The caller's CAP_SYS_NICE and RLIMIT_RTPRIO, and ``pid``'s affinity (0 = the caller) against the root
    domain of the CPU ``pid`` runs on. A file that cannot be read leaves its fact unknown (``None``)."""
    roots = roots or LiveRoots()
    self_text, _ = try_read_text(roots.proc("self", "status"), roots)
    self_status = parse_status(self_text, source=str(roots.proc("self", "status"))) if self_text is not None else None
    has_nice = self_status.has_capability(CAP_SYS_NICE) if self_status is not None else None
    limits_text, _ = try_read_text(roots.proc("self", "limits"), roots)
    rtprio = parse_limits(limits_text).get("Max realtime priority") if limits_text is not None else None
    rlimit = None
    if rtprio is not None:
        rlimit = -1 if rtprio[0] == "unlimited" else int(rtprio[0])
    target_status = self_status
    cpu = None
    if pid:
        text, _ = try_read_text(roots.proc(pid, "status"), roots)
        target_status = parse_status(text, source=str(roots.proc(pid, "status"))) if text is not None else None
        with contextlib.suppress(MemschedError):  # the kernel checks the span of the target's rq->rd
            cpu = read_task_stat(roots, pid).processor
    affinity = target_status.cpus_allowed if target_status is not None else None
    try:
        domain = frozenset(root_domain(roots, cpu=cpu).cpus)
    except MemschedError:
        domain = None
    try:
        rt_runtime: int | None = dl_sysctls(roots).rt_runtime_us
    except MemschedError:
        rt_runtime = None
    return DeadlinePrivilege(has_nice, rlimit, affinity, domain, rt_runtime)


def caller_permission(roots: LiveRoots | None = None) -> tuple[bool, str]:
    """What this process may do to *another* task: ``user_check_sched_setscheduler`` (kernel/sched/syscalls.c,
    6.18) wants the caller's CAP_SYS_NICE for any change to SCHED_DEADLINE; the caller's own affinity plays no
    part (the affinity rule is checked on the target, :func:`target_permission`)."""
    priv = deadline_privilege(roots)
    who = f"this process (pid {os.getpid()})"
    if priv.has_cap_sys_nice is None:
        return False, f"{who}: cannot read CapEff from {(roots or LiveRoots()).proc('self', 'status')}"
    causes = eperm_causes(
        has_cap_sys_nice=priv.has_cap_sys_nice,
        rlimit_rtprio=priv.rlimit_rtprio,
        affinity=None,
        domain_cpus=None,
        rt_runtime_us=None,
    )
    if causes:
        return False, f"{who}: " + "; ".join(causes)
    return True, f"{who} holds CAP_SYS_NICE, which every change to SCHED_DEADLINE requires"


def target_permission(p: AdmissionPrediction) -> tuple[bool | None, str]:
    """What ``__sched_setscheduler`` checks of the target before admission control (kernel/sched/syscalls.c,
    6.18): its affinity covers its root domain's span, and the domain has deadline bandwidth. ``None``: the
    target's affinity is unknown."""
    t = p.target
    if t is None:
        return None, "no target"
    if p.verdict in ("narrow-affinity", "no-bandwidth"):
        return False, p.reason
    if p.limit_bw is None:
        return True, "sched_rt_runtime_us is -1: dl_bandwidth_enabled() is false, affinity is not checked"
    if t.affinity is None:
        return None, t.affinity_note or f"the affinity of pid {t.pid} is unknown"
    return True, (
        f"pid {t.pid}'s affinity {format_cpulist(t.affinity)} covers its root domain {p.domain.cpulist}; "
        f"deadline limit {p.limit_bw / BW_UNIT:.3f} CPUs"
    )


def setattr_error(err: int, pid: int, attr: SchedAttr, ctx: SetattrContext) -> MemschedError:
    """The error to raise for a failed ``sched_setattr``: what the kernel checked, in words."""
    what = f"sched_setattr(pid {pid}, {describe_attr(attr)})"
    if err == errno.EINVAL:
        if attr.sched_policy == SchedPolicy.DEADLINE:
            rule = checkparam_dl(attr, period_min_us=ctx.period_min_us, period_max_us=ctx.period_max_us)
            if rule is not None:
                return process_error(err, f"{what} refused (EINVAL): {rule}")
        unknown = attr.sched_flags & ~SCHED_FLAG_ALL
        if unknown:
            return process_error(err, f"{what} refused (EINVAL): unknown sched_flags {unknown:#x}")
        clamps = SchedFlag.UTIL_CLAMP_MIN | SchedFlag.UTIL_CLAMP_MAX
        if attr.sched_flags & clamps and attr.size < SCHED_ATTR_SIZE_VER1:
            return process_error(err, f"{what} refused (EINVAL): utilisation clamps need the 56-byte sched_attr")
        return process_error(
            err, f"{what} refused (EINVAL), although the parameters pass __checkparam_dl with this kernel's limits"
        )
    if err == errno.EBUSY:
        p = ctx.prediction
        if p is None:
            return process_error(err, f"{what} refused by deadline admission control (EBUSY)")
        avail = p.available_bw
        avail_text = "unlimited" if avail is None else format_bw(avail)
        limit_text = "unlimited" if p.limit_bw is None else format_bw(p.limit_bw)
        msg = (
            f"{what} refused by deadline admission control (EBUSY): requested {format_bw(p.requested_bw)}, "
            f"available {avail_text} of {limit_text} on CPUs {p.domain.cpulist} "
            f"({format_bw(p.tasks_bw)} held by {len(p.tasks)} deadline task(s), {format_bw(p.servers_bw)} by "
            f"fair_servers [{p.servers.source}])"
        )
        if p.admitted:
            msg += (
                "; the prediction from /proc would have admitted it: bandwidth of deadline tasks that left "
                "in the last period is released only at their 0-lag time"
            )
        return process_error(err, msg)
    if err == errno.EPERM:
        causes = eperm_causes(
            has_cap_sys_nice=ctx.has_cap_sys_nice,
            rlimit_rtprio=ctx.rlimit_rtprio,
            affinity=ctx.affinity,
            domain_cpus=ctx.domain_cpus,
            rt_runtime_us=ctx.rt_runtime_us,
        )
        if not causes:
            causes = ["no known cause applies; a security module or seccomp filter may have refused it"]
        return process_error(err, f"{what} not permitted (EPERM): " + "; ".join(causes))
    if err == errno.E2BIG:
        size = ctx.kernel_size
        known = f"the kernel's struct sched_attr is {size} bytes" if size else "the kernel did not say its size"
        return process_error(err, f"{what} refused (E2BIG): we sent {attr.size} bytes, {known}")
    if err == errno.ESRCH:
        return process_error(err, f"{what} failed (ESRCH): no task with pid {pid}")
    if err == errno.ENOSYS:
        return UnsupportedError("sched_setattr", "this kernel has no sched_setattr system call (added in 3.14)")
    return process_error(err, f"{what} failed: {os.strerror(err)}")


def gather_context(err: int, pid: int, attr: SchedAttr, roots: LiveRoots, kernel_size: int) -> SetattrContext:
    """Read what explains ``err`` (only what that errno needs)."""
    sysctls = dl_sysctls(roots)
    ctx = SetattrContext(
        period_min_us=sysctls.period_min_us, period_max_us=sysctls.period_max_us, kernel_size=kernel_size
    )
    if err == errno.EBUSY:
        try:
            return replace(ctx, prediction=predict_admission(attr, roots=roots, pid=pid))
        except ProcessGoneError:  # the task exited since: explain as for a new task
            return replace(ctx, prediction=predict_admission(attr, roots=roots))
    if err == errno.EPERM:
        priv = deadline_privilege(roots, pid=pid)
        return replace(
            ctx,
            has_cap_sys_nice=priv.has_cap_sys_nice,
            rlimit_rtprio=priv.rlimit_rtprio,
            affinity=priv.affinity,
            domain_cpus=priv.domain_cpus,
            rt_runtime_us=sysctls.rt_runtime_us,
        )
    return ctx


def sched_setattr(pid: int, attr: SchedAttr, *, roots: LiveRoots | None = None) -> None:
    """Set a task's policy and parameters (pid 0 = the calling thread); raise an explained error on failure.

    On ``E2BIG`` with a 56-byte struct whose utilisation-clamp fields are unused, retry once with the 48-byte
    layout every kernel since 3.14 accepts.
    """
    err, kernel_size = raw_sched_setattr(pid, attr)
    if (
        err == errno.E2BIG
        and attr.size == SCHED_ATTR_SIZE_VER1
        and not (attr.sched_util_min or attr.sched_util_max)
    ):
        clamps = SchedFlag.UTIL_CLAMP_MIN | SchedFlag.UTIL_CLAMP_MAX
        if not attr.sched_flags & clamps:
            err, kernel_size = raw_sched_setattr(pid, replace(attr, size=SCHED_ATTR_SIZE_VER0))
    if err == 0:
        return
    ctx = gather_context(err, pid, attr, roots or LiveRoots(), kernel_size)
    raise setattr_error(err, pid, attr, ctx)
