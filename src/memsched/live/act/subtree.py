"""The cgroup subtree a live action policy may act in, and the processes it must never touch.

``--cgroup`` names one cgroup (a directory of the v1 ``memory`` hierarchy, or of the unified v2 hierarchy on a
v2-only system). Every process of that cgroup and of its descendants is in the subtree; a process is
*untouchable* when it is the actor itself, PID 1, a kernel thread (``PF_KTHREAD`` in ``/proc/<pid>/stat``
field 9), or on the ``--protect`` list (a pid, or a ``comm`` name). Membership is checked again from
``/proc/<pid>/cgroup`` right before any signal, so a process that left the subtree meanwhile is not touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, KernelError
from memsched.live.cgroups import cgroup_mounts, resolve_cgroup_dir, resolve_inside
from memsched.live.procfs import comm_text, parse_proc_cgroup, parse_task_stat
from memsched.live.roots import LiveRoots, read_text

__all__ = ["Protect", "Subtree", "open_subtree"]

#: ``PID_MAX_LIMIT`` on 64-bit kernels (include/linux/threads.h): every pid is in 1..PID_MAX_LIMIT - 1.
_PID_MAX_LIMIT = 4 * 1024 * 1024
_NUMBER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Protect:
    pids: frozenset[int]
    comms: frozenset[str]

    @classmethod
    def parse(cls, items: Iterable[str]) -> Protect:
        pids, comms = set(), set()
        for raw in items:
            for item in (x.strip() for x in raw.split(",")):
                if not item:
                    continue
                if _NUMBER.fullmatch(item):  # a number is a pid, never a comm name: "-5" too
                    pid = int(item) if len(item) <= 12 else 0
                    if not 1 <= pid < _PID_MAX_LIMIT:
                        raise ConfigError("--protect", item, f"must be a pid in 1..{_PID_MAX_LIMIT - 1} or a comm name")
                    pids.add(pid)
                elif len(item) > 15 or "/" in item:
                    raise ConfigError("--protect", item, "must be a pid or a comm name (at most 15 characters)")
                else:
                    comms.add(comm_text(item))  # as parse_task_stat shows a name that is not UTF-8 (\xNN)
        return cls(frozenset(pids), frozenset(comms))


@dataclass(frozen=True)
class Subtree:
    """``directory``: the cgroup's directory; ``path``: its path inside the hierarchy (``/a/b``); ``v1``: the
    v1 memory hierarchy (else v2); ``v2_directory``: the v2 twin with the same path, for PSI, if any."""

    directory: Path
    path: str
    v1: bool
    v2_directory: Path | None
    roots: LiveRoots

    def cgroup_dirs(self) -> list[tuple[str, Path]]:
        out = []
        for dirpath, dirnames, _ in os.walk(self.directory):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.directory)
            path = self.path.rstrip("/") + ("/" + rel.as_posix() if rel.parts else "") or "/"
            out.append((path or "/", Path(dirpath)))
        return out

    def pids_of(self, directory: Path, *, recursive: bool = False) -> list[int]:
        pids: set[int] = set()
        dirs = [d for _, d in self.cgroup_dirs() if d == directory or d.is_relative_to(directory)] if recursive else [
            directory]
        for d in dirs:
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in read_text(d / "cgroup.procs").split())
        return sorted(pids)

    def pids(self) -> list[int]:
        return self.pids_of(self.directory, recursive=True)

    def cgroup_of(self, pid: int) -> str | None:
        """The pid's cgroup path in this hierarchy, or None when it is gone."""
        try:
            text = read_text(self.roots.proc(pid, "cgroup"), self.roots)
        except OSError:
            return None
        for m in parse_proc_cgroup(text):
            if (self.v1 and "memory" in m.controllers) or (not self.v1 and m.is_v2):
                return m.path
        return None

    def contains(self, cgroup_path: str | None) -> bool:
        if cgroup_path is None:
            return False
        root = self.path.rstrip("/")
        return cgroup_path == self.path or cgroup_path.startswith(root + "/") or root == ""

    def dir_of(self, cgroup_path: str) -> Path | None:
        """The directory of ``cgroup_path`` when it is in the subtree once resolved (``/app/../x`` is not)."""
        if not self.contains(cgroup_path):
            return None
        rel = cgroup_path[len(self.path.rstrip("/")):].strip("/")
        return resolve_inside(self.directory / rel if rel else self.directory, self.directory)

    def untouchable(self, pid: int, protect: Protect) -> str | None:
        """Why ``pid`` must never be signalled, or None."""
        if pid == os.getpid():
            return "it is this process"
        if pid <= 1:
            return "it is PID 1"
        if pid in protect.pids:
            return "it is on the --protect list"
        try:
            st = parse_task_stat(read_text(self.roots.proc(pid, "stat"), self.roots))
        except OSError:
            return "it is gone"
        if st.is_kthread:
            return "it is a kernel thread"
        if st.comm in protect.comms:
            return f"its comm {st.comm!r} is on the --protect list"
        return None


def open_subtree(spec: str, roots: LiveRoots | None = None, *, field: str = "cgroup") -> Subtree:
    """Resolve ``--cgroup`` (a directory, or a path inside the v1 memory hierarchy, else the v2 one) with
    :func:`~memsched.live.cgroups.resolve_cgroup_dir`, the one check that it stays inside a mounted
    hierarchy; ``field`` names the option or argument in the :class:`~memsched.errors.ConfigError`."""
    roots = roots or LiveRoots()
    mounts = cgroup_mounts(roots)
    hierarchies = [h for h in (mounts.v1_memory, mounts.v2) if h is not None]
    if not hierarchies:
        raise KernelError(errno.ENOENT, "no cgroup hierarchy with the memory controller is mounted")
    found: tuple[Path, Path] | None = None
    for base in hierarchies:
        with contextlib.suppress(KernelError):  # a directory of the other hierarchy
            found = (base, resolve_cgroup_dir(spec, base, mounts, field=field))
            break
    if found is None:
        raise ConfigError(field, spec, "is not inside the v1 memory or the v2 hierarchy")
    base, d = found
    if not (d / "cgroup.procs").exists():
        raise ConfigError(field, spec, f"is not a cgroup ({d}/cgroup.procs does not exist)")
    v1 = base == mounts.v1_memory
    rel = d.relative_to(base)  # resolved inside base by resolve_cgroup_dir, not a lexical prefix
    path = "/" + rel.as_posix() if rel.parts else "/"
    if path == "/":
        raise ConfigError(field, spec, "is the root cgroup: name a subtree to act in")
    twin = None
    if v1 and mounts.v2 is not None and (mounts.v2 / rel / "memory.pressure").exists():
        twin = mounts.v2 / rel
    elif not v1:
        twin = d
    return Subtree(d, path, v1, twin, roots)
