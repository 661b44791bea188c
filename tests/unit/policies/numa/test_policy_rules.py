"""Each 2012 policy's rules on small hand-built cases (no simulation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from helpers.numa_fake import FakeContext, batch
from memsched.errors import ConfigError
from memsched.policies.numa import get, names
from memsched.policies.numa.actions import MigratePages, MigrateTask, SetPreferredNode, SetScanPeriod, SwapTasks
from memsched.policies.numa.base import MigrateMisplaced, applies_misplaced_rule, overridden_hooks


def make(pid: str, **sets: str):  # type: ignore[no-untyped-def]
    spec = get(pid)
    return spec.make(spec.make_config(sets))


def migrations(actions) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    out = []
    for a in actions:
        if isinstance(a, MigratePages):
            out += list(zip(a.pages.tolist(), a.dst.tolist(), strict=True))
    return out


def test_registry_ids_in_debate_order() -> None:
    """The 2012 policies are registered under their stable ids, baseline first."""
    assert names()[:6] == ["none", "moron", "balancenuma", "homenode", "autonuma", "numacore"]


def test_none_has_no_hooks_and_no_scanner() -> None:
    """'none' scans nothing and overrides no hook."""
    p = make("none")
    assert p.scan is None and overridden_hooks(p) == ()


def test_moron_migrates_every_misplaced_fault() -> None:
    """MORON: a remote fault migrates to the CPU's node at once, whatever the page's history; local faults don't."""
    p = make("moron")
    b = batch(task=[1, 2, 3], cpu=[0, 2, 3], page_node=[1, 1, 0], last_nid=[-1, 0, 1])
    assert migrations(p.on_faults(FakeContext(), b)) == [(0, 0), (2, 1)]
    (action,) = p.on_faults(FakeContext(), b)
    assert action.mode == "sync" and action.payer.tolist() == [1, 3]
    assert p.migration.rate_limit is False
    # a fault whose memory policy lacks MPOL_F_MOF does not migrate (mpol_misplaced() is never asked)
    b = batch(task=[1, 2, 3], cpu=[0, 2, 3], page_node=[1, 1, 0], last_nid=[-1, 0, 1], mof=[True, True, False])
    assert migrations(p.on_faults(FakeContext(), b)) == [(0, 0)]
    mof = np.array([False, True, True])
    assert p.misplaced(b.page_node, b.cpu_node, mof).tolist() == [False, False, True]
    assert p.misplaced(b.page_node, b.cpu_node, None).tolist() == [True, False, True]


def test_the_misplaced_rule_is_the_mechanisms_only_where_the_hooks_are_its_own() -> None:
    """MORON keeps MigrateMisplaced's on_faults; a subclass that overrides on_faults or adds after_faults does not
    (the simulator then calls its hooks), nor does any other registered policy."""

    class Own(MigrateMisplaced):
        def on_faults(self, ctx, batch):  # type: ignore[no-untyped-def]
            return ()

    class After(MigrateMisplaced):
        def after_faults(self, ctx, batch, migrated):  # type: ignore[no-untyped-def]
            return ()

    assert applies_misplaced_rule(MigrateMisplaced()) and not applies_misplaced_rule(Own())
    assert not applies_misplaced_rule(After())
    watched = MigrateMisplaced()
    watched.on_faults = lambda ctx, batch: ()  # type: ignore[method-assign]  # (a hook wrapped on the instance)
    assert not applies_misplaced_rule(watched)
    rule = {p for p in names() if applies_misplaced_rule(get(p).make(get(p).make_config({})))}
    assert rule == {"moron"}


def test_balancenuma_two_stage_filter() -> None:
    """3.8: migrate only when the previous fault on the page came from this node (last_nid == this node)."""
    p = make("balancenuma")
    b = batch(task=[1, 1, 1, 1], cpu=[0, 0, 0, 2], page_node=[1, 1, 1, 0], last_nid=[-1, 1, 0, 1])
    # first fault ever (-1), previous from node 1, previous from node 0 (migrate), previous from node 1 (migrate)
    assert migrations(p.on_faults(FakeContext(), b)) == [(2, 0), (3, 1)]
    off = make("balancenuma", two_stage_filter="false")
    assert len(migrations(off.on_faults(FakeContext(), b))) == 4


