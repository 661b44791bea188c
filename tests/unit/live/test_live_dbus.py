"""The low-memory-monitor D-Bus vocabulary without a bus: the level mapping both ways, bus addresses, the
signal gate, the dbus backend's place among the backends, and the command's refusals of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsched.cli import main
from memsched.errors import ConfigError
from memsched.live.pressure import PressureOptions
from memsched.live.pressure.backends import AUTO_ORDER, BACKENDS, check_backend
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.dbus import (
    BUS_NAME,
    INTERFACE,
    OBJECT_PATH,
    SIGNAL,
    SIGNATURE,
    SYSTEM_BUS_DEFAULT,
    SignalGate,
    level_from_lmm,
    lmm_level,
    resolve_bus,
)
from memsched.uapi.pressure import VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


def test_interface_names_are_low_memory_monitors() -> None:
    """Name, interface, path, member and signature are exactly low-memory-monitor's (GLib matches them)."""
    assert BUS_NAME == INTERFACE == "org.freedesktop.LowMemoryMonitor"
    assert OBJECT_PATH == "/org/freedesktop/LowMemoryMonitor"
    assert (SIGNAL, SIGNATURE) == ("LowMemoryWarning", "y")


def test_levels_map_onto_glibs_warning_levels() -> None:
    """LOW, MEDIUM and OOM are sent as GMemoryMonitorWarningLevel LOW 50, MEDIUM 100, CRITICAL 255."""
    assert [lmm_level(lv) for lv in (LOW, MEDIUM, OOM)] == [50, 100, 255]


@pytest.mark.parametrize(
    ("byte", "level"), [(0, LOW), (49, LOW), (50, LOW), (99, LOW), (100, MEDIUM), (254, MEDIUM), (255, OOM)]
)
def test_received_bytes_are_read_as_ranges(byte: int, level: VmpressureLevel) -> None:
    """A received byte is a level by GLib's ranges, so a future value between the known ones still maps."""
    assert level_from_lmm(byte) is level


def test_round_trip_and_out_of_range() -> None:
    """Every level survives the trip to a byte and back; a value that is not a byte is refused."""
    for lv in (LOW, MEDIUM, OOM):
        assert level_from_lmm(lmm_level(lv)) is lv
    with pytest.raises(ValueError, match="byte"):
        level_from_lmm(256)


def test_bus_addresses() -> None:
    """system and session follow the environment (then the standard defaults); an address is taken as is."""
    assert resolve_bus("system", {}).address == SYSTEM_BUS_DEFAULT
    assert resolve_bus("system", {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/x"}).address == "unix:path=/x"
    assert resolve_bus("session", {"DBUS_SESSION_BUS_ADDRESS": "unix:abstract=/y"}).address == "unix:abstract=/y"
    assert resolve_bus("session", {"XDG_RUNTIME_DIR": "/run/user/7"}).address == "unix:path=/run/user/7/bus"
    custom = resolve_bus("unix:path=/tmp/a%20b/bus,guid=1", {})
    assert str(custom) == "bus at unix:path=/tmp/a%20b/bus,guid=1"
    assert str(custom.unix_path()) == "/tmp/a b/bus"
    assert resolve_bus("unix:abstract=/z", {}).unix_path() is None
    assert str(resolve_bus("system", {})) == f"system bus ({SYSTEM_BUS_DEFAULT})"


@pytest.mark.parametrize("spec", ["nonsense", "", ":path=/x", "path=/x"])
def test_bad_bus_is_a_config_error(spec: str) -> None:
    """Anything that is neither system, session nor an address is refused, naming the option."""
    with pytest.raises(ConfigError, match="'--bus' must be system, session or a D-Bus address"):
        resolve_bus(spec, {})


def test_session_without_an_address_is_refused() -> None:
    """The session bus with neither variable set cannot be found, and says so."""
    with pytest.raises(ConfigError, match="DBUS_SESSION_BUS_ADDRESS"):
        resolve_bus("session", {})


def test_gate_without_interval_sends_everything() -> None:
    """The default gate admits every event, whatever the level and however close together."""
    gate = SignalGate(0)
    assert all(gate.admit(lv, 0) for lv in (LOW, LOW, OOM, LOW))


def test_gate_paces_repeats_but_never_an_escalation() -> None:
    """A level repeats only after the interval; a higher level goes at once and also holds the lower ones."""
    gate = SignalGate(1_000)
    assert gate.admit(LOW, 0)
    assert not gate.admit(LOW, 999)
    assert gate.admit(MEDIUM, 999)  # escalation
    assert not gate.admit(LOW, 1_500)  # MEDIUM at 999 still covers LOW
    assert gate.admit(LOW, 2_000)
    assert gate.admit(OOM, 2_001)
    assert not gate.admit(MEDIUM, 2_500)
    assert gate.admit(MEDIUM, 3_001)


def test_dbus_backend_is_on_request_only() -> None:
    """The dbus backend exists but auto never picks it (it could be fed by memsched's own service)."""
    assert "dbus" in BACKENDS and "dbus" not in AUTO_ORDER


def test_dbus_backend_check_says_why_not(tmp_path: Path) -> None:
    """No socket, a cgroup, or a malformed dbus_bus each make the backend unavailable with the reason."""
    missing = BackendContext(options=PressureOptions(dbus_bus=f"unix:path={tmp_path}/none"), environ={})
    cap = check_backend("dbus", missing)
    assert not cap.available and "no bus at" in cap.reason and "socket" in cap.reason
    cap = check_backend("dbus", BackendContext(cgroup="/x", environ={}))
    assert not cap.available and "takes no --cgroup" in cap.reason
    cap = check_backend("dbus", BackendContext(options=PressureOptions(dbus_bus="bogus"), environ={}))
    assert not cap.available and "'dbus_bus' must be" in cap.reason


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["pressure", "dbus", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--bus", "nonsense"), "--bus"),
        (("--level", "severe"), "--level"),
        (("--min-interval", "-1s"), "--min-interval"),
        (("--reconnect-timeout", "soon"), "--reconnect-timeout"),
        (("--bus", "unix:path=/tmp/b", "--backend", "dbus", "--set", "dbus_bus=unix:path=/tmp/b"), "--backend"),
        (("--set", "dbus_bus"), "dbus_bus"),
    ],
)
def test_command_refuses_bad_input(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], field: str) -> None:
    """Bad input gets one line naming the option and exit status 2, before any bus is touched."""
    rc, out, err = _cli(capsys, *args)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and out == ""


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (EOFError(), ": the bus closed the connection"),  # dbus-fast's bare EOFError when the socket closes
        (ConnectionResetError(104, "Connection reset by peer"), ": [Errno 104] Connection reset by peer"),
        (RuntimeError(), ": RuntimeError"),
        (None, ""),
    ],
)
def test_a_lost_bus_is_never_reported_with_an_empty_reason(error: BaseException | None, reason: str) -> None:
    """The service's "lost the connection" line says why (it printed "...: ; reconnecting" for a bare EOFError)."""
    from memsched.live.pressure.dbus_service import LowMemoryMonitorService

    bus = resolve_bus("unix:path=/run/x/bus")
    service = LowMemoryMonitorService(bus, lambda: None)  # type: ignore[arg-type,return-value]
    assert service._lost_message(error) == f"lost the connection to the {bus}{reason}"
