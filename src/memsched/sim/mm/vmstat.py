"""``/proc/vmstat``-named event counters, global and per node.

Kernel counterpart: ``mm/vmstat.c`` (``vmstat_text``) and ``include/linux/vm_event_item.h``; the per-node
``numa_*`` allocator counters are ``/sys/devices/system/node/nodeN/numastat``. Counters are named exactly as
the kernel prints them, so simulated and live figures line up (and mmtests' ExtractVmstat reads either).

``thp_split`` is 3.x's name (later ``thp_split_page``); ``nr_tlb_remote_flush`` and
``nr_tlb_remote_flush_received`` are the shootdown counters of 3.12+ (``CONFIG_DEBUG_TLBFLUSH``), counted
here for every kernel so the cost of a design's flushes is visible.

Deviations from the kernel: counters are exact integers (no per-CPU batching drift).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["NUMA_NODE_COUNTERS", "VMSTAT_COUNTERS", "VmStat"]

#: Event counters every run reports, in ``/proc/vmstat`` order. Mechanisms added later register more.
VMSTAT_COUNTERS: tuple[str, ...] = (
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "numa_hint_faults_local",
    "numa_pages_migrated",
    "pgfault",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_fault_alloc",
    "thp_split",
    "nr_tlb_remote_flush",
    "nr_tlb_remote_flush_received",
)

#: Allocator counters also kept per node (``nodeN/numastat``).
NUMA_NODE_COUNTERS: tuple[str, ...] = (
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
)


class VmStat:
    """Counters of one simulated machine."""

    def __init__(self, nr_nodes: int) -> None:
        self._global: dict[str, int] = dict.fromkeys(VMSTAT_COUNTERS, 0)
        self.per_node: dict[str, npt.NDArray[np.int64]] = {
            name: np.zeros(nr_nodes, dtype=np.int64) for name in NUMA_NODE_COUNTERS
        }

    def inc(self, name: str, n: int = 1) -> None:
        """``count_vm_events(name, n)``."""
        self._global[name] = self._global.get(name, 0) + int(n)

    def inc_node(self, name: str, node_counts: npt.NDArray[np.int64]) -> None:
        """Add a per-node vector to a per-node counter and its global total."""
        self.per_node[name] += node_counts
        self.inc(name, int(node_counts.sum()))

    def __getitem__(self, name: str) -> int:
        return self._global.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """Global counters, sorted by name (stable JSON)."""
        return dict(sorted(self._global.items()))

    def numastat(self) -> list[dict[str, int]]:
        """Per-node allocator counters, as ``/sys/devices/system/node/nodeN/numastat`` would show."""
        nr = len(next(iter(self.per_node.values())))
        return [{name: int(self.per_node[name][n]) for name in NUMA_NODE_COUNTERS} for n in range(nr)]
