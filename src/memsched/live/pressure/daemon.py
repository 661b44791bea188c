"""``memsched pressure serve``: one process owns the registrations and fans events out to subscribers.

The privileged part (a memcg v1 ``cgroup.event_control`` registration, a PSI trigger with a short window, a
cgroup nobody else may read) happens once, in the daemon; unprivileged processes connect to a Unix socket and
get 4-byte ``struct vmpressure_event`` records (:mod:`memsched.live.pressure.protocol`), and
``vmpressure_fd(..., backend="daemon")`` turns that back into a ``VmpressureFile``.

:class:`PressureDaemon` is one thread and one ``poll()`` loop over the listening socket, the clients, the
source's descriptors and a wake-up eventfd — no per-client threads, no unbounded queues:

* a client that does not read never blocks the loop (sockets are non-blocking, writes go out only on
  ``POLLOUT``) and costs O(1) memory (:class:`~memsched.live.pressure.protocol.Subscriber` coalesces to the
  highest pending level; the kernel send buffer is shrunk to ``SO_SNDBUF`` = 4 KiB);
* malformed input, a dead peer or a handshake not completed in time closes that client only;
* ``max_clients`` bounds the number of connections; more are accepted and closed at once;
* :meth:`PressureDaemon.request_stop` (one byte to a self-pipe; the CLI calls it from its SIGTERM/SIGINT
  handlers and also hands the pipe to ``signal.set_wakeup_fd()``) ends the loop; :meth:`PressureDaemon.close`
  closes every client, releases the source and removes the socket (only if it is still ours) and a runtime
  directory it created.

Socket permissions: the socket is bound in a private ``0700`` temporary directory next to the target, given
its mode (default ``0660``: owner and group) and group there, and renamed into place, so it is never
reachable with looser permissions. An existing socket nobody answers on is replaced; a live daemon on the path
is an error (``EADDRINUSE``); a path that is not a socket is never touched.

The ``daemon`` backend, the client side, is :mod:`memsched.live.pressure.daemon_client`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.protocol import Hello, ProtocolError, Subscriber, SubscriberState
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.pressure.fd import SourceGoneError

__all__ = ["DEFAULT_SOCKET", "PressureDaemon", "default_socket_path"]

log = logging.getLogger(__name__)

#: Where the daemon listens unless told otherwise (the systemd unit's ``RuntimeDirectory=memsched``).
DEFAULT_SOCKET = Path("/run/memsched/pressure.sock")
_SNDBUF = 4096


def default_socket_path(ctx: BackendContext) -> Path:
    """``socket_path`` option, else ``$MEMSCHED_PRESSURE_SOCKET``, else :data:`DEFAULT_SOCKET`."""
    if ctx.options.socket_path:
        return Path(ctx.options.socket_path)
    env = ctx.environ.get("MEMSCHED_PRESSURE_SOCKET")
    return Path(env) if env else DEFAULT_SOCKET


# --------------------------------------------------------------------------------------------- server side


@dataclass(slots=True)
class _Client:
    sock: socket.socket
    sub: Subscriber
    deadline_ns: int


@dataclass(slots=True)
class DaemonStats:
    accepted: int = 0
    refused: int = 0
    malformed: int = 0
    timed_out: int = 0
    disconnected: int = 0
    events: int = 0


class PressureDaemon:
    """The fan-out server (see the module docstring). ``open()``, then ``serve()``, then ``close()``."""

    def __init__(
        self,
        socket_path: Path,
        source_factory: Callable[[], PressureSource],
        *,
        mode: int = 0o660,
        group: int | None = None,
        max_clients: int = 1024,
        handshake_timeout_ns: int = 5_000_000_000,
    ) -> None:
        if not 0 <= mode <= 0o777:
            raise ConfigError("mode", oct(mode), "must be a permission mode between 0000 and 0777")
        self.socket_path = socket_path
        self._source_factory = source_factory
        self.mode = mode
        self.group = group
        self.max_clients = max_clients
        self.handshake_timeout_ns = handshake_timeout_ns
        self.source: PressureSource | None = None
        self.stats = DaemonStats()
        self.error: BaseException | None = None
        self._listen: socket.socket | None = None
        self._ino: int | None = None
        self._made_dir: Path | None = None
        # A self-pipe, not an eventfd: signal.set_wakeup_fd() writes one byte per signal, from whichever
        # thread the kernel delivered it to (see signal_wakeup_fd).
        self._wake, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._clients: dict[int, _Client] = {}

    # -- setup ------------------------------------------------------------------------------------------
    def open(self) -> PressureDaemon:
        try:
            self._check_path()
            self.source = self._source_factory()
            self._bind()
        except BaseException:
            self.close()
            raise
        return self

    def _check_path(self) -> None:
        path = self.socket_path
        parent = path.parent
        if not parent.exists():
            try:
                parent.mkdir(mode=0o755)
            except OSError as e:
                raise ConfigError("--socket", str(path), f"needs a directory that can be created ({e.strerror})") from e
            self._made_dir = parent
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError("--socket", str(path), "exists and is not a socket (refusing to replace it)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale socket %s", path)
            return
        finally:
            probe.close()
        raise KernelError(errno.EADDRINUSE, f"another daemon is already serving on {path}")

    def _bind(self) -> None:
        tmpdir = Path(tempfile.mkdtemp(prefix=".memsched-", dir=self.socket_path.parent))
        try:
            tmp = tmpdir / "s"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self._listen = sock
            sock.bind(str(tmp))
            os.chmod(tmp, self.mode)
            if self.group is not None:
                os.chown(tmp, -1, self.group)
            sock.listen(128)
            sock.setblocking(False)
            os.rename(tmp, self.socket_path)
            self._ino = os.lstat(self.socket_path).st_ino
        except OSError as e:
            raise KernelError(
                e.errno or errno.EIO, f"cannot listen on {self.socket_path}: {os.strerror(e.errno or errno.EIO)}"
            ) from e
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    # -- control ----------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Make :meth:`serve` return (safe from a signal handler and from another thread)."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    @property
    def signal_wakeup_fd(self) -> int:
        """For ``signal.set_wakeup_fd()``: a process-directed signal can land on any thread (numpy's BLAS
        threads, say), and then the main thread's ``poll()`` is not interrupted and its Python handler waits;
        the wakeup fd makes the loop return at once whichever thread took the signal."""
        return self._wake_w

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribers(self) -> list[Subscriber]:
        """A snapshot of the clients' protocol states (statistics, pending levels)."""
        return [c.sub for c in list(self._clients.values())]

    def buffered_bytes(self) -> int:
        """Bytes held for all clients together (bounded: O(1) per client)."""
        return sum(c.sub.buffered for c in self._clients.values())

    # -- the loop ---------------------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until :meth:`request_stop` (returns 0) or until the source ends (returns 1, ``error`` set)."""
        assert self._listen is not None and self.source is not None
        source = self.source
        poller = select.poll()
        poller.register(self._wake, select.POLLIN)
        poller.register(self._listen.fileno(), select.POLLIN)
        registered: dict[int, int] = {}
        listen_fd = self._listen.fileno()
        while True:
            wanted = dict(source.fds())
            for fd, c in self._clients.items():
                wanted[fd] = select.POLLIN | (select.POLLOUT if c.sub.outgoing else 0)
            for fd in registered.keys() - wanted.keys():
                with contextlib.suppress(KeyError):
                    poller.unregister(fd)
            for fd, mask in wanted.items():
                if registered.get(fd) != mask:
                    poller.register(fd, mask)
            registered = wanted
            now = time.monotonic_ns()
            deadlines = [c.deadline_ns for c in self._clients.values() if c.sub.state is SubscriberState.AWAIT_CONFIG]
            wake = source.next_wakeup_ns()
            if wake is not None:
                deadlines.append(wake)
            timeout = None if not deadlines else max(0, -(-(min(deadlines) - now) // 1_000_000))
            events = poller.poll(timeout)
            now = time.monotonic_ns()
            records: list[PressureRecord] = []
            try:
                for fd, revents in events:
                    if fd == self._wake:
                        return 0
                    if fd == listen_fd:
                        self._accept(now)
                    elif fd in self._clients:
                        self._client_event(fd, revents)
                    elif fd in registered:
                        records += source.on_ready(fd, revents, now)
                wake = source.next_wakeup_ns()
                if wake is not None and now >= wake:
                    records += source.on_timer(now)
            except (SourceGoneError, KernelError, OSError) as e:
                self.error = e
                log.error("pressure source ended: %s", e)
                return 1
            self._expire_handshakes(now)
            if records:
                self._fan_out(records)

    def _accept(self, now: int) -> None:
        assert self._listen is not None
        while True:
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and friends: keep serving the others
                log.warning("accept failed: %s", os.strerror(e.errno or errno.EIO))
                return
            if len(self._clients) >= self.max_clients:
                self.stats.refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            assert self.source is not None
            client = _Client(sock, Subscriber(Hello(self.source.backend).pack()), now + self.handshake_timeout_ns)
            self._clients[sock.fileno()] = client
            self.stats.accepted += 1
            self._flush(client)

    def _drop(self, client: _Client, why: str) -> None:
        fd = client.sock.fileno()
        self._clients.pop(fd, None)
        client.sock.close()
        log.debug("client fd %d closed: %s", fd, why)

    def _client_event(self, fd: int, revents: int) -> None:
        client = self._clients[fd]
        if revents & select.POLLIN:
            try:
                data = client.sock.recv(64)
            except BlockingIOError:
                data = None
            except OSError as e:
                self.stats.disconnected += 1
                self._drop(client, os.strerror(e.errno or errno.EIO))
                return
            if data == b"":
                self.stats.disconnected += 1
                self._drop(client, "peer closed")
                return
            if data:
                try:
                    client.sub.feed(data)
                except ProtocolError as e:
                    self.stats.malformed += 1
                    self._drop(client, str(e))
                    return
        if revents & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            self.stats.disconnected += 1
            self._drop(client, "error or hang-up")
            return
        if revents & select.POLLOUT:
            self._flush(client)

    def _flush(self, client: _Client) -> None:
        while True:
            out = client.sub.outgoing
            if not out:
                return
            try:
                n = client.sock.send(out, socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.stats.disconnected += 1
                self._drop(client, os.strerror(e.errno or errno.EIO))
                return
            client.sub.sent(n)

    def _expire_handshakes(self, now: int) -> None:
        for client in list(self._clients.values()):
            if client.sub.state is SubscriberState.AWAIT_CONFIG and now >= client.deadline_ns:
                self.stats.timed_out += 1
                self._drop(client, "no subscription within the handshake timeout")

    def _fan_out(self, records: list[PressureRecord]) -> None:
        # Ascending within one wake-up, so a coalesced client ends on the highest level seen.
        for rec in sorted(records, key=lambda r: r.level):
            self.stats.events += 1
            for client in self._clients.values():
                client.sub.offer(rec.level)
        for client in list(self._clients.values()):
            if client.sub.outgoing:
                self._flush(client)

    # -- teardown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every client and the source; remove the socket if it is still ours (idempotent)."""
        for client in list(self._clients.values()):
            self._drop(client, "daemon shutting down")
        if self._listen is not None:
            self._listen.close()
            self._listen = None
        if self._ino is not None:
            with contextlib.suppress(OSError):
                if os.lstat(self.socket_path).st_ino == self._ino:
                    os.unlink(self.socket_path)
            self._ino = None
        if self.source is not None:
            self.source.close()
            self.source = None
        if self._made_dir is not None:
            with contextlib.suppress(OSError):
                self._made_dir.rmdir()  # only if empty
            self._made_dir = None
        for fd in (self._wake, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake = self._wake_w = -1

    def __enter__(self) -> PressureDaemon:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
