"""Signals that stop a DuckDB statement while it computes.

While DuckDB computes a statement the main thread is inside C, and CPython runs a signal's Python handler only
between bytecodes: SIGINT or SIGTERM waited until the statement finished (a minute, or never for a runaway
query). DuckDB's Python module does call the pending handlers while it waits, but swallows the exception a
handler raises and goes on computing, so the handler cannot stop it either.

:func:`interrupt_on_signals` therefore lets the signal wake a thread: the C-level handler writes the signal's
number to the wakeup file descriptor (``signal.set_wakeup_fd``) the moment it arrives, and a watcher thread
blocked on that pipe calls ``connection.interrupt()``, which makes the statement fail with DuckDB's
``InterruptException`` within milliseconds. Meanwhile the Python handlers of those signals only note which
signal came; on the way out the previous handlers (and wakeup fd) are restored and the first signal noted is
handed to its previous handler, so the command ends as that signal says (``KeyboardInterrupt``, or
``Terminated`` for SIGTERM: exit 130 or 143) rather than as whatever exception DuckDB raised.

Only signals with a Python handler take part: an ignored signal (``nohup``) stays ignored, and one left at
its default still kills the process. Outside the main thread, where handlers cannot be set, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

__all__ = ["interrupt_on_signals"]

#: The signals that end a command (:mod:`memsched.cli.outcome`); each stops the statement it interrupts.
_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Written to the wakeup pipe to end the watcher (no signal has number 0).
_STOP_WATCHING = b"\0"

_Handler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def interrupt_on_signals(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP interrupt ``con``'s statement at once; when the block
    ends, the first such signal is handed to the handler it had before (which raises the interruption)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, _Handler] = {}
    for sig in _STOPPING:
        handler = signal.getsignal(sig)
        if callable(handler):  # SIG_IGN and SIG_DFL are not, and a handler set from C is None
            previous[sig] = handler
    if not previous:
        yield
        return
    caught: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    watcher = threading.Thread(
        target=_interrupt_when_woken, args=(read_fd, con, frozenset(previous), caught), daemon=True,
        name="memsched-duckdb-interrupt",
    )  # fmt: skip
    old_wakeup_fd = -1
    try:
        for signum in previous:
            signal.signal(signum, note)
        old_wakeup_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        watcher.start()
        yield
    finally:
        signal.set_wakeup_fd(old_wakeup_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if watcher.is_alive():
            with contextlib.suppress(BlockingIOError):  # a full pipe already wakes the watcher
                os.write(write_fd, _STOP_WATCHING)
            watcher.join()
        os.close(read_fd)
        os.close(write_fd)
        if caught:
            previous[caught[0]](caught[0], None)


def _interrupt_when_woken(
    read_fd: int, con: duckdb.DuckDBPyConnection, stopping: frozenset[int], caught: list[int]
) -> None:
    """The watcher thread: wait on the wakeup pipe; a stopping signal's number interrupts the statement."""
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    while True:
        poller.poll()
        try:
            data = os.read(read_fd, 512)
        except BlockingIOError:
            continue
        for signum in data:
            if signum in stopping:
                caught.append(signum)
                con.interrupt()
        if _STOP_WATCHING[0] in data or not data:
            return
