"""The pressure daemon with the fifo backend: fan-out, back-pressure, malformed clients, permissions,
restarts and shutdown — never a hang, never a crash of the daemon."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.daemon_clients import Running, raw_client, recv_levels, start_daemon, wait_for
from memsched.errors import ConfigError, KernelError
from memsched.live.pressure import PressureOptions, SourceGoneError, vmpressure_fd
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.fifo import FifoSource
from memsched.live.pressure.protocol import HELLO_SIZE, Hello, ProtocolError, Subscriber
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent, VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


# ----------------------------------------------------------------------------------------------- protocol


def test_hello_round_trip_and_refusals() -> None:
    """The 32-byte hello carries magic, version, sizes and the backend; a stranger or a new version is refused."""
    raw = Hello("memcg-v1").pack()
    assert len(raw) == HELLO_SIZE and raw[:4] == b"VMPD"
    assert Hello.unpack(raw).backend == "memcg-v1"
    with pytest.raises(ProtocolError, match="not a memsched"):
        Hello.unpack(b"HTTP" + raw[4:])
    with pytest.raises(ProtocolError, match="version 2"):
        Hello.unpack(Hello("x", version=2).pack())
    with pytest.raises(ProtocolError, match="short"):
        Hello.unpack(raw[:10])


def test_subscriber_needs_exactly_one_valid_config() -> None:
    """Split configs are reassembled; a bad size, a bad threshold or any byte after it are protocol errors."""
    sub = Subscriber(b"")
    cfg = VmpressureConfig(threshold=MEDIUM).pack()
    sub.feed(cfg[:3])
    sub.feed(cfg[3:])
    assert sub.config == VmpressureConfig(threshold=MEDIUM)
    with pytest.raises(ProtocolError, match="after subscribing"):
        sub.feed(b"\0")
    for bad in (b"\x09\0\0\0" + cfg[4:], cfg[:4] + b"\x07\0\0\0", cfg + b"x"):
        with pytest.raises(ProtocolError):
            Subscriber(b"").feed(bad)


def test_subscriber_coalesces_to_the_highest_pending_level() -> None:
    """Behind one in-flight record at most one level waits, and it is the highest offered."""
    sub = Subscriber(b"")
    sub.feed(VmpressureConfig(threshold=LOW).pack())
    for level in (LOW, OOM, MEDIUM, LOW):
        sub.offer(level)
    assert sub.outgoing == VmpressureEvent(LOW).pack() and sub.pending == OOM and sub.coalesced == 2
    sub.sent(2)
    assert sub.outgoing == VmpressureEvent(LOW).pack()[2:]  # a partial write keeps the rest
    sub.sent(2)
    assert sub.outgoing == VmpressureEvent(OOM).pack() and sub.pending == 0
    sub.sent(4)
    assert sub.outgoing == b"" and sub.buffered == 0


# ----------------------------------------------------------------------------------------------- a daemon


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Running]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    run = start_daemon(tmp_path / "run" / "pressure.sock", fifo, handshake_timeout_ns=500_000_000)
    try:
        yield run
    finally:
        if run.thread.is_alive():
            run.stop()
        run.daemon.close()


def assert_closed(s: socket.socket) -> None:
    """The daemon closed this connection (an unread subscription makes the close a reset)."""
    with contextlib.suppress(ConnectionResetError):
        assert s.recv(64) == b""


def test_socket_is_owner_and_group_only_by_default(served: Running) -> None:
    """The default socket mode is 0660; the runtime directory was created for it."""
    st = os.stat(served.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660


def test_events_fan_out_to_every_subscriber_by_threshold(served: Running) -> None:
    """Each subscriber gets the levels at or above its threshold, as 4-byte records."""
    low, oom = raw_client(served.path, LOW), raw_client(served.path, OOM)
    wait_for(lambda: served.daemon.clients == 2 and all(s.config for s in served.daemon.subscribers()))
    served.inject("low\n")
    assert recv_levels(low, 1) == [LOW]
    served.inject("oom\n")
    assert recv_levels(low, 1) == [OOM] and recv_levels(oom, 1) == [OOM]
    low.close()
    oom.close()


def test_a_client_that_never_reads_blocks_nobody_and_stays_bounded(served: Running) -> None:
    """Thousands of events to a client that never reads: others get every event; its buffer stays O(1)."""
    stuck = raw_client(served.path, LOW)
    good = raw_client(served.path, LOW)
    wait_for(lambda: served.daemon.clients == 2 and all(s.config for s in served.daemon.subscribers()))
    got: list[VmpressureLevel] = []
    for i in range(300):
        served.inject("low " * 15 + ("oom\n" if i == 299 else "low\n"))
        got += recv_levels(good, 1)
        while got[-1] != OOM and i == 299:
            got += recv_levels(good, 1)
    assert got[-1] == OOM
    assert served.daemon.buffered_bytes() <= 2 * 4 * 2  # one in-flight record + one pending level each
    waiting = [s for s in served.daemon.subscribers() if s.pending]
    assert [s.pending for s in waiting] == [OOM]  # the highest level waits for the slow reader, never dropped
    assert waiting[0].coalesced > 100
    stuck.setblocking(False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := stuck.recv(1 << 16):
            data += chunk
    assert len(data) < 64 * 1024  # the kernel queued only a small send buffer's worth
    stuck.close()
    good.close()


def test_garbage_and_bad_configs_close_only_that_client(served: Running) -> None:
    """Malformed input closes the sender; the daemon and the other clients carry on."""
    good = raw_client(served.path, LOW)
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x08\0\0\0\x07\0\0\0", VmpressureConfig().pack() + b"!"):
        bad = raw_client(served.path, subscribe=False)
        bad.sendall(junk)
        assert_closed(bad)
        bad.close()
    wait_for(lambda: served.daemon.stats.malformed == 3)
    served.inject("medium\n")
    assert recv_levels(good, 1) == [MEDIUM]
    assert served.thread.is_alive()
    good.close()


def test_silent_and_vanishing_clients_are_dropped(served: Running) -> None:
    """A client that never subscribes is closed after the handshake timeout; a dead one is forgotten."""
    silent = raw_client(served.path, subscribe=False)
    assert_closed(silent)  # timed out (0.5 s in this fixture)
    silent.close()
    gone = raw_client(served.path)
    gone.close()
    wait_for(lambda: served.daemon.clients == 0)
    assert served.daemon.stats.timed_out == 1 and served.daemon.stats.disconnected >= 1


def test_connections_beyond_max_clients_are_refused(tmp_path: Path) -> None:
    """With max_clients=1 a second connection is closed at once; the first keeps working."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    run = start_daemon(tmp_path / "s", fifo, max_clients=1)
    try:
        first = raw_client(run.path)
        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second.settimeout(10)
        second.connect(str(run.path))
        assert_closed(second)
        wait_for(lambda: run.daemon.clients == 1 and all(s.config for s in run.daemon.subscribers()))
        run.inject("oom\n")
        assert recv_levels(first, 1) == [OOM]
        first.close()
        second.close()
    finally:
        assert run.stop() == 0
    assert run.daemon.stats.refused == 1


