"""The ``dbus`` backend: listen to whichever process owns ``org.freedesktop.LowMemoryMonitor`` (memsched's
``memsched pressure dbus`` or the original low-memory-monitor) as one more source of levels.

It does what GLib's client does (gio/gmemorymonitordbus.c): it follows the name's owner
(``NameOwnerChanged``), and takes ``LowMemoryWarning`` signals with a ``y`` argument from the object
``/org/freedesktop/LowMemoryMonitor`` of the current owner only. The byte becomes a level by GLib's ranges
(:func:`memsched.live.pressure.dbus.level_from_lmm`); each record carries the byte and the sender. With no
owner it waits for one, as GLib does; :meth:`DBusSource.info` says who owns the name (unique name, pid and
command), so ``memsched pressure watch --backend dbus`` shows whether it hears memsched or low-memory-monitor.

The bus connection is dbus-fast's asyncio ``MessageBus`` on a private event loop in a daemon thread; signals
are queued and an eventfd wakes the poll loop of the monitor or daemon that runs this source. If the bus goes
away it reconnects for ``reconnect_timeout_ms`` (the daemon backend's setting), then ends the stream.
Settings: ``dbus_bus`` (``system``, ``session`` or an address).

There is no kernel counterpart. Deviations from GLib's client: GLib hands the byte to applications as it came;
this backend turns it into one of the three 2012 levels (by ranges), and it reports the owner's identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memsched.errors import ConfigError, KernelError
from memsched.live.capabilities import Capability
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.dbus import BUS_NAME, INTERFACE, OBJECT_PATH, SIGNAL, SIGNATURE, BusAddress, level_from_lmm
from memsched.live.pressure.dbus import resolve_bus as _resolve_bus
from memsched.live.pressure.dbus_service import bus_call, connect_bus, describe_owner, lost_connection
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.pressure.fd import SourceGoneError

if TYPE_CHECKING:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

__all__ = ["DBusSource", "check", "open_source"]

log = logging.getLogger(__name__)

_RETRY_S = 0.1
_OPEN_TIMEOUT_S = 10.0
_SIGNAL_RULE = f"type='signal',interface='{INTERFACE}',member='{SIGNAL}',path='{OBJECT_PATH}'"
_OWNER_RULE = (
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
    f"member='NameOwnerChanged',arg0='{BUS_NAME}'"
)


class DBusSource(PressureSource):
    """``LowMemoryWarning`` signals from the owner of ``org.freedesktop.LowMemoryMonitor``."""

    backend = "dbus"

    def __init__(self, bus: BusAddress, *, reconnect_timeout_ns: int) -> None:
        self.bus = bus
        self.reconnect_timeout_ns = reconnect_timeout_ns
        self.owner: str | None = None
        self.owner_text = "no owner yet"
        self.reconnects = 0
        self.ignored = 0  # signals from a sender that is not the owner, or with the wrong signature
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, str, int]] = deque()  # (byte, sender, CLOCK_MONOTONIC ns)
        self._end: SourceGoneError | None = None
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._conn: MessageBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="memsched-dbus-source", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result(_OPEN_TIMEOUT_S)
        except BaseException as e:
            self.close()
            if isinstance(e, KernelError | ConfigError):
                raise
            raise KernelError(errno.EIO, f"dbus: cannot listen on the {bus.label}: {e!r}") from None
        self._watcher = asyncio.run_coroutine_threadsafe(self._watch(), self._loop)

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"{BUS_NAME} on the {self.bus.label} ({self.owner_text})"

    # -- the bus side (runs on the private loop) ---------------------------------------------------------
    async def _connect(self) -> None:
        conn = await connect_bus(self.bus)
        conn.add_message_handler(self._on_message)
        for rule in (_OWNER_RULE, _SIGNAL_RULE):
            await bus_call(conn, "AddMatch", "s", [rule])
        self._conn = conn
        owner = await bus_call(conn, "GetNameOwner", "s", [BUS_NAME])
        self._set_owner_now(owner or None)
        if owner:
            await self._describe(owner)

    def _set_owner_now(self, owner: str | None) -> None:
        self.owner = owner
        self.owner_text = f"owned by {owner}" if owner else "no owner: waiting for one"

    async def _describe(self, owner: str) -> None:
        with contextlib.suppress(Exception):  # the text is for people; a failure leaves the unique name
            text = "owned by " + (await describe_owner(self._conn, owner) if self._conn else owner)
            if self.owner == owner:
                self.owner_text = text
        log.info("%s on the %s is %s", BUS_NAME, self.bus.label, self.owner_text)

    def _on_message(self, msg: Message) -> bool:
        from dbus_fast import MessageType

        if msg.message_type != MessageType.SIGNAL:
            return False
        if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
            if msg.body and msg.body[0] == BUS_NAME:
                # The owner changes now, before any later message of this batch is looked at; who it is (pid,
                # command) is asked for in the background.
                self._set_owner_now(msg.body[2] or None)
                if self.owner is not None:
                    self._tasks.add(task := asyncio.get_running_loop().create_task(self._describe(self.owner)))
                    task.add_done_callback(self._tasks.discard)
            return False
        if msg.interface != INTERFACE or msg.member != SIGNAL or msg.path != OBJECT_PATH:
            return False
        now = time.monotonic_ns()
        if msg.sender != self.owner or msg.signature != SIGNATURE:
            self.ignored += 1
            return True
        with self._lock:
            self._pending.append((int(msg.body[0]), str(msg.sender), now))
        os.eventfd_write(self._efd, 1)
        return True

    async def _watch(self) -> None:
        """Reconnect when the bus goes away; end the stream when it does not come back in time."""
        while True:
            conn = self._conn
            assert conn is not None
            error: BaseException | None = None
            try:
                await asyncio.shield(conn.wait_for_disconnect())  # type: ignore[no-untyped-call]
            except Exception as e:
                error = e
            if self._closing:
                return
            why = lost_connection(self.bus.label, error)
            if self.reconnect_timeout_ns <= 0:
                self._finish(self.gone(why, errno.ECONNRESET))
                return
            log.warning("dbus: %s; reconnecting", why)
            self._conn = None
            deadline = time.monotonic_ns() + self.reconnect_timeout_ns
            while True:
                try:
                    await self._connect()
                    break
                except Exception as e:  # refused, or a bus still coming up
                    if time.monotonic_ns() >= deadline:
                        secs = self.reconnect_timeout_ns / 1e9
                        message = f"{why}; it did not come back within {secs:g} s ({e})"
                        self._finish(self.gone(message, errno.ECONNRESET))
                        return
                    await asyncio.sleep(_RETRY_S)
            self.reconnects += 1

    def _finish(self, error: SourceGoneError) -> None:
        with self._lock:
            self._end = error
        os.eventfd_write(self._efd, 1)

    # -- PressureSource -------------------------------------------------------------------------------------
    def fds(self) -> Sequence[tuple[int, int]]:
        return ((self._efd, select.POLLIN),) if self._efd >= 0 else ()

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            end = self._end
        records = [
            self.record(level_from_lmm(byte), at, lmm_level=byte, sender=sender, bus=self.bus.address)
            for byte, sender, at in items
        ]
        if end is not None and not records:
            raise end
        if end is not None:  # deliver what came first; the end follows on the next wake-up
            os.eventfd_write(self._efd, 1)
        return records

    def info(self) -> dict[str, object]:
        return {**super().info(), "bus": self.bus.address, "owner": self.owner_text}

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True

        async def shutdown() -> None:
            conn = self._conn
            if conn is not None:
                conn.disconnect()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(conn.wait_for_disconnect()), 1.0)  # type: ignore[no-untyped-call]
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._loop.is_running():
            self._loop.close()
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1


def _bus_of(ctx: BackendContext) -> BusAddress:
    return _resolve_bus(ctx.options.dbus_bus, ctx.environ, field_name="dbus_bus")


def check(ctx: BackendContext) -> Capability:
    if ctx.cgroup is not None:
        return Capability(False, "the D-Bus monitor chose what it watches; the dbus backend takes no --cgroup")
    try:
        bus = _bus_of(ctx)
    except ConfigError as e:
        return Capability(False, str(e))
    path = bus.unix_path()
    if path is not None and not path.exists():
        return Capability(False, f"no {bus.label} socket at {path}")
    return Capability(True, f"{SIGNAL} signals from the owner of {BUS_NAME} on the {bus.label}")


def open_source(ctx: BackendContext) -> PressureSource:
    if ctx.cgroup is not None:
        raise ConfigError("cgroup", ctx.cgroup, "cannot be used with the dbus backend (the monitor chose its source)")
    return DBusSource(_bus_of(ctx), reconnect_timeout_ns=ctx.options.reconnect_timeout_ms * 1_000_000)