def test_balancenuma_rate_limit_and_scanner_settings() -> None:
    """3.8's sysctls and mm/migrate.c limits are the defaults; --set reaches them."""
    p = make("balancenuma")
    assert (p.scan.scan_delay_ms, p.scan.scan_period_min_ms, p.scan.scan_period_max_ms) == (1000, 100, 5000)
    assert (p.scan.scan_period_reset_ms, p.scan.scan_size_mb) == (60000, 256)
    assert p.migration.rate_limit and p.migration.ratelimit_mb == 128 and p.migration.migrate_interval_ms == 100
    assert make("balancenuma", scan_size_mb="64").scan.scan_size_mb == 64
    later = make("balancenuma", sysctls="3.13").scan
    assert (later.scan_period_min_ms, later.scan_period_max_ms, later.scale_by_rss) == (1000, 60000, True)
    with pytest.raises(ConfigError, match="scan_period_min_ms"):
        make("balancenuma", scan_period_min_ms="0")


def test_balancenuma_scan_slows_per_non_migrating_fault() -> None:
    """task_numa_fault(): each fault that did not migrate adds 10 jiffies (40 ms at HZ=250), capped at max."""
    p = make("balancenuma")
    ctx = FakeContext(periods={1: 100_000_000, 2: 4_990_000_000})
    b = batch(task=[1, 1, 1, 2, 2], cpu=[0, 0, 0, 0, 0], page_node=[0, 0, 1, 0, 0])
    acts = p.after_faults(ctx, b, np.array([False, False, True, False, False]))
    periods = {a.task: a.period_ns for a in acts if isinstance(a, SetScanPeriod)}
    assert periods == {1: 180_000_000, 2: 5_000_000_000}
    p1000 = make("balancenuma", hz="1000")
    acts = p1000.after_faults(ctx, batch(task=[1], cpu=[0], page_node=[0]), np.array([False]))
    assert acts[0].period_ns == 110_000_000


def test_autonuma_last_nid_filter_and_migrate_on_fault() -> None:
    """AutoNUMA27: local faults only record; a remote fault migrates on its second sample, synchronously in the
    faulting task (its cover letter: migration became synchronous), rate limited per destination node."""
    p = make("autonuma")
    ctx = FakeContext()
    b = batch(task=[1, 1, 1], cpu=[0, 0, 0], page_node=[0, 1, 1], last_nid=[0, 1, 0])
    (action,) = p.on_faults(ctx, b)
    assert action.mode == "sync" and action.payer is not None and action.payer.tolist() == [1]
    assert migrations([action]) == [(2, 0)]
    assert p.migration.rate_limit and p.kernel.thp_split
    # Fault statistics count the page's node.
    assert p.faults.row(1).tolist() == [512.0, 1024.0]


def test_autonuma_ignores_tasks_with_a_mempolicy() -> None:
    """numa_hinting_fault() does nothing for a task with a mempolicy of its own: no statistics, no migration."""
    p = make("autonuma")
    b = batch(task=[1, 1], cpu=[0, 0], page_node=[1, 1], last_nid=[0, 0], mof=[False, False])
    assert p.on_faults(FakeContext(), b) == ()
    assert p.faults.row(1).tolist() == [0.0, 0.0]


def test_autonuma_pass_halves_task_stats_and_sets_memory_weights() -> None:
    """A knuma_scand pass over an mm halves its threads' fault counts and records its pages per node."""
    p = make("autonuma")
    ctx = FakeContext(task_info={1: (1, 0)})
    p.on_faults(ctx, batch(task=[1, 1], cpu=[0, 0], page_node=[1, 1], base_pages=3))
    p.on_scan_pass(ctx, 0, [10, 30])
    assert p.faults.row(1).tolist() == [0.0, 3.0]
    assert p.mm_pages[0].tolist() == [10.0, 30.0]


