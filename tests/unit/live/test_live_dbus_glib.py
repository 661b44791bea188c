"""``memsched pressure dbus`` against real peers: a private ``dbus-daemon`` from Debian's packages and GLib's own
``GMemoryMonitor`` (PyGObject, Debian's Python) pointed at it. Events are driven through the fifo backend.

Skips, with the reason, where dbus-daemon or PyGObject is missing (.ci/run installs: dbus python3-gi
gir1.2-glib-2.0)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.dbus_bus import GLIB_PYTHON, GlibClient, PrivateBus, glib_client_unavailable
from memsched.live.pressure import PressureOptions, open_monitor
from memsched.live.pressure.dbus import BUS_NAME, OBJECT_PATH
from memsched.uapi.pressure import VmpressureConfig, VmpressureLevel

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "contrib" / "dbus" / "org.freedesktop.LowMemoryMonitor.conf"
BYTE = {"low": 50, "medium": 100, "oom": 255}
LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


@pytest.fixture(scope="module", autouse=True)
def _glib() -> None:
    why = glib_client_unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short path in /tmp: a unix socket path must fit in 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="ms-dbus-"))
    os.mkfifo(d / "fifo")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def bus(workdir: Path) -> Iterator[PrivateBus]:
    with PrivateBus(workdir) as b:
        yield b


class Service:
    """``memsched pressure dbus`` in its own process, fed by the fifo backend."""

    def __init__(self, workdir: Path, address: str, *extra: str, wait: bool = True) -> None:
        self.log = workdir / f"service-{time.monotonic_ns()}.err"
        self._err = self.log.open("wb")
        cmd = [sys.executable, "-m", "memsched", "pressure", "dbus", "--bus", address]
        cmd += ["--backend", "fifo", "--set", f"fifo_path={workdir / 'fifo'}", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._err)
        if wait:
            self.wait_for("LowMemoryWarning levels:")

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.proc.poll() is None or text in self.stderr, f"service ended:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {text!r} from the service:\n{self.stderr}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._err.close()
        return rc


@pytest.fixture
def writer(workdir: Path) -> Iterator[int]:
    fd = os.open(workdir / "fifo", os.O_RDWR)  # RDWR: never blocks, never sees the reader's close
    yield fd
    os.close(fd)


def prime(clients: list[GlibClient], writer: int, token: bytes = b"low\n") -> None:
    """Write an event until every client has heard one (GLib subscribes asynchronously after the name appears),
    then wait for 0.5 s of silence, so every priming event still in flight has arrived before the real ones."""
    deadline = time.monotonic() + 30
    waiting = list(clients)
    while waiting:
        assert time.monotonic() < deadline, "a GLib client never heard the service"
        os.write(writer, token)
        waiting = [c for c in waiting if c.event(0.2) is None]
    while any([c.event(0.5) is not None for c in clients]):  # a list: drain every client in each round
        pass


def send(writer: int, token: str, clients: list[GlibClient]) -> None:
    """One event; every client must hear exactly its mapped level next."""
    os.write(writer, token.encode() + b"\n")
    for c in clients:
        got = c.event(10.0)
        assert got is not None, f"a client did not hear {token}"
        assert got[0] == BYTE[token], f"sent {token}, GLib reported {got[0]}"


def levels(client: GlibClient, n: int) -> list[int | None]:
    """The levels of the client's next ``n`` warnings (None for one that did not come)."""
    return [e[0] if (e := client.event(10.0)) is not None else None for _ in range(n)]


SEQUENCE = ["low", "medium", "oom", "low", "low", "oom", "medium", "medium", "low", "oom", "oom", "low"]


def test_glib_hears_every_event_mapped_in_order_once(bus: PrivateBus, workdir: Path, writer: int) -> None:
    """GLib's own GMemoryMonitorDBus emits low-memory-warning 50/100/255 for LOW/MEDIUM/OOM, in order, once each."""
    service = Service(workdir, bus.address)
    client = GlibClient(bus.address)
    try:
        assert client.implementation == "GMemoryMonitorDBus"
        prime([client], writer)
        for token in SEQUENCE:
            send(writer, token, [client])
        os.write(writer, b"low medium oom\n")  # one read, three records: three signals, ascending
        assert levels(client, 3) == [50, 100, 255]
        assert client.event(1.0) is None, "a signal nobody sent"
    finally:
        client.close()
        rc = service.stop()
    assert rc == 0, service.stderr
    assert f"owning {BUS_NAME} ({OBJECT_PATH})" in service.stderr
    assert "stopped (" in service.stderr


