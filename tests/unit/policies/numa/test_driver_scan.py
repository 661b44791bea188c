"""driver: one order of hooks for both backends; scan bounds written once, in the kernel's page arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from memsched.errors import PolicyError
from memsched.policies.numa.actions import Action, MigratePages, SetPreferredNode
from memsched.policies.numa.base import NumaPolicy, TaskWorkScan
from memsched.policies.numa.driver import ActionResult, HookDriver
from memsched.policies.numa.views import BoolArray, FaultBatch, PolicyContext
from memsched.units import NSEC_PER_MSEC


@pytest.mark.parametrize(
    ("scan_size_mb", "rss_mb", "min_ms", "max_ms"),
    [
        (256, 0, 1000, 60000),  # no RSS yet: one window
        (256, 384, 500, 30000),  # round_up(384, 256) / 256 = 2 windows
        (256, 5120, 100, 3000),  # 20 windows: 50 ms, raised to the 100 ms floor of 2560 MB/s
        (4096, 8192, 1000, 30000),  # scan_size >= MAX_SCAN_WINDOW: one window per second at most
        (1, 1024, 1, 58),  # floor 1000 // 2560 = 0 and 1000 // 1024 windows = 0: the next tick, 1 ms
        (1, 65536, 1, 1),  # both divided bounds 0: never a zero period
    ],
)
def test_period_bounds_follow_task_scan_min_max(scan_size_mb: int, rss_mb: int, min_ms: int, max_ms: int) -> None:
    """task_scan_min()/task_scan_max() of 3.13 (kernel/sched/fair.c): no division by zero at any scan size, and
    no period under the 1 ms tick (a 0 ms period failed the run with "'period_ns' must be > 0")."""
    scan = TaskWorkScan(1000, 1000, 60000, 0, scan_size_mb, scale_by_rss=True)
    assert scan.period_bounds_ns(rss_mb * 256) == (min_ms * NSEC_PER_MSEC, max_ms * NSEC_PER_MSEC)


def test_windows_count_4k_pages_not_megabytes() -> None:
    """An RSS one 4 KiB page past 256 MB needs a second window (rounding in whole MB would say one)."""
    scan = TaskWorkScan(scan_size_mb=256, scale_by_rss=True)
    assert scan.nr_scan_windows(256 * 256) == 1 and scan.nr_scan_windows(256 * 256 + 1) == 2


class _Ctx:
    """Just enough of a PolicyContext for the driver."""

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        return (7, 8)

    def mm_node_pages(self, mm: int) -> np.ndarray:
        return np.array([3, 4])


class _Scripted(NumaPolicy):
    def __init__(self) -> None:
        self.log: list[str] = []

    def on_scan_pass(self, ctx: PolicyContext, mm: int, node_pages: Sequence[int]) -> Sequence[Action]:
        self.log.append(f"pass {mm} {tuple(node_pages)}")
        return ()

    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        self.log.append(f"place {task}")
        return (SetPreferredNode(task, 1),)

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        self.log.append("faults")
        return (MigratePages(batch.mm, batch.page[:1], [1], payer=batch.task[:1]),)

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: BoolArray) -> Sequence[Action]:
        self.log.append(f"after {migrated.tolist()}")
        return ()


class _Actuator:
    def apply(self, action: Action) -> ActionResult:
        moved = action.pages[:1] if isinstance(action, MigratePages) else None
        return ActionResult(type(action).__name__, "t", "d", "applied", moved_pages=moved)


def _batch() -> FaultBatch:
    a = np.array([10, 11], dtype=np.int64)
    return FaultBatch(0, a, a, a, a, a, np.array([5, 6]), a, a, a, a, 1)


def test_driver_order_and_migrated_mask() -> None:
    """A pass: on_scan_pass then on_placement per task; a batch: on_faults, then after_faults with the pages
    those actions moved; every result names its hook."""
    policy = _Scripted()
    driver = HookDriver(policy, _Ctx(), _Actuator())  # type: ignore[arg-type]
    results = driver.scan_pass(0) + driver.faults(_batch())
    assert policy.log == ["pass 0 (3, 4)", "place 7", "place 8", "faults", "after [True, False]"]
    assert [r.hook for r in results] == ["on_placement", "on_placement", "on_faults"]


def test_a_bad_return_is_the_policys_fault() -> None:
    """Something other than a sequence of actions is a PolicyError naming the policy and the hook."""

    class Bad(NumaPolicy):
        def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
            return 42  # type: ignore[return-value]

    policy = Bad()
    policy.id = "bad"
    driver = HookDriver(policy, _Ctx(), _Actuator())  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="policy bad: on_tick returned 42"):
        driver.tick()
