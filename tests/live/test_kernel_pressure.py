"""Memory-pressure notification against the running kernel: every backend on real pressure in a small memory
cgroup, the daemon, the CLI, and the cgroup disappearing under a watcher.

Each test gets a fresh child of the v1 memory hierarchy (64 MiB, plus a v2 twin for PSI), drives real
page-cache or anonymous pressure from short-lived children that move themselves in (never the pytest
process), and removes the cgroup afterwards — killing what is left inside — even when the test failed.
Expectations are ranges ("at least one LOW window while page cache is reclaimed", "an OOM-level event before
the OOM kill"), with generous timeouts.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memsched.errors import UnsupportedError
from memsched.live.capabilities import capabilities, psi_privileged
from memsched.live.cgroups import MemcgV1Child, cgroup_mounts
from memsched.live.pressure import PressureMonitor, PressureOptions, SourceGoneError, open_monitor, vmpressure_fd
from memsched.live.pressure.backends import open_backend
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.load import anon_allocator, page_cache_writer, syncing_writer
from memsched.live.pressure.psi import PsiSource
from memsched.uapi.pressure import PsiTrigger, VmpressureConfig, VmpressureLevel

pytestmark = pytest.mark.live

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM
MIB = 1 << 20
LIMIT = 64 * MIB
_names = itertools.count()


@pytest.fixture
def memcg(tmp_path: Path) -> Iterator[MemcgV1Child]:
    """A 64 MiB v1 memcg (and its v2 twin when the unified hierarchy is mounted), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating memory cgroups needs root")
    mounts = cgroup_mounts()
    if mounts.v1_memory is None:
        pytest.skip("the cgroup v1 memory controller is not mounted (CONFIG_MEMCG_V1=n or a v2-only system)")
    name = f"memsched-test-{os.getpid()}-{next(_names)}"
    cg = MemcgV1Child(name, limit_bytes=LIMIT, v2=mounts.v2 is not None)
    with cg:
        yield cg
    assert not cg.path.exists(), "the test cgroup was left behind"
    assert cg.v2_path is None or not cg.v2_path.exists()


def spec(cg: MemcgV1Child) -> str:
    """The cgroup as a path inside each hierarchy (the same name exists in v1 memory and v2)."""
    return "/" + cg.path.name


def wait_records(
    mon: PressureMonitor, pred: Callable[[list[VmpressureLevel]], bool], timeout: float = 20.0
) -> list[VmpressureLevel]:
    deadline = time.monotonic() + timeout
    while True:
        levels = [r.level for r in mon.recent()]
        if pred(levels) or time.monotonic() > deadline:
            return levels
        time.sleep(0.05)


def run(cg: MemcgV1Child, argv: list[str], timeout: float = 60.0) -> int:
    return cg.run(argv).wait(timeout)


def test_memcg_v1_backend_reports_kernel_levels(memcg: MemcgV1Child, tmp_path: Path) -> None:
    """Page-cache reclaim gives LOW windows; anonymous memory without swap gives OOM (critical) before the kill."""
    with open_monitor(backend="memcg-v1", cgroup=spec(memcg)) as mon:
        assert mon.choice.name == "memcg-v1"
        assert run(memcg, page_cache_writer(tmp_path / "cache", 4 * LIMIT)) == 0
        levels = wait_records(mon, lambda lv: LOW in lv)
        assert LOW in levels and len(levels) >= 3
        assert mon.file.read_event(timeout=20).level in (LOW, MEDIUM, OOM)
        (tmp_path / "cache").unlink()
        run(memcg, anon_allocator(3 * LIMIT))
        levels = wait_records(mon, lambda lv: OOM in lv)
        assert OOM in levels
        assert all(r.details["mode"] == "default" for r in mon.recent())


