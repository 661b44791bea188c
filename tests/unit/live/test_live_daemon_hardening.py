"""The pressure daemon under hostile or broken conditions: socket directories others may write to, a full
backlog at start, half-closed subscribers, one user taking every slot, running out of descriptors, a
descriptor limit below max_clients, and the daemon backend's end-of-stream error on the command line."""

from __future__ import annotations

import errno
import os
import resource
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.daemon_clients import close_quietly, is_closed, raw_client, recv_levels, start_daemon, wait_for
from memsched.cli import main
from memsched.errors import ConfigError, KernelError
from memsched.live.pressure.daemon import FD_RESERVE, PressureDaemon
from memsched.live.pressure.fifo import FifoSource
from memsched.uapi.pressure import VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    f = tmp_path / "events"
    os.mkfifo(f)
    return f


def test_a_world_writable_directory_that_is_not_sticky_is_refused(tmp_path: Path, fifo: Path) -> None:
    """Anyone could swap the socket's files in such a directory; a sticky one (like /tmp) is fine."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(ConfigError, match="anyone may write to"):
        PressureDaemon(open_dir / "p.sock", lambda: FifoSource(fifo)).open()
    assert list(open_dir.iterdir()) == []  # nothing was created
    open_dir.chmod(0o1777)
    run = start_daemon(open_dir / "p.sock", fifo)
    try:
        assert stat.S_ISSOCK(os.lstat(open_dir / "p.sock").st_mode)
        assert [p.name for p in open_dir.iterdir()] == ["p.sock"]  # the private directory is gone
    finally:
        assert run.stop() == 0
    assert list(open_dir.iterdir()) == []


def test_the_probe_of_a_listener_with_a_full_backlog_does_not_hang(tmp_path: Path, fifo: Path) -> None:
    """A live listener whose backlog is full answers EAGAIN at once: EADDRINUSE, not a hang."""
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    pending = []
    for _ in range(8):  # fill the backlog (never accepted)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        if c.connect_ex(str(path)) == errno.EAGAIN:
            c.close()
            break
        pending.append(c)
    started = time.monotonic()
    try:
        with pytest.raises(KernelError, match="already serving") as info:
            PressureDaemon(path, lambda: FifoSource(fifo)).open()
        assert info.value.errno == errno.EADDRINUSE
        assert time.monotonic() - started < 5
    finally:
        close_quietly(listener, *pending)


def test_a_half_closed_subscriber_keeps_receiving(tmp_path: Path, fifo: Path) -> None:
    """shutdown(SHUT_WR) after subscribing is not a disconnect: events still arrive until the client closes."""
    run = start_daemon(tmp_path / "p.sock", fifo)
    try:
        half = raw_client(run.path, LOW)
        whole = raw_client(run.path, LOW)
        half.shutdown(socket.SHUT_WR)
        time.sleep(0.2)  # let the daemon see the EOF
        run.inject("medium\n")
        assert recv_levels(half, 1) == [MEDIUM]
        run.inject("oom\n")
        assert recv_levels(half, 1) == [OOM] and recv_levels(whole, 2) == [MEDIUM, OOM]
        assert run.daemon.clients == 2
        half.close()
        wait_for(lambda: run.daemon.clients == 1)
        close_quietly(whole)
    finally:
        assert run.stop() == 0


def test_one_user_cannot_take_every_slot(tmp_path: Path, fifo: Path) -> None:
    """Beyond max_clients_per_uid the same user's connections are closed at once; the others keep theirs."""
    run = start_daemon(tmp_path / "p.sock", fifo, max_clients=10, max_clients_per_uid=2)
    try:
        first, second = raw_client(run.path), raw_client(run.path)
        third = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        third.connect(str(run.path))
        assert is_closed(third)
        assert run.daemon.stats.refused_uid == 1 and run.daemon.clients == 2
        run.inject("low\n")
        assert recv_levels(first, 1) == recv_levels(second, 1) == [LOW]
        first.close()
        wait_for(lambda: run.daemon.clients == 1)
        fourth = raw_client(run.path)  # a slot freed up
        close_quietly(second, third, fourth)
    finally:
        assert run.stop() == 0


