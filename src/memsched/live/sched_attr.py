"""``sched_setattr(2)`` and ``sched_getattr(2)`` through ctypes: the raw calls and their ``errno``.

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

This module is the raw layer: the calls and their ``errno``, nothing read from ``/proc`` and nothing
explained. :func:`raw_sched_setattr` returns the errno (it also runs in a child between ``fork()`` and
``exec()``); :func:`sched_getattr` raises through :func:`memsched.live.oserrors.process_error` (``ESRCH``:
:class:`~memsched.errors.ProcessGoneError`, ``EPERM``: :class:`~memsched.errors.AccessDeniedError`) and
``ENOSYS`` (a kernel before 3.14) as :class:`~memsched.errors.UnsupportedError`. The layer that says why a
``sched_setattr`` was refused (the rule behind ``EINVAL``, the bandwidth behind ``EBUSY``, the capability
behind ``EPERM``) is :mod:`memsched.live.dl_explain`, which callers use.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
import sys
import sysconfig

from memsched.errors import UnsupportedError
from memsched.live.oserrors import process_error
from memsched.uapi.sched import SCHED_ATTR_SIZE_VER1, SchedAttr

__all__ = ["SYSCALL_NUMBERS", "host_abi", "libc", "raw_sched_setattr", "sched_getattr", "syscall_abi"]

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


def host_abi() -> str:
    """:func:`syscall_abi` of this process (``os.uname().machine`` is what ``platform.machine()`` returns on
    POSIX, without importing ``platform``)."""
    return syscall_abi(os.uname().machine, struct.calcsize("P") * 8, sysconfig.get_config_var("MULTIARCH") or "")


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library the interpreter runs on, with ``syscall()`` returning a ``long`` and errno kept. Already
    loaded: ``dlopen(NULL)`` finds its ``syscall()``; only where the interpreter does not export it is the
    library looked up by name (``ctypes.util`` costs ~30 ms to import)."""
    lib = ctypes.CDLL(None, use_errno=True)
    if not hasattr(lib, "syscall"):
        from ctypes.util import find_library

        lib = ctypes.CDLL(find_library("c"), use_errno=True)
    lib.syscall.restype = ctypes.c_long
    return lib


@functools.cache
def _syscall() -> tuple[ctypes.CDLL, int, int]:
    nr_set, nr_get = SYSCALL_NUMBERS[host_abi()]
    return libc(), nr_set, nr_get


def raw_sched_setattr(pid: int, attr: SchedAttr) -> tuple[int, int]:
    """One ``sched_setattr(pid, &attr, 0)``: ``(0, size)`` or ``(errno, size the kernel wrote back)``.

    Nothing but the call: no file is read and the errno is not interpreted (see
    :func:`memsched.live.dl_explain.setattr_error`), which keeps the work of a child between ``fork()`` and
    ``exec()`` minimal.
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
            raise process_error(err, f"sched_getattr: no task with pid {pid}")
        raise process_error(err, f"sched_getattr(pid {pid}) failed: {os.strerror(err)}")
    return SchedAttr.unpack(buf.raw)
