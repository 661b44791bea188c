"""The ``memsched`` command: a thin typer app over the library.

Whose fault an error is decides how the command ends:

* the user's (``ConfigError``: a bad option, name, setting or file; typer's usage errors; a workload that needs
  more memory than the simulated machine has; a simulation that outgrows its memory limit, ``MemoryError``):
  one line on stderr and exit status 2;
* a policy plug-in's (``PolicyError``: a policy broke its contract or failed the conformance check): one line
  naming the policy, exit status 1;
* the system's or the model's (``KernelError``, ``UnsupportedError``, ``SimulationError``): one line, exit
  status 1;
* memsched's own (any other exception): one line naming the exception, exit status 1.

An interruption ends the command through the same ``finally`` blocks as an error: SIGINT (Ctrl-C) raises
``KeyboardInterrupt`` and SIGTERM/SIGHUP raise :class:`~memsched.errors.Terminated` (a ``KeyboardInterrupt``)
while a command runs, so registrations, children, pinned affinities and temporary files are released; the
command then says "interrupted" or "terminated by SIGTERM" and exits 128 + the signal number. Commands that
own a child or a server (``rt run``, ``pressure serve``) install their own handlers on top.

The command is invoked through click's ``make_context``/``invoke`` rather than typer's ``main``, whose
handler treats *every* ``EPIPE`` as a closed stdout and exits 1 in silence (it swallowed the daemon backend's
"the daemon went away" error) and turns Ctrl-C into a silent 130. Here only a ``BrokenPipeError`` writing
stdout is taken as the reader having gone away.

``memsched --debug COMMAND ...`` prints the traceback instead of the one line for model errors, policy bugs
and internal errors, whose traceback says where the fault is. ``--json`` output goes to stdout alone;
progress bars and logs go to stderr, and only when stdout is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import traceback
from collections.abc import Iterator
from types import FrameType

import typer
import typer.main

from memsched.cli import numa_live as _numa_live  # noqa: F401  (command groups register on ``app``)
from memsched.cli import pressure_act as _pressure_act  # noqa: F401
from memsched.cli import pressure_dbus as _pressure_dbus  # noqa: F401
from memsched.cli import pressure_live as _pressure_live  # noqa: F401
from memsched.cli import pressure_sim as _pressure_sim  # noqa: F401
from memsched.cli import results as _results  # noqa: F401
from memsched.cli import rt_live as _rt_live  # noqa: F401
from memsched.cli import rt_sim as _rt_sim  # noqa: F401
from memsched.cli import sim as _sim  # noqa: F401
from memsched.cli import sweep as _sweep  # noqa: F401
from memsched.cli import tune as _tune  # noqa: F401
from memsched.cli.app import GlobalOptions, app
from memsched.cli.common import memory_error_message
from memsched.cli.help import polish
from memsched.errors import ConfigError, MemschedError, PolicyError, SimulationError, Terminated, is_interrupt

__all__ = ["app", "main"]

#: Signals that end a command through its ``finally`` blocks (SIGINT already does, as KeyboardInterrupt).
_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _fail(message: str, error: BaseException, *, debug: bool) -> int:
    """Exit status 1 with ``message`` on stderr, or with the traceback of ``error`` under ``--debug``."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
    return 1


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _terminating_signals() -> Iterator[None]:
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


def _stdout_closed() -> bool:
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


def _invoke(argv: list[str] | None, options: GlobalOptions) -> int:
    command = typer.main.get_command(app)
    polish(command)
    args = sys.argv[1:] if argv is None else list(argv)
    with command.make_context("memsched", args, obj=options) as ctx:
        rv = command.invoke(ctx)
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and ``python -m memsched``."""
    options = GlobalOptions()
    try:
        with _terminating_signals():
            return _invoke(argv, options)
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as e:  # usage errors: unknown option, missing argument, bad type
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `memsched` or a bare group: show the help
            print(e.format_message(), file=sys.stderr)
            return 2
        print(f"memsched: error: {e.format_message()}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 2
    except PolicyError as e:  # the message starts with "policy <id>:"
        return _fail(f"memsched: error: {e} (a bug in the policy)", e, debug=options.debug)
    except SimulationError as e:
        if _is_users_out_of_memory(e):  # the workload asked for more than the described machine has
            print(f"memsched: error: {e}", file=sys.stderr)
            return 2
        return _fail(f"memsched: error: {e}", e, debug=options.debug)
    except MemschedError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 1
    except Terminated as e:
        print(f"memsched: terminated by {signal.Signals(e.signum).name}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"memsched: error: {memory_error_message()}", file=sys.stderr)
        return 2
    except BrokenPipeError as e:
        if _stdout_closed():  # `memsched ... | head`: the reader has what it wanted
            return 1
        message = f"memsched: internal error: {type(e).__name__}: {e} (memsched --debug ... shows the traceback)"
        return _fail(message, e, debug=options.debug)
    except Exception as e:
        if is_interrupt(e):  # Ctrl-C in a class body's __set_name__ arrives wrapped in a RuntimeError
            print("memsched: interrupted", file=sys.stderr)
            return 130
        message = f"memsched: internal error: {type(e).__name__}: {e} (memsched --debug ... shows the traceback)"
        return _fail(message, e, debug=options.debug)


def _is_users_out_of_memory(error: SimulationError) -> bool:
    from memsched.sim.mm.page_alloc import OutOfMemory

    return isinstance(error, OutOfMemory)
