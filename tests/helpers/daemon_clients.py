"""A pressure daemon on a FIFO source in a thread, and raw protocol clients, for the daemon's tests."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.fifo import FifoSource
from memsched.live.pressure.protocol import HELLO_SIZE, Hello
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent, VmpressureLevel


@dataclass
class Running:
    daemon: PressureDaemon
    path: Path
    fifo: Path
    thread: threading.Thread
    status: list[int]

    def inject(self, text: str) -> None:
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def stop(self) -> int:
        self.daemon.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the daemon did not stop"
        self.daemon.close()
        return self.status[0]


def start_daemon(path: Path, fifo: Path, **kw: object) -> Running:
    """Open a daemon on ``path`` over the FIFO ``fifo`` and serve it on a thread."""
    daemon = PressureDaemon(path, lambda: FifoSource(fifo), **kw).open()  # type: ignore[arg-type]
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(daemon.serve()), daemon=True)
    thread.start()
    return Running(daemon, path, fifo, thread, status)


def raw_client(
    path: Path, threshold: VmpressureLevel = VmpressureLevel.LOW, *, subscribe: bool = True
) -> socket.socket:
    """Connect, read the hello, subscribe at ``threshold``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(path))
    hello = b""
    while len(hello) < HELLO_SIZE:
        chunk = s.recv(HELLO_SIZE - len(hello))
        assert chunk, "the daemon closed the connection during the hello"
        hello += chunk
    assert Hello.unpack(hello).backend == "fifo"  # start_daemon serves a FIFO source
    if subscribe:
        s.sendall(VmpressureConfig(threshold=threshold).pack())
    return s


def recv_levels(s: socket.socket, n: int) -> list[VmpressureLevel]:
    buf = b""
    while len(buf) < 4 * n:
        chunk = s.recv(4 * n - len(buf))
        assert chunk, "the daemon closed the connection"
        buf += chunk
    return [VmpressureEvent.unpack(buf[i : i + 4]).level for i in range(0, len(buf), 4)]


def is_closed(s: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the daemon closed this connection (EOF or a reset) within ``timeout``."""
    s.settimeout(timeout)
    try:
        return s.recv(64) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def close_quietly(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
