"""Blocking waits that a signal cannot slip past: a pipe read and a child's exit, woken by the signal itself.

CPython runs a signal's Python handler between bytecodes, in the main thread. A signal that arrives in the
instant after the last check and before the main thread blocks in ``read()`` or ``waitpid()`` (or one the
kernel delivers to another thread, which does not interrupt the main thread's system call with ``EINTR``)
waits until that call returns: ``rt run`` did not forward a SIGTERM to its command, and ``rt noise`` did not
stop, until the command or the measurement ended by itself.

:class:`SignalWakeup` closes that window as the self-pipe trick does: while it is active, the C-level handler
writes the signal's number to a non-blocking pipe (``signal.set_wakeup_fd``) the moment the signal arrives, in
whatever thread takes it, and every wait is a ``poll()`` on that pipe *and* what the caller waits for (the
pipe it reads, or the child's pidfd: ``pidfd_open(2)``, Linux 5.3). A byte on the wakeup pipe ends the
``poll()``, the main thread returns to bytecode and runs the handler; a handler that raises ends the wait, one
that returns (``rt run`` forwarding the signal) lets it go on. On the way out the previous wakeup fd is
restored. Outside the main thread, where no wakeup fd can be set, the waits are the plain blocking calls.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import threading
from types import TracebackType

__all__ = ["SignalWakeup"]


class SignalWakeup:
    """``with SignalWakeup() as wake:`` then ``wake.read(fd)`` / ``wake.waitpid(pid)`` in place of ``os.read``
    and ``os.waitpid(pid, 0)``: the same results, and the handler of a signal arriving at any moment runs."""

    def __init__(self) -> None:
        self._read_fd = -1
        self._write_fd = -1
        self._previous = -1

    def __enter__(self) -> SignalWakeup:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._read_fd < 0:
            return
        signal.set_wakeup_fd(self._previous)
        os.close(self._read_fd)
        os.close(self._write_fd)
        self._read_fd = self._write_fd = -1

    def read(self, fd: int, size: int) -> bytes:
        """``os.read(fd, size)``, waiting for ``fd`` to be readable (or at its end) without missing a signal."""
        self._wait_readable(fd)
        return os.read(fd, size)

    def waitpid(self, pid: int) -> int:
        """``os.waitpid(pid, 0)``'s status, waiting on the child's pidfd without missing a signal (a kernel or
        Python without ``pidfd_open`` waits in ``waitpid`` as before)."""
        pidfd = self._pidfd(pid)
        if pidfd >= 0:
            try:
                self._wait_readable(pidfd)  # readable once the child has exited (pidfd_poll, kernel/pid.c)
            finally:
                os.close(pidfd)
        return os.waitpid(pid, 0)[1]

    def _pidfd(self, pid: int) -> int:
        if self._read_fd < 0 or not hasattr(os, "pidfd_open"):
            return -1
        try:
            return os.pidfd_open(pid)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EINVAL, errno.EPERM):  # before 5.3; a seccomp filter's refusal
                return -1
            raise

    def _wait_readable(self, fd: int) -> None:
        if self._read_fd < 0:
            return  # the caller's own call blocks, as without a wakeup pipe
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._read_fd, select.POLLIN)
        while True:
            ready = poller.poll()  # EINTR: the handlers run, then poll() again (PEP 475)
            if any(ready_fd == fd for ready_fd, _ in ready):
                return
            self._drain()  # a signal came: its handler runs at the next bytecode, and may raise

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 512):
                pass
