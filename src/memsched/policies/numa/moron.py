"""``moron``: balancenuma V1's placeholder policy, "Migrate On Reference Of pte_numa Node".

Models Mel Gorman's "[RFC PATCH 00/19] Foundation for automatic NUMA balancing" (linux-mm, 6 Nov 2012, on
3.7-rc2), the policy ``MPOL_F_MORON`` of ``mpol_misplaced()`` (mm/mempolicy.c): on every NUMA hinting fault
whose page is on another node than the faulting CPU, and only under a memory policy with ``MPOL_F_MOF`` (the
default's, patch 13 and ``preferred_node_policy[]``), migrate the page to the CPU's node at once
(``migrate_misplaced_page()``). No filter, no rate limit, no task placement; Mel described it as the naive
greedy baseline any smarter policy should beat (the series' cover letter). Scanning is ``task_numa_work()``'s
incremental 256 MB per period at a fixed period.

The tree around it (``kernel``): no native THP migration, so a hinting fault on a huge page splits it and its
4 KiB pages then fault and migrate one by one (the cover letter: balancenuma "is splitting THP instead of
migrating them"); the anon_vma lock is 3.7's mutex.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.numa.base import SYSCTL_INT_MAX, KernelTree, MigrateMisplaced, MigrationRules, TaskWorkScan


@dataclass(frozen=True)
class MoronConfig:
    scan_delay_ms: int = knob(1000, "numa_balancing_scan_delay_ms (V1 default)", min=0, max=SYSCTL_INT_MAX, limit=True)
    scan_period_ms: int = knob(
        100, "fixed scan period: V1 scans at scan_period_min (100 ms)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    scan_size_mb: int = knob(256, "numa_balancing_scan_size_mb", min=1, max=SYSCTL_INT_MAX, limit=True)

    def __post_init__(self) -> None:
        validate(self)


class Moron(MigrateMisplaced):
    """``on_faults``: :class:`MigrateMisplaced`'s rule, ``MPOL_F_MORON``'s."""

    def __init__(self, config: MoronConfig) -> None:
        self.config = config
        period = config.scan_period_ms
        self.scan = TaskWorkScan.from_knobs(
            config, scan_period_min_ms=period, scan_period_max_ms=period, scan_period_reset_ms=0
        )
        self.migration = MigrationRules(rate_limit=False)
        self.kernel = KernelTree(thp_split=True, anon_vma_lock="mutex", base="3.7-rc2")
