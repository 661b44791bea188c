"""What an ``errno`` means when it concerns a process: gone, access denied, or another kernel error.

The one mapping from ``OSError`` / ``errno`` to memsched's errors for everything that names a process — its
``/proc/<pid>`` files and the system calls that take a pid or tid — in the manner of psutil's
``_pslinux.wrap_exceptions``:

* ``ESRCH`` -> :class:`~memsched.errors.ProcessGoneError`: no task with that id (``find_task_by_vpid`` found
  none), or its ``/proc`` files were read while it exited;
* ``ENOENT`` -> :class:`~memsched.errors.ProcessGoneError`: ``/proc/<pid>`` or one of its files vanished;
* ``EACCES``, ``EPERM`` -> :class:`~memsched.errors.AccessDeniedError`: credentials, a capability or the ptrace
  access check (``ptrace_may_access``) refused this caller;
* anything else -> :class:`~memsched.errors.KernelError`, as it is.

All three keep ``errno``, so ``except KernelError`` still catches them. The caller writes the message (it
knows the call and the rule); :func:`process_error` only picks the class. Files that do not belong to a process
(``/proc/vmstat``, sysfs) go through :func:`memsched.live.roots.read_text`, where ``ENOENT`` means "not on this
kernel", not "gone".
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal

from memsched.errors import AccessDeniedError, KernelError, ProcessGoneError

__all__ = ["DENIED_ERRNOS", "GONE_ERRNOS", "kill_and_reap", "process_error", "send_signal"]

#: Errnos that mean the process (or thread) no longer exists.
GONE_ERRNOS = frozenset({errno.ESRCH, errno.ENOENT})
#: Errnos that mean this caller may not read or change it.
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def process_error(cause: OSError | int, message: str) -> KernelError:
    """The error for ``cause`` (an ``OSError`` or an ``errno``) met while reading or acting on a process."""
    err = cause if isinstance(cause, int) else (cause.errno or errno.EIO)
    if err in GONE_ERRNOS:
        return ProcessGoneError(err, message)
    if err in DENIED_ERRNOS:
        return AccessDeniedError(err, message)
    return KernelError(err, message)


def send_signal(pid: int, sig: int) -> bool:
    """``kill(pid, sig)``: True when sent, False when the process is already gone; a refusal raises
    :class:`~memsched.errors.AccessDeniedError`."""
    try:
        os.kill(pid, sig)
    except OSError as e:
        err = process_error(e, f"kill(pid {pid}, {signal.Signals(sig).name}): {os.strerror(e.errno or errno.EIO)}")
        if isinstance(err, ProcessGoneError):
            return False
        raise err from None
    return True


def kill_and_reap(pid: int) -> None:
    """SIGKILL a child of this process and wait for it; a child that already exited is only reaped."""
    send_signal(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
