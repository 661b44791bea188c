"""mainline (3.13+) and numad rules on hand-built cases."""

from __future__ import annotations

import numpy as np

from helpers.numa_fake import FakeContext, batch
from memsched.policies.numa import get
from memsched.policies.numa.actions import MigrateMmNodes, SetAffinity, SetScanPeriod
from memsched.policies.numa.mainline import Mainline, NumaGroup

MS = 1_000_000


def mainline() -> Mainline:
    p = get("mainline").make()
    assert isinstance(p, Mainline)
    return p


def test_shared_fault_forms_a_group() -> None:
    """A shared fault on a page the other thread (still running on its CPU) touched last joins the two."""
    p = mainline()
    ctx = FakeContext(rq={0: [1], 2: [2]}, task_info={1: (1, 0), 2: (1, 0)})
    # Task 2 faults on a page task 1 touched from CPU 0: task 2 gets a group, task 1 has none yet.
    p.after_faults(ctx, batch(task=[2], cpu=[2], page_node=[0], last_pid=[1], last_cpu=[0]), np.array([False]))
    assert p.tasks[2].group == 2
    assert 1 not in p.tasks
    # Task 1 faults on a page task 2 touched from CPU 2: same process, equal sizes; the tie goes by group
    # identity (the kernel compares addresses; here ids), so group 1 joins group 2.
    p.after_faults(ctx, batch(task=[1], cpu=[0], page_node=[1], last_pid=[2], last_cpu=[2]), np.array([False]))
    assert p.tasks[1].group == p.tasks[2].group == 2
    assert p.groups[2].tasks == {1, 2} and 1 not in p.groups
    assert p.metrics()["numa_groups"] == {"2": [1, 2]}


def test_no_join_when_the_last_task_no_longer_runs_there() -> None:
    """cpupid_match_pid(): if another task now runs on the recorded CPU, there is no join."""
    p = mainline()
    ctx = FakeContext(rq={0: [9], 2: [2]}, task_info={1: (1, 0), 2: (1, 0), 9: (9, 5)})
    p._t(ctx, 1)
    p.after_faults(ctx, batch(task=[1], cpu=[0], page_node=[0], last_pid=[2], last_cpu=[3]), np.array([False]))
    assert p.tasks[1].group == 1 and len(p.groups[1].tasks) == 1


def test_active_nodes_enter_and_leave_at_thresholds() -> None:
    """A node joins the active set above 6/16 of the busiest node's CPU faults and leaves below 3/16."""
    p = mainline()
    g = NumaGroup(1, {1}, np.zeros((4, 2)), np.zeros((4, 2)), active={0, 3})
    g.faults_cpu[:, 0] = [16, 6.01, 6.0, 3.0]
    p._update_active_nodes(g)
    assert g.active == {0, 1, 3}  # node 1 above 6/16 enters, node 2 at exactly 6/16 does not, node 3 at 3/16 stays
    g.faults_cpu[:, 0] = [16, 6.01, 6.0, 2.99]
    p._update_active_nodes(g)
    assert g.active == {0, 1}


def _grouped(p: Mainline, ctx: FakeContext, faults_by_node: list[float], active: set[int]) -> None:
    for t in (1, 2):
        st = p._t(ctx, t)
        st.group = 1
    g = NumaGroup(1, {1, 2}, np.zeros((ctx.nr_nodes, 2)), np.zeros((ctx.nr_nodes, 2)), active=active)
    g.faults[:, 0] = faults_by_node
    p.groups[1] = g


