"""``balancenuma``: what Linux 3.8 merged — MORON behind a two-stage filter, with a migration rate limit and
a scanner that slows down when faults stop migrating.

Models v3.8 (Mel Gorman's balancenuma v10+ as merged: mm/mempolicy.c, mm/migrate.c, kernel/sched/fair.c):

* **Two-stage filter** (``mpol_misplaced()``, mm/mempolicy.c): ``last_nid = page_nid_xchg_last(page,
  this_node)``; migrate only if the previous fault on the page also came from this node. The chance that a
  node is sampled twice in a row is p², which squashes unlikely task<->node relations.
* **Rate limit** (mm/migrate.c): at most 128 MB per 100 ms to each destination node; the PTE scanner skips
  pages on nodes rate-limited within the last second (``migrate_ratelimited()``,
  ``pteupdate_interval_millisecs`` = 1000).
* **Scan slow-down** (``task_numa_fault()``, kernel/sched/fair.c): every fault that did not migrate its page
  adds ``jiffies_to_msecs(10)`` to the task's ``numa_scan_period`` (40 ms at HZ=250), up to
  ``scan_period_max``; every ``scan_period_reset`` (60 s) the period returns to the minimum.
* ``task_numa_placement()`` is the empty placeholder of 3.8: no task placement.
* ``mpol_misplaced()`` proposes a node only under a policy with ``MPOL_F_MOF`` (the default's), so pages of
  tasks with a memory policy of their own are never moved; their faults still count for the slow-down.
* The 3.8 tree migrates huge pages natively (``migrate_misplaced_transhuge_page()``) and its anon_vma lock is
  an rwsem (the mechanism's defaults, ``KERNEL_3_8``).

``--set sysctls=3.13`` swaps in 3.13's scan sysctls (1000/60000 ms, scaled by RSS, no periodic reset) to see
what 3.8's filter does with the later scan rate; the per-knob settings then do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigratePages, SetScanPeriod
from memsched.policies.numa.base import (
    MAX_INTERVAL_MS,
    MAX_MEMORY_MB,
    SCAN_3_13,
    SYSCTL_INT_MAX,
    MigrationRules,
    NumaPolicy,
    TaskWorkScan,
)
from memsched.policies.numa.views import BoolArray, FaultBatch, PolicyContext

NSEC_PER_MSEC = 1_000_000


@dataclass(frozen=True)
class BalancenumaConfig:
    sysctls: str = knob(
        "3.8",
        "named scan sysctl set: 3.8 (the knobs below) or 3.13 (1000/60000 ms scaled by RSS, no reset)",
        choices=("3.8", "3.13"),
    )
    scan_delay_ms: int = knob(1000, "numa_balancing_scan_delay_ms (3.8)", min=0, max=SYSCTL_INT_MAX, limit=True)
    scan_period_min_ms: int = knob(
        100, "numa_balancing_scan_period_min_ms (3.8)", min=1, max=SYSCTL_INT_MAX, limit=True,
        at_most="scan_period_max_ms",
    )
    scan_period_max_ms: int = knob(
        5000, "numa_balancing_scan_period_max_ms (3.8: 100*50)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    scan_period_reset_ms: int = knob(
        60000, "numa_balancing_scan_period_reset (3.8: 100*600)", min=0, max=SYSCTL_INT_MAX, limit=True
    )
    scan_size_mb: int = knob(256, "numa_balancing_scan_size_mb (3.8)", min=1, max=SYSCTL_INT_MAX, limit=True)
    hz: int = knob(250, "CONFIG_HZ: the slow-down is 10 jiffies per non-migrating fault", min=100, max=1000)
    ratelimit_mb: int = knob(
        128, "ratelimit_pages in MB per window and destination node (mm/migrate.c)",
        min=1, max=MAX_MEMORY_MB, limit=True
    )
    migrate_interval_ms: int = knob(
        100, "migrate_interval_millisecs (mm/migrate.c)", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    pteupdate_interval_ms: int = knob(
        1000, "pteupdate_interval_millisecs: scanner skips rate-limited nodes", min=0, max=MAX_INTERVAL_MS, limit=True
    )
    two_stage_filter: bool = knob(True, "the last_nid filter (off: MORON with rate limit and slow-down only)")

    def __post_init__(self) -> None:
        validate(self)


class Balancenuma(NumaPolicy):
    def __init__(self, config: BalancenumaConfig) -> None:
        self.config = config
        if config.sysctls == "3.13":
            self.scan = SCAN_3_13
        else:
            self.scan = TaskWorkScan.from_knobs(config)
        self.migration = MigrationRules(
            rate_limit=True,
            ratelimit_mb=config.ratelimit_mb,
            migrate_interval_ms=config.migrate_interval_ms,
            skip_ratelimited_ms=config.pteupdate_interval_ms,
        )
        self.slowdown_ns = 10 * 1000 // config.hz * NSEC_PER_MSEC  # jiffies_to_msecs(10)

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        move = (batch.page_node != batch.cpu_node) & batch.migratable
        if self.config.two_stage_filter:
            move &= batch.last_nid == batch.cpu_node
        if not move.any():
            return ()
        return (MigratePages.from_faults(batch, move),)

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: BoolArray) -> Sequence[Action]:
        still = np.bincount(batch.task[~migrated]) * batch.nr_faults  # one slow-down step per fault
        out: list[Action] = []
        assert isinstance(self.scan, TaskWorkScan)
        cap = self.scan.scan_period_max_ms * NSEC_PER_MSEC
        for task in np.flatnonzero(still):
            period = ctx.task_scan_period_ns(int(task))
            out.append(SetScanPeriod(int(task), min(cap, period + int(still[task]) * self.slowdown_ns)))
        return out