def test_autonuma_leaves_idle_cpus_alone() -> None:
    """sched_autonuma_balance skips idle CPUs ("Offload the while IDLE balancing ... to CFS"): a task whose
    faults and memory are on node 1, whose CPUs are all idle, is not moved there (CFS's idle balancing may);
    with every CPU there busy with a task that prefers node 0, the two are exchanged."""
    p = make("autonuma")
    ctx = FakeContext(rq={0: [1]}, task_info={1: (1, 0), 2: (2, 1)}, mm_pages={0: [0, 100], 1: [100, 0]})
    p.on_faults(ctx, batch(task=[1], cpu=[0], page_node=[1]))
    p.on_scan_pass(ctx, 0, [0, 100])
    p.on_faults(ctx, batch(task=[1], cpu=[0], page_node=[1]))
    acts = p.on_tick(ctx)
    assert acts == []
    assert not any(isinstance(a, MigrateTask) for a in acts)
    ctx2 = FakeContext(rq={0: [1], 2: [2], 3: [3]}, task_info={1: (1, 0), 2: (2, 1), 3: (3, 1)})
    p.on_scan_pass(ctx2, 1, [100, 0])
    p.on_faults(ctx2, batch(task=[2, 3], cpu=[2, 3], page_node=[0, 0], mm=1))
    acts = p.on_tick(ctx2)
    assert SwapTasks(1, 2) in acts


def test_autonuma_load_balancer_keeps_tasks_on_their_node() -> None:
    """Busy balancing may not move a task off its autonuma_node; idle balancing prefers tasks going home."""
    p = make("autonuma")
    p.node[1] = 0
    p.node[5] = 0
    ctx = FakeContext(rq={0: [1], 1: [5]})
    assert p.lb_score(ctx, 1, 0, 2, dst_idle=False) is None
    assert p.lb_score(ctx, 1, 2, 0, dst_idle=False) == 1.0
    assert p.lb_score(ctx, 1, 0, 2, dst_idle=True) == 0.0  # node 0 has no idle CPU and all want node 0
    ctx_idle = FakeContext(rq={0: [1]})
    assert p.lb_score(ctx_idle, 1, 0, 2, dst_idle=True) is None  # CPU 1 on its node is idle
    p.node[5] = 1
    assert p.lb_score(ctx, 1, 0, 2, dst_idle=True) is None  # a task on node 0 wants elsewhere


def test_numacore_private_shared_by_last_cpu_and_settle() -> None:
    """numa/core: a fault is private when the page's last fault came from the same CPU; the preferred node
    changes only after NUMA_SETTLE = 2 placements agree; counts halve every scan."""
    p = make("numacore")
    ctx = FakeContext(task_info={1: (1, 0)})
    p.on_faults(ctx, batch(task=[1, 1, 1], cpu=[2, 2, 2], page_node=[1, 1, 0], last_cpu=[2, 3, -1], base_pages=4))
    row = p.faults.row(1).tolist()  # [n0 shared, n0 private, n1 shared, n1 private]
    assert row == [4.0, 0.0, 4.0, 4.0]
    assert p.on_placement(ctx, 1) == []
    assert p.faults.row(1).tolist() == [2.0, 0.0, 2.0, 2.0]
    assert p.on_placement(ctx, 1) == [SetPreferredNode(1, 1)]
    assert p.shared[1] is True


def test_numacore_whole_address_space_and_preference_order() -> None:
    """Scans cover the whole address space every 5 s; the balancer prefers moving toward more faults,
    then non-ideal, then private, then shared tasks."""
    p = make("numacore")
    assert p.scan.whole_address_space and p.scan.scan_period_min_ms == p.scan.scan_period_max_ms == 5000
    ctx = FakeContext(task_info={1: (1, 0), 2: (2, 0)})
    p.on_faults(ctx, batch(task=[1, 1], cpu=[0, 0], page_node=[0, 0], last_cpu=[0, 0]))  # private, node 0
    p.on_faults(ctx, batch(task=[2, 2], cpu=[0, 0], page_node=[0, 0], last_cpu=[1, 1]))  # shared, node 0
    p.shared = {1: False, 2: True}
    p.preferred = {1: 0, 2: 0}
    assert p.lb_score(ctx, 1, 2, 0, False) == 3.0  # toward more faults
    assert p.lb_score(ctx, 1, 0, 2, False) == 1.0  # private getting worse
    assert p.lb_score(ctx, 2, 0, 2, False) == 0.0  # shared getting worse: last
    p.preferred[1] = 1
    assert p.lb_score(ctx, 1, 0, 2, False) == 2.0  # not on its preferred node anyway