def test_three_quarters_rule_blocks_concentrating_a_shared_working_set() -> None:
    """Between two active nodes, a shared page moves only if the destination has < 3/4 of the source's faults."""
    ctx = FakeContext(nodes=2, task_info={1: (1, 0), 2: (1, 0)})
    shared = batch(task=[1], cpu=[2], page_node=[0], last_nid=[1], last_pid=[2])  # dst node 1, src node 0
    p = mainline()
    _grouped(p, ctx, [100.0, 80.0], {0, 1})
    assert p.on_faults(ctx, shared) == ()  # 80 >= 75: blocked
    q = mainline()
    _grouped(q, ctx, [100.0, 70.0], {0, 1})
    (mig,) = q.on_faults(ctx, shared)
    assert mig.dst.tolist() == [1]
    # Never to a node outside the active set; always from one outside it.
    r = mainline()
    _grouped(r, ctx, [100.0, 10.0], {0})
    assert r.on_faults(ctx, shared) == ()
    s = mainline()
    _grouped(s, ctx, [100.0, 500.0], {1})
    assert len(s.on_faults(ctx, shared)) == 1


def test_two_stage_filter_and_private_faults() -> None:
    """Stage 1: a previous fault from another node blocks; a private fault migrates; a first fault passes."""
    p = mainline()
    ctx = FakeContext()
    b = batch(task=[1, 1, 1], cpu=[0, 0, 0], page_node=[1, 1, 1], last_nid=[1, 0, -1], last_pid=[1, 1, -1])
    (mig,) = p.on_faults(ctx, b)
    assert mig.pages.tolist() == [1, 2]


def test_scan_period_lengthens_when_local_and_shortens_when_remote() -> None:
    """update_task_scan_period(): >= 70 % local faults slow scanning by slots; remote faults speed it up,
    scaled by the private share; no faults at all double it."""
    ctx = FakeContext(task_info={1: (1, 0)}, periods={1: 1000 * MS}, mm_pages={0: [64, 0]})
    p = mainline()
    p.after_faults(ctx, batch(task=[1] * 10, cpu=[0] * 10, page_node=[0] * 10), np.zeros(10, bool))
    acts = [a for a in p.on_placement(ctx, 1) if isinstance(a, SetScanPeriod)]
    assert acts[0].period_ns == 1000 * MS + 3 * 100 * MS  # ratio 10: (10 - 7) slots of period/10
    q = mainline()
    q.after_faults(ctx, batch(task=[1] * 10, cpu=[0] * 10, page_node=[1] * 10), np.zeros(10, bool))
    acts = [a for a in q.on_placement(ctx, 1) if isinstance(a, SetScanPeriod)]
    # ratio 0: -(7) slots, scaled by ceil(10 * private / (private + shared + 1)) / 10 = 10/10 -> -700 ms,
    # clamped to task_scan_min (one 256 MB window for a 128 MB RSS: 1000 ms).
    assert acts[0].period_ns == 1000 * MS
    r = mainline()
    ctx2 = FakeContext(task_info={1: (1, 0)}, periods={1: 4000 * MS}, mm_pages={0: [64, 0]})
    r.after_faults(ctx2, batch(task=[1] * 10, cpu=[0] * 10, page_node=[1] * 10), np.zeros(10, bool))
    acts = [a for a in r.on_placement(ctx2, 1) if isinstance(a, SetScanPeriod)]
    assert acts[0].period_ns == 4000 * MS - 7 * 400 * MS
    s = mainline()
    s._t(ctx2, 1)
    acts = [a for a in s.on_placement(ctx2, 1) if isinstance(a, SetScanPeriod)]
    assert acts[0].period_ns == 8000 * MS


def test_numad_binds_a_big_busy_process_to_its_memory() -> None:
    """numad: a process over both thresholds, running spread out with its memory on node 1, is bound to
    node 1's CPUs and its memory moved there; a small process is left alone."""
    p = get("numad").make()
    ctx = FakeContext(
        nodes=2,
        cpus_per_node=4,
        rq={0: [1], 5: [2]},
        task_info={1: (1, 0), 2: (1, 0)},
        mm_pages={0: [10, 400]},
    )
    ctx.now = 5_000_000_000
    p.last_runtime = {}
    ctx.task_runtime_ns = lambda t: 5_000_000_000  # type: ignore[method-assign]  # 100 % of a CPU each
    acts = p.on_tick(ctx)
    assert any(isinstance(a, SetAffinity) for a in acts)
    mig = next(a for a in acts if isinstance(a, MigrateMmNodes))
    assert mig.to_nodes == (1,) and mig.mm == 0
    # Too little memory (under 300 MB): not a candidate.
    q = get("numad").make()
    small = FakeContext(nodes=2, cpus_per_node=4, rq={0: [1]}, task_info={1: (1, 0)}, mm_pages={0: [10, 20]})
    small.now = 5_000_000_000
    small.task_runtime_ns = lambda t: 5_000_000_000  # type: ignore[method-assign]
    assert q.on_tick(small) == ()
    assert q.next_run_ns == small.now + 15_000_000_000  # nothing to do: back off to MAX_INTERVAL


