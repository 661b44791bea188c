"""Helpers shared by the command groups: JSON on stdout, progress on stderr, atomic file output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memsched.errors import ConfigError

__all__ = ["emit_json", "err_console", "out_console", "progress_bar", "write_atomic"]

# Off a terminal (pipes, CI logs) rich would wrap tables at 80 columns; give them room instead.
out_console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def emit_json(doc: Any) -> None:
    """The one JSON document of a ``--json`` run: sorted keys, so the same run gives the same bytes."""
    sys.stdout.write(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    sys.stdout.flush()


def show_progress() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress_bar(total: float | None, description: str) -> Iterator[Callable[[float], None]]:
    """Yield ``advance_to(x)``; draws a bar on stderr only when stdout is a terminal.

    With ``total=None`` the bar is indeterminate and ``x`` (simulated seconds) is shown in its text.
    """
    if not show_progress():
        yield lambda x: None
        return
    columns = [TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns.append(MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        if total is None:
            yield lambda x: bar.update(task, description=f"{description}: {x:,.0f} simulated s")
        else:
            yield lambda x: bar.update(task, completed=x)


def check_writable(path: Path, field: str) -> None:
    """Fail before any work if ``path`` cannot be written (its folder must exist)."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ConfigError(field, str(path), "must be in an existing directory")
    if not os.access(parent, os.W_OK):
        raise ConfigError(field, str(path), "must be in a writable directory")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write through a temporary file and rename, so an interrupted run leaves no half-written file."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
