"""The ``fifo`` backend: events written by hand (tests, demos, other tools) into a FIFO, a file or a socket.

GLib's PSI monitor test (gio/tests/memory-monitor-psi.c) and systemd's (src/libsystemd/sd-event/
test-event.c, ``fake_pressure``) inject memory-pressure events without any kernel pressure by pointing the
watcher at a FIFO and writing to it; systemd's protocol (docs/MEMORY_PRESSURE.md, v254) allows
``$MEMORY_PRESSURE_WATCH`` to be a FIFO or an ``AF_UNIX`` socket for the same purpose. This backend does
that, and the ``psi`` backend reuses it when ``$MEMORY_PRESSURE_WATCH`` names a FIFO or a socket.

What a writer sends: whitespace-separated tokens, each one event. A level name (``low``, ``medium``,
``oom``/``critical``, ``VMPRESSURE_MEDIUM``) or a level constant (``1048576``) gives that level; anything else
(systemd's test writes ``x``) gives the configured default level (``fifo_level``, MEDIUM). Writes of at most
``PIPE_BUF`` bytes are atomic, so ``echo medium > fifo`` is one event.

How it is watched:

* **FIFO**: opened ``O_RDWR | O_NONBLOCK`` (as systemd's test does), so the reader never sees ``POLLHUP``
  when a writer closes and never blocks in ``open``; waits for ``POLLIN``.
* **socket** (``AF_UNIX``, stream): connected; end of stream when the peer closes.
* **regular file**: followed from its current end like ``tail -f`` (a timer reads what was appended; a
  truncated file is followed from its new end; a file deleted from its directory ends the stream).

If ``write_data`` is given (systemd's ``$MEMORY_PRESSURE_WRITE``) it is written right after opening. On a FIFO
opened read-write those bytes would come straight back to us; the echo is read back and discarded.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import stat
from collections.abc import Sequence
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.kfile import file_kind
from memsched.live.capabilities import Capability
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.options import parse_level
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.uapi.pressure import VmpressureLevel

__all__ = ["FOLLOW_INTERVAL_NS", "FifoSource", "check", "open_source", "parse_tokens"]

#: How often a regular file is checked for appended data.
FOLLOW_INTERVAL_NS = 50_000_000
_READ_MAX = 65536


def parse_tokens(data: bytes, default: VmpressureLevel) -> list[VmpressureLevel]:
    """One level per whitespace-separated token: a level name or constant, else ``default``."""
    out = []
    for token in data.split():
        text = token.decode("ascii", "replace")
        try:
            out.append(parse_level(text, field="token"))
        except ValueError:
            out.append(default)
    return out


class FifoSource(PressureSource):
    """Events from a FIFO, a socket or a followed file (see the module docstring)."""

    backend = "fifo"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default_level: VmpressureLevel = VmpressureLevel.MEDIUM,
        write_data: bytes = b"",
        backend: str | None = None,
        origin: str = "",
    ) -> None:
        if backend is not None:
            self.backend = backend  # type: ignore[misc]  # the psi backend reuses this for systemd watches
        self.path = Path(path)
        self.default_level = default_level
        self.origin = origin
        self._sock: socket.socket | None = None
        self._fd = -1
        self._pos = 0
        self._next_follow: int | None = None
        self._pending_initial = b""
        try:
            st = os.stat(self.path)
        except OSError as e:
            code = e.errno or errno.EIO
            raise KernelError(code, f"{self.backend}: cannot watch {self.path}: {os.strerror(code)}") from e
        if stat.S_ISFIFO(st.st_mode):
            self.kind = "fifo"
            self._fd = self._open(os.O_RDWR | os.O_NONBLOCK)
            if write_data:
                self._write(write_data)
                self._discard_echo(write_data)
        elif stat.S_ISSOCK(st.st_mode):
            self.kind = "socket"
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                self._sock.connect(str(self.path))
                if write_data:
                    self._sock.sendall(write_data)
            except OSError as e:
                self._sock.close()
                code = e.errno or errno.EIO
                raise KernelError(code, f"{self.backend}: cannot connect to {self.path}: {os.strerror(code)}") from e
            self._sock.setblocking(False)
            self._fd = self._sock.fileno()
        elif stat.S_ISREG(st.st_mode):
            self.kind = "file"
            self._fd = self._open(os.O_RDONLY)
            self._pos = os.fstat(self._fd).st_size
            self._next_follow = 0
        else:
            raise KernelError(errno.EINVAL, f"{self.backend}: {self.path} is not a FIFO, a socket or a regular file")
        self.description = f"{self.kind} {self.path}" + (f" ({origin})" if origin else "")

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags | os.O_CLOEXEC)
        except OSError as e:
            code = e.errno or errno.EIO
            raise KernelError(code, f"{self.backend}: cannot open {self.path}: {os.strerror(code)}") from e

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except OSError as e:
            self.close()
            code = e.errno or errno.EIO
            raise KernelError(code, f"{self.backend}: cannot write to {self.path}: {os.strerror(code)}") from e

    def _discard_echo(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            echo = os.read(self._fd, len(data))
            if echo != data:  # someone else's bytes got there first: keep them as events
                self._pending_initial = echo

    # ---- PressureSource ----------------------------------------------------------------------------------
    def fds(self) -> Sequence[tuple[int, int]]:
        if self.kind == "file" or self._fd < 0:
            return ()
        return ((self._fd, select.POLLIN),)

    def next_wakeup_ns(self) -> int | None:
        if self._pending_initial:
            return 0
        return self._next_follow

    def _records(self, data: bytes, now_ns: int) -> list[PressureRecord]:
        out: list[PressureRecord] = []
        for level in parse_tokens(data, self.default_level):
            if out and out[-1].level == level:
                count = int(str(out[-1].details["count"])) + 1
                out[-1] = self.record(level, now_ns, path=str(self.path), kind=self.kind, count=count)
            else:
                out.append(self.record(level, now_ns, path=str(self.path), kind=self.kind, count=1))
        return out

    def on_ready(self, fd: int, revents: int, now_ns: int) -> list[PressureRecord]:
        if revents & (select.POLLERR | select.POLLNVAL):
            raise self.gone(f"{self.path}: error condition on the descriptor", errno.EIO)
        try:
            data = os.read(self._fd, _READ_MAX)
        except BlockingIOError:
            return []
        except ConnectionResetError:
            data = b""
        if not data:
            raise self.gone(f"{self.path}: the peer closed the {self.kind}", errno.EPIPE)
        return self._records(data, now_ns)

    def on_timer(self, now_ns: int) -> list[PressureRecord]:
        if self._pending_initial:
            data, self._pending_initial = self._pending_initial, b""
            return self._records(data, now_ns)
        if self.kind != "file":
            return []
        st = os.fstat(self._fd)
        if st.st_nlink == 0:
            raise self.gone(f"{self.path} was deleted")
        self._pos = min(self._pos, st.st_size)  # truncated: follow from the new end
        data = b""
        if st.st_size > self._pos:
            data = os.pread(self._fd, min(_READ_MAX, st.st_size - self._pos), self._pos)
            self._pos += len(data)
        self._next_follow = now_ns + FOLLOW_INTERVAL_NS
        return self._records(data, now_ns) if data else []

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "path": str(self.path),
            "kind": self.kind,
            "default_level": self.default_level.name.lower(),
        }

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        elif self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1


def check(ctx: BackendContext) -> Capability:
    path = ctx.options.fifo_path
    if not path:
        return Capability(False, "only on request: give the FIFO or file with fifo_path (--set fifo_path=PATH)")
    if not os.path.exists(path):
        return Capability(False, f"fifo_path {path} does not exist (create it with mkfifo)")
    return Capability(True, f"events written to {path}")


def open_source(ctx: BackendContext) -> PressureSource:
    path = ctx.options.fifo_path
    if not path:
        raise ConfigError("fifo_path", "", "must name a FIFO or file for the fifo backend (--set fifo_path=PATH)")
    with contextlib.suppress(OSError):  # a path that cannot be looked at is FifoSource's KernelError, with errno
        mode = os.stat(path).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode)):
            raise ConfigError("fifo_path", path, f"must be a FIFO, a socket or a regular file ({file_kind(mode)})")
    return FifoSource(ctx.options.fifo_path, default_level=parse_level(ctx.options.fifo_level, field="fifo_level"))
