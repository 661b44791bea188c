"""Every ``/proc`` format memsched reads, parsed once, and the readers that take a :class:`LiveRoots`.

This package is the facade: the parsers live in :mod:`~memsched.live.procfs.process` (the files of one
process), :mod:`~memsched.live.procfs.maps` (its address space) and :mod:`~memsched.live.procfs.system`
(machine-wide files), and are all importable from here; the readers are defined here.

In the manner of psutil's ``_pslinux``: a parser is a pure function from the file's text (or bytes) to a named,
frozen record; a field the kernel always prints and that is missing raises :class:`KernelError` (``EINVAL``)
naming the file and the field; a field that only some kernels print is ``None`` when absent, and its comment
names the kernel that added it — never a silent 0. Readers take the roots, and files of a process go through
:func:`memsched.live.oserrors.process_error`, so a process that exits while it is read raises
:class:`~memsched.errors.ProcessGoneError` and one this caller may not read
:class:`~memsched.errors.AccessDeniedError`.

Formats (Linux 6.x sources unless said otherwise; proc(5)):

``/proc/<pid>[/task/<tid>]/stat``  ``do_task_stat`` (fs/proc/array.c): ``comm`` in parentheses may hold spaces
    and parentheses, so fields are counted after the last ``)``. Used: 3 state, 9 flags, 14/15 utime/stime
    (clock ticks), 20 num_threads, 39 processor (2.2.8+), 40 rt_priority and 41 policy (2.5.19+).
``/proc/<pid>/status``  ``proc_pid_status`` (fs/proc/array.c): ``Key:\\tvalue`` lines.
``/proc/<pid>/limits``  ``proc_pid_limits`` (fs/proc/base.c, 2.6.24+): names padded to 26 columns.
``/proc/<pid>/sched``  ``proc_sched_show_task`` (kernel/sched/debug.c, ``CONFIG_SCHED_DEBUG``).
``/proc/<pid>/cgroup``  ``proc_cgroup_show`` (kernel/cgroup/cgroup.c): ``id:controllers:path``; v2 is ``0::/p``.
``/proc/<pid>/mountinfo``  ``show_mountinfo`` (fs/proc_namespace.c): optional fields end at ``-``; space, tab,
    newline and backslash escaped as ``\\ooo``.
``/proc/vmstat``, ``memory.stat``, ``memory.events``, ``memory.oom_control``  ``name value`` lines
    (mm/vmstat.c ``vmstat_show``, mm/memcontrol.c).
``/proc/pressure/*``, ``<cgroup>/*.pressure``  ``psi_show`` (kernel/sched/psi.c, 4.20+).
``/proc/interrupts``, ``/proc/softirqs``  ``show_interrupts`` (fs/proc/interrupts.c and the arch's
    ``arch_show_interrupts``), ``show_softirqs`` (fs/proc/softirqs.c): a ``CPUn`` header, one column per
    online CPU.
``/proc/<pid>/numa_maps``, ``/proc/<pid>/maps``  ``show_numa_map``, ``show_map_vma`` (fs/proc/task_mmu.c): see
    :mod:`memsched.live.procfs.maps`.
``/sys/devices/system/node/nodeN/meminfo``: :func:`memsched.topology.sysfs.parse_node_meminfo` (shared with
    ``Topology.from_sysfs``; read by :mod:`memsched.live.numa.snapshot`, so that importing this package, which
    a command started under SCHED_DEADLINE may do, never loads numpy: a deadline task cannot create the
    threads numpy's BLAS starts).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from memsched.errors import KernelFileError
from memsched.kfile import decode_kernel_text
from memsched.live.oserrors import GONE_ERRNOS, process_error
from memsched.live.procfs.maps import MapsRange, MissingFieldWarning, NumaMapsVma, parse_maps, parse_numa_maps
from memsched.live.procfs.process import (
    CAP_SYS_NICE,
    CAP_SYS_RESOURCE,
    PF_KTHREAD,
    CgroupMembership,
    Mount,
    ProcSched,
    ProcStatus,
    TaskStat,
    comm_text,
    parse_limits,
    parse_mountinfo,
    parse_proc_cgroup,
    parse_proc_sched,
    parse_status,
    parse_task_stat,
)
from memsched.live.procfs.system import (
    PsiLine,
    PsiStats,
    kernel_version,
    parse_counter,
    parse_flat_keyed,
    parse_int,
    parse_interrupts,
    parse_psi,
    parse_softirqs,
)
from memsched.live.roots import LiveRoots, read_text

__all__ = [
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "PF_KTHREAD",
    "CgroupMembership",
    "MapsRange",
    "MissingFieldWarning",
    "Mount",
    "NumaMapsVma",
    "ProcSched",
    "ProcStatus",
    "PsiLine",
    "PsiStats",
    "TaskStat",
    "comm_text",
    "kernel_version",
    "list_pids",
    "parse_counter",
    "parse_flat_keyed",
    "parse_int",
    "parse_interrupts",
    "parse_limits",
    "parse_maps",
    "parse_mountinfo",
    "parse_numa_maps",
    "parse_proc_cgroup",
    "parse_proc_sched",
    "parse_psi",
    "parse_softirqs",
    "parse_status",
    "parse_task_stat",
    "read_int",
    "read_maps",
    "read_numa_maps",
    "read_proc_sched",
    "read_process_file",
    "read_status",
    "read_task_stat",
    "thread_ids",
]


# --------------------------------------------------------------------------------------------- readers


def list_pids(roots: LiveRoots) -> list[int]:
    """Numeric entries of ``/proc``, sorted."""
    return _numeric_dirs(roots.proc_root)


def thread_ids(roots: LiveRoots, pid: int) -> list[int]:
    """Thread ids of ``pid`` (``/proc/<pid>/task``); empty when the process is gone."""
    return _numeric_dirs(roots.proc(pid, "task"))


def _numeric_dirs(path: Path) -> list[int]:
    try:
        return sorted(int(e.name) for e in os.scandir(path) if e.name.isdigit())
    except OSError as e:
        err = e.errno or errno.EIO
        if err in GONE_ERRNOS or err == errno.ENOTDIR:
            return []  # the directory of a process that exited meanwhile
        raise process_error(err, f"cannot list {path}: {os.strerror(err)}") from None


def read_process_file(roots: LiveRoots, pid: int | str, *parts: str | int) -> str:
    """``/proc/<pid>/<parts>`` (bounded and confined like :func:`memsched.live.roots.read_text`):
    :class:`ProcessGoneError` once the process has exited, :class:`AccessDeniedError` when this caller may not
    read it, :class:`KernelFileError` when the file is refused."""
    path = roots.proc(pid, *parts)
    try:
        return decode_kernel_text(roots.read_bytes(path))
    except KernelFileError:
        raise
    except OSError as e:
        err = e.errno or errno.EIO
        message = f"{path}: process gone" if err in GONE_ERRNOS else f"cannot read {path}: {os.strerror(err)}"
        raise process_error(err, message) from None


def _task(tid: int | None) -> tuple[str | int, ...]:
    return () if tid is None else ("task", tid)


def read_task_stat(roots: LiveRoots, pid: int, tid: int | None = None) -> TaskStat:
    """``/proc/<pid>/stat``, or ``/proc/<pid>/task/<tid>/stat`` with ``tid``."""
    parts = (*_task(tid), "stat")
    return parse_task_stat(read_process_file(roots, pid, *parts), source=str(roots.proc(pid, *parts)))


def read_status(roots: LiveRoots, pid: int | str, tid: int | None = None) -> ProcStatus:
    """``/proc/<pid>/status`` (``pid`` may be ``"self"``), or a thread's with ``tid``."""
    parts = (*_task(tid), "status")
    return parse_status(read_process_file(roots, pid, *parts), source=str(roots.proc(pid, *parts)))


def read_proc_sched(roots: LiveRoots, pid: int, tid: int | None = None) -> ProcSched:
    """``/proc/<pid>/sched`` (raises if the kernel lacks ``CONFIG_SCHED_DEBUG``'s file)."""
    parts = (*_task(tid), "sched")
    return parse_proc_sched(read_process_file(roots, pid, *parts), source=str(roots.proc(pid, *parts)))


def read_numa_maps(roots: LiveRoots, pid: int) -> tuple[NumaMapsVma, ...]:
    """``/proc/<pid>/numa_maps``, one record per VMA."""
    return parse_numa_maps(read_process_file(roots, pid, "numa_maps"), source=str(roots.proc(pid, "numa_maps")))


def read_maps(roots: LiveRoots, pid: int) -> tuple[MapsRange, ...]:
    """``/proc/<pid>/maps``, one range per VMA."""
    return parse_maps(read_process_file(roots, pid, "maps"), source=str(roots.proc(pid, "maps")))


def read_int(path: Path, roots: LiveRoots | None = None) -> int:
    """A file holding one decimal integer (sysctls, sysfs attributes)."""
    return parse_int(read_text(path, roots), source=str(path))
