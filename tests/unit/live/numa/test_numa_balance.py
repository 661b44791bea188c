"""LiveBalancer --dry-run on the fixtures: what homenode and numad propose for misplaced processes."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from helpers.numa_live import PAGE, StepClock, numa2, numa4
from memsched.errors import ConfigError
from memsched.live.numa.balance import LiveBalancer, SampleReport
from memsched.live.roots import LiveRoots
from memsched.policies.numa import registry
from memsched.policies.numa.actions import Action
from memsched.policies.numa.base import NumaPolicy, TaskWorkScan
from memsched.policies.numa.driver import ActionResult
from memsched.policies.numa.views import FaultBatch, PolicyContext

SEC = 1_000_000_000


def balancer(policy: NumaPolicy, roots: LiveRoots | None = None, step_ns: int = SEC, **kw: object) -> LiveBalancer:
    return LiveBalancer(
        policy,
        roots=roots or numa4(),
        dry_run=True,
        page_size=PAGE,
        clk_tck=100,
        clock=StepClock(step_ns),
        self_pid=4000,
        **kw,  # type: ignore[arg-type]
    )


def results(reports: Sequence[SampleReport], action: str, sample: int | None = None) -> list[ActionResult]:
    return [r for rep in reports for r in rep.results if r.action == action and sample in (None, r.sample)]


def test_homenode_cpu_follows_memory_then_memory_follows_cpu() -> None:
    """homenode on the 4-node fixture, one window per pass: placement runs when a pass completes, before that
    pass's faults count (task_numa_placement() sees the faults of the passes before), so sample 1 only
    records faults. Sample 2 swaps home nodes (stream to node 2, worker pool to node 0), proposes moving the
    threads there and, the two-stage filter having seen the same node twice, moving each misplaced
    process's memory to its threads' node. The well-placed process is left alone."""
    policy = registry.get("homenode").make(registry.get("homenode").make_config({"scan_size_mb": "1024"}))
    reports = balancer(policy).run(2, sleep=lambda s: None)
    assert not reports[0].results and reports[0].faults > 0
    homes = {(r.target, r.detail) for r in results(reports, "SetPreferredNode", 2)}
    assert ("pid 4100 (stream)", "preferred node 2") in homes
    assert ("pid 4200 (worker pool)", "preferred node 0") in homes
    assert ("tid 4201 (worker pool, pid 4200)", "preferred node 0") in homes
    moves = {r.target: r.detail for r in results(reports, "MigrateTask", 2)}
    assert moves == {
        "pid 4100 (stream)": "CPU 1 -> CPU 5 (node 2)",
        "pid 4200 (worker pool)": "CPU 4 -> CPU 0 (node 0)",
        "tid 4201 (worker pool, pid 4200)": "CPU 12 -> CPU 8 (node 0)",
    }
    assert all(r.status == "dry-run" for r in results(reports, "MigrateTask"))
    assert not results(reports, "MigratePages", 1)  # never two faults from one node yet: last_nid unset
    pages = {r.target: r for r in results(reports, "MigratePages", 2)}
    assert set(pages) == {"pid 4100 (stream)", "pid 4200 (worker pool)"}
    assert pages["pid 4100 (stream)"].detail.endswith("-> node 0")
    # Each sampled page stands for its block of `stride` (49) pages: the block straddling the start of the
    # node-2 part begins on node 0, is not misplaced, and keeps its node-2 tail where it is.
    stream = re.search(r"would move (\d+) from node 2", pages["pid 4100 (stream)"].message)
    assert stream is not None and 192512 - 49 < int(stream.group(1)) <= 192512
    assert pages["pid 4200 (worker pool)"].detail.endswith("-> node 2")
    assert "would move 131105 from node 0" in pages["pid 4200 (worker pool)"].message  # buffer + 33 heap pages
    touched = {r.target for rep in reports for r in rep.results if r.action in ("MigrateTask", "MigratePages")}
    assert not any("4300" in t or "4400" in t for t in touched)


def test_homenode_scan_passes_follow_the_window() -> None:
    """With the default 256 MB window the stream process (768 MiB) completes its first pass at sample 4,
    the 512 MiB worker pool at sample 3: placement runs only then."""
    policy = registry.get("homenode").make()
    b = balancer(policy)
    reports = b.run(4, sleep=lambda s: None)
    placed = {(r.sample, r.target) for r in results(reports, "SetScanPeriod")}
    assert (3, "pid 4200 (worker pool)") in placed and not any(t == "pid 4100 (stream)" for s, t in placed if s < 4)
    assert (4, "pid 4100 (stream)") in placed
    assert b.state.scan_seq == {0: 1, 1: 1, 2: 2}  # sleepy never ran: never scanned (the kernel scans from ticks)
    assert reports[0].faults == 3 * 4096  # one full window (4096 samples) for each process that ran


def test_numad_binds_the_biggest_candidate_to_the_best_scoring_node() -> None:
    """numad on the 4-node fixture, first interval at 50 s: stream (104 % CPU, 769 MB) is the top
    candidate; node 3 has the most memory and idle CPUs at 85 % target utilisation, so numad binds its
    thread to node 3's CPUs and moves its memory there from nodes 0 and 2 with migrate_pages."""
    reports = balancer(registry.get("numad").make(), step_ns=50 * SEC).run(1, sleep=lambda s: None)
    (aff,) = results(reports, "SetAffinity")
    assert aff.target == "pid 4100 (stream)" and aff.detail == "affinity -> 6-7,14-15"
    assert aff.status == "dry-run" and aff.message == "would change it from 0-15"
    (mig,) = results(reports, "MigrateMmNodes")
    assert mig.detail == "nodes 0-3 -> 3" and mig.status == "dry-run"
    assert mig.message == "would migrate_pages: 4401 page(s) node 0 -> 3; 192512 page(s) node 2 -> 3"


