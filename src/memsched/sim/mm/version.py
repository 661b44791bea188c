"""Which kernel's memory manager the simulated one follows: the behaviours that changed between 3.10 and 6.18.

The memory-pressure machinery (``sim/mm/reclaim.py`` and the modules it wires) models the classic two-list LRU
of Linux 3.x-6.x. A few of its rules changed over those releases in ways that change what a
``memory.pressure_level`` listener hears; :class:`MmBehaviour` holds them, and
``ReclaimConfig.kernel`` picks a row of :data:`KERNELS`:

========================  ======  ======  ======  =========================================================
behaviour                 3.10    5.10    6.18    source
========================  ======  ======  ======  =========================================================
memcg charge retries      5       16      16      ``MEM_CGROUP_RECLAIM_RETRIES`` (mm/memcontrol.c, 3.10) ->
                                                  ``MAX_RECLAIM_RETRIES`` (Chris Down, "mm, memcg: unify
                                                  reclaim retry limits with page allocator", 20 May 2020; 5.9)
reclaim calls per charge  2       1       1       3.10 ``mem_cgroup_reclaim()`` calls
attempt                                           ``try_to_free_mem_cgroup_pages()`` again when the first call
                                                  freed nothing
a dying task's charge     bypass  forced  fails   3.10 ``__mem_cgroup_try_charge()`` bypasses to the root;
                                                  5.10 ``should_force_charge()`` charges over the limit; 5.16+
                                                  ``try_charge_memcg()`` resets its retries after an OOM kill
                                                  (``passed_oom``) and fails with -ENOMEM only once they run out
                                                  again and the task is dying (Vasily Averin, "memcg: prohibit
                                                  unconditional exceeding the limit of dying tasks", 10 Sep
                                                  2021)
dirty file pages met by   stay    active  active  Johannes Weiner, "mm: vmscan: move dirty pages out of the
reclaim                                           way until they're flushed" (2017, 4.12): ``PG_reclaim`` and
                                                  activated; ``end_page_writeback()`` rotates them back
v1 memcg reclaim that     no      no      yes     ``reclaim_throttle(pgdat, VMSCAN_THROTTLE_WRITEBACK)`` in
isolated only unqueued                            ``shrink_inactive_list()`` when ``!writeback_throttling_sane()``
dirty pages sleeps                                (Mel Gorman, "mm/vmscan: throttle reclaim until some
                                                  writeback completes if congested", 2021; 5.16): up to HZ/10,
                                                  woken once more than ``SWAP_CLUSTER_MAX`` pages were written
a fruitless               no      no      yes     ``memcg_full_walk`` in ``do_try_to_free_pages()`` (Johannes
``do_try_to_free_pages``                          Weiner, "mm: vmscan: restore incremental cgroup iteration",
sweeps the priorities                             14 May 2024, 6.11; with Shakeel Butt's reset of
again                                             ``sc->priority``): 8 forced critical windows instead of 4
page-cache folios         4 KiB   4 KiB   I/O     ext4 large folios (6.16): a 1 MiB ``write()`` or readahead
                                          size    fills one folio, charged in one ``try_charge_memcg()``
memcg reclaim scans at    yes     no      no      3.10 ``get_scan_count()``'s ``force_scan`` (``!global_reclaim``);
least ``SWAP_CLUSTER_MAX``                        removed by Johannes Weiner, "mm: don't avoid high-priority
of a small list                                   reclaim on memcg limit reclaim" (28 Feb 2017, 4.12): a small
                                                  memcg's lists are scanned ``size >> priority``, so its
                                                  reclaim walks down the priorities
========================  ======  ======  ======  =========================================================

Checked against mm/memcontrol.c and mm/vmscan.c of 3.x (``__mem_cgroup_try_charge`` / ``mem_cgroup_do_charge`` /
``mem_cgroup_reclaim``), of a 5.10-era tree (``try_charge``) and of 6.18 (``try_charge_memcg``).

Deviations from the kernel: one row per era rather than per release; the rows between these releases are not
modelled (4.12-5.8 is 5.10 with 5 retries, ``max_reclaim_retries`` does not change the memcg count).
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.errors import UnknownNameError

__all__ = ["KERNELS", "MmBehaviour", "behaviour"]


@dataclass(frozen=True, slots=True)
class MmBehaviour:
    """The version-dependent rules of one kernel era (see the module docstring's table)."""

    kernel: str
    memcg_retries: int
    charge_loop: str  # "3.10" | "5.10" | "6.18"
    dirty_file_activate: bool
    v1_writeback_throttle: bool
    full_walk_retry: bool
    large_folios: bool
    memcg_force_scan: bool
    #: The scheduler is EEVDF (6.6+, Peter Zijlstra, "sched/fair: Implement an EEVDF-like scheduling policy"):
    #: a woken kworker does not preempt a reclaimer that is eligible and inside its slice (RUN_TO_PARITY).
    #: Before, CFS placed a long sleeper ``sched_latency/2`` behind ``min_vruntime`` (GENTLE_FAIR_SLEEPERS),
    #: more than ``wakeup_granularity``: it preempted the reclaimer at once.
    eevdf: bool = False


KERNELS: dict[str, MmBehaviour] = {
    "3.10": MmBehaviour("3.10", 5, "3.10", False, False, False, False, True),
    "5.10": MmBehaviour("5.10", 16, "5.10", True, False, False, False, False),
    "6.18": MmBehaviour("6.18", 16, "6.18", True, True, True, True, False, True),
}


def behaviour(kernel: str) -> MmBehaviour:
    """The row of :data:`KERNELS` for ``kernel``."""
    try:
        return KERNELS[kernel]
    except KeyError:
        raise UnknownNameError("kernel", kernel, tuple(KERNELS)) from None