def test_reclaim_index_backend_tracks_real_reclaim(memcg: MemcgV1Child, tmp_path: Path) -> None:
    """The user-space index sees page-cache reclaim (LOW windows) and the no-swap OOM (by its evidence)."""
    with open_monitor(backend="reclaim-index", cgroup=spec(memcg)) as mon:
        assert run(memcg, page_cache_writer(tmp_path / "cache", 4 * LIMIT)) == 0
        levels = wait_records(mon, lambda lv: LOW in lv)
        assert LOW in levels
        windows = [r for r in mon.recent() if r.details["scanned"]]
        assert all(int(str(r.details["scanned"])) >= 256 for r in windows)
        (tmp_path / "cache").unlink()
        rc = run(memcg, anon_allocator(3 * LIMIT))
        levels = wait_records(mon, lambda lv: OOM in lv)
        assert OOM in levels, f"no OOM-level window (allocator exit status {rc})"
        # The first OOM-level window may come from the index alone (nothing reclaimed) before the kill; the
        # evidence of the kill itself arrives with the monitor's next sample, which may lag on a loaded machine.
        deadline = time.monotonic() + 20.0
        while True:
            oom = [r for r in mon.recent() if r.level == OOM and r.details["evidence"]]
            if oom or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert oom, f"no OOM-level window with evidence (allocator exit status {rc})"
        assert any("memory.failcnt" in e or "oom" in e for r in oom for e in r.details["evidence"])  # type: ignore[attr-defined]


def test_psi_backend_fires_on_stall_in_the_cgroup(memcg: MemcgV1Child, tmp_path: Path) -> None:
    """A syncing writer stalls on memory in the cgroup; the 2 s-window triggers fire at LOW or above."""
    if memcg.v2_path is None:
        pytest.skip("no cgroup v2 hierarchy: no per-cgroup memory.pressure")
    caps = capabilities()
    if not caps.psi_triggers.available:
        pytest.skip(f"PSI triggers unavailable: {caps.psi_triggers.reason}")
    with open_monitor(backend="psi", cgroup=spec(memcg)) as mon:
        assert mon.choice.name == "psi"
        child = memcg.run(syncing_writer(tmp_path / "sync", duration_s=8.0))
        levels = wait_records(mon, lambda lv: len(lv) > 0, timeout=15)
        child.kill()
        child.wait(60)
        assert levels and min(levels) >= LOW
        for r in mon.recent():
            kind, threshold_us, window_us = str(r.details["trigger"]).split()
            assert kind in ("some", "full") and window_us == "2000000"
            assert int(str(r.details["growth_us"])) >= int(threshold_us)  # spurious events are dropped


def test_psi_trigger_rules_hold_on_this_kernel() -> None:
    """The NUL is required, one trigger per descriptor, and unprivileged windows must be 2 s multiples."""
    caps = capabilities()
    if not caps.psi_triggers.available:
        pytest.skip(f"PSI triggers unavailable: {caps.psi_triggers.reason}")
    path = Path("/proc/pressure/memory")
    src = PsiSource(path, {LOW: PsiTrigger("some", 150_000, 2_000_000)}, origin="test", is_cgroup=False)
    src.close()
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        if not psi_privileged():
            with pytest.raises(OSError) as e:
                os.write(fd, b"some 150000 2000000")  # no NUL: parsed as a 200 ms window
            assert e.value.errno == errno.EINVAL
            with pytest.raises(OSError) as e:
                os.write(fd, PsiTrigger("some", 150_000, 1_000_000).encode())
            assert e.value.errno == errno.EINVAL
        os.write(fd, PsiTrigger("some", 150_000, 2_000_000).encode())
        with pytest.raises(OSError) as e:
            os.write(fd, PsiTrigger("some", 150_000, 2_000_000).encode())
        assert e.value.errno == errno.EBUSY
    finally:
        os.close(fd)


