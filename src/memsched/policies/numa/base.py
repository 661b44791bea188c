"""The NUMA policy interface: a small mandatory part and optional hooks that cost nothing when unused.

A policy is an object with an ``id``, the scanner it wants (``scan``), the migration rules it runs under
(``migration``), and any of these hooks (the mechanism dispatches only the ones a subclass overrides, as
trio dispatches only the instrument hooks that exist):

``on_faults(ctx, batch)``
    A batch of NUMA hinting faults (``FaultBatch``): memory placement decisions (``do_numa_page()`` →
    ``mpol_misplaced()`` → ``migrate_misplaced_page()``) and fault statistics (``task_numa_fault()``).
``after_faults(ctx, batch, migrated)``
    The same batch once its migrations were applied, with which faults migrated their page: the
    ``migrated`` argument of ``task_numa_fault()`` (3.8 slows its scanner when faults do not migrate).
``on_placement(ctx, task)``
    The scanner finished a pass over the task's mm (``numa_scan_seq`` changed): ``task_numa_placement()``.
``on_scan_pass(ctx, mm, node_pages)``
    AutoNUMA's ``knuma_scand`` finished a pass over ``mm`` and counted its pages per node.
``on_tick(ctx)``
    Every ``tick_interval_ns``: periodic work such as AutoNUMA's ``sched_autonuma_balance()`` or numad's
    sampling interval.
``lb_score(ctx, task, src_cpu, dst_cpu, dst_idle)``
    The load balancer asks whether (``None`` = no) and how much (higher = sooner) it should move ``task``:
    home-node stickiness (``task_numa_hot()``), numa/core's preference order, AutoNUMA's
    ``sched_autonuma_can_migrate_task()``.

Every hook returns a sequence of actions (``memsched.policies.numa.actions``), except ``lb_score``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsched.config import knob, validate
from memsched.policies.numa.actions import Action, MigratePages
from memsched.policies.numa.views import BoolArray, FaultBatch, IntArray, PolicyContext
from memsched.units import NSEC_PER_MSEC

__all__ = [
    "BASE_PAGE_SIZE",
    "HOOKS",
    "KERNEL_3_8",
    "MAX_SCAN_WINDOW_MB",
    "SCAN_3_8",
    "SCAN_3_13",
    "KernelTree",
    "KnumaScand",
    "MigrateMisplaced",
    "MigrationRules",
    "NumaPolicy",
    "TaskWorkScan",
    "applies_misplaced_rule",
    "overridden_hooks",
]


#: ``MAX_SCAN_WINDOW`` (kernel/sched/fair.c, 3.13): never scan more than 2560 MB of PTEs per second.
MAX_SCAN_WINDOW_MB = 2560
#: ``PAGE_SHIFT`` of the 4 KiB base pages ``get_mm_rss()`` counts.
BASE_PAGE_SHIFT = 12
BASE_PAGE_SIZE = 1 << BASE_PAGE_SHIFT

# ---- the largest value of each kind of knob ------------------------------------------------------------------
#: The ``numa_balancing_*`` sysctls are ``unsigned int`` written through ``proc_dointvec`` (kernel/sysctl.c, 3.8
#: until 5.13 moved them to debugfs; ``numa_balancing_scan_size_mb`` later through ``proc_dointvec_minmax`` with
#: ``extra1 = SYSCTL_ONE``): an ``int`` to the handler, whose ``do_proc_dointvec_conv()`` refuses anything above
#: ``INT_MAX`` with ``-EINVAL`` (older kernels truncated it). The kernel's own limit.
SYSCTL_INT_MAX = (1 << 31) - 1
#: Product limit of a period or interval that is not a sysctl (rate-limit windows, kernel-thread sleeps, a
#: policy's own cadence): one hour, the longest simulated run (``duration_s`` <= 3600); a longer one never fires.
MAX_INTERVAL_MS = 3_600_000
#: Product limit of an amount of memory that is not a sysctl (rate limits, pages per wake-up): 1 TiB, the largest
#: working set a workload may have (``size_mb`` / ``heap_mb`` <= 1 << 20).
MAX_MEMORY_MB = 1 << 20


@dataclass(frozen=True)
class TaskWorkScan:
    """``task_numa_work()`` scanning from the task tick (kernel/sched/fair.c), in sysctl terms.

    ``whole_address_space`` marks every VMA at once (numa/core's ``change_prot_numa`` on each scan) instead
    of ``scan_size_mb`` per period. ``scale_by_rss`` enables 3.13's scan windows (period bounds divided by
    ``roundup(RSS, scan_size) / scan_size``). ``scan_period_reset_ms`` = 0 disables 3.8's periodic reset.
    """

    scan_delay_ms: int = knob(
        1000, "numa_balancing_scan_delay_ms: first scan after this delay", min=0, max=SYSCTL_INT_MAX, limit=True
    )
    scan_period_min_ms: int = knob(
        100, "numa_balancing_scan_period_min_ms (3.8: 100)", min=1, max=SYSCTL_INT_MAX, limit=True,
        at_most="scan_period_max_ms",
    )
    scan_period_max_ms: int = knob(
        5000, "numa_balancing_scan_period_max_ms (3.8: 100*50)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    scan_period_reset_ms: int = knob(
        60000, "numa_balancing_scan_period_reset (3.8 only; 0 = off)", min=0, max=SYSCTL_INT_MAX, limit=True
    )
    scan_size_mb: int = knob(256, "numa_balancing_scan_size_mb", min=1, max=SYSCTL_INT_MAX, limit=True)
    whole_address_space: bool = knob(False, "mark the whole address space each scan (numa/core)")
    scale_by_rss: bool = knob(False, "3.13 scan windows: period bounds scaled by RSS")

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_knobs(cls, config: object, **fixed: object) -> TaskWorkScan:
        """A scan built from the same-named knobs of a policy's config, with ``fixed`` values on top."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {n: getattr(config, n) for n in names if hasattr(config, n)}
        return cls(**(values | fixed))


    def nr_scan_windows(self, rss_base_pages: int) -> int:
        """``task_nr_scan_windows()`` (kernel/sched/fair.c, 3.13): scan windows that cover the RSS, in 4 KiB
        pages as ``get_mm_rss()`` counts them (a THP counts 512)."""
        nr_scan_pages = self.scan_size_mb << (20 - BASE_PAGE_SHIFT)
        rss = rss_base_pages or nr_scan_pages
        return -(-rss // nr_scan_pages)  # round_up(rss, nr_scan_pages) / nr_scan_pages

    def period_bounds_ns(self, rss_base_pages: int) -> tuple[int, int]:
        """``task_scan_min()`` / ``task_scan_max()`` in ns: the sysctl bounds, divided by the number of scan
        windows under 3.13's ``scale_by_rss``, with its floor of ``MAX_SCAN_WINDOW`` = 2560 MB scanned per
        second (kernel/sched/fair.c, 3.13; a ``scan_size_mb`` of 2560 or more gives a floor of 1 s).

        Both are at least 1 ms: with a ``scan_size_mb`` under 3 the kernel's floor is 0 ms and the divided bounds
        can be too, and ``task_numa_work()`` then runs at the next tick, which is 1 ms at HZ=1000 (it sets
        ``numa_next_scan`` to now + 0 jiffies and ``task_tick_numa()`` queues it again)."""
        lo, hi = self.scan_period_min_ms, self.scan_period_max_ms
        if self.scale_by_rss:
            windows = MAX_SCAN_WINDOW_MB // self.scan_size_mb if self.scan_size_mb < MAX_SCAN_WINDOW_MB else 1
            floor = max(1, 1000 // windows)
            nr = self.nr_scan_windows(rss_base_pages)
            lo = max(floor, self.scan_period_min_ms // nr)
            hi = max(lo, self.scan_period_max_ms // nr)
        return lo * NSEC_PER_MSEC, hi * NSEC_PER_MSEC


#: The sysctl defaults of 3.8 (Documentation/sysctl/kernel.txt, commit 10fc05d0e551) and of 3.13+.
SCAN_3_8 = TaskWorkScan(1000, 100, 5000, 60000, 256)
SCAN_3_13 = TaskWorkScan(1000, 1000, 60000, 0, 256, scale_by_rss=True)


@dataclass(frozen=True)
class KnumaScand:
    """AutoNUMA's ``knuma_scand`` kernel thread (Documentation/vm/autonuma.txt of the AutoNUMA tree)."""

    scan_sleep_ms: int = knob(
        100, "scan_sleep_millisecs: pause between two chunks", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    scan_sleep_pass_ms: int = knob(
        10000, "scan_sleep_pass_millisecs: pause between two full passes", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    pages_to_scan_mb: int = knob(
        128, "pages_to_scan: address space marked per wake-up (MB)", min=1, max=MAX_MEMORY_MB, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class MigrationRules:
    """The mechanism's limits on hinting-fault migration (mm/migrate.c, 3.8 to ~4.x)."""

    rate_limit: bool = knob(True, "numamigrate_update_ratelimit(): cap pages per destination node and window")
    ratelimit_mb: int = knob(
        128, "ratelimit_pages: 128 MB per window per destination node", min=1, max=MAX_MEMORY_MB, limit=True
    )
    migrate_interval_ms: int = knob(
        100, "migrate_interval_millisecs: the rate-limit window", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    skip_ratelimited_ms: int = knob(
        0, "3.8-3.12 migrate_ratelimited(): scanner skips pages on a node limited within this many ms (1000)", min=0
    , max=MAX_INTERVAL_MS, limit=True)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class KernelTree:
    """What the kernel tree a design was posted on does around its policy, as far as costs go.

    ``thp_split``: a NUMA hinting fault on a huge page splits it (``split_huge_page()``) instead of
    migrating it whole; the 4 KiB pages then fault and migrate one by one. True of the 2012 trees without
    native THP migration (balancenuma V1-V3, AutoNUMA27/28) and of ``migrate_pages(2)``, whose
    ``unmap_and_move()`` splits every huge page it moves (mm/migrate.c, 3.x).
    ``anon_vma_lock``: ``"mutex"`` before Ingo Molnar's "mm/rmap: Convert the struct anon_vma::mutex to an
    rwsem" (2 Dec 2012, merged for 3.8), so every rmap walk of a migration serialises on the process's
    anon_vma; ``"rwsem"`` from 3.8 on, where migration walks take it for read ("mm/rmap, migration: Make
    rmap_walk_anon() and try_to_unmap_anon() more scalable", same series).
    ``base``: the kernel the tree was based on (for reports).
    """

    thp_split: bool = False
    anon_vma_lock: str = knob(
        "rwsem", "anon_vma lock of the tree: mutex (3.7 and earlier) or rwsem (3.8+)", choices=("mutex", "rwsem")
    )
    base: str = "3.8+"

    def __post_init__(self) -> None:
        validate(self)


#: The mainline trees (3.8 on): native THP migration, anon_vma rwsem.
KERNEL_3_8 = KernelTree()


HOOKS = ("on_faults", "after_faults", "on_placement", "on_scan_pass", "on_tick", "lb_score")


class NumaPolicy:
    """Base class of NUMA policies. Subclasses set the class attributes and override hooks.

    ``id`` is not written in the class: ``PolicySpec.make()`` sets it from the spec the policy was made from.
    """

    id: str = "unregistered"
    scan: TaskWorkScan | KnumaScand | None = None
    migration: MigrationRules = MigrationRules(rate_limit=False)
    tick_interval_ns: int | None = None
    #: The kernel tree around the policy (THP split on fault, anon_vma lock); see :class:`KernelTree`.
    kernel: KernelTree = KERNEL_3_8

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        return ()

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: BoolArray) -> Sequence[Action]:
        return ()

    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        return ()

    def on_scan_pass(self, ctx: PolicyContext, mm: int, node_pages: Sequence[int]) -> Sequence[Action]:
        return ()

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        return ()

    def lb_score(self, ctx: PolicyContext, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        return 0.0

    def metrics(self) -> dict[str, object]:
        """Policy-specific figures for the run record (e.g. home nodes, group membership)."""
        return {}


class MigrateMisplaced(NumaPolicy):
    """A policy whose ``on_faults`` is ``MPOL_F_MORON``'s rule (``mpol_misplaced()``, mm/mempolicy.c of Mel
    Gorman's "Foundation for automatic NUMA balancing", 6 Nov 2012): every fault on a page that is not on the
    faulting CPU's node, under a memory policy with ``MPOL_F_MOF``, migrates the page to that node at once, in
    the faulting task's context (``sync``).

    The simulator carries this rule out itself, on the batch's arrays and without building the batch and the
    action (``memsched.sim.numa.balancing``), when a subclass keeps this ``on_faults`` and has no
    ``after_faults``, and no one watches the hooks; the outcome is the same. Elsewhere (the live backend, a
    recorded trace) this method is called as any hook is.
    """

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        misplaced = self.misplaced(batch.page_node, batch.cpu_node, batch.migratable)
        if not np.count_nonzero(misplaced):
            return ()
        return (MigratePages.from_faults(batch, misplaced, mode="sync"),)

    @staticmethod
    def misplaced(page_node: IntArray, cpu_node: IntArray, mof: BoolArray | None) -> BoolArray:
        """The rule over a batch's columns: the faults whose page is on another node than the faulting CPU and
        whose memory policy has ``MPOL_F_MOF`` (``mof``; ``None``: every one's has), a new array."""
        misplaced: BoolArray = page_node != cpu_node
        if mof is not None:
            misplaced &= mof
        return misplaced


def applies_misplaced_rule(policy: NumaPolicy) -> bool:
    """Whether ``policy``'s fault hooks are exactly :class:`MigrateMisplaced`'s rule: its ``on_faults``, not
    overridden, and no ``after_faults``; neither set on the instance either (a hook wrapped there, as
    ``memsched.conformance`` wraps every hook to watch it, is called as any hook is)."""
    cls = type(policy)
    own = getattr(policy, "__dict__", {})
    return (
        cls.on_faults is MigrateMisplaced.on_faults
        and cls.after_faults is NumaPolicy.after_faults
        and "on_faults" not in own
        and "after_faults" not in own
    )


def overridden_hooks(policy: object) -> tuple[str, ...]:
    """Names of the hooks ``policy`` overrides (the only ones the mechanism will call)."""
    cls = type(policy)
    return tuple(h for h in HOOKS if getattr(cls, h, None) is not getattr(NumaPolicy, h))
