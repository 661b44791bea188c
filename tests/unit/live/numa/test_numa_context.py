"""LiveContext: the PolicyContext of real processes, read from the 4-node fixture."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.numa_live import PAGE, numa4
from memsched.live.numa.context import BalancerState, LiveContext
from memsched.live.numa.snapshot import take_snapshot
from memsched.topology.sysfs import topology_from_sysfs

TICK_NS = 10_000_000


def context(samples: int = 0, runtime: dict[int, int] | None = None) -> LiveContext:
    roots = numa4()
    topo = topology_from_sysfs(roots.sys_root)
    snap = take_snapshot(roots, topo, page_size=PAGE, clk_tck=100, clock=lambda: 5_000_000_000)
    state = BalancerState(seed=0, start_ns=1_000_000_000, samples=samples)
    for tid in (4100, 4200, 4201, 4300, 4400):  # the ids the context would give, in pid order
        state.tasks.id(tid)
    if runtime:
        for tid, ns in runtime.items():
            state.runtime[state.tasks.id(tid)] = ns
    return LiveContext(snap, snap.processes.values(), state, TICK_NS)


def test_dense_ids_and_process_structure() -> None:
    """Tasks and mms get small ids in pid order; a thread's tgid is its main thread's task id."""
    ctx = context()
    tids = {t.tid: t.id for t in ctx.tasks_by_id.values()}
    assert tids == {4100: 0, 4200: 1, 4201: 2, 4300: 3, 4400: 4}
    assert ctx.tasks().tolist() == [0, 1, 2, 3, 4]
    assert ctx.task_tgid(2) == 1 and ctx.task_mm(2) == ctx.task_mm(1) == 1 and ctx.mm_tasks(1) == (1, 2)
    assert ctx.now_ns == 4_000_000_000


def test_views_from_kernel_files() -> None:
    """CPU, node, distance, memory and runtime views come from sysfs, stat, status and numa_maps."""
    ctx = context()
    assert ctx.nr_nodes == 4 and ctx.nr_cpus == 16 and ctx.node_cpus[2] == (4, 5, 12, 13)
    assert ctx.distance[0, 2] == 22 and ctx.cpu_node[12] == 2
    assert ctx.node_total_pages.tolist() == [4 << 20] * 4 and ctx.node_free_pages[1] == (14 << 30) // PAGE
    assert ctx.task_runtime_ns(0) == 5200 * TICK_NS
    assert ctx.task_allowed(0).all() and ctx.task_allowed(0).shape == (16,)
    assert ctx.mm_node_pages(0)[2] == 192512
    assert ctx.cpu_nr_running[12] == 1 and ctx.cpu_tasks(12) == (2,) and ctx.cpu_tasks(7) == ()
    assert ctx.task_preferred_node(0) == -1 and ctx.mm_scan_seq(0) == 0
    for arr in (ctx.cpu_node, ctx.distance, ctx.node_free_pages, ctx.mm_node_pages(0), ctx.task_allowed(0)):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1


def test_first_sample_counts_only_running_threads() -> None:
    """At the first sample only state R means "on a CPU": the sleeper's last CPU is not its queue."""
    ctx = context()
    assert ctx.task_cpu(0) == 1 and ctx.task_runnable(0)
    assert ctx.task_cpu(4) == -1 and not ctx.task_runnable(4)  # sleepy, state S


def test_later_samples_count_cpu_time_used_since() -> None:
    """After the first sample a sleeping thread that used CPU time since counts as active on its last CPU."""
    ctx = context(samples=1, runtime={4400: 50 * TICK_NS})
    assert ctx.task_cpu(4) == 7 and ctx.tasks_by_id[4].weight_ns == 5 * TICK_NS
    idle = context(samples=1, runtime={4400: 55 * TICK_NS})
    assert idle.task_cpu(4) == -1


def test_applied_moves_are_visible_in_the_same_sample() -> None:
    """A moved task, a changed mask and moved pages show in the views that follow."""
    ctx = context()
    ctx.moved_task(0, 5)
    ctx.changed_affinity(0, frozenset({4, 5}))
    ctx.moved_pages(0, np.array([2, 2, 0], dtype=np.int64), 3)
    assert ctx.task_cpu(0) == 5 and ctx.task_allowed(0).nonzero()[0].tolist() == [4, 5]
    assert ctx.mm_node_pages(0)[[0, 2, 3]].tolist() == [4400, 192510, 3]


def test_rng_streams_are_seeded_by_name() -> None:
    """Same seed and name, same stream; a different name, a different one."""
    a, b = context(), context()
    assert a.rng("x").integers(1 << 30) == b.rng("x").integers(1 << 30)
    assert a.rng("y").integers(1 << 30) != context().rng("x").integers(1 << 30)