def test_below_level_and_pacing(bus: PrivateBus, workdir: Path, writer: int) -> None:
    """--level medium sends nothing for LOW; --min-interval holds a repeat back (an OOM also holds MEDIUM),
    and lets the level through again once the interval has passed."""
    service = Service(workdir, bus.address, "--level", "medium", "--min-interval", "3s")
    client = GlibClient(bus.address)
    try:
        deadline = time.monotonic() + 30
        while client.event(0.2) is None:  # until GLib hears an OOM that the gate let through
            assert time.monotonic() < deadline
            os.write(writer, b"oom\n")
        heard = time.monotonic()  # the OOM that passed the gate was sent at most this late
        os.write(writer, b"low\nmedium\noom\n")  # LOW below --level; MEDIUM and OOM within 3 s of that OOM
        assert client.event(1.0) is None
        time.sleep(max(0.0, heard + 3.3 - time.monotonic()))
        send(writer, "medium", [client])
    finally:
        client.close()
        assert service.stop() == 0
    assert ", 1 below --level" in service.stderr and " 0 held back" not in service.stderr


def test_a_vanishing_client_costs_nothing(bus: PrivateBus, workdir: Path, writer: int) -> None:
    """A GLib client killed mid-stream (and one stopped dead) leave the service and the other clients unharmed."""
    service = Service(workdir, bus.address)
    clients = [GlibClient(bus.address) for _ in range(3)]
    try:
        prime(clients, writer)
        doomed, frozen, survivor = clients
        send(writer, "medium", clients)
        doomed.kill()
        frozen.proc.send_signal(signal.SIGSTOP)
        for token in SEQUENCE:
            send(writer, token, [survivor])
        assert service.proc.poll() is None
    finally:
        clients[1].proc.send_signal(signal.SIGCONT)
        for c in clients:
            c.close()
        rc = service.stop()
    assert rc == 0, service.stderr


def test_service_survives_a_bus_restart(bus: PrivateBus, workdir: Path, writer: int) -> None:
    """The bus daemon restarts: the service reconnects, owns the name again, and a new GLib client hears it."""
    service = Service(workdir, bus.address, "--reconnect-timeout", "30s")
    try:
        bus.stop()
        service.wait_for("reconnecting")
        os.write(writer, b"oom\n")  # nobody to send it to: counted as dropped
        time.sleep(0.3)
        bus.start()
        service.wait_for("owned again")
        client = GlibClient(bus.address)
        try:
            prime([client], writer)
            for token in SEQUENCE:
                send(writer, token, [client])
        finally:
            client.close()
        assert service.proc.poll() is None
    finally:
        rc = service.stop()
    assert rc == 0, service.stderr
    assert "1 dropped while the bus was away, 1 reconnects" in service.stderr


def test_service_exits_cleanly_when_the_bus_does_not_come_back(bus: PrivateBus, workdir: Path) -> None:
    """With the bus gone past --reconnect-timeout, the service exits 1 with one line saying so."""
    service = Service(workdir, bus.address, "--reconnect-timeout", "1s")
    bus.stop()
    rc = service.proc.wait(30)
    service.stop()
    assert rc == 1
    last = service.stderr.strip().splitlines()[-1]
    assert last.startswith("memsched: error: the bus at ") and "did not come back within 1 s" in last


def test_refuses_a_name_owned_by_another_monitor(bus: PrivateBus, workdir: Path) -> None:
    """A second monitor on the same bus exits 1 and names the owner (unique name, pid and command)."""
    first = Service(workdir, bus.address)
    try:
        second = Service(workdir, bus.address, wait=False)
        rc = second.proc.wait(60)
        second.stop()
        assert first.proc.poll() is None
    finally:
        first.stop()
    assert rc == 1
    line = second.stderr.strip().splitlines()[-1]
    assert f"{BUS_NAME} is already owned" in line and f"(pid {first.proc.pid}, " in line


