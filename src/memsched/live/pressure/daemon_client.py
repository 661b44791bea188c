"""The ``daemon`` backend: subscribe to a running ``memsched pressure serve`` (:mod:`.daemon`) over its socket.

The client reads the daemon's hello, sends one ``struct vmpressure_config`` (its threshold) and then receives
4-byte ``struct vmpressure_event`` records (:mod:`memsched.live.pressure.protocol`). If the daemon goes away
(restart, crash) it reconnects for up to ``reconnect_timeout_ms``, then ends the stream with a clear error.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import stat
from collections.abc import Sequence
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.live.capabilities import Capability
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.daemon import default_socket_path
from memsched.live.pressure.protocol import HELLO_SIZE, Hello, ProtocolError, decode_events
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.pressure.fd import SourceGoneError
from memsched.uapi.pressure import VmpressureConfig, VmpressureLevel

__all__ = ["DaemonSource", "check", "open_source"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_RETRY_NS = 100_000_000


class DaemonSource(PressureSource):
    """Events from a running ``memsched pressure serve``."""

    backend = "daemon"

    def __init__(self, path: Path, threshold: VmpressureLevel, *, reconnect_timeout_ns: int) -> None:
        self.path = path
        self.threshold = threshold
        self.reconnect_timeout_ns = reconnect_timeout_ns
        self.description = f"daemon at {path}"
        self.reconnects = 0
        self.daemon_backend = "?"
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._lost_at: int | None = None
        self._retry_at: int | None = None
        self._connect()

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(_CONNECT_TIMEOUT_S)
            sock.connect(str(self.path))
            hello = b""
            while len(hello) < HELLO_SIZE:
                chunk = sock.recv(HELLO_SIZE - len(hello))
                if not chunk:
                    raise ProtocolError(f"daemon at {self.path} closed the connection during the hello")
                hello += chunk
            h = Hello.unpack(hello)
            extra = h.size - HELLO_SIZE
            while extra > 0:  # a later version's longer hello: skip what we do not know
                chunk = sock.recv(extra)
                if not chunk:
                    raise ProtocolError(f"daemon at {self.path} closed the connection during the hello")
                extra -= len(chunk)
            sock.sendall(VmpressureConfig(threshold=self.threshold).pack())
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            if isinstance(e, KernelError):
                raise
            code = e.errno or errno.EIO
            if isinstance(e, TimeoutError):
                code = errno.ETIMEDOUT
            raise KernelError(code, f"daemon: cannot connect to {self.path}: {os.strerror(code)}") from e
        self._sock = sock
        self.daemon_backend = h.backend
        self._buf.clear()

    def fds(self) -> Sequence[tuple[int, int]]:
        return [(self._sock.fileno(), select.POLLIN)] if self._sock is not None else []

    def next_wakeup_ns(self) -> int | None:
        return self._retry_at

    def _lost(self, now_ns: int, why: str) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.reconnect_timeout_ns <= 0:
            raise self.gone(f"{self.path}: {why}", errno.EPIPE)
        log.warning("daemon at %s: %s; reconnecting", self.path, why)
        self._lost_at = now_ns
        self._retry_at = now_ns

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        assert self._sock is not None
        try:
            data = self._sock.recv(4096)
        except BlockingIOError:
            return []
        except OSError as e:
            self._lost(now_ns, os.strerror(e.errno or errno.EIO))
            return []
        if not data:
            self._lost(now_ns, "the daemon closed the connection")
            return []
        self._buf += data
        try:
            levels = decode_events(self._buf)
        except ProtocolError as e:
            raise SourceGoneError(errno.EPROTO, f"daemon: {e}") from None
        return [self.record(lv, now_ns, socket=str(self.path), daemon_backend=self.daemon_backend) for lv in levels]

    def on_timer(self, now_ns: int) -> list[PressureRecord]:
        if self._lost_at is None:
            return []
        try:
            self._connect()
        except KernelError as e:
            if now_ns - self._lost_at >= self.reconnect_timeout_ns:
                secs = self.reconnect_timeout_ns / 1e9
                raise self.gone(
                    f"the daemon at {self.path} went away and did not come back within {secs:g} s ({e})", errno.EPIPE
                ) from None
            self._retry_at = now_ns + _RETRY_NS
            return []
        self.reconnects += 1
        log.info("daemon at %s: reconnected", self.path)
        self._lost_at = self._retry_at = None
        return []

    def info(self) -> dict[str, object]:
        return {**super().info(), "socket": str(self.path), "daemon_backend": self.daemon_backend}

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def check(ctx: BackendContext) -> Capability:
    if ctx.cgroup is not None:
        return Capability(False, "the daemon serves the source it was started with; it takes no --cgroup")
    path = default_socket_path(ctx)
    try:
        st = os.stat(path)
    except OSError as e:
        return Capability(False, f"no daemon socket at {path} ({os.strerror(e.errno or errno.EIO)})")
    if not stat.S_ISSOCK(st.st_mode):
        return Capability(False, f"{path} is not a socket")
    if not os.access(path, os.W_OK):
        return Capability(False, f"{path} is not writable by this process (socket mode {st.st_mode & 0o777:04o})")
    return Capability(True, f"daemon socket {path}")


def open_source(ctx: BackendContext) -> PressureSource:
    if ctx.cgroup is not None:
        raise ConfigError("cgroup", ctx.cgroup, "cannot be used with the daemon backend (the daemon chose its source)")
    return DaemonSource(
        default_socket_path(ctx), ctx.threshold, reconnect_timeout_ns=ctx.options.reconnect_timeout_ms * 1_000_000
    )
