"""``memsched pressure dbus``: serve ``org.freedesktop.LowMemoryMonitor``, so GLib's ``GMemoryMonitor`` (GTK,
GNOME and, through the portal, Flatpak applications) hears memsched's levels with no change to them.

The interface, the level mapping and where they come from are in :mod:`memsched.live.pressure.dbus`. The
service owns the well-known name on a bus (the system bus by default, where GLib looks), exports the object
with its one signal, and for every event of its source at or above ``threshold`` emits ``LowMemoryWarning``
with the mapped byte. The events come from any live backend, exactly as the socket daemon takes them: the
source runs on a :class:`~memsched.live.pressure.source.Monitor` thread and hands records to the asyncio loop
that owns the bus connection (dbus-fast, asyncio).

Ownership: the name is requested with ``DO_NOT_QUEUE`` and without ``ALLOW_REPLACEMENT``, as
low-memory-monitor does (``G_BUS_NAME_OWNER_FLAGS_NONE``): if another monitor owns it the service refuses to
start and says who (unique name, pid and command from ``GetConnectionUnixProcessID``), and nobody can take it
away while the service runs.

Failures: a client that disappears costs nothing (signals are broadcast; the bus daemon keeps per-client
queues). If the bus connection is lost (the bus daemon restarted), events meanwhile are counted and dropped, and
the service reconnects every 100 ms and owns the name again, for up to ``reconnect_timeout_ns``; then it ends
with a message (exit status 1). A source that ends ends the service the same way.

There is no kernel counterpart. Deviations from low-memory-monitor, the service it stands in for (no
``MemAvailable`` gate, no 15 s recovery interval, no kernel OOM trigger, any backend as the source), are listed
in :mod:`memsched.live.pressure.dbus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memsched.errors import ConfigError, KernelError, MemschedError
from memsched.live.pressure.dbus import (
    BUS_NAME,
    INTERFACE,
    OBJECT_PATH,
    SIGNAL,
    BusAddress,
    SignalGate,
    lmm_level,
)
from memsched.live.pressure.source import Monitor, PressureRecord, PressureSource
from memsched.live.procfs import comm_text
from memsched.live.roots import read_text
from memsched.pressure.fd import SourceGoneError
from memsched.uapi.pressure import VmpressureLevel

if TYPE_CHECKING:
    from dbus_fast.aio import MessageBus

__all__ = [
    "DBusServiceStats",
    "LowMemoryMonitorService",
    "bus_call",
    "connect_bus",
    "describe_owner",
    "lost_connection",
]

log = logging.getLogger(__name__)

_RETRY_S = 0.1
_CALL_TIMEOUT_S = 5.0


def lost_connection(where: str, error: BaseException | None) -> str:
    """``lost the connection to the <where>``, then why, when the bus connection said: its message, or for an
    exception without one (dbus-fast raises a bare ``EOFError`` when the bus closes the socket) what it means
    or its type's name, never an empty reason."""
    if error is None:
        return f"lost the connection to the {where}"
    reason = str(error) or ("the bus closed the connection" if isinstance(error, EOFError) else type(error).__name__)
    return f"lost the connection to the {where}: {reason}"


@dataclass(slots=True)
class DBusServiceStats:
    events: int = 0  #: records from the source
    signals: int = 0  #: LowMemoryWarning signals sent
    below_level: int = 0  #: records under the threshold
    paced: int = 0  #: records held back by the minimum interval
    dropped: int = 0  #: records that arrived while the bus was away
    reconnects: int = 0


@cache
def _interface_class() -> type[Any]:
    """The dbus-fast interface class, built on first use (importing dbus-fast costs ~80 ms of CLI start-up).

    dbus-fast reads the signal's D-Bus type from the return annotation; this module's annotations are strings
    (``from __future__ import annotations``) that it would evaluate in the module's namespace, so the
    annotation is set to the object itself."""
    from dbus_fast.annotations import DBusByte
    from dbus_fast.service import ServiceInterface, dbus_signal

    def __init__(self: Any) -> None:  # noqa: N807
        ServiceInterface.__init__(self, INTERFACE)

    def low_memory_warning(self: Any, level: int) -> int:
        return level

    low_memory_warning.__annotations__ = {"level": int, "return": DBusByte}
    namespace = {"__init__": __init__, "low_memory_warning": dbus_signal(name=SIGNAL)(low_memory_warning)}
    return type("LowMemoryMonitorInterface", (ServiceInterface,), namespace)


async def connect_bus(bus: BusAddress, *, timeout_s: float = _CALL_TIMEOUT_S) -> MessageBus:
    """A connected dbus-fast ``MessageBus``; a failure is a :class:`KernelError` naming the bus."""
    from dbus_fast import AuthError, InvalidAddressError
    from dbus_fast.aio import MessageBus

    try:
        return await asyncio.wait_for(MessageBus(bus_address=bus.address).connect(), timeout_s)
    except InvalidAddressError as e:
        raise ConfigError("--bus", bus.address, f"is not a D-Bus address dbus-fast can use ({e})") from None
    except AuthError as e:
        raise KernelError(errno.EACCES, f"the {bus} refused us: {e}") from None
    except TimeoutError:
        raise KernelError(errno.ETIMEDOUT, f"no answer from the {bus}") from None
    except OSError as e:
        code = e.errno or errno.EIO
        raise KernelError(code, f"cannot connect to the {bus}: {e.strerror or e}") from None