def test_daemon_fans_out_kernel_events(memcg: MemcgV1Child, tmp_path: Path) -> None:
    """A daemon owning the memcg registration delivers the OOM level to a subscriber over its socket."""
    path = tmp_path / "p.sock"
    ctx = BackendContext(cgroup=spec(memcg))
    daemon = PressureDaemon(path, lambda: open_backend("memcg-v1", ctx)[0]).open()
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    try:
        opts = PressureOptions(socket_path=str(path))
        with vmpressure_fd(VmpressureConfig(threshold=OOM), backend="daemon", options=opts) as f:
            deadline = time.monotonic() + 10
            while not any(s.config for s in daemon.subscribers()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            run(memcg, anon_allocator(3 * LIMIT))
            assert f.read_event(timeout=20).level == OOM
    finally:
        daemon.request_stop()
        thread.join(30)
        daemon.close()
    assert not thread.is_alive() and not path.exists()


@pytest.mark.parametrize("backend", ["memcg-v1", "psi", "reclaim-index"])
def test_cgroup_removed_while_watching_ends_the_stream(memcg: MemcgV1Child, backend: str) -> None:
    """Removing the watched cgroup is a clean end-of-stream error for every backend, never a hang."""
    if backend == "psi" and memcg.v2_path is None:
        pytest.skip("no cgroup v2 hierarchy: no per-cgroup memory.pressure")
    with vmpressure_fd(backend=backend, cgroup=spec(memcg)) as f:
        memcg.remove()
        with pytest.raises(SourceGoneError) as e:
            while True:  # an event already pending (the kernel's removal signal) is read first
                f.read_event(timeout=20)
        assert "removed" in str(e.value) or "gone" in str(e.value)


def test_watch_json_streams_one_object_per_event(memcg: MemcgV1Child) -> None:
    """memsched pressure watch --json prints JSON Lines for real events and says which backend on stderr."""
    argv = [sys.executable, "-m", "memsched", "pressure", "watch", "--json", "--backend", "memcg-v1"]
    argv += ["--cgroup", spec(memcg), "--level", "oom", "--duration", "4s"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        first = proc.stderr.readline()  # the backend report comes before any event
        assert first.startswith("memsched: backend memcg-v1:"), first
        run(memcg, anon_allocator(3 * LIMIT))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events and all(e["level"] == "oom" and e["backend"] == "memcg-v1" for e in events)
    assert {"time", "level", "backend", "source"} <= events[0].keys()
    assert events[0]["source"]["kernel_level"] == "critical"


def test_auto_prefers_the_kernels_own_levels_here(memcg: MemcgV1Child) -> None:
    """As root with memcg v1, auto picks memcg-v1 and says why each other backend was not used."""
    with open_monitor(backend="auto", cgroup=spec(memcg)) as mon:
        others = dict(mon.choice.others)
    assert mon.choice.name == "memcg-v1"
    assert set(others) == {"psi", "reclaim-index", "fifo", "daemon", "dbus"}
    assert "takes no --cgroup" in others["daemon"] and "never chosen automatically" in others["fifo"]
    assert "never chosen automatically" in others["dbus"]


def test_registration_on_a_missing_cgroup_is_refused(memcg: MemcgV1Child) -> None:
    """A cgroup that does not exist is an error naming it, for the kernel-registration backend."""
    with pytest.raises(UnsupportedError, match=r"-nope/memory\.pressure_level does not exist"):
        vmpressure_fd(backend="memcg-v1", cgroup=spec(memcg) + "-nope")


def test_memcg_v1_modes_follow_the_kernels_propagation(memcg: MemcgV1Child) -> None:
    """Pressure in a child memcg: a parent listener in 'local' mode stays silent, 'hierarchy' hears it."""
    inner = memcg.child("inner", limit_bytes=32 * MIB)
    parent = spec(memcg)
    local = open_monitor(backend="memcg-v1", cgroup=parent, options=PressureOptions(memcg_mode="local"))
    hier = open_monitor(backend="memcg-v1", cgroup=parent, options=PressureOptions(memcg_mode="hierarchy"))
    with local, hier:
        assert memcg.run_in(inner, anon_allocator(4 * LIMIT)).wait(60) != 0  # OOM-killed in the child
        levels = wait_records(hier, lambda lv: OOM in lv)
        assert OOM in levels
        assert local.recent() == []
        assert {r.details["mode"] for r in hier.recent()} == {"hierarchy"}


def test_an_unprivileged_process_gets_psi_with_two_second_windows() -> None:
    """As 'nobody', auto cannot register on memcg v1 and picks PSI triggers, within the 2 s window rule."""
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    caps = capabilities()
    if not caps.psi_triggers.available:
        pytest.skip(f"PSI triggers unavailable: {caps.psi_triggers.reason}")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops privileges and reports the choice through the pipe
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            opts = PressureOptions(socket_path="/nonexistent/memsched.sock")
            with open_monitor(backend="auto", options=opts) as mon:
                doc = mon.choice.to_dict()
            os.write(w, json.dumps(doc).encode())
            code = 0
        except BaseException as e:
            os.write(w, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    doc = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0, doc
    assert doc["backend"] == "psi" and "unprivileged, 2 s windows" in doc["reason"]
    assert "not writable by this process" in doc["others"]["memcg-v1"]
