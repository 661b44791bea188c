"""Who may open a results database, and when: a polite lock beside the DuckDB file.

DuckDB lets one process open a database file for writing and refuses every other process while it is open
(even readers). Two sweeps writing one database at once would therefore make the second fail at its first
commit. Instead, every memsched process that opens a database takes this lock first, and the writer holds the
database open only while nobody else is waiting:

* ``<db>.lock`` is ``flock(2)``-ed exclusively by the process that has the database open;
* ``<db>.lock.want`` is ``flock``-ed *shared* by every process waiting for it. The holder tests it without
  blocking (:meth:`DbLock.contended`) after each commit and between results, and when somebody waits it
  closes the database and lets go; its next commit then waits its turn.

So two sweeps (or a sweep and ``memsched results show``) take turns commit by commit, and each waits at most
one commit plus one poll interval. ``flock`` locks die with their process, so a sweep killed with SIGKILL leaves
no stale lock, and DuckDB replays or discards its write-ahead log on the next open. The database must be on a
local file system (DuckDB's own requirement; ``flock`` on NFS is emulated and not relied upon).

Neither file is ever removed (both stay, empty; ``docs/sweeps.md`` says so): unlinking ``.lock.want`` while a
waiter has opened it but not yet locked it would leave that waiter declared on an inode the holder no longer
finds, and the holder would keep the database until its sweep ended.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from memsched.errors import KernelError

__all__ = ["DbLock", "LockTimeoutError"]

#: How often a waiter retries the lock (seconds).
_RETRY_S = 0.02


class LockTimeoutError(KernelError):
    """Another process kept the results database for longer than the caller was prepared to wait."""


class DbLock:
    """The lock of one database file; :meth:`acquire` and :meth:`release` around every open of it."""

    def __init__(self, db: Path) -> None:
        self.path = Path(f"{db}.lock")
        self.want_path = Path(f"{db}.lock.want")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout_s: float = 600.0) -> None:
        """Take the lock, waiting (as a declared waiter) up to ``timeout_s``."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if _try_flock(fd, fcntl.LOCK_EX):
            self._fd = fd
            return
        want = os.open(self.want_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(want, fcntl.LOCK_SH)  # "I am waiting": the holder sees it and lets go
            deadline = time.monotonic() + timeout_s
            while not _try_flock(fd, fcntl.LOCK_EX):
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LockTimeoutError(
                        errno.EWOULDBLOCK, f"{self.path.with_suffix('')}: still in use by another process after "
                        f"{timeout_s:g} s"
                    )
                time.sleep(_RETRY_S)
            self._fd = fd
        finally:
            os.close(want)  # closing drops the shared lock

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def contended(self) -> bool:
        """Whether another process is waiting for the database (two system calls, no blocking)."""
        try:
            fd = os.open(self.want_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return not _try_flock(fd, fcntl.LOCK_EX)  # closing drops the probe lock
        finally:
            os.close(fd)


def _try_flock(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