async def bus_call(bus: MessageBus, member: str, signature: str = "", body: list[Any] | None = None) -> Any:
    """Call ``org.freedesktop.DBus.<member>``; the reply's first value, or None for an error reply."""
    from dbus_fast import Message, MessageType

    msg = Message(
        destination="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        member=member,
        signature=signature,
        body=body or [],
    )
    try:
        reply = await asyncio.wait_for(bus.call(msg), _CALL_TIMEOUT_S)
    except TimeoutError:
        raise KernelError(errno.ETIMEDOUT, f"the bus did not answer {member} within {_CALL_TIMEOUT_S:g} s") from None
    if reply is None or reply.message_type == MessageType.ERROR:
        return None
    return reply.body[0] if reply.body else None


async def describe_owner(bus: MessageBus, unique_name: str) -> str:
    """``:1.4 (pid 812, low-memory-monitor)``, as far as the bus and /proc tell."""
    pid = await bus_call(bus, "GetConnectionUnixProcessID", "s", [unique_name])
    if pid is None:
        return unique_name
    try:
        comm = comm_text(read_text(Path(f"/proc/{int(pid)}/comm")).strip())
    except OSError:
        return f"{unique_name} (pid {pid})"
    return f"{unique_name} (pid {pid}, {comm})"


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


@dataclass(frozen=True, slots=True)
class _BusLost:
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class _Reconnected:
    bus: Any
    iface: Any


