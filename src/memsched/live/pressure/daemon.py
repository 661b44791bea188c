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
* malformed input, a dead peer or a handshake not completed in time closes that client only; a client that
  half-closes its end after subscribing (``shutdown(SHUT_WR)``) keeps receiving until it closes for good;
* ``max_clients`` bounds the number of connections and ``max_clients_per_uid`` those of one user
  (``SO_PEERCRED``), so that one member of the socket's group cannot take every slot; more are accepted and
  closed at once. ``max_clients`` stays below the descriptor limit: the soft ``RLIMIT_NOFILE`` is raised
  towards the hard one at start, and ``max_clients`` lowered (with a log line) if that is not enough;
* out of descriptors (``EMFILE``/``ENFILE``) the daemon stops polling the listening socket for
  :data:`ACCEPT_BACKOFF_NS` at a time and says so once, instead of waking for the same pending connection in a
  busy loop (9,000 log lines a second);
* :meth:`PressureDaemon.request_stop` (one byte to a self-pipe; the CLI calls it from its SIGTERM/SIGINT
  handlers and also hands the pipe to ``signal.set_wakeup_fd()``) ends the loop; :meth:`PressureDaemon.close`
  closes every client, releases the source and removes the socket (only if it is still ours) and a runtime
  directory it created.

Socket permissions (:mod:`memsched.live.pressure.daemon_socket`): the socket is bound in a private ``0700``
directory next to the target, given its mode (default ``0660``: owner and group) and group there through
descriptors, never by path, and renamed into place, so it is never reachable with looser permissions and no
symlink swap can redirect the ``chmod``. A directory anyone may write to that is not sticky is refused. An
existing socket nobody answers on (left by a ``kill -9``) is replaced; a live daemon on the path is an error
(``EADDRINUSE``); a path that is not a socket is never touched.

The ``daemon`` backend, the client side, is :mod:`memsched.live.pressure.daemon_client`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.daemon_socket import ListeningSocket
from memsched.live.pressure.protocol import Hello, ProtocolError, Subscriber, SubscriberState
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.pressure.fd import SourceGoneError

__all__ = ["ACCEPT_BACKOFF_NS", "DEFAULT_SOCKET", "FD_RESERVE", "PressureDaemon", "default_socket_path"]

log = logging.getLogger(__name__)

#: Where the daemon listens unless told otherwise (the systemd unit's ``RuntimeDirectory=memsched``).
DEFAULT_SOCKET = Path("/run/memsched/pressure.sock")
_SNDBUF = 4096
#: How long the listening socket is left alone after ``accept()`` ran out of descriptors.
ACCEPT_BACKOFF_NS = 100_000_000
#: Descriptors kept for everything but clients: the source's, the listening socket, the wake-up pipe, stdio,
#: logging, a probe.
FD_RESERVE = 64
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


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
    uid: int = -1
    #: The peer shut its sending side (EOF) after subscribing: keep writing, stop reading.
    read_closed: bool = False