def test_contrib_policy_lets_root_own_the_name(workdir: Path, writer: int) -> None:
    """Under system-bus rules nobody may own the name; with contrib's policy included, root may, and GLib hears."""
    with PrivateBus(workdir, system_policy=True) as strict:
        denied = Service(workdir, strict.address, wait=False)
        assert denied.proc.wait(60) == 1
        denied.stop()
        assert "does not let this user own" in denied.stderr
    if os.geteuid() != 0:
        pytest.skip("the policy lets root own the name; this test runs as another user")
    with PrivateBus(workdir, system_policy=True, includes=(POLICY,)) as system:
        service = Service(workdir, system.address)
        client = GlibClient(system.address)
        try:
            prime([client], writer)
            send(writer, "oom", [client])
        finally:
            client.close()
            assert service.stop() == 0


def test_watch_backend_dbus_hears_the_service(bus: PrivateBus, workdir: Path, writer: int) -> None:
    """``memsched pressure watch --backend dbus`` hears the service and reports who owns the name."""
    service = Service(workdir, bus.address)
    cmd = [sys.executable, "-m", "memsched", "pressure", "watch", "--backend", "dbus", "--json", "--duration", "20s"]
    watch = subprocess.Popen(
        [*cmd, "--set", f"dbus_bus={bus.address}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None and watch.stdout is not None
        while "watching" not in (line := watch.stderr.readline()):
            assert line, "watch ended before it started"
        assert "(owned by :1." in line and f"(pid {service.proc.pid}, " in line
        for token in ("low", "oom", "medium"):
            os.write(writer, token.encode() + b"\n")
            event = watch.stdout.readline()
            assert f'"level": "{token}"' in event and f'"lmm_level": {BYTE[token]}' in event
    finally:
        watch.terminate()
        watch.communicate(timeout=30)
        service.stop()


EMITTER = """
import sys
from gi.repository import Gio, GLib
conn = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
if sys.argv[1] == "own":
    conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                   GLib.Variant("(su)", ("org.freedesktop.LowMemoryMonitor", 4)), None, 0, -1, None)
print("ready", flush=True)
for line in sys.stdin:
    conn.emit_signal(None, "/org/freedesktop/LowMemoryMonitor", "org.freedesktop.LowMemoryMonitor",
                     "LowMemoryWarning", GLib.Variant("(y)", (int(line),)))
    conn.flush_sync(None)
"""


def _emitter(address: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
    proc = subprocess.Popen(
        [GLIB_PYTHON, "-c", EMITTER, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_dbus_backend_hears_a_glib_monitor_and_only_the_owner(bus: PrivateBus) -> None:
    """Like GLib's client, the dbus backend takes LowMemoryWarning from the name's owner (here a GLib program
    emitting as low-memory-monitor does) and ignores the same signal from any other connection."""
    owner = _emitter(bus.address, "own")
    impostor = _emitter(bus.address, "impostor")
    try:
        with open_monitor(
            VmpressureConfig(threshold=LOW), backend="dbus", options=PressureOptions(dbus_bus=bus.address)
        ) as mon:
            assert f"pid {owner.pid}, python3" in mon.source.description
            assert impostor.stdin is not None and owner.stdin is not None
            for byte, level in ((255, OOM), (50, LOW), (100, MEDIUM), (120, MEDIUM)):
                impostor.stdin.write("255\n" if level is not OOM else "50\n")
                impostor.stdin.flush()
                owner.stdin.write(f"{byte}\n")
                owner.stdin.flush()
                assert mon.file.read_event(timeout=10.0).level is level
            with pytest.raises(TimeoutError):
                mon.file.read_event(timeout=0.5)
            assert mon.source.ignored == 4  # type: ignore[attr-defined]
    finally:
        for p in (owner, impostor):
            p.terminate()
            p.communicate(timeout=30)
