"""How a command ends: the exit status and the one line for each kind of error, shared by the typer command
line (:func:`memsched.cli.main`) and the fast path of ``memsched list`` and ``memsched rt admit``
(:mod:`memsched.cli.fast`), so that both end an error identically. Imports nothing heavy (no typer, no rich).

The rules (whose fault an error is decides the status) are those of :mod:`memsched.cli`'s docstring; typer's
own exceptions (usage errors, ``typer.Exit``) are handled by :func:`memsched.cli.main` before it calls
:func:`exit_status`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TypeGuard

from memsched.errors import (
    ConfigError,
    MemschedError,
    PolicyError,
    SimulationError,
    Terminated,
    is_interrupt,
    printable,
)

__all__ = ["exit_status", "stdout_closed", "terminating_signals"]

#: Signals that end a command through its ``finally`` blocks (SIGINT already does, as KeyboardInterrupt).
_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _fail(message: str, error: BaseException, *, debug: bool) -> int:
    """Exit status 1 with ``message`` on stderr, or with the traceback of ``error`` under ``--debug``."""
    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
    return 1


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread while a command runs (a signal the
    caller ignores, as ``nohup`` ignores SIGHUP, stays ignored)."""
    try:
        previous = {sig: signal.getsignal(sig) for sig in _TERMINATING}
        for sig, handler in previous.items():
            if handler == signal.SIG_DFL:
                signal.signal(sig, _raise_terminated)
    except ValueError:  # not the main thread: leave the signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StdoutClosedError(OSError):
    """A write to a standard output the caller closed (``memsched ... >&-``): see :class:`ClosedStdout`."""


class ClosedStdout(io.TextIOBase):
    """``sys.stdout`` when the caller started memsched with file descriptor 1 closed (``>&-``), where Python
    leaves ``sys.stdout`` None: commands that print nothing run as usual, and the first write fails with one
    line ("cannot write the output: standard output is closed", status 1) instead of an ``AttributeError`` on
    None wherever the output is first looked at."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise StdoutClosedError(errno.EBADF, "standard output is closed")

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def stdout_closed() -> bool:
    """Whether stdout's reader went away (flushing it fails with EPIPE); if so, point it at /dev/null so that
    the interpreter's own flush at exit does not complain again."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    else:
        # The failed write may have emptied the buffer, so the flush succeeds although the reader is gone: a
        # pipe whose reader closed polls POLLERR on its write end (pipe_poll() in fs/pipe.c).
        if not _pipe_reader_gone():
            return False
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return True


def _pipe_reader_gone() -> bool:
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture), or already closed
        return False


def exit_status(error: Exception | KeyboardInterrupt, *, debug: bool) -> int:
    """Report ``error`` (one line on stderr, or its traceback under ``--debug`` where the rules say so) and
    return the command's exit status. The message is printed with its control characters escaped
    (:func:`memsched.errors.printable`): a path or name given by the user or read from the system may hold a
    new line or an escape sequence, which must not split the one line or reach the terminal."""
    text = printable(str(error))
    if isinstance(error, ConfigError):
        print(f"memsched: error: {text}", file=sys.stderr)
        return 2
    if isinstance(error, PolicyError):  # the message starts with "policy <id>:"
        return _fail(f"memsched: error: {text} (a bug in the policy)", error, debug=debug)
    if isinstance(error, SimulationError):
        if _is_users_out_of_memory(error):  # the workload asked for more than the described machine has
            print(f"memsched: error: {text}", file=sys.stderr)
            return 2
        return _fail(f"memsched: error: {text}", error, debug=debug)
    if isinstance(error, MemschedError):
        print(f"memsched: error: {text}", file=sys.stderr)
        return 1
    if isinstance(error, Terminated):
        print(f"memsched: terminated by {signal.Signals(error.signum).name}", file=sys.stderr)
        return 128 + error.signum
    if isinstance(error, KeyboardInterrupt):
        print("memsched: interrupted", file=sys.stderr)
        return 130
    if isinstance(error, MemoryError):
        from memsched.cli.common import memory_error_message

        print(f"memsched: error: {memory_error_message()}", file=sys.stderr)
        return 2
    if isinstance(error, StdoutClosedError):
        print(f"memsched: error: cannot write the output: {error.strerror}", file=sys.stderr)
        return 1
    if _is_output_full(error):
        return _fail(f"memsched: error: cannot write the output: {error.strerror}", error, debug=debug)
    message = f"memsched: internal error: {type(error).__name__}: {text} (memsched --debug ... shows the traceback)"
    if isinstance(error, BrokenPipeError):
        if stdout_closed():  # `memsched ... | head`: the reader has what it wanted
            return 1
        return _fail(message, error, debug=debug)
    if is_interrupt(error):  # Ctrl-C in a class body's __set_name__ arrives wrapped in a RuntimeError
        print("memsched: interrupted", file=sys.stderr)
        return 130
    return _fail(message, error, debug=debug)


#: Errors only a write can give (write(2)): no space, quota, file size limit.
_WRITE_ONLY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _is_output_full(error: BaseException) -> TypeGuard[OSError]:
    """A write to stdout (or stderr) that failed for want of room (``memsched ... > /dev/full``, a full disk):
    files memsched writes itself say which file (:func:`memsched.cli.common.write_atomic`), and an ``OSError``
    of a file carries its name, so a nameless write-only errno is the output's."""
    return isinstance(error, OSError) and error.filename is None and error.errno in _WRITE_ONLY_ERRNOS


def _is_users_out_of_memory(error: SimulationError) -> bool:
    from memsched.sim.mm.page_alloc import OutOfMemory

    return isinstance(error, OutOfMemory)
