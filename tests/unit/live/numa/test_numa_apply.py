"""Applying actions against a fake kernel: per-action results, partial changes said out loud, clean-up."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from helpers.numa_live import PAGE, FakeNumaSyscalls, StepClock, numa4
from memsched.errors import PolicyError
from memsched.live.numa.apply import _remap
from memsched.live.numa.balance import LiveBalancer
from memsched.live.numa.pages import KernelPageProbe, NumaMapsLayoutProbe
from memsched.live.numa.snapshot import take_snapshot
from memsched.policies.numa.actions import (
    Action,
    MigrateMmNodes,
    MigratePages,
    MigrateTask,
    SetAffinity,
    SetPreferredNode,
    SwapTasks,
)
from memsched.policies.numa.base import MigrationRules, NumaPolicy, TaskWorkScan
from memsched.policies.numa.driver import ActionResult
from memsched.policies.numa.views import FaultBatch, PolicyContext
from memsched.topology.sysfs import topology_from_sysfs

STREAM_BUF = 0x7F3A00000000 // PAGE  # first page of stream's 768 MiB buffer (4096 pages on node 0, then node 2)
ALL = frozenset(range(16))


class Scripted(NumaPolicy):
    """Returns, from on_tick, whatever ``script(ctx)`` gives."""

    id = "test-scripted"

    def __init__(self, script: Callable[[PolicyContext], Sequence[Action]], rules: MigrationRules | None = None):
        self.script = script
        self.tick_interval_ns = 1_000_000_000
        if rules is not None:
            self.migration = rules

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        return self.script(ctx)


def fake_kernel() -> FakeNumaSyscalls:
    roots = numa4()
    snap = take_snapshot(roots, topology_from_sysfs(roots.sys_root), page_size=PAGE, clk_tck=100)
    layout = NumaMapsLayoutProbe(4)
    return FakeNumaSyscalls(
        layout=lambda pid, vpns: layout.page_nodes(snap.processes[pid], vpns, PAGE),
        affinity={tid: ALL for tid in (4100, 4200, 4201, 4300, 4400)},
    )


def run(
    script: Callable[[PolicyContext], Sequence[Action]], kernel: FakeNumaSyscalls, **kw: object
) -> list[ActionResult]:
    rules = kw.pop("rules", None)
    b = LiveBalancer(
        Scripted(script, rules),  # type: ignore[arg-type]
        roots=numa4(),
        syscalls=kernel,
        probe=KernelPageProbe(kernel),
        page_size=PAGE,
        clk_tck=100,
        clock=StepClock(1_000_000_000),
        self_pid=4000,
        **kw,  # type: ignore[arg-type]
    )
    (report,) = b.run(1, sleep=lambda s: None)
    return list(report.results)


def test_migrate_pages_queries_then_moves_and_reports_partial_moves() -> None:
    """Pages already on the target are not moved; pages the kernel refuses (EBUSY) are named, and the
    result says the process is only partly moved."""
    kernel = fake_kernel()
    pages = np.arange(STREAM_BUF + 4094, STREAM_BUF + 4100)  # 2 pages on node 0, 4 on node 2
    kernel.move_errors = {STREAM_BUF + 4098: errno.EBUSY}
    (r,) = run(lambda ctx: [MigratePages(0, pages, [0], mode="syscall")], kernel)
    assert r.status == "partial" and r.target == "pid 4100 (stream)"
    assert r.message.startswith("process partly moved: 3 of 4 page(s) now on node 0; 1 failed (EBUSY x1)")
    assert "2 already on node 0" in r.message
    assert kernel.calls[-1] == ("move", 4100, 4, [0])
    assert kernel._node(4100, pages).tolist() == [0, 0, 0, 0, 2, 0]  # the refused page stays on node 2


def test_migrate_pages_nothing_to_do_and_absent_pages() -> None:
    """Pages already there or not present: a no-op, and no move call reaches the kernel."""
    kernel = fake_kernel()
    pages = np.array([STREAM_BUF, STREAM_BUF + 196608 + 5])  # node 0, and past the resident part
    (r,) = run(lambda ctx: [MigratePages(0, pages, [0], mode="syscall")], kernel)
    assert r.status == "no-op" and "1 already on node 0, 1 not present" in r.message
    assert all(c[0] == "query" for c in kernel.calls)


def test_rate_limit_defers_hinting_migrations() -> None:
    """sync/async migrations obey ratelimit_mb per migrate_interval_ms (scaled to the sample interval)."""
    kernel = fake_kernel()
    pages = np.arange(STREAM_BUF + 4096, STREAM_BUF + 4096 + 3000)
    rules = MigrationRules(rate_limit=True, ratelimit_mb=1, migrate_interval_ms=1000)  # 256 pages per second
    (r,) = run(lambda ctx: [MigratePages(0, pages, [0], payer=[0])], kernel, rules=rules)
    assert r.status == "applied" and "2744 deferred by the rate limit" in r.message
    assert kernel.calls[-1] == ("move", 4100, 256, [0])


def test_migrate_task_pins_then_restores() -> None:
    """A one-shot move: pinned to the target CPU, then its own mask back, so nothing stays changed."""
    kernel = fake_kernel()
    (r,) = run(lambda ctx: [MigrateTask(0, 5)], kernel)
    assert r.status == "applied" and r.detail == "CPU 1 -> CPU 5 (node 2)"
    assert kernel.calls == [("set_affinity", 4100, [5]), ("set_affinity", 4100, list(range(16)))]
    assert kernel.affinity[4100] == ALL


def test_migrate_task_restore_failure_is_said() -> None:
    """If the mask cannot be restored the result says the thread is LEFT PINNED."""
    kernel = fake_kernel()
    kernel.affinity_errors = {4100: [0, errno.EPERM]}
    (r,) = run(lambda ctx: [MigrateTask(0, 5)], kernel)
    assert r.status == "failed" and r.message.startswith("LEFT PINNED to CPU 5")


def test_migrate_task_checks_before_touching() -> None:
    """A CPU outside the thread's mask, or the CPU it is on, changes nothing."""
    kernel = fake_kernel()
    results = run(lambda ctx: [MigrateTask(0, 99), MigrateTask(0, 1)], kernel)
    assert [r.status for r in results] == ["skipped", "no-op"]
    assert "not online" in results[0].message and kernel.calls == []


