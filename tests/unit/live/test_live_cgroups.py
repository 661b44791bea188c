"""cgroup discovery on committed fixture trees (no running kernel needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.live_fixtures import fake_getattr, tree
from memsched.errors import ConfigError
from memsched.live.capabilities import capabilities, psi_privileged
from memsched.live.cgroups import CgroupMounts, cgroup_mounts, own_cgroups, resolve_cgroup_dir
from memsched.live.roots import LiveRoots

V1 = tree("pressure-v1-6.18")
V2 = tree("cgroup2-user-6.12")
OLD = tree("x86-5.4-nopsi")


def test_mounts_are_found_through_the_roots_and_bind_mounts_skipped() -> None:
    """The hybrid VM has v1 memory and v2 mounts; a sub-tree bind mount is never taken for the hierarchy."""
    m = cgroup_mounts(V1)
    assert m.v1_memory == V1.sys("fs", "cgroup", "memory") and m.v2 == V1.sys("fs", "cgroup", "unified")
    assert cgroup_mounts(V2).v1_memory is None and cgroup_mounts(V2).v2 == V2.sys("fs", "cgroup")
    assert cgroup_mounts(OLD).v1_memory == OLD.sys("fs", "cgroup", "memory")


def test_own_cgroups_resolve_to_directories() -> None:
    """The caller's memcg and v2 cgroup are directories under the mounts."""
    own = own_cgroups(V1)
    assert own.v1_memory == V1.sys("fs", "cgroup", "memory", "process_api", "job1")
    assert own.v2 == V1.sys("fs", "cgroup", "unified") and own.v2_path == "/"
    own2 = own_cgroups(V2)
    assert own2.v2_path == "/user.slice/user-1000.slice/app.scope" and own2.v1_memory is None


def test_resolve_cgroup_dir_takes_directories_in_the_mount_and_paths_inside_the_hierarchy(tmp_path: Path) -> None:
    """An existing cgroup directory under the mount is used; '/a' and 'a' are the same child of the hierarchy;
    a directory in no cgroup mount is not a cgroup, whatever files it holds."""
    h = tmp_path / "h"
    (h / "cg").mkdir(parents=True)
    (h / "cg" / "cgroup.procs").write_text("")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "cgroup.procs").write_text("")
    mounts = CgroupMounts(v2=h, v1_memory=None, all=(h,))  # a fixture's mount: no statfs
    assert resolve_cgroup_dir(h / "cg", h, mounts) == h / "cg"
    assert resolve_cgroup_dir("/app/x", h, mounts) == h / "app" / "x" == resolve_cgroup_dir("app/x", h, mounts)
    assert resolve_cgroup_dir("/", h, mounts) == h
    with pytest.raises(ConfigError, match="must be a cgroup inside a mounted cgroup hierarchy"):
        resolve_cgroup_dir(tmp_path / "plain", h, mounts)


def test_dot_slash_names_a_cgroup_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'./x' and '../x' are read as a shell reads them, from the current directory ('cd' into a cgroup, then
    '--cgroup ./child' was taken as the hierarchy's /child); 'x' and '/x' stay paths in the hierarchy. A './'
    path to a directory that is no cgroup is refused, not read as a hierarchy path of the same name."""
    h = tmp_path / "h"
    (h / "app" / "child").mkdir(parents=True)
    for d in (h / "app", h / "app" / "child"):
        (d / "cgroup.procs").write_text("")
    (tmp_path / "app").mkdir()
    mounts = CgroupMounts(v2=h, v1_memory=None, all=(h,))
    monkeypatch.chdir(h / "app")
    assert resolve_cgroup_dir("./child", h, mounts) == h / "app" / "child"
    assert resolve_cgroup_dir(".", h, mounts) == h / "app"
    assert resolve_cgroup_dir("child", h, mounts) == h / "child"  # (a path in the hierarchy)
    monkeypatch.chdir(h / "app" / "child")
    assert resolve_cgroup_dir("..", h, mounts) == h / "app"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"must be a cgroup directory \(.*/app has no cgroup.procs\)"):
        resolve_cgroup_dir("./app", h, mounts)
    assert resolve_cgroup_dir("app", h, mounts) == h / "app"


def _caps(roots: object) -> dict[str, tuple[bool, str]]:
    caps = capabilities(roots, getattr_fn=fake_getattr({}))  # type: ignore[arg-type]
    return {k: (v["available"], v["reason"]) for k, v in caps.to_dict().items()}  # type: ignore[misc]


def test_capabilities_on_the_hybrid_vm() -> None:
    """Root without CAP_SYS_RESOURCE: PSI triggers with the 2 s rule, memcg v1 levels, no v2 memory.stat."""
    c = _caps(V1)
    assert c["psi"][0] and c["psi_triggers"][0] and "multiples of 2 s" in c["psi_triggers"][1]
    assert c["psi_cgroup"][0] and "root cgroup" in c["psi_cgroup"][1]
    assert c["memcg_v1_pressure_level"][0] and "job1/memory.pressure_level" in c["memcg_v1_pressure_level"][1]
    assert not c["cgroup_v2_memory_stat"][0] and "memory controller" in c["cgroup_v2_memory_stat"][1]
    assert c["reclaim_counters"][0] and "proactive" in c["reclaim_counters"][1]
    assert not psi_privileged(V1)


def test_capabilities_on_a_cgroup2_desktop() -> None:
    """v2 only: no memory.pressure_level (with the reason), per-cgroup memory.stat available."""
    c = _caps(V2)
    assert (
        not c["memcg_v1_pressure_level"][0]
        and "cgroup v2 has no memory.pressure_level" in c["memcg_v1_pressure_level"][1]
    )
    assert c["cgroup_v2_memory_stat"][0]
    assert c["psi_cgroup"][0] and "app.scope" in c["psi_cgroup"][1]


def test_capabilities_on_an_old_kernel_say_why_not() -> None:
    """5.4 without PSI: every PSI capability is off with a reason; the old vmstat lacks the counters."""
    c = _caps(OLD)
    assert not c["psi"][0] and "psi=0" in c["psi"][1]
    assert not c["psi_triggers"][0]
    assert not c["psi_cgroup"][0]
    assert not c["reclaim_counters"][0] and "pgscan_anon" in c["reclaim_counters"][1]
    assert c["memcg_v1_pressure_level"][0]


def test_own_cgroup_paths_that_leave_the_mount_are_not_joined(tmp_path: Path) -> None:
    """A fixture's /proc/self/cgroup with '..' does not make the caller's cgroup a directory outside the mount."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text("41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/../../../etc\n")
    own = own_cgroups(LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"))
    assert own.v2 is None and own.v2_path is None
