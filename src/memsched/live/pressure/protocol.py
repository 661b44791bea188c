"""The pressure daemon's wire protocol, and the per-subscriber state machine the daemon runs (pure: bytes in,
bytes out, no sockets).

On a Unix stream socket (host byte order throughout: the socket is local, and ``struct vmpressure_event`` is a
host-endian ``__u32`` in the RFC's ABI)::

    daemon -> client   hello (32 bytes, right after accept):
                       char magic[4] = "VMPD"; u16 version = 1; u16 hello_size = 32;
                       u32 event_size = 4; u32 flags = 0; char backend[16] (NUL-padded)
    client -> daemon   struct vmpressure_config { u32 size = 8; u32 threshold; }   (exactly once)
    daemon -> client   struct vmpressure_event  { u32 pressure; }                  (per event, a level)

A client reads ``hello_size`` bytes (later versions may append fields; a client skips what it does not
know), refuses another ``magic`` or a ``version`` it does not speak, then subscribes with the very struct
the RFC's ``vmpressure_fd()`` took. Anything else a client sends — a bad size or threshold, a second config,
any byte after it — is malformed: the daemon closes that client and only that client.

Back-pressure (:class:`Subscriber`): a client that reads slowly or not at all never blocks the daemon and never
costs more than O(1) memory. At most one record is in flight (partly written to the socket) and at most one
is pending; a new event while one is pending **coalesces to the highest level** (``max``), so the highest level
is never dropped, as the RFC's own file coalesced into one pending event. The daemon also shrinks each
client's kernel send buffer so that few records queue in the kernel either.
"""

from __future__ import annotations

import enum
import errno
import struct
import sys
from dataclasses import dataclass

from memsched.errors import KernelError
from memsched.uapi.pressure import (
    VMPRESSURE_CONFIG_SIZE,
    VMPRESSURE_EVENT_SIZE,
    VmpressureConfig,
    VmpressureEvent,
    VmpressureLevel,
)

__all__ = [
    "HELLO_SIZE",
    "MAGIC",
    "PROTOCOL_VERSION",
    "Hello",
    "ProtocolError",
    "Subscriber",
    "decode_events",
]

MAGIC = b"VMPD"
PROTOCOL_VERSION = 1
_ORDER = "<" if sys.byteorder == "little" else ">"
_HELLO = struct.Struct(_ORDER + "4sHHII16s")
HELLO_SIZE = _HELLO.size
assert HELLO_SIZE == 32


class ProtocolError(KernelError):
    """The peer broke the protocol (``EPROTO``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPROTO, message)


@dataclass(frozen=True, slots=True)
class Hello:
    """The daemon's greeting."""

    backend: str
    version: int = PROTOCOL_VERSION
    event_size: int = VMPRESSURE_EVENT_SIZE
    flags: int = 0
    size: int = HELLO_SIZE

    def pack(self) -> bytes:
        name = self.backend.encode()[:16]
        return _HELLO.pack(MAGIC, self.version, HELLO_SIZE, self.event_size, self.flags, name)

    @classmethod
    def unpack(cls, data: bytes) -> Hello:
        """Decode and check a greeting (any ``hello_size >= 32``; extra bytes are a later version's)."""
        if len(data) < HELLO_SIZE:
            raise ProtocolError(f"short hello: {len(data)} of {HELLO_SIZE} bytes")
        magic, version, size, event_size, flags, name = _HELLO.unpack_from(data)
        if magic != MAGIC:
            raise ProtocolError(f"not a memsched pressure daemon (magic {magic!r})")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"daemon speaks protocol version {version}; this client speaks {PROTOCOL_VERSION}")
        if size < HELLO_SIZE or event_size != VMPRESSURE_EVENT_SIZE:
            raise ProtocolError(f"bad hello sizes (hello {size}, event {event_size})")
        return cls(name.rstrip(b"\0").decode("ascii", "replace"), version, event_size, flags, size)


def decode_events(buf: bytearray) -> list[VmpressureLevel]:
    """Take every complete 4-byte record off the front of ``buf``; an unknown level is a protocol error."""
    n = len(buf) // VMPRESSURE_EVENT_SIZE * VMPRESSURE_EVENT_SIZE
    out = []
    for off in range(0, n, VMPRESSURE_EVENT_SIZE):
        value = VmpressureEvent.unpack(bytes(buf[off : off + VMPRESSURE_EVENT_SIZE])).pressure
        try:
            out.append(VmpressureLevel(value))
        except ValueError:
            raise ProtocolError(f"daemon sent an unknown level {value:#x}") from None
    del buf[:n]
    return out


class SubscriberState(enum.Enum):
    AWAIT_CONFIG = "await-config"
    ACTIVE = "active"


class Subscriber:
    """One client as the daemon sees it; the daemon moves bytes, this decides what they are."""

    def __init__(self, hello: bytes) -> None:
        self.state = SubscriberState.AWAIT_CONFIG
        self.config: VmpressureConfig | None = None
        self._in = bytearray()
        self._out = bytearray(hello)
        self.pending: int = 0  # the level waiting behind the in-flight record (0: none)
        #: Statistics: records queued, events merged into a pending one, events below the threshold.
        self.queued = 0
        self.coalesced = 0
        self.filtered = 0

    def feed(self, data: bytes) -> None:
        """Bytes the client sent; raises :class:`ProtocolError` for anything but one valid config."""
        if self.state is SubscriberState.ACTIVE:
            raise ProtocolError(f"client sent {len(data)} byte(s) after subscribing")
        self._in += data
        if len(self._in) < VMPRESSURE_CONFIG_SIZE:
            return
        if len(self._in) > VMPRESSURE_CONFIG_SIZE:
            raise ProtocolError(f"client sent {len(self._in)} bytes; a subscription is {VMPRESSURE_CONFIG_SIZE}")
        try:
            self.config = VmpressureConfig.unpack(bytes(self._in))
        except KernelError as e:
            raise ProtocolError(f"bad subscription: {e}") from None
        self._in.clear()
        self.state = SubscriberState.ACTIVE

    def offer(self, level: int) -> None:
        """An event: queue it, or merge it into the pending one (highest level wins)."""
        if self.config is None:
            return  # not subscribed yet: nothing was asked for
        if level < self.config.threshold:
            self.filtered += 1
            return
        if not self._out:
            self._out += VmpressureEvent(level).pack()
            self.queued += 1
        elif self.pending:
            self.coalesced += 1
            self.pending = max(self.pending, level)
        else:
            self.pending = level
            self.queued += 1

    @property
    def outgoing(self) -> bytes:
        """What should be written next (empty: nothing to send)."""
        return bytes(self._out)

    def sent(self, n: int) -> None:
        """``n`` bytes of :attr:`outgoing` were written; move the pending record up when the buffer empties."""
        del self._out[:n]
        if not self._out and self.pending:
            self._out += VmpressureEvent(self.pending).pack()
            self.pending = 0

    @property
    def buffered(self) -> int:
        """Bytes held for this client (bounded by the hello, or one record plus one pending level)."""
        return len(self._out) + len(self._in) + (VMPRESSURE_EVENT_SIZE if self.pending else 0)
