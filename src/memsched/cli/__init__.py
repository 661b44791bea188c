"""The ``memsched`` command (DESIGN.md, "Command line"): a thin typer app over the library.

Every error a user can cause ends as one line on stderr and exit status 2 (``ConfigError``, bad options);
other memsched errors (a kernel refusing a request) as one line and exit status 1. ``--json`` output goes to
stdout alone; progress bars and logs go to stderr, and only when stdout is a terminal.
"""

from __future__ import annotations

import sys

import typer

from memsched.errors import ConfigError, MemschedError

app = typer.Typer(
    name="memsched",
    help="NUMA balancing, memory-pressure notification and realtime scheduling: simulated and live.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Command groups register themselves on ``app`` when imported.
from memsched.cli import numa_live as _numa_live  # noqa: E402,F401
from memsched.cli import pressure_live as _pressure_live  # noqa: E402,F401
from memsched.cli import pressure_sim as _pressure_sim  # noqa: E402,F401
from memsched.cli import rt_live as _rt_live  # noqa: E402,F401
from memsched.cli import rt_sim as _rt_sim  # noqa: E402,F401
from memsched.cli import sim as _sim  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and ``python -m memsched``."""
    try:
        rv = app(args=argv, prog_name="memsched", standalone_mode=False)
    except typer.Abort:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument, bad type
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `memsched` or a bare group: show the help
            print(e.format_message(), file=sys.stderr)
            return 2
        print(f"memsched: error: {e.format_message()}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 2
    except MemschedError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0