def test_swap_half_done_is_partial() -> None:
    """The first thread moved, the second refused: partial, naming which moved."""
    kernel = fake_kernel()
    kernel.affinity_errors = {4300: [errno.EPERM]}
    (r,) = run(lambda ctx: [SwapTasks(0, 3)], kernel)
    assert r.status == "partial"
    assert r.message.startswith("pid 4100 (stream) moved to CPU 3, but pid 4300 (local) did not move")
    assert kernel.affinity[4100] == ALL and kernel.affinity[4300] == ALL


def test_swap_with_an_exited_thread_is_skipped() -> None:
    """The first thread exited before it moved: skipped, as every action on a thread that exited, not failed."""
    kernel = fake_kernel()
    kernel.exited = {4100}
    (r,) = run(lambda ctx: [SwapTasks(0, 3)], kernel)
    assert (r.status, r.message) == ("skipped", "pid 4100 (stream) exited, nothing changed")
    assert kernel.affinity[4300] == ALL and all(call[1] != 4300 for call in kernel.calls)


def test_set_affinity_persists_and_can_be_restored_on_close() -> None:
    """SetAffinity binds (numad); with restore_affinity the balancer puts the old mask back when it stops."""
    kernel = fake_kernel()
    (r,) = run(lambda ctx: [SetAffinity(0, (6, 7, 14, 15))], kernel)
    assert r.status == "applied" and r.message == "was 0-15" and kernel.affinity[4100] == {6, 7, 14, 15}
    kernel = fake_kernel()
    run(lambda ctx: [SetAffinity(0, (6, 7, 14, 15))], kernel, restore_affinity=True)
    assert kernel.affinity[4100] == ALL


