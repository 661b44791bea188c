"""vmpressure_fd() end to end through the fifo backend (no kernel pressure needed): file semantics, asyncio,
cleanup of threads and descriptors, and the end-of-stream error."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memsched.errors import ConfigError, UnknownNameError, UnsupportedError
from memsched.live import PressureOptions, pressure_events, vmpressure_fd
from memsched.live.pressure import FileClosedError, SourceGoneError, open_monitor
from memsched.live.pressure.fifo import FOLLOW_INTERVAL_NS, parse_tokens
from memsched.live.roots import LiveRoots
from memsched.pressure.fd import VmpressureFile
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent, VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pressure.fifo"
    os.mkfifo(path)
    yield path


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _opts(path: Path, **kw: object) -> PressureOptions:
    return PressureOptions(fifo_path=str(path), **kw)  # type: ignore[arg-type]


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("memsched-pressure")}


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Measure descriptors with nothing else opening or closing any: earlier tests' monitor threads have
    finished and no garbage collection (finalizers close descriptors) runs in between."""
    for t in _threads():
        t.join(10)
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_tokens_map_to_levels_and_anything_else_to_the_default() -> None:
    """Level names, mainline's 'critical', constants and VMPRESSURE_* names; other tokens use the default."""
    levels = parse_tokens(b"low MEDIUM critical 1073741824 VMPRESSURE_LOW x\n", MEDIUM)
    assert levels == [LOW, MEDIUM, OOM, OOM, LOW, MEDIUM]
    assert parse_tokens(b"  \n", LOW) == []


def test_returns_the_simulators_file_type_and_delivers_levels(fifo: Path) -> None:
    """The live fd is the pure layer's VmpressureFile; a written level is read back as the 4-byte event."""
    with vmpressure_fd(backend="fifo", options=_opts(fifo)) as f:
        assert type(f) is VmpressureFile and f.name == "[vmpressure:fifo]"
        _write(fifo, "medium\n")
        assert f.read_event(timeout=10) == VmpressureEvent(MEDIUM)
        _write(fifo, "oom\n")
        assert f.read(4) == VmpressureEvent(OOM).pack()  # the blocking 4-byte read


def test_threshold_filters_and_pending_events_coalesce(fifo: Path) -> None:
    """A MEDIUM watcher ignores LOW; events written before a read coalesce into one, reading the latest."""
    with vmpressure_fd(VmpressureConfig(threshold=MEDIUM), backend="fifo", options=_opts(fifo)) as f:
        _write(fifo, "low\n")
        _write(fifo, "medium\n")
        assert f.read_event(timeout=10).level == MEDIUM
        _write(fifo, "oom medium oom\n")
        deadline = time.monotonic() + 10
        while f.signalled < 2 or f.coalesced < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert f.read_event_nowait().level == OOM
        with pytest.raises(BlockingIOError):
            f.read_event_nowait()
        assert f.filtered >= 1


def test_close_stops_the_thread_and_releases_every_descriptor(fifo: Path) -> None:
    """After close() the monitor thread is gone and every descriptor it opened is closed."""
    with _quiet():
        before_fds, before_threads = _fds(), _threads()
        f = vmpressure_fd(backend="fifo", options=_opts(fifo))
        mine, opened = _threads() - before_threads, _fds() - before_fds
    assert mine and opened
    f.close()
    assert not any(t.is_alive() for t in mine)
    assert not opened & _fds()


def test_a_dropped_file_is_cleaned_up_by_the_garbage_collector(fifo: Path) -> None:
    """Dropping the last reference stops the monitor and closes its descriptors."""
    with _quiet():
        before_fds, before_threads = _fds(), _threads()
        f = vmpressure_fd(backend="fifo", options=_opts(fifo))
        mine, opened = _threads() - before_threads, _fds() - before_fds
    assert mine and opened
    del f
    gc.collect()
    for t in mine:
        t.join(10)
        assert not t.is_alive(), "the monitor thread outlived its file"
    assert not opened & _fds()


def test_interpreter_exit_with_an_open_file_stops_cleanly(fifo: Path) -> None:
    """A program that never closes its file still exits at once, with status 0 and nothing printed."""
    code = (
        "from memsched.live import vmpressure_fd, PressureOptions\n"
        f"f = vmpressure_fd(backend='fifo', options=PressureOptions(fifo_path={str(fifo)!r}))\n"
        "print('open', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout == "open\n" and proc.stderr == ""


def test_async_iteration_yields_events_and_the_context_closes(fifo: Path) -> None:
    """async for over pressure_events() yields VmpressureEvents; leaving async with closes the file."""

    async def main() -> list[VmpressureLevel]:
        got: list[VmpressureLevel] = []
        async with pressure_events(backend="fifo", options=_opts(fifo)) as events:
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, _write, fifo, "low\n")
            async for event in events:
                got.append(event.level)
                if event.level == LOW:
                    loop.call_later(0.05, _write, fifo, "oom\n")
                else:
                    break
            assert not events.file.closed
        assert events.file.closed
        return got

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [LOW, OOM]


def test_regular_file_is_followed_and_its_deletion_ends_the_stream(tmp_path: Path) -> None:
    """Appended tokens become events (old content is skipped); deleting the file is a clean end of stream."""
    path = tmp_path / "events.txt"
    path.write_text("oom\n")  # before we start: not an event
    with vmpressure_fd(backend="fifo", options=_opts(path)) as f:
        with path.open("a") as w:
            w.write("low\n")
        assert f.read_event(timeout=10).level == LOW
        path.unlink()
        with pytest.raises(SourceGoneError, match="was deleted"):
            f.read_event(timeout=10 + FOLLOW_INTERVAL_NS / 1e9)


