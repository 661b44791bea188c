"""The typer application every command group registers on, and the options that come before a command.

``memsched.cli`` imports the command modules (which register on :data:`app`) and runs it; keeping the app
here lets those modules import it without importing ``memsched.cli`` back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

__all__ = ["GlobalOptions", "app"]

app = typer.Typer(
    name="memsched",
    help="NUMA balancing, memory-pressure notification and realtime scheduling: simulated and live.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class GlobalOptions:
    """What ``memsched.cli.main`` needs to know once the command has ended (passed in as the context object)."""

    debug: bool = False


def _print_version(value: bool) -> None:
    if value:
        from memsched.cli.fast import version_line

        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _global_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="on a model error, a policy bug or an internal error, print the traceback, not one line"
        ),
    ] = False,
) -> None:
    if isinstance(ctx.obj, GlobalOptions):
        ctx.obj.debug = debug
    from memsched.sim.fluid import jit

    # A bad MEMSCHED_JIT is refused before anything runs, not at a simulation's first solve. (The fast path of
    # `list` and `rt admit`, which never simulate, does not read it: it may not import the simulators.)
    jit.check_env()