def test_the_default_per_user_limit_is_an_eighth_of_max_clients(tmp_path: Path, fifo: Path) -> None:
    """Without --max-clients-per-uid, one user gets max_clients // 8 (at least 1)."""
    assert PressureDaemon(tmp_path / "a", lambda: FifoSource(fifo), max_clients=1024).max_clients_per_uid == 128
    assert PressureDaemon(tmp_path / "b", lambda: FifoSource(fifo), max_clients=3).max_clients_per_uid == 1


_EMFILE_DAEMON = """
import os, sys, threading
from pathlib import Path
from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.fifo import FifoSource
import logging
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
daemon = PressureDaemon(Path(sys.argv[1]), lambda: FifoSource(Path(sys.argv[2])), max_clients=8).open()
fill = []
try:
    while True:
        fill.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
def free():
    for fd in fill[:16]:
        os.close(fd)
threading.Timer(float(sys.argv[3]), free).start()
threading.Timer(float(sys.argv[3]) + 1.0, daemon.request_stop).start()
print("full", flush=True)
sys.exit(daemon.serve())
"""


def test_out_of_descriptors_backs_off_and_says_so_once(tmp_path: Path, fifo: Path) -> None:
    """EMFILE on accept: one log line, no busy loop (little CPU for 1.5 s), and the waiting client is served
    once descriptors are free again."""
    path = tmp_path / "p.sock"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, "-c", _EMFILE_DAEMON, str(path), str(fifo), "1.5"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "full"
            client = raw_client(path)  # waits in the backlog until the daemon has a descriptor for it
            close_quietly(client)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert err.count("cannot accept connections") == 1 and err.count("accepting connections again") == 1, err
    assert usage.ru_utime + usage.ru_stime < 1.0  # a busy loop would burn the whole 1.5 s


_LIMIT_DAEMON = """
import resource, sys
from pathlib import Path
from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.fifo import FifoSource
import logging
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[3]), int(sys.argv[4])))
daemon = PressureDaemon(Path(sys.argv[1]), lambda: FifoSource(Path(sys.argv[2])), max_clients=1024).open()
print(daemon.max_clients, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
daemon.close()
"""


@pytest.mark.parametrize(
    ("soft", "hard", "clients", "limit"), [(100, 5000, 1024, 1024 + FD_RESERVE), (100, 200, 136, 200)]
)
def test_max_clients_stays_below_the_descriptor_limit(
    tmp_path: Path, fifo: Path, soft: int, hard: int, clients: int, limit: int
) -> None:
    """The soft RLIMIT_NOFILE is raised for max_clients; if the hard limit is too low, max_clients is lowered."""
    if hard > resource.getrlimit(resource.RLIMIT_NOFILE)[1]:
        pytest.skip("the hard descriptor limit here is lower than the test's")
    proc = subprocess.run(
        [sys.executable, "-c", _LIMIT_DAEMON, str(tmp_path / "p.sock"), str(fifo), str(soft), str(hard)],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(clients), str(limit)]
    assert ("max_clients lowered" in proc.stderr) == (clients < 1024)


def test_watch_with_the_daemon_backend_says_why_it_ended(
    tmp_path: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the daemon goes away and does not come back, watch exits 1 with the reason on one line (typer's
    EPIPE handler used to swallow it)."""
    path = tmp_path / "p.sock"
    run = start_daemon(path, fifo)
    stopper = threading.Timer(0.5, run.stop)
    stopper.start()
    try:
        rc = main(
            [
                "pressure", "watch", "--backend", "daemon", "--json", "--duration", "20s",
                "--set", f"socket_path={path}", "--set", "reconnect_timeout_ms=300",
            ]
        )  # fmt: skip
    finally:
        stopper.join()
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("memsched: error: ") and "did not come back" in last, err


def test_a_burst_in_one_wake_up_reaches_a_reading_client_whole(tmp_path: Path, fifo: Path) -> None:
    """Three records in one wake-up (memcg v1 signals every level's listener at once) are three records for a
    client that keeps up; coalescing is for clients whose socket buffer is full."""
    run = start_daemon(tmp_path / "p.sock", fifo)
    try:
        client = raw_client(run.path, LOW)
        time.sleep(0.2)
        run.inject("low\nmedium\noom\n")
        assert recv_levels(client, 3) == [LOW, MEDIUM, OOM]
        close_quietly(client)
    finally:
        assert run.stop() == 0
