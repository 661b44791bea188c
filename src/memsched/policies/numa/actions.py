"""What a NUMA policy may ask of the mechanism: typed actions, applied with their cost and their rules.

A policy never changes the machine itself. It returns these values from its hooks; the mechanism (the
simulated kernel, or the live backend) applies each one with the kernel's cost and refusal rules: page
migration goes through the rate limit and ``migrate_balanced_pgdat()``, task moves respect affinity, and
everything is counted in ``/proc/vmstat`` terms. Actions are frozen, validated on construction, and hold
only ids and numbers, so they can cross from a policy to either backend unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError

if TYPE_CHECKING:
    from memsched.policies.numa.views import FaultBatch

__all__ = [
    "Action",
    "MigrateMmNodes",
    "MigratePages",
    "MigrateTask",
    "SetAffinity",
    "SetPreferredNode",
    "SetScanPeriod",
    "SwapTasks",
]

IntArray = npt.NDArray[np.int64]


_INT64 = np.dtype(np.int64)


def _frozen_int_array(name: str, value: object) -> IntArray:
    if type(value) is np.ndarray and value.dtype == _INT64 and value.ndim == 1:
        arr = value.copy()  # (np.array(value, dtype=np.int64, copy=True) of a 1-D int64 array, cheaper)
    else:
        arr = np.array(value, dtype=np.int64, copy=True).reshape(-1)
    arr.flags.writeable = False
    _check_ids(name, arr)
    return arr


def _check_ids(name: str, arr: IntArray) -> None:
    """:class:`ConfigError` naming the first negative id of ``arr`` (the field ``name``), if it has one."""
    # Some entry < 0 exactly when the smallest is: argmin finds it at a third of a ufunc reduction's cost.
    if arr.shape[0] and arr.item(arr.argmin()) < 0:
        raise ConfigError(name, int(arr[arr < 0][0]), "must hold non-negative ids")


def _is_ids(col: object) -> bool:
    """Whether ``col`` is a 1-D int64 array (a column :meth:`MigratePages.from_faults` can index as it is)."""
    return type(col) is np.ndarray and col.dtype == _INT64 and col.ndim == 1


@dataclass(frozen=True, eq=False)
class MigratePages:
    """Move ``pages`` of ``mm`` to ``dst`` (one node per page, or one for all).

    ``mode="sync"``: migrate now, in the context of ``payer`` (the faulting task, one per page), as
    ``migrate_misplaced_page()`` does from the hinting fault. ``mode="async"``: queue the pages on the
    destination node's migration thread (AutoNUMA's ``knuma_migratedN``). ``mode="syscall"``: a
    ``migrate_pages(2)`` / ``move_pages(2)`` call by a user-space daemon (no hinting rate limit).
    """

    mm: int
    pages: IntArray
    dst: IntArray
    payer: IntArray | None = None
    mode: Literal["sync", "async", "syscall"] = "sync"

    def __post_init__(self) -> None:
        pages = _frozen_int_array("pages", self.pages)
        dst = _frozen_int_array("dst", self.dst)
        if dst.shape[0] == 1 and pages.shape[0] != 1:
            dst = np.full(pages.shape[0], int(dst[0]), dtype=np.int64)
            dst.flags.writeable = False
        if dst.shape != pages.shape:
            raise ConfigError("dst", dst.shape[0], f"must give one node or one per page ({pages.shape[0]})")
        object.__setattr__(self, "pages", pages)
        object.__setattr__(self, "dst", dst)
        if self.mode not in ("sync", "async", "syscall"):
            raise ConfigError("mode", self.mode, "must be sync, async or syscall")
        if self.payer is not None:
            payer = _frozen_int_array("payer", self.payer)
            if payer.shape[0] == 1 and pages.shape[0] != 1:
                payer = np.full(pages.shape[0], int(payer[0]), dtype=np.int64)
                payer.flags.writeable = False
            if payer.shape != pages.shape:
                raise ConfigError("payer", payer.shape[0], "must give one task or one per page")
            object.__setattr__(self, "payer", payer)
        elif self.mode == "sync":
            raise ConfigError("payer", None, "is required for sync migration (the faulting task pays)")

    @classmethod
    def from_faults(
        cls,
        batch: FaultBatch,
        which: npt.NDArray[np.bool_] | IntArray,
        mode: Literal["sync", "async", "syscall"] = "sync",
    ) -> MigratePages:
        """Move the pages of the faults ``which`` of ``batch`` (a mask or indices of its records) to the nodes of
        their faulting CPUs, each paid for by its faulting task: ``MigratePages(batch.mm, batch.page[which],
        batch.cpu_node[which], payer=batch.task[which], mode=mode)``, checked the same way. The three columns
        are new arrays of the batch's (numpy's indexing by a mask or by indices copies), so they are frozen as
        they are rather than copied again."""
        page, cpu_node, task = batch.page, batch.cpu_node, batch.task
        if (
            type(which) is not np.ndarray
            or which.ndim != 1
            or which.dtype.kind not in "biu"
            or mode not in ("sync", "async", "syscall")
            or not (_is_ids(page) and _is_ids(cpu_node) and _is_ids(task))
        ):
            return cls(batch.mm, page[which], cpu_node[which], payer=task[which], mode=mode)
        pages, dst, payer = page[which], cpu_node[which], task[which]
        pages.flags.writeable = dst.flags.writeable = payer.flags.writeable = False
        _check_ids("pages", pages)
        _check_ids("dst", dst)
        _check_ids("payer", payer)
        action = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(action, "mm", batch.mm)
        setattr_(action, "pages", pages)
        setattr_(action, "dst", dst)
        setattr_(action, "payer", payer)
        setattr_(action, "mode", mode)
        return action


@dataclass(frozen=True, slots=True)
class MigrateMmNodes:
    """``migrate_pages(2)`` on a whole process: move its pages from ``from_nodes`` to ``to_nodes``.

    As ``do_migrate_pages()`` maps node sets, a page on the i-th node of ``from_nodes`` that is not itself in
    ``to_nodes`` goes to the (i mod len(to_nodes))-th node of ``to_nodes``. Issued by user-space daemons
    (numad), so it is not subject to the hinting-fault rate limit; the daemon pays for the copy.
    """

    mm: int
    from_nodes: tuple[int, ...]
    to_nodes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.to_nodes:
            raise ConfigError("to_nodes", self.to_nodes, "must name at least one node")
        if any(n < 0 for n in (*self.from_nodes, *self.to_nodes)):
            raise ConfigError("nodes", (self.from_nodes, self.to_nodes), "must be node ids >= 0")


@dataclass(frozen=True, slots=True)
class MigrateTask:
    """Move ``task`` to ``dst_cpu`` (``migrate_task_to()`` / ``stop_one_cpu(migration_cpu_stop)``)."""

    task: int
    dst_cpu: int


@dataclass(frozen=True, slots=True)
class SwapTasks:
    """Exchange the CPUs of two tasks (``migrate_swap()``; AutoNUMA's and 3.13's task exchange)."""

    a: int
    b: int

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ConfigError("b", self.b, "must differ from a")


@dataclass(frozen=True, slots=True)
class SetPreferredNode:
    """Record ``task``'s preferred/home node (``sched_setnuma()``/``sched_setnode()``); -1 clears it."""

    task: int
    node: int


@dataclass(frozen=True, slots=True)
class SetScanPeriod:
    """Set ``task``'s ``numa_scan_period`` (the mechanism clamps nothing: policies own their bounds)."""

    task: int
    period_ns: int

    def __post_init__(self) -> None:
        if self.period_ns <= 0:
            raise ConfigError("period_ns", self.period_ns, "must be > 0")


@dataclass(frozen=True, slots=True)
class SetAffinity:
    """``sched_setaffinity(2)`` on ``task`` (numad's binding); ``cpus=None`` allows every CPU."""

    task: int
    cpus: tuple[int, ...] | None


Action = MigratePages | MigrateMmNodes | MigrateTask | SwapTasks | SetPreferredNode | SetScanPeriod | SetAffinity
ACTION_TYPES = (MigratePages, MigrateMmNodes, MigrateTask, SwapTasks, SetPreferredNode, SetScanPeriod, SetAffinity)
