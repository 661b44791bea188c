"""LiveRoots takes its roots as str or os.PathLike (kept as Path) and refuses anything else at construction."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path, PurePosixPath

import pytest

from memsched.errors import ConfigError
from memsched.live import capabilities
from memsched.live.roots import LiveRoots

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "live" / "vm-2cpu-6.18"


class _PathLike:
    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


def test_str_and_pathlike_roots_become_paths() -> None:
    """Strings (the obvious thing to pass) and os.PathLike objects are kept as Path, and readers use them."""
    roots = LiveRoots(proc_root=str(FIXTURE / "proc"), sys_root=_PathLike(str(FIXTURE / "sys")), debugfs_root="/d")
    assert roots.proc_root == FIXTURE / "proc" and isinstance(roots.proc_root, Path)
    assert roots.sys_root == FIXTURE / "sys" and isinstance(roots.sys_root, Path)
    assert roots.debugfs() == Path("/d")
    assert roots == LiveRoots(FIXTURE / "proc", FIXTURE / "sys", Path("/d"))
    assert capabilities(roots) == capabilities(LiveRoots(FIXTURE / "proc", FIXTURE / "sys", Path("/d")))


def test_defaults_replace_and_pickle_still_work() -> None:
    """The defaults are the real /proc and /sys; dataclasses.replace and pickling keep working."""
    roots = LiveRoots()
    assert (roots.proc_root, roots.sys_root, roots.debugfs_root) == (Path("/proc"), Path("/sys"), None)
    assert roots.debugfs("tracing") == Path("/sys/kernel/debug/tracing")
    moved = dataclasses.replace(roots, proc_root="/tmp/proc")
    assert moved.proc_root == Path("/tmp/proc") and moved.sys_root == Path("/sys")
    assert pickle.loads(pickle.dumps(moved)) == moved
    assert LiveRoots(proc_root=PurePosixPath("/p")).proc_root == Path("/p")  # any os.PathLike of str


_BAD = [
    (field, value)
    for field in ("proc_root", "sys_root", "debugfs_root")
    for value in (None, 123, b"/proc", "", 1.5)
    if (field, value) != ("debugfs_root", None)  # None: the default, <sys_root>/kernel/debug
]


@pytest.mark.parametrize(("field", "value"), _BAD)
def test_a_root_that_is_not_a_path_is_refused_at_construction(field: str, value: object) -> None:
    """None, numbers, bytes and "" are a ConfigError naming the root and the value, not an AttributeError in
    the first reader."""
    allowed = r"must be a directory path \(a non-empty str or os.PathLike of str\)"
    with pytest.raises(ConfigError, match=rf"^'{field}' {allowed}") as e:
        LiveRoots(**{field: value})  # type: ignore[arg-type]
    assert e.value.field == field and e.value.value == value