def test_balanced_set_excludes_other_users_and_itself() -> None:
    """On the 2-node tree the caller is uid 1000 without CAP_SYS_NICE: root's daemon is not balanced and a
    note says why; the balancer's own pid is never balanced."""
    b = LiveBalancer(
        registry.get("homenode").make(),
        roots=numa2(),
        dry_run=True,
        page_size=PAGE,
        clk_tck=100,
        self_pid=900,
    )
    with pytest.warns(UserWarning, match="numa_pte_updates"):
        (report,) = b.run(1, sleep=lambda s: None)
    assert report.processes == ((950, "cache (v2)"),)
    assert report.notes == ("not balanced: pid 960 (rootd) belongs to uid 0; changing it needs CAP_SYS_NICE",)


def test_applying_to_a_copied_tree_is_refused() -> None:
    """Without --dry-run a fixture tree cannot be balanced: its pids are not this machine's processes."""
    with pytest.raises(ConfigError, match="must be /proc and /sys to apply actions"):
        LiveBalancer(registry.get("homenode").make(), roots=numa4(), dry_run=False)


class _Faults(NumaPolicy):
    """Records what the live mechanism hands to on_faults and after_faults."""

    id = "test-faults"
    scan = TaskWorkScan(scan_size_mb=1024)  # every sample is a whole pass

    def __init__(self) -> None:
        self.batches: list[FaultBatch] = []
        self.migrated: list[np.ndarray] = []

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        self.batches.append(batch)
        return ()

    def after_faults(self, ctx: PolicyContext, batch: FaultBatch, migrated: np.ndarray) -> Sequence[Action]:
        self.migrated.append(migrated)
        return ()


def test_fault_batches_from_page_samples() -> None:
    """Each present sampled page is one read-only fault record standing for `stride` pages; the accessor is
    a thread that ran (both worker threads share the pages); last_nid is what the previous pass saw."""
    policy = _Faults()
    balancer(policy, seed=3).run(2, sleep=lambda s: None)
    first = {b.mm: b for b in policy.batches[:3]}
    assert sorted(first) == [0, 1, 2]  # sleepy (mm 3) did not run: no faults
    worker = first[1]
    assert set(worker.task.tolist()) == {1, 2}
    assert worker.base_pages == -(-133190 // 4096)  # 133190 anonymous pages in VMAs, 4096 samples
    assert set(zip(worker.task.tolist(), worker.cpu.tolist(), strict=True)) == {(1, 4), (2, 12)}
    assert (worker.cpu_node == 2).all() and (worker.last_nid == -1).all()
    assert np.isin(worker.page_node, [0, 2]).all() and not worker.page.flags.writeable
    again = {b.mm: b for b in policy.batches[3:]}[0]
    assert (again.last_nid == 0).all() and np.isin(again.last_pid, [0]).all()
    assert not any(m.any() for m in policy.migrated)  # dry run: nothing migrated


def test_seed_makes_accessors_reproducible() -> None:
    """Same seed, same accessor draws; another seed draws differently for the two worker threads."""

    def draws(seed: int) -> list[int]:
        policy = _Faults()
        balancer(policy, seed=seed).run(1, sleep=lambda s: None)
        return policy.batches[1].task.tolist()

    assert draws(1) == draws(1) and draws(1) != draws(2)


@pytest.mark.filterwarnings("ignore::memsched.live.procfs.MissingFieldWarning")
@pytest.mark.parametrize("fixture", [numa4, numa2], ids=["numa4", "numa2"])
def test_autonuma_passes_over_cpus_that_run_only_other_processes_threads(fixture: object) -> None:
    """Live, a CPU's nr_running counts every running thread in /proc, its cpu_tasks only the balanced ones:
    autonuma's task exchange took the first queued task of every busy CPU and failed with an IndexError
    (`numa balance --policy autonuma`, an internal error) where a CPU ran only other processes' threads."""
    reports = balancer(registry.get("autonuma").make(), roots=fixture()).run(4, sleep=lambda s: None)  # type: ignore[operator]
    assert len(reports) == 4
