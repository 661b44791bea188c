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

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsched.cli.entry import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    """``main`` (:mod:`memsched.cli.entry`), imported on first use: the fast path of ``memsched list`` and
    ``memsched rt admit`` (:mod:`memsched.cli.fast`) imports modules of this package without loading typer
    and every command."""
    if name != "main":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from memsched.cli import entry

    return entry.main


class _Package(types.ModuleType):
    """``memsched.cli.app`` is the typer app (as when this package imported every command), although a
    submodule has the same name: importing the submodule binds it here, and this property keeps the app."""

    @property
    def app(self) -> Any:
        from memsched.cli import entry

        return entry.app

    @app.setter
    def app(self, value: Any) -> None:
        pass  # the import system binding the submodule memsched.cli.app (sys.modules has it)


sys.modules[__name__].__class__ = _Package
