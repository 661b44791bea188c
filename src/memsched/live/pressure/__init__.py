"""``vmpressure_fd()`` for real applications: the 2012 interface over what the running kernel offers.

>>> from memsched.live import vmpressure_fd                                   # doctest: +SKIP
>>> from memsched.uapi.pressure import VmpressureConfig, VmpressureLevel
>>> with vmpressure_fd(VmpressureConfig(threshold=VmpressureLevel.MEDIUM)) as f:
...     event = f.read_event()          # blocks; f.fileno() works with select/poll/epoll/asyncio
...     print(event.level.name)

The returned object is the simulator's own :class:`~memsched.pressure.fd.VmpressureFile` (a real eventfd,
threshold filter, coalescing, 4-byte events with the RFC's level constants); a background monitor feeds it
from one backend (:mod:`memsched.live.pressure.backends`): ``psi``, ``memcg-v1``, ``reclaim-index``, ``fifo``
or ``daemon``. Asyncio users iterate :func:`pressure_events`.

Lifetime: closing the file (or leaving its ``with`` block) stops the monitor and closes every descriptor it
holds, which also removes the kernel registrations (PSI triggers, memcg eventfds). A file that is simply
dropped is cleaned up when it is garbage-collected, and whatever is still running at interpreter exit is
stopped by an ``atexit`` hook. When the source disappears (the cgroup is removed, the daemon does not come
back) reads raise :class:`~memsched.pressure.fd.SourceGoneError`. Closing the file from another thread or task
wakes its blocked readers: they raise :class:`~memsched.pressure.fd.FileClosedError`, and an ``async for`` over
:func:`pressure_events` ends.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from memsched.errors import ConfigError
from memsched.live.pressure.backends import AUTO_ORDER, BACKENDS, BackendChoice, open_backend
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.options import PressureOptions, parse_level
from memsched.live.pressure.source import Monitor, PressureRecord, PressureSource, stop_all_monitors
from memsched.live.roots import LiveRoots
from memsched.pressure.fd import FileClosedError, SourceGoneError, VmpressureFile
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BackendChoice",
    "FileClosedError",
    "PressureEvents",
    "PressureMonitor",
    "PressureOptions",
    "PressureRecord",
    "PressureSource",
    "SourceGoneError",
    "open_monitor",
    "parse_level",
    "pressure_events",
    "stop_all_monitors",
    "vmpressure_fd",
]


def _check_arguments(
    config: object, cgroup: object, options: object, roots: object, environ: object
) -> str | None:
    """Refuse a wrong type at the call, naming the argument; returns ``cgroup`` as a str (or None)."""
    if config is not None and not isinstance(config, VmpressureConfig):
        raise ConfigError(
            "config", config, "must be a VmpressureConfig (e.g. VmpressureConfig(threshold='medium')) or None"
        )
    if options is not None and not isinstance(options, PressureOptions):
        raise ConfigError("options", options, "must be a PressureOptions or None")
    if roots is not None and not isinstance(roots, LiveRoots):
        raise ConfigError("roots", roots, "must be a LiveRoots or None")
    if environ is not None and not isinstance(environ, Mapping):
        raise ConfigError("environ", environ, "must be a mapping of str to str (like os.environ) or None")
    if cgroup is None:
        return None
    path = os.fspath(cgroup) if isinstance(cgroup, str | os.PathLike) else None
    if not isinstance(path, str):  # an int, or a bytes path
        raise ConfigError("cgroup", cgroup, "must be a path (str or os.PathLike of str) or None")
    return path


class PressureMonitor:
    """A ``VmpressureFile`` plus what fed it: the backend choice, the source's facts and recent records.

    ``memsched pressure watch`` uses this; applications usually want just :func:`vmpressure_fd`."""

    def __init__(self, file: VmpressureFile, monitor: Monitor, choice: BackendChoice) -> None:
        self.file = file
        self.choice = choice
        self._monitor = monitor

    @property
    def source(self) -> PressureSource:
        return self._monitor.source

    @property
    def running(self) -> bool:
        return self._monitor.running

    def recent(self) -> list[PressureRecord]:
        """The latest records of every level (before the file's threshold and coalescing), oldest first."""
        return self._monitor.recent()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> PressureMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_monitor(
    config: VmpressureConfig | None = None,
    *,
    backend: str = "auto",
    cgroup: str | os.PathLike[str] | None = None,
    options: PressureOptions | None = None,
    roots: LiveRoots | None = None,
    environ: Mapping[str, str] | None = None,
    on_record: Callable[[PressureRecord], None] | None = None,
) -> PressureMonitor:
    """Open a backend and start feeding a new :class:`VmpressureFile` (see :func:`vmpressure_fd`).

    ``on_record`` sees every record (all levels, before the file's threshold and coalescing), on the monitor
    thread; an exception it raises ends the stream with that error."""
    cgroup_path = _check_arguments(config, cgroup, options, roots, environ)
    if on_record is not None and not callable(on_record):
        raise ConfigError("on_record", on_record, "must be a callable taking a PressureRecord, or None")
    config = config or VmpressureConfig()
    ctx = BackendContext(
        cgroup=cgroup_path,
        threshold=config.level,
        options=options or PressureOptions(),
        roots=roots or LiveRoots(),
        environ=dict(os.environ) if environ is None else dict(environ),
    )
    source, choice = open_backend(backend, ctx)
    # The monitor holds only a weak reference to the file, so a file that is dropped gets collected, and
    # its finalizer stops the monitor.
    refs: list[weakref.ref[VmpressureFile]] = []

    def feed(rec: PressureRecord) -> bool:
        f = refs[0]() if refs else None
        if f is None or f.closed:
            return False
        f.deliver(rec.level)
        if on_record is not None:
            on_record(rec)
        return True

    def on_end(error: BaseException) -> None:
        f = refs[0]() if refs else None
        if f is not None:
            f.end(error)

    monitor = Monitor(source, on_record=feed, on_end=on_end)
    try:
        file = VmpressureFile(config, on_close=lambda _f: monitor.stop(), name=f"[vmpressure:{choice.name}]")
    except BaseException:
        source.close()
        raise
    refs.append(weakref.ref(file))
    weakref.finalize(file, monitor.stop)
    monitor.start()
    return PressureMonitor(file, monitor, choice)


def vmpressure_fd(
    config: VmpressureConfig | None = None,
    *,
    backend: str = "auto",
    cgroup: str | os.PathLike[str] | None = None,
    options: PressureOptions | None = None,
    roots: LiveRoots | None = None,
    environ: Mapping[str, str] | None = None,
) -> VmpressureFile:
    """The 2012 ``vmpressure_fd(config)`` on the running kernel.

    ``backend``: ``"auto"`` (see :mod:`memsched.live.pressure.backends` for the order) or one of ``psi``,
    ``memcg-v1``, ``reclaim-index``, ``fifo``, ``daemon``. ``cgroup``: the cgroup to watch — a directory, or a
    path inside each backend's hierarchy (``"/app"``); None watches the caller's own cgroup (system-wide when
    it is the root; the daemon serves what it was started with). ``options``: per-backend settings (PSI level
    map, memcg mode, sampling interval, FIFO path, socket). ``roots``/``environ`` are injectable for tests.

    Raises :class:`~memsched.errors.UnsupportedError` with the reasons when no backend can serve the request,
    :class:`~memsched.errors.ConfigError` for bad settings or an argument of the wrong type (naming it),
    :class:`~memsched.errors.KernelError` when the kernel refuses a registration.
    """
    return open_monitor(config, backend=backend, cgroup=cgroup, options=options, roots=roots, environ=environ).file


class PressureEvents:
    """``async for event in pressure_events(...)``; also an async context manager that closes on exit.

    Iteration ends with :class:`StopAsyncIteration` once the file is closed (also when another task or thread
    closes it while the iteration waits) and raises :class:`~memsched.pressure.fd.SourceGoneError` when the
    source goes away."""

    def __init__(self, file: VmpressureFile) -> None:
        self.file = file

    def __aiter__(self) -> PressureEvents:
        return self

    async def __anext__(self) -> VmpressureEvent:
        if self.file.closed:
            raise StopAsyncIteration
        try:
            return await self.file.read_event_async()
        except FileClosedError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> PressureEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()


def pressure_events(config: VmpressureConfig | None = None, **kwargs: Any) -> PressureEvents:
    """An async iterator of :class:`VmpressureEvent` s; takes :func:`vmpressure_fd`'s arguments."""
    return PressureEvents(vmpressure_fd(config, **kwargs))