def test_mode_and_group_are_applied_and_close_removes_the_socket(tmp_path: Path) -> None:
    """--mode and --group set the socket's permissions; close() removes the socket and the made directory."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    path = tmp_path / "rundir" / "p.sock"
    run = start_daemon(path, fifo, mode=0o600, group=os.getgid())
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == os.getgid()
    assert run.stop() == 0
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(ConfigError, match="mode"):
        PressureDaemon(path, lambda: FifoSource(fifo), mode=0o1777)


def test_existing_paths_are_respected(tmp_path: Path) -> None:
    """A stale socket is replaced; a live daemon's socket is EADDRINUSE; a regular file is never touched."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # bound, nobody listening
    run = start_daemon(stale, fifo)
    with pytest.raises(KernelError, match="already serving"):
        PressureDaemon(stale, lambda: FifoSource(fifo)).open()
    assert run.stop() == 0
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        PressureDaemon(regular, lambda: FifoSource(fifo)).open()
    assert regular.read_text() == "keep me"


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_a_socket_where_no_file_can_be_made_is_the_users_error(folder: str, tmp_path: Path) -> None:
    """--socket in /proc or /sys (writable by access() for root) is a ConfigError naming --socket, not exit 1."""
    if not os.path.ismount(folder):
        pytest.skip(f"{folder} is not mounted here")
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    where = re.escape(f"'{folder}/p.sock'")
    with pytest.raises(ConfigError, match=rf"'--socket' must be in a writable directory .*{where}"):
        PressureDaemon(Path(folder) / "p.sock", lambda: FifoSource(fifo)).open()


