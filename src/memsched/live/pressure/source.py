"""The shape every live pressure backend shares, and the thread that drives one into a ``VmpressureFile``.

A backend is a :class:`PressureSource`: the descriptors to poll (with their mask: ``POLLPRI`` for a PSI
trigger, ``POLLIN`` for an eventfd, a FIFO or a socket), an optional next wake-up time (the reclaim-index
sampler), and two callbacks that turn what happened into :class:`PressureRecord` s (a level plus the source's
own details: the trigger, the eventfd counts, the window's scanned/reclaimed pages). Sources do no threading
of their own, so the daemon runs one inside its single-threaded poll loop and :class:`Monitor` runs one on a
background thread for ``vmpressure_fd()``.

A source whose kernel object disappears raises :class:`~memsched.pressure.fd.SourceGoneError`; the monitor
passes it to the file's :meth:`~memsched.pressure.fd.VmpressureFile.end`, so readers get a clean end-of-stream
error rather than a hang.

Cleanup: a monitor stops (and its source closes every descriptor, which also drops a memcg v1 eventfd
registration or a PSI trigger in the kernel) when its file is closed, when the file is garbage-collected, and
at interpreter exit (an ``atexit`` hook over the monitors still running). Threads are daemon threads, so a
monitor can never keep the interpreter alive.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from memsched.errors import KernelError
from memsched.pressure.fd import SourceGoneError
from memsched.uapi.pressure import VmpressureLevel

__all__ = ["Monitor", "PressureRecord", "PressureSource", "SourceGoneError", "stop_all_monitors"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PressureRecord:
    """One event as a backend saw it: when, which level, and the backend's own evidence."""

    monotonic_ns: int
    realtime_ns: int
    level: VmpressureLevel
    backend: str
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``time`` as an ISO-8601 UTC string with microseconds, plus the raw clocks in ns."""
        secs, ns = divmod(self.realtime_ns, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"
        return {
            "time": stamp,
            "realtime_ns": self.realtime_ns,
            "monotonic_ns": self.monotonic_ns,
            "level": self.level.name.lower(),
            "level_value": int(self.level),
            "backend": self.backend,
            "source": dict(self.details),
        }


class PressureSource:
    """Base of the backends. Subclasses set ``backend`` and override what they use."""

    backend: ClassVar[str] = "?"

    #: What is watched, in words (for ``memsched pressure watch`` and the daemon log).
    description: str = ""

    def fds(self) -> Sequence[tuple[int, int]]:
        """``(fd, poll mask)`` pairs to wait on; may change after a callback (a reconnect)."""
        return ()

    def next_wakeup_ns(self) -> int | None:
        """Absolute ``CLOCK_MONOTONIC`` time of the next :meth:`on_timer` call, or None."""
        return None

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        return []

    def on_timer(self, now_ns: int) -> list[PressureRecord]:
        return []

    def info(self) -> dict[str, object]:
        """Static facts about the source (paths, triggers, mode), shown once by ``watch``."""
        return {"backend": self.backend, "watching": self.description}

    def close(self) -> None:
        """Release every descriptor (idempotent)."""

    def record(self, level: VmpressureLevel, now_ns: int, **details: object) -> PressureRecord:
        return PressureRecord(now_ns, time.time_ns(), VmpressureLevel(level), self.backend, details)

    def gone(self, message: str, code: int = errno.ENODEV) -> SourceGoneError:
        return SourceGoneError(code, f"{self.backend}: {message}")


def close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# --------------------------------------------------------------------------------------------- the monitor

_RUNNING: weakref.WeakSet[Monitor] = weakref.WeakSet()
_RUNNING_LOCK = threading.Lock()


def stop_all_monitors() -> None:
    """Stop every monitor still running (the ``atexit`` hook; also handy in tests)."""
    with _RUNNING_LOCK:
        monitors = list(_RUNNING)
    for m in monitors:
        m.stop()


atexit.register(stop_all_monitors)


class Monitor:
    """Runs one :class:`PressureSource` on a daemon thread, handing records and the end to callbacks."""

    def __init__(
        self,
        source: PressureSource,
        *,
        on_record: Callable[[PressureRecord], bool],
        on_end: Callable[[BaseException], None],
        history: int = 256,
    ) -> None:
        self.source = source
        self._on_record = on_record
        self._on_end = on_end
        self._stop_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=f"memsched-pressure-{source.backend}", daemon=True)
        self._lock = threading.Lock()
        self._stopped = False
        #: The most recent records (any level), newest last; read with :meth:`recent`.
        self._recent: deque[PressureRecord] = deque(maxlen=history)
        self.records = 0
        self.error: BaseException | None = None

    def start(self) -> Monitor:
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def recent(self) -> list[PressureRecord]:
        with self._lock:
            return list(self._recent)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish, wait for it, and release the source (idempotent, any thread)."""
        with self._lock:
            self._stopped = True
            if self._stop_fd >= 0:
                os.eventfd_write(self._stop_fd, 1)
        if self._thread.ident is None:  # never started
            self._release()
        elif self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _release(self) -> None:
        """Close the source and the stop descriptor, once. The thread calls it on its way out, so a stop()
        that timed out, or an end of stream nobody waits for, still closes everything."""
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        with self._lock:
            fd, self._stop_fd = self._stop_fd, -1
        if fd >= 0:
            self.source.close()
            close_fds([fd])

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._stop_fd, select.POLLIN)
        registered: dict[int, int] = {}
        last_fds: object = None
        try:
            while True:
                fds = self.source.fds()
                if fds != last_fds:  # the set changes rarely (a reconnect): re-register only then
                    last_fds = fds
                    wanted = dict(fds)
                    for fd in registered.keys() - wanted.keys():
                        poller.unregister(fd)
                    for fd, mask in wanted.items():
                        if registered.get(fd) != mask:
                            poller.register(fd, mask)
                    registered = wanted
                wake = self.source.next_wakeup_ns()
                timeout_ms = None
                if wake is not None:
                    timeout_ms = max(0, -(-(wake - time.monotonic_ns()) // 1_000_000))
                events = poller.poll(timeout_ms)
                now = time.monotonic_ns()
                records: list[PressureRecord] = []
                for fd, revents in events:
                    if fd == self._stop_fd:
                        return
                    if fd in registered:
                        records += self.source.on_ready(fd, revents, now)
                wake = self.source.next_wakeup_ns()
                if wake is not None and now >= wake:
                    records += self.source.on_timer(now)
                # Ascending within one wake-up: a coalescing reader ends up with the highest level seen.
                if len(records) > 1:
                    records.sort(key=lambda r: r.level)
                for rec in records:
                    self.records += 1
                    with self._lock:
                        self._recent.append(rec)
                    if not self._on_record(rec):  # the consumer is gone (file garbage-collected)
                        return
        except SourceGoneError as e:
            self.error = e
            self._on_end(e)
        except KernelError as e:
            self.error = e
            self._on_end(SourceGoneError(e.errno or errno.EIO, f"{self.source.backend}: {e}"))
        except OSError as e:
            self.error = e
            code = e.errno or errno.EIO
            self._on_end(SourceGoneError(code, f"{self.source.backend}: {os.strerror(code)}"))
        except Exception as e:  # a bug must still end the stream, never leave a reader hanging
            log.exception("pressure monitor for %s failed", self.source.backend)
            self.error = e
            self._on_end(SourceGoneError(errno.EIO, f"{self.source.backend}: monitor failed: {e!r}"))
        finally:
            with self._lock:
                self._stopped = True
            self._release()
