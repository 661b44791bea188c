"""``python -m memsched`` and the ``memsched`` console script.

``memsched list ...`` and ``memsched rt admit ...`` take a fast path that does not load typer
(:mod:`memsched.cli.fast`, which hands anything it does not fully understand back); every other command
loads the typer command line.

The command line is imported inside :func:`run`, so that a Ctrl-C while it loads (numpy, rich, typer: about
half a second) ends with "memsched: interrupted" and status 130, not a traceback from the import machinery.

Two CPython 3.11 details make that harder than an ``except KeyboardInterrupt``:

* a KeyboardInterrupt raised in a descriptor's ``__set_name__`` while a class body is created (rich's
  dataclasses) arrives wrapped in a ``RuntimeError`` whose ``__cause__`` is the interrupt;
* a KeyboardInterrupt that escapes code run by ``exec()`` of a string (dataclasses and namedtuple build their
  methods that way) sets the interpreter's "unhandled KeyboardInterrupt" flag in ``run_eval_code_obj()``
  (Python/pythonrun.c) even when a caller handles it, and ``Py_RunMain()`` then ends the process with SIGINT
  instead of the status asked for. An interrupted run therefore leaves through ``os._exit(130)`` (:func:`console`) once
  its output is flushed; by then every ``finally`` block has run.
* a KeyboardInterrupt raised in a callback of the import machinery is printed as "Exception ignored" and
  lost; :func:`run` notes every SIGINT that arrives while the command line loads.
"""

import contextlib
import os
import signal
import sys
from typing import NoReturn

from memsched.errors import is_interrupt


def run() -> int:
    """Load the command line and run it; 130 when interrupted (the message is printed)."""
    seen: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    def unraisable(info: "sys.UnraisableHookArgs") -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            return  # already noted by interrupt()
        sys.__unraisablehook__(info)

    try:
        previous = signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread
        previous = None
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    fast_command = None
    try:
        from memsched.cli import fast

        fast_command = fast.parse(sys.argv[1:])
        if fast_command is None:
            from memsched.cli import main
    except BaseException as e:
        if not is_interrupt(e):
            raise
        seen.append(signal.SIGINT)
    finally:
        sys.unraisablehook = hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if seen:  # also when the import machinery swallowed the KeyboardInterrupt ("Exception ignored in ...")
        print("memsched: interrupted", file=sys.stderr)
        return 130
    if fast_command is not None:
        return fast.execute(fast_command)
    return main()


def console() -> NoReturn:
    """The ``memsched`` console script and ``python -m memsched``: :func:`run`, then exit with its status."""
    if sys.stdout is None:  # started with stdout closed (``>&-``): writes fail with one line, not on None
        from memsched.cli.outcome import ClosedStdout

        sys.stdout = ClosedStdout()
    if sys.stderr is None:  # (no stderr to say anything on: the exit status still tells)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process's stderr until it exits
    rc = run()
    if rc == 130:  # interrupted: leave through os._exit (see the module docstring), output flushed first
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(130)
    sys.exit(rc)


if __name__ == "__main__":
    console()
