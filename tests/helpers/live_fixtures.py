"""Fixture trees and a fake ``sched_getattr`` shared by the live readers' unit tests."""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from pathlib import Path

from memsched.errors import ProcessGoneError
from memsched.live.roots import LiveRoots
from memsched.uapi.sched import SchedAttr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live"


def tree(name: str) -> LiveRoots:
    root = FIXTURES / name
    return LiveRoots(proc_root=root / "proc", sys_root=root / "sys")


def fake_getattr(
    table: Mapping[int, SchedAttr], calls: list[int] | None = None
) -> Callable[[int], SchedAttr]:
    """A ``sched_getattr`` answering from ``table`` (ESRCH, as the real one raises it, for other tids), recording
    the tids asked."""

    def getattr_fn(tid: int) -> SchedAttr:
        if calls is not None:
            calls.append(tid)
        if tid not in table:
            raise ProcessGoneError(errno.ESRCH, f"no task {tid}")
        return table[tid]

    return getattr_fn


#: The reservation of the captured deadline task (chrt -d -T 2000000 -D 8000000 -P 10000000).
VM_TASK = SchedAttr.deadline(2_000_000, 8_000_000, 10_000_000)
ARM_TASKS = {
    500: SchedAttr.deadline(3_000_000, 10_000_000, 10_000_000),
    600: SchedAttr.deadline(1_000_000, 2_000_000),
}


def cgroup_outside_the_hierarchies(tmp_path: Path, how: str) -> tuple[Path, str]:
    """A plain directory holding the files of a v1 memcg (review 2's fake cgroup), and how a user would name it:
    ``relative`` to the hierarchy with ``..`` out of it, or ``absolute``. Skips the test where no cgroup
    hierarchy is mounted (a relative path has nothing to be relative to)."""
    import pytest

    from memsched.live.cgroups import cgroup_mounts

    if cgroup_mounts().v1_memory is None and cgroup_mounts().v2 is None:
        pytest.skip("no cgroup hierarchy is mounted")
    fake = tmp_path / "fakecg"
    fake.mkdir()
    for name in ("memory.pressure_level", "cgroup.event_control", "cgroup.procs"):
        (fake / name).write_text("")
    return fake, "../" * 40 + fake.as_posix().lstrip("/") if how == "relative" else str(fake)
