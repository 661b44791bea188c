"""The ``memsched`` command: a thin typer app over the library.

Whose fault an error is decides how the command ends:

* the user's (``ConfigError``: a bad option, name, setting or file; typer's usage errors): one line on stderr
  and exit status 2;
* a policy plug-in's (``PolicyError``: a policy broke its contract or failed the conformance check): one line
  naming the policy, exit status 1;
* the system's or the model's (``KernelError``, ``UnsupportedError``, ``SimulationError``): one line, exit
  status 1;
* memsched's own (any other exception): one line naming the exception, exit status 1.

``memsched --debug COMMAND ...`` prints the traceback instead of the one line for model errors, policy bugs
and internal errors, whose traceback says where the fault is. ``--json`` output goes to stdout alone;
progress bars and logs go to stderr, and only when stdout is a terminal.
"""

from __future__ import annotations

import sys
import traceback

import typer

from memsched.cli import numa_live as _numa_live  # noqa: F401  (command groups register on ``app``)
from memsched.cli import pressure_act as _pressure_act  # noqa: F401
from memsched.cli import pressure_dbus as _pressure_dbus  # noqa: F401
from memsched.cli import pressure_live as _pressure_live  # noqa: F401
from memsched.cli import pressure_sim as _pressure_sim  # noqa: F401
from memsched.cli import rt_live as _rt_live  # noqa: F401
from memsched.cli import rt_sim as _rt_sim  # noqa: F401
from memsched.cli import sim as _sim  # noqa: F401
from memsched.cli.app import GlobalOptions, app
from memsched.errors import ConfigError, MemschedError, PolicyError, SimulationError

__all__ = ["app", "main"]


def _fail(message: str, error: BaseException, *, debug: bool) -> int:
    """Exit status 1 with ``message`` on stderr, or with the traceback of ``error`` under ``--debug``."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and ``python -m memsched``."""
    options = GlobalOptions()
    try:
        rv = app(args=argv, prog_name="memsched", standalone_mode=False, obj=options)
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
    except PolicyError as e:  # the message starts with "policy <id>:"
        return _fail(f"memsched: error: {e} (a bug in the policy)", e, debug=options.debug)
    except SimulationError as e:
        return _fail(f"memsched: error: {e}", e, debug=options.debug)
    except MemschedError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = f"memsched: internal error: {type(e).__name__}: {e} (memsched --debug ... shows the traceback)"
        return _fail(message, e, debug=options.debug)
    return rv if isinstance(rv, int) else 0
