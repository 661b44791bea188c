"""A cgroup directory belongs to the hierarchy of the mount it is under: on a hybrid system (v1 memory at
/sys/fs/cgroup/memory, v2 at /sys/fs/cgroup/unified) a v1 memcg also has memory.stat and was taken for v2,
then failed on memory.events (fixture: the development VM's tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.live_fixtures import tree
from memsched.errors import ConfigError, KernelError
from memsched.live.cgroups import cgroup_mounts, check_cgroup_exists, resolve_cgroup_dir
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.psi import check as psi_check
from memsched.live.pressure.reclaim_index import ReclaimIndexSource

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
