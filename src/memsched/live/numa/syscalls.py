"""``move_pages(2)``, ``migrate_pages(2)`` and CPU affinity for other processes, with errors that say why.

System-call numbers, from the kernel's tables (checked against torvalds/linux):

============ ====================== =============================================================
ABI          migrate_pages / move   source
============ ====================== =============================================================
x86_64       256 / 279              arch/x86/entry/syscalls/syscall_64.tbl
i386         294 / 317              arch/x86/entry/syscalls/syscall_32.tbl
arm (EABI)   400 / 344              arch/arm/tools/syscall.tbl
generic      238 / 239              include/uapi/asm-generic/unistd.h (aarch64, riscv, loongarch)
powerpc      258 / 301              arch/powerpc/kernel/syscalls/syscall.tbl
s390         287 / 310              arch/s390/kernel/syscalls/syscall.tbl
============ ====================== =============================================================

The ABI is chosen as for ``sched_setattr`` (:func:`memsched.live.sched_attr.syscall_abi`). Affinity goes
through ``os.sched_{get,set}affinity``, which call the raw system calls and accept a thread id.

Semantics (mm/migrate.c ``kernel_move_pages`` / ``do_pages_stat``, mm/mempolicy.c
``kernel_migrate_pages``, Linux 6.x; move_pages(2), migrate_pages(2)):

* ``move_pages(pid, count, pages, NULL, status, 0)`` only *reports* the node of each page (``-ENOENT``: not
  present, ``-EFAULT``: not mapped or the zero page). With ``nodes`` it moves each page; a negative status is
  that page's ``-errno`` (``EACCES``: shared with another process and no ``MPOL_MF_MOVE_ALL``, ``EBUSY``,
  ``ENOMEM`` on the target node, ...). Since 4.17 the return value counts pages left unmoved.
  Another process's pages need ``PTRACE_MODE_READ_REALCREDS`` (4.13+) and, to move them, ``CAP_SYS_NICE`` or
  the same user.
* ``migrate_pages(pid, maxnode, old, new)`` moves every page of the process on a node of ``old`` to the
  corresponding node of ``new``; ``maxnode`` is the number of bits plus one (``get_nodes`` drops one, as
  libnuma assumes). Returns the number of pages it could not move.
* ``MPOL_MF_MOVE`` moves only pages mapped by this process alone (never a shared library page another
  process uses): the live balancer never passes ``MPOL_MF_MOVE_ALL``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import KernelError, MemschedError, UnsupportedError
from memsched.live.oserrors import process_error
from memsched.live.sched_attr import host_abi, libc
from memsched.uapi.mempolicy import MPOL_MF_MOVE

__all__ = ["NUMA_SYSCALL_NUMBERS", "KernelNumaSyscalls", "NumaSyscalls"]

IntArray = npt.NDArray[np.int64]

#: ABI name -> (``__NR_migrate_pages``, ``__NR_move_pages``); sources in the module docstring.
NUMA_SYSCALL_NUMBERS: dict[str, tuple[int, int]] = {
    "x86_64": (256, 279),
    "i386": (294, 317),
    "arm": (400, 344),
    "generic": (238, 239),
    "powerpc": (258, 301),
    "s390": (287, 310),
}


class NumaSyscalls(Protocol):
    """What the live balancer asks of the kernel (a fake stands in for it in tests)."""

    def move_pages(self, pid: int, addrs: IntArray, nodes: IntArray | None) -> IntArray:
        """Per page: its node after the call, or ``-errno``. ``nodes=None`` only queries."""

    def migrate_pages(self, pid: int, old_nodes: frozenset[int], new_nodes: frozenset[int]) -> int:
        """Pages left unmoved."""

    def get_affinity(self, tid: int) -> frozenset[int]: ...
    def set_affinity(self, tid: int, cpus: frozenset[int]) -> None: ...


@functools.cache
def _libc_numbers() -> tuple[ctypes.CDLL, int, int]:
    try:
        abi = host_abi()
    except UnsupportedError:
        raise UnsupportedError(
            f"move_pages/migrate_pages on {os.uname().machine}", "their syscall numbers are not in memsched's table"
        ) from None
    nr_migrate, nr_move = NUMA_SYSCALL_NUMBERS[abi]
    return libc(), nr_migrate, nr_move


def _errno_error(call: str, pid: int, err: int) -> MemschedError:
    """The error for ``call`` failing with ``err``: gone and denied as :func:`process_error` classes them."""
    if err == errno.ENOSYS:
        return UnsupportedError(
            call, "the kernel has no such system call (built without CONFIG_NUMA or CONFIG_MIGRATION)"
        )
    if err == errno.ESRCH:
        return process_error(err, f"{call}: no process {pid} (it exited)")
    if err == errno.EPERM:
        return process_error(err, f"{call}: not permitted on pid {pid} (needs CAP_SYS_NICE or the same user)")
    if err == errno.EACCES:
        return process_error(err, f"{call}: pid {pid} may not be inspected (ptrace access mode check failed)")
    return process_error(err, f"{call}(pid {pid}) failed: {os.strerror(err)}")


class KernelNumaSyscalls:
    """The running kernel's ``move_pages``/``migrate_pages``/affinity calls."""

    def move_pages(self, pid: int, addrs: IntArray, nodes: IntArray | None) -> IntArray:
        libc, _, nr_move = _libc_numbers()
        count = int(addrs.shape[0])
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        pages = np.ascontiguousarray(addrs, dtype=np.uintp)
        status = np.full(count, -errno.EINVAL, dtype=np.int32)
        node_arr = None if nodes is None else np.ascontiguousarray(nodes, dtype=np.int32)
        ctypes.set_errno(0)
        rc = libc.syscall(
            ctypes.c_long(nr_move),
            ctypes.c_int(pid),
            ctypes.c_ulong(count),
            pages.ctypes.data_as(ctypes.c_void_p),
            None if node_arr is None else node_arr.ctypes.data_as(ctypes.c_void_p),
            status.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int(0 if nodes is None else MPOL_MF_MOVE),
        )
        if rc < 0:
            raise _errno_error("move_pages", pid, ctypes.get_errno())
        return status.astype(np.int64)

    def migrate_pages(self, pid: int, old_nodes: frozenset[int], new_nodes: frozenset[int]) -> int:
        libc, nr_migrate, _ = _libc_numbers()
        bits = max([*old_nodes, *new_nodes, 0]) + 1
        words = -(-bits // (8 * ctypes.sizeof(ctypes.c_ulong)))
        old = (ctypes.c_ulong * words)()
        new = (ctypes.c_ulong * words)()
        width = 8 * ctypes.sizeof(ctypes.c_ulong)
        for n in old_nodes:
            old[n // width] |= 1 << (n % width)
        for n in new_nodes:
            new[n // width] |= 1 << (n % width)
        ctypes.set_errno(0)
        rc = libc.syscall(ctypes.c_long(nr_migrate), ctypes.c_int(pid), ctypes.c_ulong(words * width + 1), old, new)
        if rc < 0:
            raise _errno_error("migrate_pages", pid, ctypes.get_errno())
        return int(rc)

    def get_affinity(self, tid: int) -> frozenset[int]:
        try:
            return frozenset(os.sched_getaffinity(tid))
        except OSError as e:
            raise _errno_error("sched_getaffinity", tid, e.errno or errno.EIO) from None

    def set_affinity(self, tid: int, cpus: frozenset[int]) -> None:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise KernelError(
                    errno.EINVAL, f"sched_setaffinity(tid {tid}): CPUs {sorted(cpus)} are outside its cpuset"
                ) from None
            raise _errno_error("sched_setaffinity", tid, e.errno or errno.EIO) from None
