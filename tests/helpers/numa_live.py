"""A fake kernel for the live NUMA appliers: page placement, affinities, and injectable failures."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from helpers.live_fixtures import FIXTURES
from memsched.live.oserrors import process_error
from memsched.live.roots import LiveRoots

IntArray = npt.NDArray[np.int64]
PAGE = 4096


def numa4() -> LiveRoots:
    root = FIXTURES / "numa-4node"
    return LiveRoots(proc_root=root / "proc", sys_root=root / "sys")


def numa2() -> LiveRoots:
    root = FIXTURES / "numa-2node"
    return LiveRoots(proc_root=root / "proc", sys_root=root / "sys")


class StepClock:
    """A monotonic clock advancing ``step_ns`` per call, starting at ``start_ns``."""

    def __init__(self, step_ns: int, start_ns: int = 0) -> None:
        self.now = start_ns - step_ns
        self.step = step_ns

    def __call__(self) -> int:
        self.now += self.step
        return self.now


@dataclass
class FakeNumaSyscalls:
    """Pages by ``(pid, vpn)`` (unknown pages fall back to ``layout``), affinities by tid, and a call log.

    ``move_errors[vpn] = errno`` makes moving that page fail; ``affinity_errors[tid]`` is a list of errnos
    for that thread's successive ``set_affinity`` calls (0 = succeed); pids in ``exited`` answer ESRCH.
    """

    layout: Callable[[int, IntArray], IntArray] = lambda pid, vpns: np.full(vpns.shape[0], -1, dtype=np.int64)
    pages: dict[tuple[int, int], int] = field(default_factory=dict)
    affinity: dict[int, frozenset[int]] = field(default_factory=dict)
    move_errors: dict[int, int] = field(default_factory=dict)
    affinity_errors: dict[int, list[int]] = field(default_factory=dict)
    exited: set[int] = field(default_factory=set)
    unmovable: int = 0
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def _node(self, pid: int, vpns: IntArray) -> IntArray:
        base = self.layout(pid, vpns)
        return np.array(
            [self.pages.get((pid, int(v)), int(b)) for v, b in zip(vpns, base, strict=True)], dtype=np.int64
        )

    def move_pages(self, pid: int, addrs: IntArray, nodes: IntArray | None) -> IntArray:
        if pid in self.exited:
            raise process_error(errno.ESRCH, f"move_pages: no process {pid} (it exited)")
        vpns = np.asarray(addrs, dtype=np.int64) // PAGE
        now = self._node(pid, vpns)
        if nodes is None:
            self.calls.append(("query", pid, vpns.shape[0]))
            return np.where(now >= 0, now, -errno.ENOENT)
        self.calls.append(("move", pid, vpns.shape[0], sorted({int(n) for n in nodes})))
        out = np.empty(vpns.shape[0], dtype=np.int64)
        for i, (v, n, d) in enumerate(zip(vpns.tolist(), now.tolist(), np.asarray(nodes).tolist(), strict=True)):
            if n < 0:
                out[i] = -errno.ENOENT
            elif v in self.move_errors:
                out[i] = -self.move_errors[v]
            else:
                self.pages[(pid, v)] = d
                out[i] = d
        return out

    def migrate_pages(self, pid: int, old_nodes: frozenset[int], new_nodes: frozenset[int]) -> int:
        if pid in self.exited:
            raise process_error(errno.ESRCH, f"migrate_pages: no process {pid} (it exited)")
        self.calls.append(("migrate_pages", pid, sorted(old_nodes), sorted(new_nodes)))
        return self.unmovable

    def get_affinity(self, tid: int) -> frozenset[int]:
        if tid in self.exited:
            raise process_error(errno.ESRCH, f"sched_getaffinity: no process {tid} (it exited)")
        return self.affinity.get(tid, frozenset(range(16)))

    def set_affinity(self, tid: int, cpus: frozenset[int]) -> None:
        self.calls.append(("set_affinity", tid, sorted(cpus)))
        queue = self.affinity_errors.get(tid)
        err = queue.pop(0) if queue else 0
        if tid in self.exited:
            err = errno.ESRCH
        if err:
            raise process_error(err, f"sched_setaffinity(tid {tid}) failed: {errno.errorcode[err]}")
        self.affinity[tid] = frozenset(cpus)
