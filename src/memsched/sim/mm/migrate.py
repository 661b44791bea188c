"""Page migration for NUMA balancing: the refusal rules, the per-node rate limit, and what it costs.

Models ``migrate_misplaced_page()`` and its helpers in mm/migrate.c (Linux 3.8 to ~4.x):

* **Rate limit** (``numamigrate_update_ratelimit()``): per destination node, a window restarts when the
  previous one (``migrate_interval_millisecs`` = 100 ms) has passed; while the pages already migrated to
  the node in this window exceed ``ratelimit_pages`` (128 MB), further migrations to it are refused. The
  check happens *before* a page is added, so a window can overshoot by one page (or one THP), as in the
  kernel.
* **migrate_balanced_pgdat()**: refuse if the target node would drop below its high watermark plus the
  pages being moved.
* **Cost**: migration is synchronous in the faulting task's context (``mode="sync"``), or done by a kernel
  thread (``"async"``, the old AutoNUMA's ``knuma_migratedN``), or by a user-space daemon's system call
  (``"syscall"``, numad's ``migrate_pages(2)``). Each migrated page (of the mapping's size: a huge page
  moves as one) costs a fixed CPU part (isolate from the LRU, allocate, move the mapping, put back; an
  estimate), and its bytes are *copied*: :meth:`Migrator.copy_bytes` gives the bytes read from each source
  node and written to each destination node, which the caller hands to the memory model as a copy row
  (``FluidProgress.charge_copy``), so the copy loads both controllers and the links between them while the
  applications stream. The locks and TLB shootdowns of the migration are ``sim/numa/contention.py``'s.
* **Huge pages and migrate_pages(2)**: ``unmap_and_move()`` splits a huge page before moving it (mm/migrate.c,
  3.x), so a ``"syscall"`` migration of pages of a huge block splits the block first
  (:attr:`MigrationResult.splits`).
* **Counters**: ``numa_pages_migrated`` and ``pgmigrate_success`` in base (4 KiB) pages; ``pgmigrate_fail``
  for pages whose destination had no free frame; ``thp_split`` for the splits.

Deviations from the kernel: the high watermark is a fixed fraction of each node (until the reclaim model
provides real watermarks); rate-limit windows are evaluated at fault-batch granularity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from memsched.config import cost_knob, knob, validate
from memsched.policies.numa.base import MigrationRules
from memsched.sim.fluid import jit
from memsched.units import MIB, NSEC_PER_MSEC

if TYPE_CHECKING:
    from memsched.sim.fluid.machine import FluidMachine
    from memsched.sim.mm.mm import MmStruct

__all__ = ["MigrationCosts", "MigrationResult", "Migrator", "distinct"]

IntArray = npt.NDArray[np.int64]
BASE_PAGE = 4096


@dataclass(frozen=True)
class MigrationCosts:
    """CPU cost of moving memory and tasks (estimates of 2012 hardware; never fitted to policy results), each at most
    1 ms (:data:`memsched.config.LIMIT_EVENT_COST_NS`)."""

    migrate_fixed_ns: int = cost_knob(
        2_000, "CPU per migrated page besides the copy, locks and TLB flushes: isolate, allocate, remap (estimate)"
    )
    task_migrate_ns: int = cost_knob(20_000, "stop_one_cpu() task move or swap, per task (estimate)")
    high_wmark_fraction: float = knob(
        0.01, "high watermark as a fraction of a node's memory (approximation)", min=0.0, max=0.5
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True, slots=True)
class MigrationResult:
    moved: IntArray  # pages that moved
    moved_dst: IntArray
    refused_ratelimit: int
    refused_balance: int
    failed: int
    moved_src: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: Huge pages split before moving (``migrate_pages(2)`` of a huge block).
    splits: int = 0
    #: ``np.bincount(moved_src / moved_dst, minlength=nr_nodes)`` (set when something moved).
    src_count: IntArray | None = None
    dst_count: IntArray | None = None


class Migrator:
    """Rate-limit windows per node and the migration path of one machine."""

    def __init__(self, machine: FluidMachine, rules: MigrationRules, costs: MigrationCosts) -> None:
        self.machine = machine
        self.rules = rules
        self.costs = costs
        nr = machine.nr_nodes
        self.window_end = np.zeros(nr, dtype=np.int64)
        self.window_pages = np.zeros(nr, dtype=np.int64)
        self.last_limited = np.full(nr, -(10**18), dtype=np.int64)
        self.base_per_page = machine.page_size // BASE_PAGE
        self.ratelimit_pages = rules.ratelimit_mb * MIB // BASE_PAGE  # ratelimit_pages = 128 << (20 - PAGE_SHIFT)
        self.high_wmark = (machine.page_alloc.total_pages * costs.high_wmark_fraction).astype(np.int64)
        self.ratelimited_pages = 0

    def ratelimited_nodes(self) -> npt.NDArray[np.bool_]:
        """3.8's ``migrate_ratelimited()``: nodes whose window overflowed within ``skip_ratelimited_ms``."""
        horizon = self.rules.skip_ratelimited_ms * NSEC_PER_MSEC
        if horizon <= 0:
            return np.zeros(self.machine.nr_nodes, dtype=bool)
        return (self.machine.engine.now - self.last_limited) <= horizon

    def kernel_pages(self, mm_id: int, units: int) -> int:
        """Pages of the mapping's size that ``units`` page-array entries of ``mm_id`` hold (a huge page
        counts once, a run of 4 KiB pages counts each)."""
        mm = self.machine.mms[mm_id]
        if self.base_per_page == 512 and not mm.thp_units:
            return units
        return units * self.base_per_page

    def migrate(
        self, mm_id: int, pages: IntArray, dst: IntArray, *, apply_ratelimit: bool, split_huge: bool = False
    ) -> MigrationResult:
        """Move what the rules allow, in order; return what moved and why the rest did not. With
        ``split_huge`` (``migrate_pages(2)``), huge blocks the pages belong to are split first."""
        machine = self.machine
        mm = machine.mms[mm_id]
        splits = 0
        if split_huge and mm.thp_units and pages.size:
            blocks = np.unique(pages // mm.thp_units)
            huge = blocks[mm.huge[blocks]]
            splits = int(huge.size)
            if splits:
                mm.set_huge(huge, False)
                machine.vmstat.inc("thp_split", splits)
        args = (pages, dst, *self.rows_state(mm, apply_ratelimit))
        out = _migrate_rows(*args)
        if out[-1]:  # a page or node out of range: the pure code's IndexError
            out = _migrate_rows.__wrapped__(*args)  # type: ignore[attr-defined]
        moved, moved_dst, moved_src, src_count, dst_count, refused_rl, refused_bal, failed, kept_all, _ = out
        if kept_all:  # (every page moves: the caller's own arrays, as it may check)
            moved, moved_dst = pages, dst
        if moved.shape[0]:
            # (moved_src: page_node[moved] before; the per-node counts for node_pages)
            mm.set_nodes(moved, moved_dst, moved_src, counts=(src_count, dst_count))
        else:
            src_count = dst_count = None
        self.counted(int(moved.shape[0]), refused_rl, failed)
        return MigrationResult(
            moved, moved_dst, refused_rl, refused_bal, failed, moved_src, splits, src_count, dst_count
        )

    def rows_state(self, mm: MmStruct, apply_ratelimit: bool) -> tuple[Any, ...]:
        """The arguments of :func:`_migrate_rows` after the pages and their destinations: the mm's placement,
        the rate limit's windows, the free frames and the watermarks (the arrays it updates)."""
        return (
            mm.page_node, apply_ratelimit and self.rules.rate_limit, self.machine.engine.now, self.window_end,
            self.window_pages, self.last_limited, self.base_per_page, self.ratelimit_pages,
            self.rules.migrate_interval_ms * NSEC_PER_MSEC, self.machine.page_alloc.free_pages, self.high_wmark,
            self.machine.nr_nodes,
        )  # fmt: skip

    def counted(self, moved: int, refused_ratelimit: int, failed: int) -> None:
        """What a migration of ``moved`` pages (their placement recorded) leaves to count: vmstat, the rate
        limit's refusals, and the rates to compute again."""
        machine = self.machine
        if moved:
            n_base = moved * self.base_per_page
            machine.vmstat.inc("numa_pages_migrated", n_base)
            machine.vmstat.inc("pgmigrate_success", n_base)
            machine.progress.invalidate()
        if failed:
            machine.vmstat.inc("pgmigrate_fail", failed * self.base_per_page)
        self.ratelimited_pages += refused_ratelimit

    def copy_bytes(self, src: IntArray, dst: IntArray) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Bytes the copies of pages from ``src`` to ``dst`` nodes read from and write to each node."""
        nr = self.machine.nr_nodes
        return self.count_bytes(np.bincount(src, minlength=nr), np.bincount(dst, minlength=nr))

    def count_bytes(
        self, src_count: IntArray, dst_count: IntArray
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """:meth:`copy_bytes` from the pages' counts per node (``MigrationResult.src_count``/``dst_count``)."""
        psz = float(self.machine.page_size)
        # (multiply casts the counts to float64 and multiplies, as astype(np.float64) * psz does)
        return (
            np.multiply(src_count, psz, dtype=np.float64),
            np.multiply(dst_count, psz, dtype=np.float64),
        )

    def fixed_ns(self, mm_id: int, units: int) -> float:
        """CPU time of moving ``units`` page-array entries, copies, locks and flushes aside."""
        return float(self.kernel_pages(mm_id, units) * self.costs.migrate_fixed_ns)


def distinct(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``np.unique(ids)`` of small non-negative ids (nodes, tasks), by counting: a fifth of the cost on the
    short arrays of one fault batch."""
    if ids.shape[0] == 0 or int(np.minimum.reduce(ids)) < 0:
        return np.unique(ids)
    return np.bincount(ids).nonzero()[0].astype(ids.dtype, copy=False)


@jit.compiled_as("migrate_rows")
def _migrate_rows(
    pages: IntArray,
    dst: IntArray,
    page_node: npt.NDArray[np.int16],
    ratelimit: bool,
    now: int,
    window_end: IntArray,
    window_pages: IntArray,
    last_limited: IntArray,
    base_per_page: int,
    ratelimit_pages: int,
    interval_ns: int,
    free_pages: IntArray,
    high_wmark: IntArray,
    nr: int,
) -> tuple[Any, ...]:
    """:meth:`Migrator.migrate`'s rules on the pages ``pages`` going to ``dst``, in order: the present pages
    elsewhere, per destination node in increasing order the first pages the rate limit (``ratelimit``: its
    windows ``window_end``/``window_pages``, ``last_limited``) and the node's room above its high watermark
    allow, their frames reserved and their old ones freed (``free_pages``: ``PageAlloc``'s, which a migration
    only moves between nodes). Returns the pages that move, their destination and source nodes, the counts per
    source and destination node, the pages refused by the rate limit and by the watermark, those that failed,
    whether every page of ``pages`` moves (then the first two are ``pages`` and ``dst``), and whether a page or
    node was out of range (the compiled form's check: this one raises ``IndexError`` as numpy does)."""
    src = page_node[pages].astype(np.int64)
    # Pages present (src >= 0) and elsewhere (src != dst); the mask is made only when some page is not.
    other = src != dst
    if np.count_nonzero(other) != other.shape[0] or (src.shape[0] and src.item(src.argmin()) < 0):
        want = (src >= 0) & other
        pages, dst, src = pages[want], dst[want], src[want]
        filtered = True
    else:
        filtered = False
    n = pages.shape[0]
    keep: npt.NDArray[np.bool_] | None = None  # (made when a page is refused)
    refused_rl = refused_bal = failed = 0
    # Per destination node in increasing order, the first pages in order (node ids are >= 0: MigratePages
    # checks); a node's pages are looked up only when some of them are refused. (minlength only adds trailing
    # zero counts, which the loop skips.)
    dst_count = np.bincount(dst, minlength=nr) if n else None
    counts = dst_count.tolist() if dst_count is not None else []
    if (
        dst_count is not None
        and not ratelimit
        and len(counts) == nr
        and not np.count_nonzero(free_pages - high_wmark < dst_count)
    ):
        # Every node has room for all its pages (and the frames: high_wmark >= 0), so the loop below would
        # reserve each node's count and refuse nothing: the same, at once.
        free_pages -= dst_count
        counts = []
    for node, count in enumerate(counts):
        if not count:
            continue
        n_ok = count
        if ratelimit:
            if now > window_end[node]:
                window_pages[node] = 0
                window_end[node] = now + interval_ns
            before = window_pages[node] + base_per_page * np.arange(count)
            n_ok = int(np.count_nonzero(before <= ratelimit_pages))
            if n_ok < count:
                last_limited[node] = now
                refused_rl += count - n_ok
            window_pages[node] += base_per_page * n_ok
        room = int(free_pages[node] - high_wmark[node])
        if room < n_ok:
            refused_bal += n_ok - max(room, 0)
            n_ok = max(room, 0)
        if n_ok:
            if free_pages[node] < n_ok:  # pragma: no cover - the room above the watermark was checked
                failed += n_ok
                n_ok = 0
            else:
                free_pages[node] -= n_ok
        if n_ok < count:
            if keep is None:
                keep = np.ones(n, dtype=bool)
            keep[(dst == node).nonzero()[0][n_ok:]] = False
    if keep is None:  # (the usual case: nothing refused)
        moved, moved_dst, moved_src = pages, dst, src
    else:
        moved, moved_dst, moved_src = pages[keep], dst[keep], src[keep]
        dst_count = None
    src_count = np.zeros(nr, dtype=np.int64)
    if moved.shape[0]:
        # The per-node counts once, for the frames, node_pages and the copy (every moved_src is >= 0).
        src_count = np.bincount(moved_src, minlength=nr)
        if dst_count is None:
            dst_count = np.bincount(moved_dst, minlength=nr)
        free_pages += src_count  # (PageAlloc.free of moved_src)
    if dst_count is None:
        dst_count = np.zeros(nr, dtype=np.int64)
    kept_all = not filtered and keep is None
    return moved, moved_dst, moved_src, src_count, dst_count, refused_rl, refused_bal, failed, kept_all, False
