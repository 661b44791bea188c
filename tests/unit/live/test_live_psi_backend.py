"""The psi backend's decisions without the kernel: which file, the level map, the privilege rule, systemd's
MEMORY_PRESSURE_WATCH/WRITE (including a FIFO), and backend selection with reasons."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from helpers.live_fixtures import FIXTURES, tree
from memsched.errors import ConfigError, KernelError, UnsupportedError
from memsched.live.pressure import PressureOptions, vmpressure_fd
from memsched.live.pressure.backends import open_backend
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.fifo import FifoSource
from memsched.live.pressure.options import parse_level, parse_psi_trigger
from memsched.live.pressure.psi import PsiSource, check, open_source, psi_target
from memsched.live.roots import LiveRoots
from memsched.uapi.pressure import PsiTrigger, VmpressureLevel

V1 = tree("pressure-v1-6.18")
V2 = tree("cgroup2-user-6.12")


def test_default_map_is_glibs_unprivileged_triggers() -> None:
    """LOW some 70 ms, MEDIUM some 100 ms, OOM full 100 ms, all per 2 s (usable without CAP_SYS_RESOURCE)."""
    m = PressureOptions().psi_triggers()
    assert m == {
        VmpressureLevel.LOW: PsiTrigger("some", 70_000, 2_000_000),
        VmpressureLevel.MEDIUM: PsiTrigger("some", 100_000, 2_000_000),
        VmpressureLevel.OOM: PsiTrigger("full", 100_000, 2_000_000),
    }
    for trig in m.values():
        trig.check_privilege(False)
        assert trig.encode().endswith(b"\0")


def test_trigger_strings_accept_kernel_units_human_units_and_off() -> None:
    """'some 150000 2000000' == 'some 150ms 2s'; 'off' disables a level; bad specs name the field."""
    assert parse_psi_trigger("some 150ms 2s", field="psi_low") == PsiTrigger("some", 150_000, 2_000_000)
    assert parse_psi_trigger("full 150000 4000000", field="psi_low") == PsiTrigger("full", 150_000, 4_000_000)
    assert parse_psi_trigger("off", field="psi_low") is None
    assert VmpressureLevel.LOW not in PressureOptions(psi_low="off").psi_triggers()
    with pytest.raises(ConfigError, match="psi_medium"):
        PressureOptions(psi_medium="some 3s 2s")
    with pytest.raises(ConfigError, match="psi_oom"):
        PressureOptions(psi_oom="full 100ms")
    with pytest.raises(ConfigError, match="whole number of microseconds"):
        parse_psi_trigger("some 1500ns 2s", field="psi_low")
    assert parse_level("critical") == VmpressureLevel.OOM


def test_unprivileged_one_second_window_is_a_config_error_not_einval() -> None:
    """Without CAP_SYS_RESOURCE a 1 s window is refused before writing, naming the level's setting."""
    ctx = BackendContext(roots=V2, options=PressureOptions(psi_low="some 70ms 1s"), environ={})
    cap = check(ctx)
    assert not cap.available and "psi_low" in cap.reason and "multiple of 2000000" in cap.reason
    with pytest.raises(ConfigError, match="psi_low"):
        open_source(ctx)


def test_levels_below_the_threshold_are_not_armed() -> None:
    """A MEDIUM watcher arms only the MEDIUM and OOM triggers."""
    ctx = BackendContext(roots=V2, threshold=VmpressureLevel.MEDIUM, environ={})
    cap = check(ctx)
    assert cap.available and "low=" not in cap.reason and "medium=some 100000 2000000" in cap.reason


def test_target_is_the_callers_cgroup_or_the_system_file() -> None:
    """In a v2 cgroup: its memory.pressure; in the root cgroup: /proc/pressure/memory; a named cgroup."""
    t = psi_target(BackendContext(roots=V2, environ={}))
    assert t.path.name == "memory.pressure" and "app.scope" in str(t.path) and t.is_cgroup
    t1 = psi_target(BackendContext(roots=V1, environ={}))
    assert t1.path == V1.proc("pressure", "memory") and "system-wide" in t1.origin
    with pytest.raises(KernelError, match="does not exist"):
        psi_target(BackendContext(roots=V2, cgroup="/no/such", environ={}))


def test_systemd_watch_wins_and_dev_null_disables() -> None:
    """$MEMORY_PRESSURE_WATCH is used when no cgroup is named; /dev/null means disabled, with that reason."""
    env = {"MEMORY_PRESSURE_WATCH": "/dev/null"}
    cap = check(BackendContext(roots=V2, environ=env))
    assert not cap.available and "disabled" in cap.reason
    watch = str(V2.sys("fs", "cgroup", "user.slice", "user-1000.slice", "app.scope", "memory.pressure"))
    t = psi_target(BackendContext(roots=V1, environ={"MEMORY_PRESSURE_WATCH": watch}))
    assert str(t.path) == watch and t.origin.startswith("systemd") and t.write_data is None
    named = psi_target(
        BackendContext(
            roots=V2, cgroup="/user.slice/user-1000.slice/app.scope", environ={"MEMORY_PRESSURE_WATCH": watch}
        )
    )
    assert named.origin.startswith("cgroup /user.slice")


def test_systemd_write_is_base64_with_its_nul() -> None:
    """$MEMORY_PRESSURE_WRITE decodes to the exact bytes (systemd encodes the NUL); bad Base64 is refused."""
    data = b"some 123000 2000000\x00"
    env = {"MEMORY_PRESSURE_WATCH": "/x", "MEMORY_PRESSURE_WRITE": base64.b64encode(data).decode()}
    assert psi_target(BackendContext(roots=V2, environ=env)).write_data == data
    with pytest.raises(ConfigError, match="MEMORY_PRESSURE_WRITE"):
        psi_target(BackendContext(roots=V2, environ={"MEMORY_PRESSURE_WATCH": "/x", "MEMORY_PRESSURE_WRITE": "!!"}))


