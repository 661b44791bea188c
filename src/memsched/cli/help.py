"""Help as people expect it: metavars in words and command summaries that are not cut off.

typer shows an option's value as its Python type (``--policies <str>``, ``--set <list[str]>``) and click cuts
each command's summary at 45 characters (``Simulate one workload under one policy and report times and...``).
:func:`polish` walks the built command tree once, before it parses anything, and

* gives every option that takes a value and has no metavar of its own a metavar in words: the table
  :data:`METAVARS` for the options whose value has a form (a list, a duration, a size), else the value's
  kind (``N`` for a count, ``FILE`` for a path, the option's name for a string: ``--topology TOPOLOGY``);
* shows arguments by name alone (``SCENARIO``, not ``SCENARIO <str>``);
* sets each command's summary to the first paragraph of its help, which the formatter wraps, not cuts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.core

__all__ = ["METAVARS", "polish"]

#: Options whose value has a form of its own, by their long name (the same meaning in every command).
METAVARS = {
    "--workloads": "WORKLOAD[,WORKLOAD…]",
    "--policies": "POLICY[,POLICY…]|all",
    "--designs": "DESIGN[,DESIGN…]",
    "--flags": "FLAG[,FLAG…]",
    "--set": "KEY=VALUE",
    "--cpus": "CPUS",
    "--interval": "DURATION",
    "--duration": "DURATION",
    "--runtime": "DURATION",
    "--deadline": "DURATION",
    "--period": "DURATION",
    "--threshold": "DURATION",
    "--min-interval": "DURATION",
    "--reconnect-timeout": "DURATION",
    "--mode": "OCTAL",
    "--report": "FILE.html",
    "--trace": "FILE.json",
    "--rt-app": "FILE.json",
    "--proc-root": "DIR",
    "--sys-root": "DIR",
    "--socket": "PATH",
    "--seed": "N",
    "--protect": "PID|NAME",
    "--sweep": "NAME|ID",
}


def _long_name(opts: list[str]) -> str:
    return next((o for o in opts if o.startswith("--")), opts[0])


def _metavar(option: typer.core.TyperOption) -> str:
    name = _long_name(option.opts)
    if name in METAVARS:
        return METAVARS[name]
    annotation = option.type_descriptor.annotation
    if annotation is int or annotation == list[int]:
        return "N" if name not in ("--pid",) else "PID"
    if annotation is float:
        return "X"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "FILE"
    return name.removeprefix("--").replace("-", "_").upper()


def _no_type(ctx: object) -> None:
    return None


def _summary(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def polish(command: Any) -> None:
    """Metavars in words and uncut summaries for ``command`` and every command under it (see the module).

    ``command`` is what ``typer.main.get_command`` returns (a command or a group of typer's own click)."""
    for param in command.params:
        if isinstance(param, typer.core.TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = _metavar(param)
        elif isinstance(param, typer.core.TyperArgument):
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            # An argument's name already says what it is (``SCENARIO``, not ``SCENARIO <str>``): typer has no
            # setting for this, so the instance's type display is replaced.
            setattr(param, "display_type_rich", _no_type)  # noqa: B010
    if command.help and command.short_help is None:
        command.short_help = _summary(command.help)
    for sub in getattr(command, "commands", {}).values():
        polish(sub)