def test_numad_binds_a_process_that_only_happens_to_be_in_place() -> None:
    """A process whose threads run where its memory is, but may run anywhere, is bound (the specjbb JVM sampled
    while only its main thread ran); one already confined there by its affinity is left alone, as bound."""
    import numpy as np

    def ctx_with(allowed_cpus: list[int] | None) -> FakeContext:
        ctx = FakeContext(nodes=2, cpus_per_node=4, rq={4: [1]}, task_info={1: (1, 0)}, mm_pages={0: [0, 400]})
        ctx.now = 5_000_000_000
        ctx.task_runtime_ns = lambda t: 5_000_000_000  # type: ignore[method-assign]
        if allowed_cpus is not None:
            mask = np.zeros(8, dtype=bool)
            mask[allowed_cpus] = True
            ctx.task_allowed = lambda t: mask  # type: ignore[method-assign]
        return ctx

    p = get("numad").make()
    acts = p.on_tick(ctx_with(None))
    assert [a for a in acts if isinstance(a, SetAffinity)] == [SetAffinity(1, (4, 5, 6, 7))]
    assert p.bindings == 1 and p.bound == {1: (1,)}
    q = get("numad").make()
    assert q.on_tick(ctx_with([4, 5, 6, 7])) == ()
    assert q.bindings == 0 and q.bound == {1: (1,)}


def test_cached_weights_follow_placement_and_group_joins() -> None:
    """task_weight()/group_weight() are cached per task and group: after faults, placements and a group join
    they still equal ``1000 * faults[nid].sum() // faults.sum()`` computed afresh, bit for bit."""

    def fresh(faults: np.ndarray, nid: int) -> int:
        total = float(faults.sum())
        return int(1000 * float(faults[nid].sum()) // total) if total > 0 else 0

    def check(p: Mainline) -> None:
        for t, st in p.tasks.items():
            for nid in range(4):
                assert p.task_weight(t, nid) == fresh(st.faults, nid)
                want = fresh(p.groups[st.group].faults, nid) if st.group is not None else 0
                assert p.group_weight(t, nid) == want

    rng = np.random.default_rng(7)
    ctx = FakeContext(nodes=4, rq={0: [1], 2: [2], 4: [3]}, task_info={1: (1, 0), 2: (1, 0), 3: (3, 1)},
                      mm_pages={0: [64, 0, 0, 0], 1: [0, 64, 0, 0]}, periods={1: 1000 * MS, 2: 1000 * MS, 3: 1000 * MS})
    p = mainline()
    for step in range(12):
        for t in (1, 2, 3):
            n = 5
            b = batch(task=[t] * n, cpu=rng.integers(0, 8, n).tolist(), page_node=rng.integers(0, 4, n).tolist())
            p.after_faults(ctx, b, np.zeros(n, bool))
            check(p)
            p.on_placement(ctx, t)
            check(p)
        if step == 3:  # shared faults: task 2 gets a group, then task 1 joins it
            p.after_faults(ctx, batch(task=[2], cpu=[2], page_node=[0], last_pid=[1], last_cpu=[0]), np.array([False]))
            check(p)
            p.after_faults(ctx, batch(task=[1], cpu=[0], page_node=[1], last_pid=[2], last_cpu=[2]), np.array([False]))
            check(p)
    assert p.tasks[1].group == p.tasks[2].group == 2
