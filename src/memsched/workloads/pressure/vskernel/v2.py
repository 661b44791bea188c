"""A disposable cgroup of the unified (v2) hierarchy for the real side of the comparison.

``<v2 mount>/<name>`` is created fresh (an empty leftover of a killed run is removed first, a busy one refused,
as :class:`memsched.live.cgroups.MemcgV1Child` does). When the parent's ``cgroup.subtree_control`` enables the
memory controller, the cgroup has ``memory.max`` (the limit), ``memory.swap.max`` (set to 0, so an anonymous
load cannot escape to swap, as the v1 side caps ``memory.memsw.limit_in_bytes``) and ``memory.events``;
children get ``+memory`` in this cgroup's ``cgroup.subtree_control`` (the "no internal processes" rule then
keeps processes in the children only, which is how the workloads with children are described). Without the
memory controller in v2 (a hybrid system such as one with the v1 memory controller mounted) the cgroup still
has ``memory.pressure``: PSI accounts a task in its v2 cgroup whatever controllers are enabled
(kernel/sched/psi.c ``task_psi_group()`` is ``cgroup_psi(task_dfl_cgroup(task))``, 6.18), so the limit may come
from a v1 twin memcg.

Removal (also when the body raised, and on SIGTERM/SIGHUP, which raise
:class:`~memsched.errors.Terminated` while the cgroup exists): ``cgroup.kill`` (5.14+) or SIGKILL of every
task listed, then ``rmdir`` of the children and the cgroup, retried while the kernel still holds a killed
task's reference (``EBUSY``).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import time
from pathlib import Path

from memsched.errors import AccessDeniedError, KernelError
from memsched.live.cgroups import TerminationGuard, cgroup_mounts, make_cgroup, remove_cgroups
from memsched.live.oserrors import send_signal
from memsched.live.roots import LiveRoots, try_read_text

__all__ = ["V2Cgroup", "v2_memory_controller"]


def v2_memory_controller(directory: Path) -> bool:
    """Whether the cgroup ``directory``'s children get the memory controller (its ``cgroup.subtree_control``)."""
    text, _ = try_read_text(directory / "cgroup.subtree_control")
    return text is not None and "memory" in text.split()


class V2Cgroup:
    """``<v2 mount>/<name>``, with ``memory.max`` = ``limit_bytes`` when the memory controller is there."""

    def __init__(self, name: str, *, limit_bytes: int | None, roots: LiveRoots | None = None) -> None:
        mount = cgroup_mounts(roots).v2
        if mount is None:
            raise KernelError(errno.ENOENT, "the cgroup v2 hierarchy is not mounted")
        self.mount = mount
        self.path = mount / name
        self.limit_bytes = limit_bytes
        self.memory = v2_memory_controller(mount)
        if limit_bytes is not None and not self.memory:
            raise KernelError(
                errno.EOPNOTSUPP,
                f"the memory controller is not enabled in {mount / 'cgroup.subtree_control'}: no memory.max for "
                f"{self.path}",
            )
        self._created: list[Path] = []
        self._signals = TerminationGuard()

    # -- lifetime -------------------------------------------------------------------------------------
    def _make(self, d: Path) -> None:
        make_cgroup(d)
        self._created.append(d)

    def __enter__(self) -> V2Cgroup:
        self._signals.catch()
        try:
            self._make(self.path)
            if self.limit_bytes is not None:
                (self.path / "memory.max").write_text(str(self.limit_bytes))
                if (self.path / "memory.swap.max").exists():
                    (self.path / "memory.swap.max").write_text("0")
        except BaseException as e:
            self._exit()
            if isinstance(e, OSError) and not isinstance(e, KernelError):
                raise KernelError(e.errno or errno.EIO, f"cannot set up cgroup {self.path}: {e.strerror}") from e
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit()

    def _exit(self) -> None:
        self._signals.removing(self.remove)

    def child(self, name: str, *, limit_bytes: int | None = None) -> Path:
        """Create the child ``name`` (``a`` or ``a/b`` under an existing ``a``; removed with this one, first),
        with ``memory.max`` when limited."""
        d = self.path / name
        try:
            if self.memory and not v2_memory_controller(d.parent):
                (d.parent / "cgroup.subtree_control").write_text("+memory")
            d.mkdir()
            self._created.append(d)
            if limit_bytes is not None:
                if not self.memory:
                    raise KernelError(errno.EOPNOTSUPP, f"no memory controller in v2: no memory.max for {d}")
                (d / "memory.max").write_text(str(limit_bytes))
        except OSError as e:
            raise KernelError(e.errno or errno.EIO, f"cannot set up cgroup {d}: {e.strerror}") from e
        return d

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for d in self._created:
            text, _ = try_read_text(d / "cgroup.procs")
            pids.update(int(x) for x in (text or "").split())
        return sorted(pids)

    def remove(self, *, timeout_s: float = 20.0) -> None:
        """Kill what is inside and remove the directories, children first (idempotent)."""
        deadline = time.monotonic() + timeout_s
        killed = False
        while self._created:
            if not killed and (self.path / "cgroup.kill").exists() and self.path in self._created:
                with contextlib.suppress(OSError):
                    (self.path / "cgroup.kill").write_text("1")  # the whole subtree, 5.14+
                killed = True
            for pid in self.pids():
                with contextlib.suppress(AccessDeniedError):
                    send_signal(pid, signal.SIGKILL)
            remove_cgroups(self._created, deadline)
            if self._created:
                time.sleep(0.02)