def test_source_end_stops_the_daemon_with_an_error(tmp_path: Path) -> None:
    """When the daemon's own source goes away it returns 1 with the error; its clients see the end."""
    watched = tmp_path / "events"
    watched.write_text("")
    daemon = PressureDaemon(tmp_path / "s", lambda: FifoSource(watched)).open()
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(daemon.serve()), daemon=True)
    thread.start()
    client = raw_client(tmp_path / "s")
    watched.unlink()
    thread.join(30)
    assert status == [1] and isinstance(daemon.error, SourceGoneError)
    daemon.close()
    assert_closed(client)
    client.close()


# ----------------------------------------------------------------------------------------------- the daemon backend


def test_daemon_backend_reconnects_after_a_restart(tmp_path: Path) -> None:
    """vmpressure_fd(backend='daemon') survives a daemon restart: events after the restart still arrive."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    path = tmp_path / "p.sock"
    run = start_daemon(path, fifo)
    opts = PressureOptions(socket_path=str(path), reconnect_timeout_ms=20_000)
    with vmpressure_fd(backend="daemon", options=opts) as f:
        wait_for(lambda: run.daemon.clients == 1 and all(s.config for s in run.daemon.subscribers()))
        run.inject("medium\n")
        assert f.read_event(timeout=10).level == MEDIUM
        assert run.stop() == 0
        run = start_daemon(path, fifo)
        wait_for(lambda: run.daemon.clients == 1 and all(s.config for s in run.daemon.subscribers()), 20)
        run.inject("oom\n")
        assert f.read_event(timeout=10).level == OOM
    assert run.stop() == 0


def test_daemon_backend_ends_cleanly_when_the_daemon_stays_away(tmp_path: Path) -> None:
    """If the daemon does not come back within reconnect_timeout_ms, reads raise a clear error."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    path = tmp_path / "p.sock"
    run = start_daemon(path, fifo)
    opts = PressureOptions(socket_path=str(path), reconnect_timeout_ms=300)
    with vmpressure_fd(backend="daemon", options=opts) as f:
        wait_for(lambda: run.daemon.clients == 1)
        run.stop()
        with pytest.raises(SourceGoneError, match=r"did not come back within 0\.3 s"):
            f.read_event(timeout=20)


def test_daemon_backend_without_reconnect_ends_at_once(tmp_path: Path) -> None:
    """reconnect_timeout_ms=0: the first disconnection ends the stream with the reason."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    path = tmp_path / "p.sock"
    run = start_daemon(path, fifo)
    with vmpressure_fd(backend="daemon", options=PressureOptions(socket_path=str(path), reconnect_timeout_ms=0)) as f:
        wait_for(lambda: run.daemon.clients == 1)
        run.stop()
        with pytest.raises(SourceGoneError, match="closed the connection"):
            f.read_event(timeout=20)


def test_daemon_backend_without_a_daemon_is_unsupported(tmp_path: Path) -> None:
    """No socket: the daemon backend says so; it refuses a cgroup (the daemon chose its source)."""
    from memsched.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="no daemon socket"):
        vmpressure_fd(backend="daemon", options=PressureOptions(socket_path=str(tmp_path / "none")))
    with pytest.raises(UnsupportedError, match="takes no --cgroup"):
        vmpressure_fd(backend="daemon", cgroup="/x", options=PressureOptions(socket_path=str(tmp_path / "none")))
    assert BackendContext().cgroup is None


def test_sigterm_and_sigint_shut_the_cli_daemon_down_cleanly(tmp_path: Path) -> None:
    """memsched pressure serve exits 0 on SIGTERM or SIGINT and removes its socket."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    for sig in (signal.SIGTERM, signal.SIGINT):
        path = tmp_path / f"s{int(sig)}" / "p.sock"
        argv = [sys.executable, "-m", "memsched", "pressure", "serve", "--socket", str(path), "--backend", "fifo"]
        with subprocess.Popen([*argv, "--set", f"fifo_path={fifo}"], stderr=subprocess.PIPE, text=True) as proc:
            try:
                wait_for(path.exists, 60)
                client = raw_client(path)
                proc.send_signal(sig)
                assert proc.wait(30) == 0
                assert_closed(client)
                client.close()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.stderr is not None
            err = proc.stderr.read()
        assert "listening on" in err and "stopped" in err, err
        assert not path.exists() and not path.parent.exists()