def test_exited_process_is_skipped() -> None:
    """ESRCH from the kernel: the process exited between the sample and the action."""
    kernel = fake_kernel()
    kernel.exited = {4100}
    results = run(lambda ctx: [MigratePages(0, [STREAM_BUF + 5000], [0], mode="syscall"), MigrateTask(0, 5)], kernel)
    assert [(r.status, r.message) for r in results] == [
        ("skipped", "the process exited"),
        ("skipped", "the thread exited"),
    ]


def test_migrate_mm_nodes_calls_migrate_pages() -> None:
    """numad's whole-process move is one migrate_pages(from, to); pages the kernel could not move are
    reported (the fixture's numa_maps does not change, so nothing is seen moving: failed)."""
    kernel = fake_kernel()
    (r,) = run(lambda ctx: [MigrateMmNodes(0, (0, 1, 2, 3), (3,))], kernel)
    assert r.status == "applied" and kernel.calls == [("migrate_pages", 4100, [0, 1, 2, 3], [3])]
    assert "4401 page(s) node 0 -> 3; 192512 page(s) node 2 -> 3" in r.message
    kernel = fake_kernel()
    kernel.unmovable = 17
    (r,) = run(lambda ctx: [MigrateMmNodes(0, (0, 1, 2, 3), (3,))], kernel)
    assert r.status == "failed" and "could not move 17 page(s)" in r.message


def test_remap_follows_do_migrate_pages() -> None:
    """n-th source to (n mod k)-th destination; with sets of different size, a source that is also a
    destination keeps its pages; equal sizes map position to position (a swap moves both)."""
    assert _remap([0, 1, 2, 3], [3]) == {0: 3, 1: 3, 2: 3}
    assert _remap([0, 1, 2, 3], [1, 3]) == {0: 1, 2: 1}
    assert _remap([0, 1], [2, 3]) == {0: 2, 1: 3}
    assert _remap([0, 1], [0, 1]) == {}


def test_recorded_actions_and_unknown_targets() -> None:
    """SetPreferredNode is balancer state; actions naming tasks or mms outside the balanced set are skipped;
    a hook returning something that is not an action is a ConfigError."""
    kernel = fake_kernel()
    results = run(lambda ctx: [SetPreferredNode(0, 2), MigrateTask(77, 1), MigrateMmNodes(9, (0,), (1,))], kernel)
    assert [r.status for r in results] == ["recorded", "skipped", "skipped"]
    with pytest.raises(PolicyError, match="policy test-scripted: on_tick returned 'move everything'"):
        run(lambda ctx: ["move everything"], kernel)  # type: ignore[list-item]


class _ToNodeZero(NumaPolicy):
    """on_faults: every sampled page to node 0; after_faults: remember which ones the mechanism migrated."""

    id = "test-to-node-zero"
    scan = TaskWorkScan(scan_size_mb=1024)

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        return [MigratePages(batch.mm, batch.page, [0], mode="syscall")] if batch.mm == 0 else []

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: np.ndarray) -> Sequence[Action]:
        if batch.mm == 0:
            self.seen.append((np.array(batch.page_node), np.array(migrated)))
        return ()


def test_after_faults_learns_which_sampled_pages_moved() -> None:
    """A sampled page counts as migrated when its own page moved: the node-2 pages of stream, not the pages
    already on node 0; and the context's memory per node follows the moves."""
    kernel = fake_kernel()
    policy = _ToNodeZero()
    b = LiveBalancer(
        policy,
        roots=numa4(),
        syscalls=kernel,
        probe=KernelPageProbe(kernel),
        page_size=PAGE,
        clk_tck=100,
        clock=StepClock(1_000_000_000),
        self_pid=4000,
    )
    (report,) = b.run(1, sleep=lambda s: None)
    ((page_node, migrated),) = policy.seen
    assert migrated[page_node == 2].all() and not migrated[page_node == 0].any()
    (r,) = [r for r in report.results if r.action == "MigratePages"]
    assert r.status == "applied" and "from node 2" in r.message