def test_systemd_fifo_watch_writes_the_data_discards_the_echo_and_reads_events(tmp_path: Path) -> None:
    """A FIFO in $MEMORY_PRESSURE_WATCH: the WRITE data is written, not read back as an event; writes are."""
    fifo = tmp_path / "watch"
    os.mkfifo(fifo)
    env = {"MEMORY_PRESSURE_WATCH": str(fifo), "MEMORY_PRESSURE_WRITE": base64.b64encode(b"hello\n").decode()}
    with vmpressure_fd(backend="psi", environ=env, roots=V2) as f:
        assert f.name == "[vmpressure:psi]"
        with pytest.raises(TimeoutError):
            f.read_event(timeout=0.2)  # our own write did not come back as an event
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"x")  # systemd's test writes one byte
        os.close(fd)
        assert f.read_event(timeout=10).level == VmpressureLevel.MEDIUM  # systemd_level
    src = open_source(BackendContext(roots=V2, environ={"MEMORY_PRESSURE_WATCH": str(fifo)}))
    try:
        assert isinstance(src, FifoSource) and src.backend == "psi" and src.kind == "fifo"
    finally:
        src.close()


_PSI_LOOKALIKE = b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


@pytest.mark.parametrize("write", [None, b"some 123000 2000000\x00"])
def test_systemd_watch_on_an_ordinary_file_is_refused_before_writing(write: bytes | None, tmp_path: Path) -> None:
    """A regular file in $MEMORY_PRESSURE_WATCH that is not on procfs/cgroupfs (a saved PSI copy) is a
    ConfigError naming it, and the file is unchanged (the triggers were written into it)."""
    watch = tmp_path / "memory.pressure"
    watch.write_bytes(_PSI_LOOKALIKE)
    env = {"MEMORY_PRESSURE_WATCH": str(watch)}
    if write is not None:
        env["MEMORY_PRESSURE_WRITE"] = base64.b64encode(write).decode()
    with pytest.raises(ConfigError, match=r"'MEMORY_PRESSURE_WATCH' must be a PSI file on procfs or cgroupfs"):
        open_source(BackendContext(roots=V2, environ=env))
    assert watch.read_bytes() == _PSI_LOOKALIKE


def test_systemd_watch_on_the_real_proc_pressure_file_passes_the_file_system_check() -> None:
    """/proc/pressure/memory is on procfs: the check lets it through (the kernel may still refuse a trigger)."""
    real = Path("/proc/pressure/memory")
    if not real.exists():
        pytest.skip("this kernel has no /proc/pressure/memory (PSI off)")
    try:
        src = open_source(BackendContext(roots=V2, environ={"MEMORY_PRESSURE_WATCH": str(real)}))
    except KernelError:
        return  # no permission to write a trigger here: past the file-system check, which is what is tested
    src.close()


def test_systemd_watch_inside_a_copied_fixture_tree_is_armed(tmp_path: Path) -> None:
    """A regular file in a fixture tree given as a root stands in for cgroupfs: systemd's trigger is armed."""
    shutil.copytree(FIXTURES / "cgroup2-user-6.12", tmp_path / "t")
    roots = LiveRoots(proc_root=tmp_path / "t" / "proc", sys_root=tmp_path / "t" / "sys")
    watch = roots.sys("fs", "cgroup", "user.slice", "user-1000.slice", "app.scope", "memory.pressure")
    trigger = b"some 123000 2000000\x00"
    env = {"MEMORY_PRESSURE_WATCH": str(watch), "MEMORY_PRESSURE_WRITE": base64.b64encode(trigger).decode()}
    src = open_source(BackendContext(roots=roots, environ=env))
    try:
        assert isinstance(src, PsiSource) and src.origin.startswith("systemd")
        assert watch.read_bytes().startswith(trigger)  # an ordinary file here: the write lands in the copy
    finally:
        src.close()


def test_auto_explains_every_backend_it_did_not_use(tmp_path: Path) -> None:
    """On the v2 desktop fixture, auto skips memcg-v1 and the daemon with reasons and takes the next one."""
    shutil.copytree(FIXTURES / "cgroup2-user-6.12", tmp_path / "t")
    roots = LiveRoots(proc_root=tmp_path / "t" / "proc", sys_root=tmp_path / "t" / "sys")
    ctx = BackendContext(roots=roots, environ={"MEMSCHED_PRESSURE_SOCKET": str(tmp_path / "nosock")})
    ctx.options = PressureOptions(psi_low="some 70ms 1s")  # unusable unprivileged: psi is skipped too
    source, choice = open_backend("auto", ctx)
    try:
        others = dict(choice.others)
        assert choice.name == "reclaim-index" and "pgscan/pgsteal" in choice.reason
        assert "cgroup v2 has no memory.pressure_level" in others["memcg-v1"]
        assert "no daemon socket" in others["daemon"] and "psi_low" in others["psi"]
        assert "never chosen automatically" in others["fifo"]
        assert "not memcg-v1:" in choice.explain()
    finally:
        source.close()


def test_nothing_available_is_one_error_with_every_reason() -> None:
    """When no backend can serve, UnsupportedError lists each backend's reason."""
    old = tree("x86-5.4-nopsi")
    ctx = BackendContext(roots=old, cgroup="/gone", environ={})
    with pytest.raises(UnsupportedError) as e:
        open_backend("auto", ctx)
    msg = str(e.value)
    assert "memcg-v1:" in msg and "psi:" in msg and "reclaim-index:" in msg and "daemon:" in msg
