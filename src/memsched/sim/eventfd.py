"""``eventfd(2)`` of the simulated kernel, over a real eventfd so it can be polled from outside too.

Models fs/eventfd.c as memcg pressure notification uses it: ``eventfd_signal(ctx, 1)`` adds to a 64-bit
counter; a ``read`` of 8 bytes returns the host-endian counter and resets it (no ``EFD_SEMAPHORE``); a read
with nothing counted is ``EAGAIN`` for a non-blocking reader; a buffer smaller than 8 bytes is ``EINVAL``.
The counter carries no level: memcg listeners learn only "how many times since the last read".

The object is also a :class:`~memsched.sim.fluid.task.Waitable`, so a simulated task can block on it, and its
:meth:`SimEventfd.fileno` is a real eventfd whose counter mirrors the simulated one (readable exactly when
the simulated counter is non-zero), so Python code outside the simulation can ``select`` on it.

Deviations from the kernel: reading the real descriptor directly (``os.read``) bypasses the simulated
counter; read through :meth:`SimEventfd.read`.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from memsched.errors import KernelError
from memsched.fdobj import OwnedFd, new_eventfd

if TYPE_CHECKING:
    from memsched.sim.fluid.task import FluidTask

__all__ = ["SimEventfd"]

_U64 = struct.Struct(("<" if sys.byteorder == "little" else ">") + "Q")


class SimEventfd(OwnedFd):
    """One eventfd: a counter, its waiters, and a real descriptor mirroring readiness."""

    kind = "eventfd"

    def __init__(self, name: str = "eventfd") -> None:
        self.name = name
        self.count = 0
        self.signals = 0
        super().__init__(new_eventfd())
        self._waiters: list[tuple[FluidTask, Callable[[FluidTask], None]]] = []
        self._on_close: list[Callable[[SimEventfd], None]] = []

    def signal(self, n: int = 1) -> None:
        """``eventfd_signal(ctx, n)``: add to the counter and wake readers."""
        if self._closed:
            return
        if self.count == 0:
            os.eventfd_write(self._fd, 1)
        self.count += n
        self.signals += n
        waiters, self._waiters = self._waiters, []
        for task, wake in waiters:
            wake(task)

    def read(self) -> int:
        """``read(efd, &u64, 8)``: the counter, reset to 0; ``BlockingIOError`` (EAGAIN) when it is 0."""
        if self._closed:
            raise KernelError(errno.EBADF, f"{self.name} is closed")
        if self.count == 0:
            raise BlockingIOError(errno.EAGAIN, f"{self.name}: counter is 0")
        value, self.count = self.count, 0
        os.eventfd_read(self._fd)
        return value

    def read_bytes(self, count: int = 8) -> bytes:
        """The raw 8-byte host-endian value; ``EINVAL`` for a buffer under 8 bytes."""
        if count < 8:
            raise KernelError(errno.EINVAL, f"{self.name}: read of {count} bytes, an eventfd needs 8")
        return _U64.pack(self.read())

    # Waitable
    def poll_ready(self, task: FluidTask) -> bool:
        return self.count > 0

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self._waiters.append((task, wake))

    def on_close(self, fn: Callable[[SimEventfd], None]) -> None:
        """Run ``fn`` when the eventfd is closed (memcg then drops the event: ``memcg_event_remove``)."""
        self._on_close.append(fn)

    def close(self) -> None:
        if self._closed:
            return
        self._release_fd()
        for fn in self._on_close:
            fn(self)
