"""The ``memsched`` command line, loaded lazily: ``app`` and ``main`` come from :mod:`memsched.cli.entry`
(whose docstring says how each kind of error and interruption ends the command) on first use, so the fast
path of ``list`` and ``rt admit`` (:mod:`memsched.cli.fast`) never imports typer."""

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