class LowMemoryMonitorService:
    """Owns ``org.freedesktop.LowMemoryMonitor`` and turns source events into ``LowMemoryWarning``.

    ``await run()`` returns 0 after :meth:`request_stop` and 1 when the source or the bus ended (``error``
    says why); it raises before serving when it cannot start (bad address, the name owned by another monitor,
    a bus policy that forbids owning it, a source that does not open)."""

    def __init__(
        self,
        bus: BusAddress,
        source_factory: Callable[[], PressureSource],
        *,
        threshold: VmpressureLevel = VmpressureLevel.LOW,
        min_interval_ns: int = 0,
        reconnect_timeout_ns: int = 10_000_000_000,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        if min_interval_ns < 0:
            raise ConfigError("min_interval", min_interval_ns, "must be >= 0")
        if reconnect_timeout_ns < 0:
            raise ConfigError("reconnect_timeout", reconnect_timeout_ns, "must be >= 0")
        self.bus_address = bus
        self._source_factory = source_factory
        self.threshold = VmpressureLevel(threshold)
        self.gate = SignalGate(min_interval_ns)
        self.reconnect_timeout_ns = reconnect_timeout_ns
        self._on_ready = on_ready
        self.stats = DBusServiceStats()
        self.error: BaseException | None = None
        self.unique_name: str | None = None
        self.source: PressureSource | None = None
        self._bus: MessageBus | None = None
        self._iface: Any = None
        self._queue: asyncio.Queue[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_stop = False

    # -- control ----------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Make :meth:`run` return 0 (safe from a signal handler on the loop and from any thread)."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None:
            self._pending_stop = True
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(queue.put_nowait, _Stop())

    # -- owning the name --------------------------------------------------------------------------------
    async def _own(self, bus: MessageBus) -> None:
        from dbus_fast import DBusError, NameFlag, RequestNameReply

        owner = await bus_call(bus, "GetNameOwner", "s", [BUS_NAME])
        if owner is not None and owner != bus.unique_name:
            raise await self._owned_by_other(bus, owner)
        try:
            reply = await asyncio.wait_for(bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE), _CALL_TIMEOUT_S)
        except DBusError as e:
            if e.type == "org.freedesktop.DBus.Error.AccessDenied":
                raise KernelError(
                    errno.EACCES,
                    f"the {self.bus_address.label} does not let this user own {BUS_NAME} ({e.text}); install "
                    "contrib/dbus/org.freedesktop.LowMemoryMonitor.conf in /etc/dbus-1/system.d/ or run as root",
                ) from None
            raise KernelError(errno.EIO, f"cannot own {BUS_NAME} on the {self.bus_address.label}: {e.text}") from None
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            owner = await bus_call(bus, "GetNameOwner", "s", [BUS_NAME])
            raise await self._owned_by_other(bus, owner or "another connection")

    async def _owned_by_other(self, bus: MessageBus, owner: str) -> KernelError:
        who = await describe_owner(bus, owner) if owner.startswith(":") else owner
        return KernelError(
            errno.EADDRINUSE,
            f"{BUS_NAME} is already owned on the {self.bus_address.label} by {who}: another low-memory monitor "
            "is running (stop it first, e.g. systemctl stop low-memory-monitor.service, or serve another --bus)",
        )

    async def _connect_and_own(self) -> tuple[MessageBus, Any]:
        """A new connection, the object exported on it (a fresh interface object per connection, so a signal
        never goes to a dead one) and the name owned."""
        bus = await connect_bus(self.bus_address)
        iface = _interface_class()()
        try:
            bus.export(OBJECT_PATH, iface)
            await self._own(bus)
        except (MemschedError, asyncio.CancelledError):
            bus.disconnect()
            raise
        except Exception as e:  # the connection broke half-way (a bus restarting), or dbus-fast failed
            bus.disconnect()
            raise KernelError(errno.EIO, f"cannot own {BUS_NAME} on the {self.bus_address}: {e!r}") from None
        return bus, iface

    # -- the loop ---------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._bus, self._iface = await self._connect_and_own()
        monitor: Monitor | None = None
        watcher: asyncio.Task[None] | None = None
        reconnecting: asyncio.Task[None] | None = None
        try:
            self.source = self._source_factory()

            def on_record(rec: PressureRecord) -> bool:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, rec)
                except RuntimeError:  # the loop is closed: the service is gone
                    return False
                return True

            def on_end(err: BaseException) -> None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, err)

            self._loop, self._queue = loop, queue
            if self._pending_stop:
                queue.put_nowait(_Stop())
            monitor = Monitor(self.source, on_record=on_record, on_end=on_end).start()
            self.unique_name = self._bus.unique_name
            watcher = asyncio.create_task(self._watch(self._bus, queue))
            if self._on_ready is not None:
                self._on_ready(self.unique_name or "?")
            while True:
                item = await queue.get()
                if isinstance(item, PressureRecord):
                    self._deliver(item)
                elif isinstance(item, _Stop):
                    return 0
                elif isinstance(item, _BusLost):
                    if self.reconnect_timeout_ns == 0:
                        self.error = KernelError(errno.ECONNRESET, self._lost_message(item.error))
                        return 1
                    log.warning("%s; reconnecting", self._lost_message(item.error))
                    self._bus = None
                    reconnecting = asyncio.create_task(self._reconnect(queue))
                elif isinstance(item, _Reconnected):
                    self._bus, self._iface = item.bus, item.iface
                    self.stats.reconnects += 1
                    log.info(
                        "reconnected to the %s; %s owned again as %s",
                        self.bus_address.label,
                        BUS_NAME,
                        item.bus.unique_name,
                    )
                    self.unique_name = item.bus.unique_name
                    watcher = asyncio.create_task(self._watch(item.bus, queue))
                elif isinstance(item, BaseException):
                    self.error = item
                    return 1
        finally:
            self._loop = self._queue = None
            for task in (watcher, reconnecting):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if monitor is not None:
                await asyncio.to_thread(monitor.stop)
            elif self.source is not None:
                self.source.close()
            if self._bus is not None:
                self._bus.disconnect()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._bus.wait_for_disconnect(), 1.0)
                self._bus = None

    def _lost_message(self, error: BaseException | None) -> str:
        return lost_connection(str(self.bus_address), error)

    def _deliver(self, rec: PressureRecord) -> None:
        self.stats.events += 1
        if rec.level < self.threshold:
            self.stats.below_level += 1
            return
        if self._bus is None or not self._bus.connected:
            self.stats.dropped += 1
            return
        if not self.gate.admit(rec.level, time.monotonic_ns()):
            self.stats.paced += 1
            return
        self._iface.low_memory_warning(lmm_level(rec.level))
        self.stats.signals += 1

    async def _watch(self, bus: MessageBus, queue: asyncio.Queue[object]) -> None:
        error: BaseException | None = None
        try:
            # Shielded: cancelling this watcher must not cancel the bus's own disconnect future.
            await asyncio.shield(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = e
        if bus is self._bus:
            queue.put_nowait(_BusLost(error))

    async def _reconnect(self, queue: asyncio.Queue[object]) -> None:
        deadline = time.monotonic_ns() + self.reconnect_timeout_ns
        last: BaseException | None = None
        while time.monotonic_ns() < deadline:
            try:
                bus, iface = await self._connect_and_own()
            except KernelError as e:
                if e.errno in (errno.EADDRINUSE, errno.EACCES):  # the name was taken meanwhile, or is forbidden now
                    queue.put_nowait(e)
                    return
                last = e
                await asyncio.sleep(_RETRY_S)
                continue
            except Exception as e:  # anything else from a bus that is still coming up: try again
                last = e
                await asyncio.sleep(_RETRY_S)
                continue
            queue.put_nowait(_Reconnected(bus, iface))
            return
        secs = self.reconnect_timeout_ns / 1e9
        queue.put_nowait(
            SourceGoneError(
                errno.ECONNRESET,
                f"the {self.bus_address} went away and did not come back "
                f"within {secs:g} s" + (f" ({last})" if last else ""),
            )
        )