def test_homenode_cpu_follows_memory() -> None:
    """homenode: when the task's and the mm's fault maxima are both here, this becomes the home node and
    the scan period doubles; otherwise the period drops to the minimum and homes are swapped with the
    task that gains most."""
    p = make("homenode")
    ctx = FakeContext(rq={0: [1], 2: [2]}, task_info={1: (1, 0), 2: (1, 0)}, periods={1: 200_000_000})
    p.after_faults(ctx, batch(task=[1, 1], cpu=[0, 0], page_node=[0, 0]), np.array([False, False]))
    acts = p.on_placement(ctx, 1)
    assert SetPreferredNode(1, 0) in acts
    assert SetScanPeriod(1, 400_000_000) in acts
    # Task 1 now faults mostly on node 1, where task 2 runs and faults on node 0: swap homes.
    q = make("homenode")
    ctx2 = FakeContext(rq={0: [1], 2: [2]}, task_info={1: (1, 0), 2: (1, 0)})
    q.after_faults(ctx2, batch(task=[1, 1, 1, 2, 2], cpu=[0, 0, 0, 2, 2], page_node=[1, 1, 0, 0, 0]), np.zeros(5, bool))
    acts = q.on_placement(ctx2, 1)
    assert SetScanPeriod(1, 100_000_000) in acts
    assert SetPreferredNode(1, 1) in acts and SetPreferredNode(2, 0) in acts


def test_homenode_task_numa_hot() -> None:
    """Busy balancing may not pull a task away from its home node unless the move brings it closer."""
    p = make("homenode")
    p.home[1] = 0
    ctx = FakeContext()
    assert p.lb_score(ctx, 1, 0, 2, dst_idle=False) is None
    assert p.lb_score(ctx, 1, 2, 0, dst_idle=False) == 2.0
    assert p.lb_score(ctx, 1, 0, 2, dst_idle=True) == 0.0
    assert p.lb_score(ctx, 7, 0, 2, dst_idle=False) == 0.0  # no home: no preference


def test_actions_validate() -> None:
    """Actions refuse malformed arguments: negative ids, mismatched lengths, sync without a payer."""
    with pytest.raises(ConfigError):
        MigratePages(0, np.array([1, 2]), np.array([0, 1, 0]), payer=np.array([1]))
    with pytest.raises(ConfigError, match="payer"):
        MigratePages(0, np.array([1]), np.array([0]))
    with pytest.raises(ConfigError):
        MigratePages(0, np.array([-1]), np.array([0]), mode="async")
    with pytest.raises(ConfigError):
        SwapTasks(3, 3)
    with pytest.raises(ConfigError):
        SetScanPeriod(1, 0)
    a = MigratePages(0, np.array([4, 5]), np.array([1]), mode="async")
    assert a.dst.tolist() == [1, 1] and not a.pages.flags.writeable


