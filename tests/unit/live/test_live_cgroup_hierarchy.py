"""A cgroup directory belongs to the hierarchy of the mount it is under: on a hybrid system (v1 memory at
/sys/fs/cgroup/memory, v2 at /sys/fs/cgroup/unified) a v1 memcg also has memory.stat and was taken for v2,
then failed on memory.events (fixture: the development VM's tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.live_fixtures import tree
from memsched.errors import ConfigError, KernelError
from memsched.live import vmpressure_fd
from memsched.live.act import open_subtree
from memsched.live.cgroups import (
    CGROUP2_SUPER_MAGIC,
    CGROUP_SUPER_MAGIC,
    cgroup_mounts,
    check_cgroup_exists,
    fs_type,
    resolve_cgroup_dir,
)
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.psi import check as psi_check
from memsched.live.pressure.reclaim_index import ReclaimIndexSource
from memsched.live.roots import LiveRoots

V1 = tree("pressure-v1-6.18")
V2 = tree("cgroup2-user-6.12")


def test_the_mount_a_directory_is_under_decides_its_hierarchy() -> None:
    """Longest mount point first; a path outside every cgroup mount has none."""
    m = cgroup_mounts(V1)
    job = V1.sys("fs", "cgroup", "memory", "process_api", "job1")
    assert m.mount_of(job) == Path(m.v1_memory).resolve()  # type: ignore[arg-type]
    assert m.mount_of(V1.sys("fs", "cgroup", "unified")) == Path(m.v2).resolve()  # type: ignore[arg-type]
    assert m.mount_of(Path("/nonexistent/x")) is None


def test_a_v1_directory_is_not_taken_for_v2() -> None:
    """resolve_cgroup_dir refuses a directory of another hierarchy; one of its own is taken as is."""
    m = cgroup_mounts(V1)
    job = V1.sys("fs", "cgroup", "memory", "process_api", "job1")
    assert m.v2 is not None and m.v1_memory is not None
    with pytest.raises(KernelError, match="is in the cgroup hierarchy mounted at"):
        resolve_cgroup_dir(job, m.v2, m)
    assert resolve_cgroup_dir(job, m.v1_memory, m) == job


def test_reclaim_index_on_a_hybrid_system_uses_the_v1_directory() -> None:
    """--backend reclaim-index --cgroup <v1 memcg directory> reads it as v1 (failcnt, oom_control), as '/X' does."""
    job = V1.sys("fs", "cgroup", "memory", "process_api", "job1")
    for spec in (str(job), "/process_api/job1"):
        src = ReclaimIndexSource(BackendContext(cgroup=spec, roots=V1))
        try:
            assert src.scope.kind == "cgroup-v1" and src.scope.directory == job
        finally:
            src.close()


def test_psi_says_the_directory_is_not_v2() -> None:
    """The psi backend's reason names the other hierarchy instead of a missing file."""
    job = V1.sys("fs", "cgroup", "memory", "process_api", "job1")
    cap = psi_check(BackendContext(cgroup=str(job), roots=V1))
    assert not cap.available and "mounted at" in cap.reason


def test_a_cgroup_in_no_hierarchy_is_a_user_error() -> None:
    """A --cgroup that exists nowhere is exit 2 (ConfigError), naming the hierarchies searched."""
    with pytest.raises(ConfigError, match="'--cgroup' must be an existing cgroup"):
        check_cgroup_exists("/no-such-cgroup", cgroup_mounts(V2))
    check_cgroup_exists("/user.slice", cgroup_mounts(V2))


# --------------------------------------------------------------------------------------------- containment
#
# review 2, item 2: '--cgroup ../../../../tmp/fakecg' was joined to the hierarchy without resolving '..', and
# an absolute directory in no cgroup mount was taken as is when it held a cgroup.procs, so the memcg-v1
# backend wrote its eventfd registration into an ordinary file and 'pressure act' took a plain directory for
# its subtree. The fake cgroup is the review's: a directory holding the three files the code looks for.

_FAKE_FILES = ("memory.pressure_level", "cgroup.event_control", "cgroup.procs")