@dataclass(slots=True)
class DaemonStats:
    accepted: int = 0
    refused: int = 0
    refused_uid: int = 0
    malformed: int = 0
    timed_out: int = 0
    disconnected: int = 0
    events: int = 0
    out_of_fds: int = 0


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
        max_clients_per_uid: int | None = None,
        handshake_timeout_ns: int = 5_000_000_000,
    ) -> None:
        if not 0 <= mode <= 0o777:
            raise ConfigError("mode", oct(mode), "must be a permission mode between 0000 and 0777")
        if max_clients < 1:
            raise ConfigError("max_clients", max_clients, "must be >= 1")
        self.socket_path = socket_path
        self._source_factory = source_factory
        self.mode = mode
        self.group = group
        self.max_clients = max_clients
        #: Default: an eighth of ``max_clients`` (at least 1), so that one user cannot fill the daemon.
        self.max_clients_per_uid = max_clients_per_uid if max_clients_per_uid is not None else max(1, max_clients // 8)
        if self.max_clients_per_uid < 1:
            raise ConfigError("max_clients_per_uid", self.max_clients_per_uid, "must be >= 1")
        self.handshake_timeout_ns = handshake_timeout_ns
        self.source: PressureSource | None = None
        self.stats = DaemonStats()
        self.error: BaseException | None = None
        self._socket = ListeningSocket(socket_path, mode=mode, group=group)
        self._listen: socket.socket | None = None
        self._per_uid: Counter[int] = Counter()
        self._paused_until: int | None = None
        # A self-pipe, not an eventfd: signal.set_wakeup_fd() writes one byte per signal, from whichever
        # thread the kernel delivered it to (see signal_wakeup_fd).
        self._wake, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._clients: dict[int, _Client] = {}

    # -- setup ------------------------------------------------------------------------------------------
    def open(self) -> PressureDaemon:
        try:
            self._socket.prepare()
            self._fit_descriptor_limit()
            self.source = self._source_factory()
            self._listen = self._socket.bind()
        except BaseException:
            self.close()
            raise
        return self

    def _fit_descriptor_limit(self) -> None:
        """Keep ``max_clients`` plus :data:`FD_RESERVE` under ``RLIMIT_NOFILE``: raise the soft limit towards
        the hard one, and lower ``max_clients`` if even that is not enough."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = self.max_clients + FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < need:
            new = need if hard == resource.RLIM_INFINITY else min(need, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                soft = new
        if soft != resource.RLIM_INFINITY and soft < need:
            lowered = max(1, soft - FD_RESERVE)
            log.warning(
                "max_clients lowered from %d to %d: the descriptor limit (RLIMIT_NOFILE) is %d",
                self.max_clients, lowered, soft,
            )  # fmt: skip
            self.max_clients = lowered
            self.max_clients_per_uid = min(self.max_clients_per_uid, lowered)

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
        registered: dict[int, int] = {}
        listen_fd = self._listen.fileno()
        while True:
            wanted = dict(source.fds())
            if self._paused_until is None or time.monotonic_ns() >= self._paused_until:
                wanted[listen_fd] = select.POLLIN
            for fd, c in self._clients.items():
                # A client that half-closed is always readable (EOF): poll it for POLLOUT only; POLLHUP still
                # comes when it closes for good.
                wanted[fd] = (0 if c.read_closed else select.POLLIN) | (select.POLLOUT if c.sub.outgoing else 0)
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
            if self._paused_until is not None:
                deadlines.append(self._paused_until)
            timeout = None if not deadlines else max(0, -(-(min(deadlines) - now) // 1_000_000))
            events = poller.poll(timeout)
            now = time.monotonic_ns()
            records: list[PressureRecord] = []
            stop = False
            try:
                for fd, revents in events:
                    if fd == self._wake:
                        stop = True  # after this round: what the source gave in it still goes out
                    elif fd == listen_fd:
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
                self._fan_out(records)
                return 1
            self._expire_handshakes(now)
            if records:
                self._fan_out(records)
            if stop:
                return 0

    def _accept(self, now: int) -> None:
        assert self._listen is not None
        while True:
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno not in _OUT_OF_FDS:
                    log.warning("accept failed: %s", os.strerror(e.errno or errno.EIO))
                    return
                # The pending connection stays pending: polling again at once would spin. Back off, say it once.
                if self._paused_until is None:
                    log.warning(
                        "cannot accept connections: %s; retrying every %d ms until descriptors are free",
                        os.strerror(e.errno or errno.EMFILE), ACCEPT_BACKOFF_NS // 1_000_000,
                    )  # fmt: skip
                self.stats.out_of_fds += 1
                self._paused_until = now + ACCEPT_BACKOFF_NS
                return
            if self._paused_until is not None:
                log.warning("accepting connections again")
                self._paused_until = None
            self._admit(sock, now)

    def _admit(self, sock: socket.socket, now: int) -> None:
        try:
            _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        except OSError:
            uid = -1
        if len(self._clients) >= self.max_clients:
            self.stats.refused += 1
            sock.close()
            return
        if self._per_uid[uid] >= self.max_clients_per_uid:
            self.stats.refused_uid += 1
            sock.close()
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        assert self.source is not None
        client = _Client(sock, Subscriber(Hello(self.source.backend).pack()), now + self.handshake_timeout_ns, uid)
        self._clients[sock.fileno()] = client
        self._per_uid[uid] += 1
        self.stats.accepted += 1
        self._flush(client)

    def _drop(self, client: _Client, why: str) -> None:
        fd = client.sock.fileno()
        if self._clients.pop(fd, None) is not None:
            self._per_uid[client.uid] -= 1
            if self._per_uid[client.uid] <= 0:
                del self._per_uid[client.uid]
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
                if client.sub.state is SubscriberState.ACTIVE:
                    client.read_closed = True  # a half-close: it still reads what we send
                else:
                    self.stats.disconnected += 1
                    self._drop(client, "peer closed before subscribing")
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
        # Ascending within one wake-up, so a coalesced client ends on the highest level seen. Each record is
        # written before the next is offered: a client that keeps up then never coalesces, even when one
        # wake-up brings several records (memcg v1 signals the low, medium and critical listeners together);
        # only a client whose socket buffer is full does (benchmarks/daemon_soak.py lost 14 of 805 events per
        # well-behaved client when the records of a wake-up were offered first and written after).
        for rec in sorted(records, key=lambda r: r.level):
            self.stats.events += 1
            for client in list(self._clients.values()):
                client.sub.offer(rec.level)
                if client.sub.outgoing:
                    self._flush(client)

    # -- teardown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every client and the source; remove the socket if it is still ours (idempotent)."""
        for client in list(self._clients.values()):
            self._drop(client, "daemon shutting down")
        self._listen = None
        self._socket.close()
        if self.source is not None:
            self.source.close()
            self.source = None
        for fd in (self._wake, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake = self._wake_w = -1

    def __enter__(self) -> PressureDaemon:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
