"""A Python object that owns one real file descriptor.

The simulated kernel's files (eventfds, PSI files, ``memory.pressure_level``) and the live
``vmpressure_fd`` file each hold a real descriptor so callers can ``select``/``poll`` on them from outside.
:class:`OwnedFd` is their common lifetime: ``fileno()`` (``ValueError`` once closed, like
:class:`io.IOBase`), ``closed``, ``with`` support, an idempotent ``close()``, and a finalizer that closes a
descriptor nobody closed — without running the subclass's ``close()``, whose callbacks must not run from
the garbage collector.
"""

from __future__ import annotations

import os
from typing import ClassVar, Self

__all__ = ["OwnedFd", "new_eventfd"]


def new_eventfd() -> int:
    """A non-blocking, close-on-exec eventfd with a zero counter."""
    return os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)


class OwnedFd:
    """Owns ``fd`` from construction until :meth:`close` (or collection)."""

    #: What a closed object calls itself in the ``ValueError`` of :meth:`fileno`.
    kind: ClassVar[str] = "file"

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    def fileno(self) -> int:
        """The descriptor to wait on."""
        if self._closed:
            raise ValueError(f"I/O operation on closed {self.kind}")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the descriptor (idempotent). Subclasses that do more call :meth:`_release_fd`."""
        if not self._closed:
            self._release_fd()

    def _release_fd(self) -> None:
        self._closed = True
        os.close(self._fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._release_fd()
