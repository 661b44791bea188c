"""``VmpressureFile``: the file a ``vmpressure_fd()`` call returns, backed by a real OS file descriptor.

Backend-agnostic by design: a *producer* — the simulated kernel's vmpressure work item today, the live
backends (PSI trigger, memcg v1 eventfd, reclaim-index monitor) later — calls :meth:`VmpressureFile.deliver`
with a level; the consumer uses the object like the RFC's ``[vmpressure]`` anonymous-inode file. It lives in
the pure layer so that ``memsched.sim`` and ``memsched.live`` share it without importing each other.

Semantics (RFC 1/3, ``vmpressure_sample()`` / ``vmpressure_poll()`` / ``vmpressure_read()``)
-----------------------------------------------------------------------------------------
* **threshold**: a delivered level below ``config.threshold`` is dropped (levels are the spread-out
  constants, so a MEDIUM watcher also wakes for OOM).
* **coalescing**: if an event is already pending, a delivery does nothing; one pending event stands for
  every window until it is read.
* **readiness**: :meth:`fileno` is an ``eventfd`` whose counter is 1 exactly while an event is pending, so
  ``select``, ``poll``/``epoll`` (``POLLIN``), ``selectors`` and asyncio's ``add_reader`` see the file as
  readable exactly when the RFC's ``vmpressure_poll()`` returned ``POLLIN``. Read events through the methods
  below, not with ``os.read(fileno())`` (that would read the eventfd counter and clear readiness).
* **reads** return ``struct vmpressure_event {u32 pressure}`` holding the *most recent* level the producer
  delivered (the RFC copied the global ``vmpressure_val`` at read time), which can differ from the level that
  woke the watcher. A buffer smaller than 4 bytes is ``EINVAL`` (:class:`~memsched.errors.KernelError`).
* **close** (or leaving the ``with`` block) unregisters the watcher (``vmpressure_release()``) and closes
  the descriptor. ``fasync``/SIGIO is not offered (the RFC had none). A close from another thread, another
  asyncio task or a signal handler wakes every reader blocked in :meth:`~VmpressureFile.read_event` or
  :meth:`~VmpressureFile.read_event_async`, which then raises :class:`FileClosedError`: ``close()`` makes
  the descriptor readable, and the descriptor itself is closed by the last reader on its way out, so no
  reader ever waits on a descriptor number that was closed and could be reused (a kernel file's
  ``release`` likewise runs only once its last user has dropped it).
* **end of stream** (not in the RFC, whose source could not go away): a live producer whose source
  disappears (a PSI ``POLLERR`` when the cgroup is removed, a daemon that does not come back) calls
  :meth:`VmpressureFile.end` with the error. The descriptor stays readable from then on, an event still
  pending is read first, and every later read raises that error (a :class:`SourceGoneError` naming the
  source), so a waiting reader wakes up and learns why instead of hanging.

RFC quirks: reproduced or not, and why
--------------------------------------
* ``read()`` returned ``count``, not ``sizeof(struct vmpressure_event)``. **Reproduced** in
  :meth:`readinto`, which fills the first 4 bytes and returns ``len(buffer)``: code ported from C that checks
  ``ret == count`` keeps working, and the quirk is visible where it belongs (the raw-buffer call).
  :meth:`read` returns the 4 bytes themselves, as a Python ``read`` must.
* ``read()`` blocked with ``wait_event_interruptible()`` even on an ``O_NONBLOCK`` file. **Not reproduced**:
  the blocking and non-blocking reads are two explicit methods (trio's ``*_nowait`` convention), so nothing
  depends on a flag the RFC ignored. :meth:`read_event` blocks (optionally with a timeout, raising
  :class:`TimeoutError`); :meth:`read_event_nowait` raises :class:`BlockingIOError` (``EAGAIN``) when
  nothing is pending — the exception Python raises for ``EAGAIN`` on a non-blocking file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import numbers
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from memsched.config import LIMIT_INTERVAL_NS
from memsched.errors import ConfigError, KernelError
from memsched.fdobj import OwnedFd, new_eventfd
from memsched.uapi.pressure import VMPRESSURE_EVENT_SIZE, VmpressureConfig, VmpressureEvent, VmpressureLevel
from memsched.units import NSEC_PER_SEC

__all__ = ["MAX_TIMEOUT_S", "FileClosedError", "SourceGoneError", "VmpressureFile", "WatcherList"]

#: The longest finite ``timeout`` of :meth:`VmpressureFile.read_event`: one hour, the project's limit for a
#: timeout (:data:`memsched.config.LIMIT_INTERVAL_NS`). ``timeout=None`` waits without a limit.
MAX_TIMEOUT_S = LIMIT_INTERVAL_NS // NSEC_PER_SEC


class SourceGoneError(KernelError):
    """The source of a live ``vmpressure_fd`` went away: no more events will come (end of stream)."""


class FileClosedError(KernelError):
    """The ``vmpressure_fd`` file is closed (``EBADF``): it was closed before the call, or by another thread,
    asyncio task or signal handler while the call waited for an event."""


def _wake_all(waiters: set[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)


def _check_timeout(timeout: object) -> float | None:
    """``timeout`` in seconds as a float, or None (no limit); anything else is a :class:`ConfigError`."""
    if timeout is None:
        return None
    # ``0 <= x <= max`` is False for NaN and refuses infinity; a bool is not a number of seconds.
    # (numbers.Real: numpy's integers and floats too; a bool is not a number of seconds)
    if not isinstance(timeout, bool) and isinstance(timeout, numbers.Real):
        seconds = float(timeout)
        if 0 <= seconds <= MAX_TIMEOUT_S:
            return seconds
    raise ConfigError(
        "timeout", timeout, f"must be a number of seconds from 0 to {MAX_TIMEOUT_S}, or None to wait without a limit"
    )


class VmpressureFile(OwnedFd):
    """One ``vmpressure_fd`` watcher (``struct vmpressure_watch`` + its ``struct file``).

    Its :meth:`fileno` is readable while an event is pending."""

    kind = "vmpressure file"

    def __init__(
        self,
        config: VmpressureConfig | None = None,
        *,
        on_close: Callable[[VmpressureFile], None] | None = None,
        name: str = "[vmpressure]",
    ) -> None:
        if config is not None and not isinstance(config, VmpressureConfig):
            raise ConfigError(
                "config", config, "must be a VmpressureConfig (e.g. VmpressureConfig(threshold='medium')) or None"
            )
        self.config = config or VmpressureConfig()
        self.name = name
        # Reentrant: a signal handler that closes the file may run in a thread that holds the lock.
        self._lock = threading.RLock()
        #: Calls that use the descriptor right now (readers blocked in a wait included). ``close()`` leaves
        #: closing the descriptor to the last of them, so none of them ever touches a closed, reused number.
        self._users = 0
        #: The tasks waiting in :meth:`read_event_async`, per event loop.
        self._async_waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}
        super().__init__(new_eventfd())
        self._pending = False
        self._current = 0
        self._error: BaseException | None = None
        self._on_close = on_close
        #: Statistics: deliveries that made an event pending, were coalesced into a pending one, or were
        #: below the threshold; events read.
        self.signalled = 0
        self.coalesced = 0
        self.filtered = 0
        self.reads = 0

    # ---- the descriptor's users --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _in_use(self) -> Iterator[None]:
        """Hold the lock, and keep the descriptor open until the block ends even if a signal handler closes
        the file in the middle of it."""
        with self._lock:
            self._users += 1
            try:
                yield
            finally:
                self._leave()

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """Keep the descriptor open while a reader waits on it (without the lock); ``FileClosedError`` if the
        file is already closed."""
        with self._lock:
            self._check_open()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if self._closed and self._users == 0:
            self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1  # -1: a late use fails with EBADF instead of reaching a reused number
        if fd >= 0:
            os.close(fd)

    def _release_fd(self) -> None:
        self._closed = True
        if self._users == 0:
            self._close_fd()

    # ---- producer side -----------------------------------------------------------------------------------
    def deliver(self, level: int) -> bool:
        """``vmpressure_sample()``: offer ``level``; returns True if it made an event pending.

        The level becomes the file's "most recent level" whatever the outcome (the RFC's reads copy the
        global ``vmpressure_val``)."""
        with self._in_use():
            if self._closed or self._error is not None:
                return False
            self._current = int(level)
            if self._pending:
                self.coalesced += 1
                return False
            if level < self.config.threshold:
                self.filtered += 1
                return False
            self._pending = True
            self.signalled += 1
            os.eventfd_write(self._fd, 1)
            return True

    def end(self, error: BaseException) -> None:
        """The producer's source is gone: wake readers; once the pending event (if any) is read, every read
        raises ``error``. Idempotent (the first error wins); nothing is delivered afterwards."""
        with self._in_use():
            if self._closed or self._error is not None:
                return
            self._error = error
            if not self._pending:
                os.eventfd_write(self._fd, 1)

    # ---- consumer side -----------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """``vmpressure_poll()`` would return ``POLLIN``."""
        return self._pending

    @property
    def error(self) -> BaseException | None:
        """The error :meth:`end` recorded, or None while the source is alive."""
        return self._error

    def _consume_locked(self) -> VmpressureEvent:
        with contextlib.suppress(BlockingIOError):  # the counter is 1 whenever _pending is set
            os.eventfd_read(self._fd)
        self._pending = False
        self.reads += 1
        if self._error is not None:  # ended: stay readable so the next read reports the error
            os.eventfd_write(self._fd, 1)
        return VmpressureEvent(self._current)

    def _check_open(self) -> None:
        if self._closed:
            raise FileClosedError(errno.EBADF, "vmpressure file is closed")

    def _ready_event_locked(self) -> VmpressureEvent | None:
        """A waiting reader's check after each wake-up: the event, None (wait again), or the reason to stop."""
        if self._closed:
            raise FileClosedError(errno.EBADF, "vmpressure file was closed while a read waited for an event")
        if self._pending:
            return self._consume_locked()
        if self._error is not None:
            raise self._error
        return None

    def read_event_nowait(self) -> VmpressureEvent:
        """Read the pending event, or raise :class:`BlockingIOError` (``EAGAIN``) if there is none (or the
        :meth:`end` error once the source is gone)."""
        with self._in_use():
            self._check_open()
            if not self._pending:
                if self._error is not None:
                    raise self._error
                raise BlockingIOError(errno.EAGAIN, "no vmpressure event pending")
            return self._consume_locked()

    def read_event(self, timeout: float | None = None) -> VmpressureEvent:
        """Block until an event is pending, then read it.

        ``timeout``: seconds, from 0 (only what is pending now) to :data:`MAX_TIMEOUT_S`, after which
        :class:`TimeoutError` is raised; None waits without a limit. A ``close()`` from another thread or a
        signal handler while this waits raises :class:`FileClosedError`."""
        limit = _check_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        with self._waiting():
            while True:
                with self._lock:
                    event = self._ready_event_locked()
                    fd = self._fd  # open until this reader has left _waiting()
                if event is not None:
                    return event
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no vmpressure event within {timeout} s")
                select.select([fd], [], [], left)

    async def read_event_async(self) -> VmpressureEvent:
        """Wait in an asyncio loop (``add_reader`` on :meth:`fileno`), then read. A ``close()`` from another
        task or thread while this waits raises :class:`FileClosedError`.

        Several tasks may wait on one file in one loop: a loop has one reader callback per descriptor, so the
        first waiter registers one that wakes them all, and the last one out removes it."""
        loop = asyncio.get_running_loop()
        with self._waiting():
            while True:
                with self._lock:
                    event = self._ready_event_locked()
                    if event is not None:
                        return event
                    fd = self._fd
                    ready: asyncio.Future[None] = loop.create_future()
                    waiters = self._async_waiters.setdefault(loop, set())
                    if not waiters:
                        loop.add_reader(fd, _wake_all, waiters)
                    waiters.add(ready)
                try:
                    await ready
                finally:
                    with self._lock:
                        waiters.discard(ready)
                        if not waiters:
                            del self._async_waiters[loop]
                            loop.remove_reader(fd)

    def read(self, count: int = VMPRESSURE_EVENT_SIZE) -> bytes:
        """``read(fd, buf, count)``: ``EINVAL`` if ``count < 4``; blocks; returns the 4-byte event."""
        if count < VMPRESSURE_EVENT_SIZE:
            raise KernelError(
                errno.EINVAL, f"read of {count} bytes: struct vmpressure_event needs {VMPRESSURE_EVENT_SIZE}"
            )
        return self.read_event().pack()

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill the first 4 bytes of ``buffer`` with the event; return ``len(buffer)`` (RFC: ``count``)."""
        n = len(buffer)
        if n < VMPRESSURE_EVENT_SIZE:
            raise KernelError(
                errno.EINVAL, f"read of {n} bytes: struct vmpressure_event needs {VMPRESSURE_EVENT_SIZE}"
            )
        buffer[:VMPRESSURE_EVENT_SIZE] = self.read_event().pack()
        return n

    # ---- lifetime ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """``vmpressure_release()``: unregister and close the descriptor (idempotent).

        Readers waiting on the file are woken and raise :class:`FileClosedError`; the last of them closes the
        descriptor."""
        with self._lock:
            if self._closed:
                return
            self._pending = False
            if self._users:  # make the descriptor readable: every waiting reader wakes and sees the close
                os.eventfd_write(self._fd, 1)
            self._release_fd()
        if self._on_close is not None:
            self._on_close(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("pending" if self._pending else "idle")
        if self._error is not None and not self._closed:
            state += ", ended"
        thr = VmpressureLevel(self.config.threshold).name
        return f"<VmpressureFile {self.name} threshold={thr} {state}>"


class WatcherList:
    """``vmpressure_watchers``: the RFC's one global list of watchers (its system-wide mode).

    ``open()`` is what the ``vmpressure_fd`` syscall does after copying the config; ``broadcast()`` is the
    loop at the end of the work function. Thread-safe, so a live producer thread can broadcast."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: list[VmpressureFile] = []

    def open(self, config: VmpressureConfig, **kw: Any) -> VmpressureFile:
        f = VmpressureFile(config, on_close=self._remove, **kw)
        with self._lock:
            self._watchers.append(f)
        return f

    def _remove(self, f: VmpressureFile) -> None:
        with self._lock:
            if f in self._watchers:
                self._watchers.remove(f)

    def broadcast(self, level: int) -> list[VmpressureFile]:
        """Deliver ``level`` to every watcher; returns the files that became readable."""
        with self._lock:
            watchers = list(self._watchers)
        return [f for f in watchers if f.deliver(level)]

    def __len__(self) -> int:
        return len(self._watchers)

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._watchers))

    def close_all(self) -> None:
        for f in list(self):
            f.close()
