"""``PR_SET_PDEATHSIG``: a child process that dies with its parent.

``prctl(PR_SET_PDEATHSIG, sig)`` (include/uapi/linux/prctl.h; kernel/sys.c, 2.1.57+) asks the kernel to send
``sig`` to the caller when its parent *thread* exits — by ``exit``, by a signal, by ``kill -9`` — which a parent
cannot arrange for itself in the last case. The setting survives ``execve`` (except of a set-user-ID,
set-group-ID or file-capability binary, which clears it) and is inherited by nobody.

There is a window: the parent may die between ``fork()`` and the ``prctl()``. So the child compares
``getppid()`` with the parent's pid afterwards and gives up if they differ (the child was re-parented).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["PR_SET_PDEATHSIG", "set_parent_death_signal"]

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(sig: int, parent_pid: int) -> bool:
    """In a forked child: get ``sig`` when the parent dies. False if the parent is already gone (then the
    child should exit at once); ``OSError`` if the kernel refused."""
    if _libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    return os.getppid() == parent_pid
