"""``sched_setattr(2)`` and ``sched_getattr(2)`` through ctypes, with errors that say why.

The system-call numbers come from the kernel's own tables (checked against torvalds/linux):

============ ===================== ==================================================================
ABI          setattr / getattr      source
============ ===================== ==================================================================
x86_64       314 / 315             arch/x86/entry/syscalls/syscall_64.tbl
i386         351 / 352             arch/x86/entry/syscalls/syscall_32.tbl
arm (EABI)   380 / 381             arch/arm/tools/syscall.tbl
generic      274 / 275             include/uapi/asm-generic/unistd.h (aarch64, riscv, loongarch, ...)
powerpc      355 / 356             arch/powerpc/kernel/syscalls/syscall.tbl (ppc32 and ppc64 "common")
s390         345 / 346             arch/s390/kernel/syscalls/syscall.tbl (s390 and s390x "common")
============ ===================== ==================================================================

Other ABIs (mips, x32, ...) raise :class:`~memsched.errors.UnsupportedError` rather than guess.

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
  root domain has no deadline bandwidth (``sched_rt_runtime_us = 0``).
* ``E2BIG`` — ``sched_copy_attr()`` did not accept our struct size; the kernel writes the size it knows into
  ``attr.size``, and :func:`sched_setattr` retries once with the 48-byte layout when that is enough.
* ``ESRCH`` — no such task. ``ENOSYS`` — a kernel without ``sched_setattr`` (before 3.14).

The facts used to explain an error are gathered after the failure, so the explanation describes the machine
a moment later (a concurrent exit may have freed bandwidth meanwhile); it is a diagnosis, not a replay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import platform
import struct
import sys
import sysconfig
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from memsched.admission import BW_UNIT, DL_PERIOD_MAX_US, DL_PERIOD_MIN_US, checkparam_dl, dl_bw_of
from memsched.errors import KernelError, MemschedError, UnsupportedError
from memsched.live.roots import LiveRoots
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

if TYPE_CHECKING:
    from memsched.live.deadline import AdmissionPrediction

__all__ = [
    "SYSCALL_NUMBERS",
    "SetattrContext",
    "describe_attr",
    "eperm_causes",
    "format_bw",
    "raw_sched_setattr",
    "sched_getattr",
    "sched_setattr",
    "setattr_error",
    "syscall_abi",
]

#: ABI name -> (``__NR_sched_setattr``, ``__NR_sched_getattr``); see the module docstring for sources.
SYSCALL_NUMBERS: dict[str, tuple[int, int]] = {
    "x86_64": (314, 315),
    "i386": (351, 352),
    "arm": (380, 381),
    "generic": (274, 275),
    "powerpc": (355, 356),
    "s390": (345, 346),
}


def syscall_abi(machine: str, pointer_bits: int, multiarch: str = "") -> str:
    """The syscall table a process uses: ``uname -m`` of the kernel, the interpreter's pointer width and its
    multiarch triplet (a 32-bit Python on a 64-bit kernel uses the 32-bit table)."""
    m = machine.lower()
    if multiarch.endswith("gnux32"):
        raise UnsupportedError(
            "sched_setattr on the x32 ABI", "its syscall numbers are not in memsched's table"
        )
    if m in ("x86_64", "amd64"):
        return "x86_64" if pointer_bits == 64 else "i386"
    if m in ("i386", "i486", "i586", "i686", "x86"):
        return "i386"
    if m in ("aarch64", "arm64", "aarch64_be"):
        return "generic" if pointer_bits == 64 else "arm"
    if m.startswith("arm"):
        return "arm"
    if m.startswith(("ppc", "powerpc")):
        return "powerpc"
    if m.startswith("s390"):
        return "s390"
    if m.startswith(("riscv", "loongarch")):
        return "generic"
    raise UnsupportedError(f"sched_setattr on {machine}", "its syscall numbers are not in memsched's table")


@functools.cache
def _syscall() -> tuple[ctypes.CDLL, int, int]:
    abi = syscall_abi(
        platform.machine(), struct.calcsize("P") * 8, sysconfig.get_config_var("MULTIARCH") or ""
    )
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    nr_set, nr_get = SYSCALL_NUMBERS[abi]
    return libc, nr_set, nr_get


def raw_sched_setattr(pid: int, attr: SchedAttr) -> tuple[int, int]:
    """One ``sched_setattr(pid, &attr, 0)``: ``(0, size)`` or ``(errno, size the kernel wrote back)``.

    Nothing but the call: no file is read and the errno is not interpreted (see :func:`setattr_error`), which
    keeps the work of a child between ``fork()`` and ``exec()`` minimal.
    """
    libc, nr_set, _ = _syscall()
    buf = ctypes.create_string_buffer(attr.pack(), attr.size)
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr_set), ctypes.c_int(pid), buf, ctypes.c_uint(0))
    err = ctypes.get_errno() if rc != 0 else 0
    kernel_size = int.from_bytes(buf.raw[:4], sys.byteorder)
    return err, kernel_size


def sched_getattr(pid: int = 0) -> SchedAttr:
    """``sched_getattr(pid, &attr, 56, 0)``: the policy and parameters the kernel holds (pid 0: self)."""
    libc, _, nr_get = _syscall()
    buf = ctypes.create_string_buffer(SCHED_ATTR_SIZE_VER1)
    ctypes.set_errno(0)
    rc = libc.syscall(
        ctypes.c_long(nr_get), ctypes.c_int(pid), buf, ctypes.c_uint(SCHED_ATTR_SIZE_VER1), ctypes.c_uint(0)
    )
    if rc != 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise UnsupportedError(
                "sched_getattr", "this kernel has no sched_getattr system call (added in 3.14)"
            )
        if err == errno.ESRCH:
            raise KernelError(err, f"sched_getattr: no task with pid {pid}")
        raise KernelError(err, f"sched_getattr(pid {pid}) failed: {os.strerror(err)}")
    return SchedAttr.unpack(buf.raw)


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


def setattr_error(err: int, pid: int, attr: SchedAttr, ctx: SetattrContext) -> MemschedError:
    """The error to raise for a failed ``sched_setattr``: what the kernel checked, in words."""
    what = f"sched_setattr(pid {pid}, {describe_attr(attr)})"
    if err == errno.EINVAL:
        if attr.sched_policy == SchedPolicy.DEADLINE:
            rule = checkparam_dl(attr, period_min_us=ctx.period_min_us, period_max_us=ctx.period_max_us)
            if rule is not None:
                return KernelError(err, f"{what} refused (EINVAL): {rule}")
        unknown = attr.sched_flags & ~SCHED_FLAG_ALL
        if unknown:
            return KernelError(err, f"{what} refused (EINVAL): unknown sched_flags {unknown:#x}")
        clamps = SchedFlag.UTIL_CLAMP_MIN | SchedFlag.UTIL_CLAMP_MAX
        if attr.sched_flags & clamps and attr.size < SCHED_ATTR_SIZE_VER1:
            return KernelError(
                err, f"{what} refused (EINVAL): utilisation clamps need the 56-byte sched_attr"
            )
        return KernelError(
            err,
            f"{what} refused (EINVAL), although the parameters pass __checkparam_dl with this kernel's "
            "limits",
        )
    if err == errno.EBUSY:
        p = ctx.prediction
        if p is None:
            return KernelError(err, f"{what} refused by deadline admission control (EBUSY)")
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
                "in the "
                "last period is released only at their 0-lag time"
            )
        return KernelError(err, msg)
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
        return KernelError(err, f"{what} not permitted (EPERM): " + "; ".join(causes))
    if err == errno.E2BIG:
        size = ctx.kernel_size
        known = (
            f"the kernel's struct sched_attr is {size} bytes" if size else "the kernel did not say its size"
        )
        return KernelError(err, f"{what} refused (E2BIG): we sent {attr.size} bytes, {known}")
    if err == errno.ESRCH:
        return KernelError(err, f"{what} failed (ESRCH): no task with pid {pid}")
    if err == errno.ENOSYS:
        return UnsupportedError(
            "sched_setattr", "this kernel has no sched_setattr system call (added in 3.14)"
        )
    return KernelError(err, f"{what} failed: {os.strerror(err)}")


def gather_context(err: int, pid: int, attr: SchedAttr, roots: LiveRoots, kernel_size: int) -> SetattrContext:
    """Read what explains ``err`` (only what that errno needs)."""
    # Imported here: deadline and capabilities use this module's sched_getattr, and only an error needs them.
    from memsched.live.capabilities import deadline_privilege
    from memsched.live.deadline import dl_sysctls, predict_admission

    sysctls = dl_sysctls(roots)
    ctx = SetattrContext(
        period_min_us=sysctls.period_min_us, period_max_us=sysctls.period_max_us, kernel_size=kernel_size
    )
    if err == errno.EBUSY:
        return replace(ctx, prediction=predict_admission(attr, roots=roots, pid=pid))
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