def test_socket_watch_ends_with_a_clear_error_when_the_peer_closes(tmp_path: Path) -> None:
    """A socket as the watch: data are events, the peer closing is an end-of-stream error, not a hang."""
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        with vmpressure_fd(backend="fifo", options=_opts(path)) as f:
            conn, _ = server.accept()
            conn.sendall(b"critical\n")
            assert f.read_event(timeout=10).level == OOM
            conn.close()
            with pytest.raises(SourceGoneError, match="peer closed"):
                f.read_event(timeout=10)
    finally:
        server.close()


def test_monitor_keeps_recent_records_with_details(fifo: Path) -> None:
    """open_monitor() exposes the choice, the source and the records (all levels, with details)."""
    with open_monitor(VmpressureConfig(threshold=OOM), backend="fifo", options=_opts(fifo)) as mon:
        _write(fifo, "low x\n")
        deadline = time.monotonic() + 10
        while len(mon.recent()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert [r.level for r in mon.recent()] == [LOW, MEDIUM]
        assert mon.recent()[0].details["path"] == str(fifo)
        assert mon.choice.name == "fifo" and "events written to" in mon.choice.reason
        assert not mon.file.pending  # below the file's threshold


def test_bad_requests_are_refused_with_reasons(tmp_path: Path) -> None:
    """Unknown backend names, a fifo backend without a path or with a missing path: clear errors."""
    with pytest.raises(UnknownNameError, match="backend"):
        vmpressure_fd(backend="vmevent")
    with pytest.raises(UnsupportedError, match="fifo_path"):
        vmpressure_fd(backend="fifo")
    with pytest.raises(UnsupportedError, match="does not exist"):
        vmpressure_fd(backend="fifo", options=_opts(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="reclaim_interval_ms"):
        PressureOptions(reclaim_interval_ms=0)
    with pytest.raises(ConfigError, match="memcg_mode"):
        PressureOptions(memcg_mode="cascade")


def test_close_from_another_thread_wakes_the_reader_and_releases_everything(fifo: Path) -> None:
    """A service that shuts down by closing its file from another thread gets its blocked reader back (with
    FileClosedError), and the monitor thread and every descriptor are gone afterwards."""
    with _quiet():
        before_fds, before_threads = _fds(), _threads()
        f = vmpressure_fd(backend="fifo", options=_opts(fifo))
        mine = _threads() - before_threads
    caught: list[BaseException] = []

    def reader() -> None:
        try:
            f.read_event()
        except BaseException as e:
            caught.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.2)  # let it block in select()
    f.close()
    t.join(timeout=10)
    assert not t.is_alive(), "the reader stayed blocked after close()"
    assert len(caught) == 1 and isinstance(caught[0], FileClosedError)
    for m in mine:
        m.join(10)
        assert not m.is_alive()
    assert _fds() <= before_fds


def test_async_iteration_ends_when_another_task_closes_the_events(fifo: Path) -> None:
    """`async for` over pressure_events() stops (StopAsyncIteration) when another task closes it."""

    async def main() -> list[VmpressureLevel]:
        got: list[VmpressureLevel] = []
        events = pressure_events(backend="fifo", options=_opts(fifo))

        async def consume() -> None:
            async for event in events:
                got.append(event.level)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        events.close()
        await asyncio.wait_for(task, 10)  # ends by itself: no cancel, no error
        return got

    with _quiet():
        before_fds, before_threads = _fds(), _threads()
    assert asyncio.run(main()) == []
    for m in _threads() - before_threads:
        m.join(10)
        assert not m.is_alive()
    assert _fds() <= before_fds


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "allowed"),
    [
        (("medium",), {}, "config", "must be a VmpressureConfig"),
        ((VmpressureLevel.MEDIUM,), {}, "config", "must be a VmpressureConfig"),
        ((), {"options": "x"}, "options", "must be a PressureOptions or None"),
        ((), {"cgroup": 123}, "cgroup", "must be a path"),
        ((), {"cgroup": b"/app"}, "cgroup", "must be a path"),
        ((), {"roots": "/"}, "roots", "must be a LiveRoots or None"),
        ((), {"environ": ["A=1"]}, "environ", "must be a mapping"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_at_the_call(
    args: tuple[object, ...], kwargs: dict[str, object], field: str, allowed: str
) -> None:
    """A level where the config goes, a string for the options, a number for the cgroup...: a ConfigError
    naming the argument, the value and what is allowed, before any backend is opened."""
    with _quiet():
        before_fds, before_threads = _fds(), _threads()
        with pytest.raises(ConfigError, match=f"^'{field}' {allowed}") as exc:
            vmpressure_fd(*args, **kwargs)  # type: ignore[arg-type]
        assert exc.value.field == field
        assert _fds() == before_fds and _threads() == before_threads


def test_a_pathlike_cgroup_is_accepted(tmp_path: Path) -> None:
    """cgroup takes os.PathLike as well as str (the type check refuses only what is not a path)."""
    with pytest.raises(UnsupportedError):  # a path, but no cgroup: refused by the backends, not by the type check
        vmpressure_fd(backend="memcg-v1", cgroup=tmp_path / "none", roots=LiveRoots(tmp_path, tmp_path))
