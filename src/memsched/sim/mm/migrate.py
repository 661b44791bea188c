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
  thread (``"async"``, AutoNUMA's ``knuma_migratedN``), or by a user-space daemon's system call
  (``"syscall"``, numad's ``migrate_pages(2)``). Each page costs a fixed part (isolate, unmap, TLB
  shootdown IPIs, remap; an estimate of a few µs per 4 KiB page on 2012 hardware, where a raw 4 KiB copy at
  5–10 GB/s is 0.4–0.8 µs) plus the copy at the copying core's
  streaming rate from the farther of source and destination.
* **Counters**: ``numa_pages_migrated`` and ``pgmigrate_success`` in base (4 KiB) pages; ``pgmigrate_fail``
  for pages whose destination had no free frame.

Deviations from the kernel: the high watermark is a fixed fraction of each node (until the reclaim model
provides real watermarks); copy traffic is charged as CPU time but does not consume modelled memory
bandwidth; rate-limit windows are evaluated at fault-batch granularity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.config import knob, validate
from memsched.policies.numa.base import MigrationRules
from memsched.units import MIB, NSEC_PER_MSEC

if TYPE_CHECKING:
    from memsched.sim.fluid.machine import FluidMachine

__all__ = ["MigrationCosts", "MigrationResult", "Migrator"]

IntArray = npt.NDArray[np.int64]
BASE_PAGE = 4096


@dataclass(frozen=True)
class MigrationCosts:
    """CPU cost of moving memory and tasks (estimates of 2012 hardware; never fitted to policy results)."""

    migrate_fixed_ns: int = knob(10_000, "per-page isolate/unmap/TLB-flush/remap cost (estimate: a few µs)", min=0)
    task_migrate_ns: int = knob(20_000, "stop_one_cpu() task move or swap, per task (estimate)", min=0)
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

    def migrate(self, mm_id: int, pages: IntArray, dst: IntArray, *, apply_ratelimit: bool) -> MigrationResult:
        """Move what the rules allow, in order; return what moved and why the rest did not."""
        machine = self.machine
        mm = machine.mms[mm_id]
        src = mm.page_node[pages].astype(np.int64)
        want = (src >= 0) & (src != dst)
        pages, dst, src = pages[want], dst[want], src[want]
        keep = np.ones(pages.shape[0], dtype=bool)
        refused_rl = refused_bal = failed = 0
        now = machine.engine.now
        pa = machine.page_alloc
        for node in np.unique(dst):
            idx = np.flatnonzero(dst == node)
            if apply_ratelimit and self.rules.rate_limit:
                if now > self.window_end[node]:
                    self.window_pages[node] = 0
                    self.window_end[node] = now + self.rules.migrate_interval_ms * NSEC_PER_MSEC
                before = self.window_pages[node] + self.base_per_page * np.arange(idx.shape[0])
                ok = before <= self.ratelimit_pages
                n_ok = int(ok.sum())
                if n_ok < idx.shape[0]:
                    self.last_limited[node] = now
                    refused_rl += idx.shape[0] - n_ok
                    keep[idx[n_ok:]] = False
                    idx = idx[:n_ok]
                self.window_pages[node] += self.base_per_page * idx.shape[0]
            room = int(pa.free_pages[node] - self.high_wmark[node])
            if room < idx.shape[0]:
                n_ok = max(room, 0)
                refused_bal += idx.shape[0] - n_ok
                keep[idx[n_ok:]] = False
                idx = idx[:n_ok]
            if idx.shape[0] and not pa.reserve(int(node), idx.shape[0]):  # pragma: no cover - room checked
                failed += idx.shape[0]
                keep[idx] = False
        moved, moved_dst, moved_src = pages[keep], dst[keep], src[keep]
        if moved.shape[0]:
            pa.free(moved_src)
            mm.set_nodes(moved, moved_dst)
            n_base = int(moved.shape[0]) * self.base_per_page
            machine.vmstat.inc("numa_pages_migrated", n_base)
            machine.vmstat.inc("pgmigrate_success", n_base)
            machine.progress.invalidate()
        if failed:
            machine.vmstat.inc("pgmigrate_fail", failed * self.base_per_page)
        self.ratelimited_pages += refused_rl
        return MigrationResult(moved, moved_dst, refused_rl, refused_bal, failed)

    def copy_ns(self, cpu_node: int, src: IntArray, dst: IntArray) -> npt.NDArray[np.float64]:
        """CPU time to move each page from a CPU on ``cpu_node``: fixed part plus the copy."""
        topo = self.machine.topology
        lat = self.machine.memmodel.latency
        worst = np.maximum(lat[cpu_node, src], lat[cpu_node, dst])
        copy = self.machine.page_size * worst / topo.core_mlp_bytes
        return np.asarray(self.costs.migrate_fixed_ns + copy, dtype=np.float64)
