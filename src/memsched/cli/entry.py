"""The typer command line: every command group registered on ``app``, and :func:`main`, which runs it
(``memsched.cli.app`` and ``memsched.cli.main`` load this module on first use).

The ``memsched`` command: a thin typer app over the library. Whose fault an error is decides how the command
ends (:func:`memsched.cli.outcome.exit_status`, which the fast path of ``list`` and ``rt admit`` shares):

* the user's (``ConfigError``: a bad option, name, setting or file; typer's usage errors; a workload that needs
  more memory than the simulated machine has; a simulation that outgrows its memory limit, ``MemoryError``):
  one line on stderr and exit status 2;
* a policy plug-in's (``PolicyError``: a policy broke its contract or failed the conformance check): one line
  naming the policy, exit status 1;
* the system's or the model's (``KernelError``, ``UnsupportedError``, ``SimulationError``, an output with no
  room left: ``memsched ... > /dev/full``): one line, exit status 1;
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

import sys

import typer
import typer.main

import memsched.cli.numa_live
import memsched.cli.pressure_act
import memsched.cli.pressure_dbus
import memsched.cli.pressure_live
import memsched.cli.pressure_sim
import memsched.cli.results
import memsched.cli.rt_live
import memsched.cli.rt_sim
import memsched.cli.sim
import memsched.cli.sweep
import memsched.cli.tune  # noqa: F401
from memsched.cli.app import GlobalOptions, app
from memsched.cli.help import polish
from memsched.cli.outcome import exit_status, terminating_signals

__all__ = ["app", "main"]


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
        with terminating_signals():
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
    except (Exception, KeyboardInterrupt) as e:  # memsched's errors and everything else: memsched.cli.outcome
        return exit_status(e, debug=options.debug)