def _autonuma_tick_reference(p, ctx):  # type: ignore[no-untyped-def]
    """sched_autonuma_balance() as written before its weights were computed once per tick (numpy per call)."""

    def weights(task):  # type: ignore[no-untyped-def]
        row = p.faults.row(task)
        m = p.mm_pages.get(ctx.task_mm(task))
        p_t, m_t = float(row.sum()), float(m.sum()) if m is not None else 0.0
        if p_t <= 0 or m_t <= 0 or m is None:
            return None
        return (row * 1000 // p_t).astype(np.int64), (m * 1000 // m_t).astype(np.int64)

    out, used, nodes = [], set(), {}
    for this_cpu in range(ctx.nr_cpus):
        queued = ctx.cpu_tasks(this_cpu)
        if not queued or this_cpu in used:
            continue
        t = queued[0]
        w = weights(t)
        if w is None:
            continue
        cpu_nid = int(ctx.cpu_node[this_cpu])
        best, sel_cpu, sel_nid, sel_other = 0, this_cpu, cpu_nid, -1
        for nid in range(ctx.nr_nodes):
            for cpu in ctx.node_cpus[nid] if nid != cpu_nid else ():
                if cpu in used or ctx.cpu_nr_running[cpu] == 0 or not ctx.task_allowed(t)[cpu]:
                    continue
                other = ctx.cpu_tasks(cpu)[0]
                wo = weights(other)
                if wo is None:
                    continue
                k = 0 if ctx.task_mm(other) == ctx.task_mm(t) else 1
                w_nid, w_cpu_nid, w_other = w[k][nid], w[k][cpu_nid], wo[k][nid]
                if w_nid > w_other and w_nid > w_cpu_nid and int(2 * w_nid - w_other - w_cpu_nid) > best:
                    best, sel_cpu, sel_nid, sel_other = int(2 * w_nid - w_other - w_cpu_nid), cpu, nid, other
        nodes[t] = sel_nid
        if sel_cpu != this_cpu and sel_other >= 0 and ctx.task_allowed(sel_other)[this_cpu]:
            out.append(SwapTasks(t, sel_other))
            used.update((this_cpu, sel_cpu))
    return out, nodes


@dataclass
class _PinnedContext(FakeContext):
    """A FakeContext whose tasks may be kept off some CPUs (``allowed[task]``)."""

    allowed: dict[int, np.ndarray] = field(default_factory=dict)

    def task_allowed(self, task: int) -> np.ndarray:
        return self.allowed.get(task, np.ones(self.nr_cpus, dtype=bool))


@pytest.mark.parametrize(("nodes", "cpus_per_node", "pinned"), [(4, 3, False), (4, 3, True), (8, 4, True)])
def test_autonuma_tick_equals_the_per_call_reference(nodes: int, cpus_per_node: int, pinned: bool) -> None:
    """The per-tick weight table changes nothing: on random queues, affinities, fault counts and memory weights
    the swaps and autonuma_node choices equal a per-call computation of every weight and every pair."""
    rng = np.random.default_rng(3)
    swaps = 0
    nr_cpus = nodes * cpus_per_node
    for _ in range(30):
        tasks = list(range(1, nr_cpus + 3))
        info = {t: (t if t > 10 else 1, 0 if t <= 10 else t % 5) for t in tasks}
        rq: dict[int, list[int]] = {}
        for t in tasks:
            if rng.random() < 0.8:
                rq.setdefault(int(rng.integers(0, nr_cpus)), []).append(t)
        allowed = {t: rng.random(nr_cpus) < 0.8 for t in tasks if pinned and rng.random() < 0.5}
        ctx = _PinnedContext(nodes=nodes, cpus_per_node=cpus_per_node, rq=rq, task_info=info, allowed=allowed)
        p = make("autonuma")
        for mm in {m for _, m in info.values()} - {4}:  # (mm 4 has no scan pass yet: no memory weights)
            p.on_scan_pass(ctx, mm, rng.integers(0, 50, nodes).tolist())
        n = 200
        faulting = rng.choice(tasks[:-2], n).tolist()  # (the last two tasks never fault: no counter row)
        where = rng.integers(0, nodes, n).tolist()
        p.on_faults(
            ctx, batch(task=faulting, cpu=[0] * n, page_node=where, last_nid=[-1] * n, cpus_per_node=cpus_per_node)
        )
        want, nodes_want = _autonuma_tick_reference(p, ctx)
        assert p.on_tick(ctx) == want
        assert {t: p.node[t] for t in nodes_want} == nodes_want
        assert set(p.node) == set(nodes_want)
        swaps += len(want)
    assert swaps > 10  # the cases do exchange tasks


def _homenode_find_placement_reference(p, ctx, task, this_nid, this_cpu, own_w, mm, mm_row, mm_total):  # type: ignore[no-untyped-def]
    """task_numa_find_placement() as a plain loop over every CPU of every other node, no pruning."""

    def weight(f, total):  # type: ignore[no-untyped-def]
        return 0 if total <= 0 else int(min(f, total) * 1000 // total)

    own_mm_w = [weight(f, mm_total) for f in mm_row.tolist()]
    best, best_nid, best_other = 0, -1, -1
    for nid in range(ctx.nr_nodes):
        for cpu in ctx.node_cpus[nid]:
            queued = ctx.cpu_tasks(cpu)
            if not ctx.task_allowed(task)[cpu] or not queued or queued[0] == task:
                continue
            other = queued[0]
            o_total, o_mm = p.task_tot.get(other, 0.0), ctx.task_mm(other)
            if o_total <= 0 or p.mm_tot.get(o_mm, 0.0) <= 0:
                continue
            if o_mm == mm:
                this_w, other_w, p_w = own_w[nid], weight(p.task_faults.data[other, nid], o_total), own_w[this_nid]
            else:
                this_w, p_w = own_mm_w[nid], own_mm_w[this_nid]
                other_w = weight(p.mm_faults[o_mm][nid], p.mm_tot[o_mm])
            other_diff, this_diff = this_w - other_w, this_w - p_w
            if other_diff > 0 and this_diff > 0 and other_diff + this_diff > best and ctx.task_allowed(other)[this_cpu]:
                best, best_nid, best_other = other_diff + this_diff, nid, other
    return (best_nid, best_other) if best_nid not in (-1, this_nid) else None


@pytest.mark.parametrize(("nodes", "cpus_per_node"), [(4, 3), (8, 4)])
def test_homenode_find_placement_equals_the_plain_loop(nodes: int, cpus_per_node: int) -> None:
    """The nodes and candidates _find_placement passes over (no gain there, a bound below the best so far, the
    tests reordered) change nothing: on random queues, affinities and fault counts it picks the node and the
    partner a plain loop over every CPU picks."""
    rng = np.random.default_rng(5)
    nr_cpus, picked = nodes * cpus_per_node, 0
    for _ in range(40):
        tasks = list(range(nr_cpus + 2))
        info = {t: (0, int(rng.integers(0, 3))) for t in tasks}
        rq: dict[int, list[int]] = {}
        for t in tasks:
            if rng.random() < 0.85:
                rq.setdefault(int(rng.integers(0, nr_cpus)), []).append(t)
        allowed = {t: rng.random(nr_cpus) < 0.8 for t in tasks if rng.random() < 0.4}
        ctx = _PinnedContext(nodes=nodes, cpus_per_node=cpus_per_node, rq=rq, task_info=info, allowed=allowed)
        p = make("homenode")
        for mm in range(3):
            mine = [t for t in tasks[:-1] if info[t][1] == mm]  # (the last task never faults)
            if mine:
                n = 300
                b = batch(
                    task=rng.choice(mine, n).tolist(), cpu=rng.integers(0, nr_cpus, n).tolist(),
                    page_node=rng.integers(0, nodes, n).tolist(), cpus_per_node=cpus_per_node, mm=mm,
                )
                p.after_faults(ctx, b, rng.random(n) < 0.3)
        for task in tasks:
            cpu, mm = ctx.task_cpu(task), info[task][1]
            total, mm_row = p.task_tot.get(task, 0.0), p.mm_faults.get(mm)
            if cpu < 0 or total <= 0 or mm_row is None:
                continue
            this_nid = cpu // cpus_per_node
            own_w = p._weights(p.task_faults.row(task).tolist(), total)
            args = (ctx, task, this_nid, cpu, own_w, mm, mm_row, p.mm_tot[mm])
            want = _homenode_find_placement_reference(p, *args)
            got = p._find_placement(*args)
            if want is None:
                assert got == []
            else:
                picked += 1
                assert got == [SetPreferredNode(task, want[0]), SetPreferredNode(want[1], this_nid)]
    assert picked > 20  # the cases do swap homes