def _fake_machine(tmp: Path) -> tuple[LiveRoots, Path]:
    """A fixture tree with the v1 memory and the v2 hierarchy mounted (one cgroup /app in v1), and the fake
    cgroup beside it, outside every mount."""
    (tmp / "proc" / "self").mkdir(parents=True)
    (tmp / "proc" / "self" / "mountinfo").write_text(
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    memory, unified = tmp / "sys" / "fs" / "cgroup" / "memory", tmp / "sys" / "fs" / "cgroup" / "unified"
    for d in (memory, memory / "app", unified):
        d.mkdir(parents=True)
        for name in _FAKE_FILES:
            (d / name).write_text("")
    fake = tmp / "fakecg"
    fake.mkdir()
    for name in _FAKE_FILES:
        (fake / name).write_text("")
    return LiveRoots(proc_root=tmp / "proc", sys_root=tmp / "sys"), fake


def _escapes(fake: Path) -> list[str]:
    """The fake cgroup named relatively with '..' (more than enough to reach /), absolutely, and absolutely
    through the hierarchy with '..'."""
    through_mount = f"{fake.parent}/sys/fs/cgroup/memory/../../../../fakecg"
    return ["../" * 40 + fake.as_posix().lstrip("/"), str(fake), through_mount]


def test_a_cgroup_outside_every_mounted_hierarchy_is_refused(tmp_path: Path) -> None:
    """resolve_cgroup_dir: '..' that leaves the hierarchy, or a directory in no cgroup mount, is ConfigError."""
    roots, fake = _fake_machine(tmp_path)
    m = cgroup_mounts(roots)
    assert m.v1_memory is not None and m.v2 is not None
    for spec in _escapes(fake):
        for h in (m.v1_memory, m.v2):
            with pytest.raises(ConfigError, match=r"'cgroup' must be a cgroup inside a mounted cgroup hierarchy"):
                resolve_cgroup_dir(spec, h, m)
        with pytest.raises(ConfigError, match="'--cgroup'"):
            check_cgroup_exists(spec, m)


def test_dotdot_that_stays_inside_the_hierarchy_is_resolved(tmp_path: Path) -> None:
    """'app/../app', '/x/../app' and an absolute path with '..' inside the mount name the same cgroup."""
    roots, _ = _fake_machine(tmp_path)
    m = cgroup_mounts(roots)
    assert m.v1_memory is not None
    app = m.v1_memory / "app"
    for spec in ("app/../app", "/x/../app", "/app/.", str(m.v1_memory / "app" / ".." / "app")):
        assert resolve_cgroup_dir(spec, m.v1_memory, m) == app
    assert resolve_cgroup_dir("app/..", m.v1_memory, m) == m.v1_memory


def test_a_symlink_out_of_the_hierarchy_is_followed_and_refused(tmp_path: Path) -> None:
    """A link inside the mount that points outside it is judged by where it leads."""
    roots, fake = _fake_machine(tmp_path)
    m = cgroup_mounts(roots)
    assert m.v1_memory is not None
    (m.v1_memory / "link").symlink_to(fake)
    for spec in ("link", "/link", str(m.v1_memory / "link")):
        with pytest.raises(ConfigError, match="resolves to"):
            resolve_cgroup_dir(spec, m.v1_memory, m)


def test_vmpressure_fd_refuses_the_fake_cgroup_and_writes_nothing(tmp_path: Path) -> None:
    """vmpressure_fd(cgroup=...) outside the hierarchies: ConfigError, the fake cgroup.event_control empty."""
    roots, fake = _fake_machine(tmp_path)
    for spec in _escapes(fake):
        for backend in ("memcg-v1", "auto", "psi", "reclaim-index"):
            with pytest.raises(ConfigError, match="'cgroup' must be a cgroup inside"):
                vmpressure_fd(backend=backend, cgroup=spec, roots=roots, environ={})
    assert (fake / "cgroup.event_control").read_text() == ""


def test_open_subtree_refuses_the_fake_cgroup(tmp_path: Path) -> None:
    """pressure act / ShedService's subtree: the fake directory is not taken; '/app' is."""
    roots, fake = _fake_machine(tmp_path)
    for spec in _escapes(fake):
        with pytest.raises(ConfigError, match="'--cgroup' must be a cgroup inside"):
            open_subtree(spec, roots, field="--cgroup")
    sub = open_subtree("app/../app", roots)
    assert sub.path == "/app" and sub.v1 and sub.directory == cgroup_mounts(roots).v1_memory / "app"  # type: ignore[operator]


def test_a_subtree_does_not_reach_out_of_itself(tmp_path: Path) -> None:
    """Subtree.dir_of: a policy's cgroup path with '..' that leaves the subtree has no directory."""
    roots, _ = _fake_machine(tmp_path)
    sub = open_subtree("/app", roots)
    assert sub.dir_of("/app/../..") is None and sub.dir_of("/app/x/../../..") is None
    assert sub.dir_of("/app") == sub.directory and sub.dir_of("/app/x/..") == sub.directory


def test_on_the_running_system_the_directory_must_be_on_cgroupfs(tmp_path: Path) -> None:
    """A mount point that is a real path (not mapped into the fixture) is checked with statfs: a cgroup2
    mount that mountinfo claims at a plain directory is refused."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    plain = tmp_path / "cg2"
    (plain / "app").mkdir(parents=True)
    (plain / "app" / "cgroup.procs").write_text("")
    (tmp_path / "proc" / "self" / "mountinfo").write_text(f"41 31 0:38 / {plain} rw - cgroup2 cgroup2 rw\n")
    m = cgroup_mounts(LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"))
    assert m.v2 == plain and m.real == (plain,)
    with pytest.raises(ConfigError, match=r"is not on a cgroup2 file system \(statfs f_type 0x"):
        resolve_cgroup_dir("/app", plain, m)


def test_the_real_hierarchies_are_cgroupfs() -> None:
    """fs_type reads statfs's f_type: the running system's v1 memory and v2 mounts have the cgroup magics."""
    m = cgroup_mounts()
    if m.v1_memory is None and m.v2 is None:
        pytest.skip("no cgroup hierarchy is mounted")
    if m.v1_memory is not None:
        assert fs_type(m.v1_memory) == CGROUP_SUPER_MAGIC
        assert resolve_cgroup_dir("/", m.v1_memory, m) == m.v1_memory
    if m.v2 is not None:
        assert fs_type(m.v2) == CGROUP2_SUPER_MAGIC
        assert resolve_cgroup_dir("/", m.v2, m) == m.v2
