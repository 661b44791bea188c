"""The NUMA balancing mechanism: scanning, fault generation, migration rules and costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memsched.policies.numa import get
from memsched.policies.numa.base import MigrationRules
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Join, SchedSetaffinity, SetMempolicy, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.migrate import MigrationCosts, Migrator
from memsched.sim.numa.balancing import NumaBalancing
from memsched.topology import load_topology
from memsched.units import GIB, MIB, NSEC_PER_MSEC, NSEC_PER_SEC

SNB = load_topology("sandybridge-2n32")


def attach(m: FluidMachine, policy: object) -> NumaBalancing:
    numa = NumaBalancing(m, policy)  # type: ignore[arg-type]
    m.add_instrument(numa)
    return numa


def setup(policy: str, *, passes: int = 40, size: int = 1 * GIB, sharers: int = 1, seed: int = 0, **sets: str):  # type: ignore[no-untyped-def]
    """Memory first-touched on node 0, then streamed by threads pinned to node 1 (and, with sharers=2, node 0)."""
    m = FluidMachine(SNB, seed=seed, config=MachineConfig())
    spec = get(policy)
    numa = attach(m, spec.make(spec.make_config(sets)))
    mm = m.new_mm("p")
    buf = mm.mmap(size, "b")
    threads = [ThreadSpec("remote", (SchedSetaffinity(SNB.node_cpus(1)), Touch(buf, passes)))]
    if sharers == 2:
        threads.append(ThreadSpec("local", (SchedSetaffinity(SNB.node_cpus(0)), Touch(buf, passes))))
    prog = (
        SchedSetaffinity(SNB.node_cpus(0)),
        SetMempolicy(Mempolicy.bind((0,))),
        Touch(buf, 1),
        SetMempolicy(Mempolicy()),
        Spawn(tuple(threads)),
        Join(),
    )
    m.spawn_process("p", prog, mm=mm)
    return m, mm, numa


def test_no_scanning_before_scan_delay() -> None:
    """task_numa_work() marks nothing before numa_balancing_scan_delay_ms."""
    m, _mm, _ = setup("balancenuma", scan_delay_ms="2000")
    m.run(until=1900 * NSEC_PER_MSEC)
    assert m.vmstat["numa_pte_updates"] == 0
    m.run(until=2100 * NSEC_PER_MSEC)
    assert m.vmstat["numa_pte_updates"] > 0


def test_scan_window_and_seq_wrap() -> None:
    """Each scan marks scan_size MB of the address space; passing the end starts a new numa_scan_seq."""
    m, mm, numa = setup("moron", scan_size_mb="256")
    m.run(until=1050 * NSEC_PER_MSEC)  # first scan at 1 s
    assert m.vmstat["numa_huge_pte_updates"] == 128  # 256 MB of THPs
    assert m.vmstat["numa_pte_updates"] == 128 * 512
    m.run(until=1450 * NSEC_PER_MSEC)  # 1 GiB + header = 513 pages: 5 scans at 100 ms wrap once
    assert numa.state.scan_seq[mm.id] == 1


def test_moron_migrates_on_first_remote_fault() -> None:
    """MORON moves a page the first time a remote task faults on it: migrations equal remote faults."""
    m, mm, _ = setup("moron")
    m.run(until=3 * NSEC_PER_SEC)
    vs = m.vmstat
    remote = vs["numa_hint_faults"] - vs["numa_hint_faults_local"]
    assert remote > 0
    assert vs["numa_pages_migrated"] == remote * 512
    assert vs["pgmigrate_success"] == vs["numa_pages_migrated"]
    assert mm.node_pages[1] > 0


def _misplaced_run(
    *, hooks: bool, thp: bool, split: bool | None = None
) -> tuple[dict[str, int], dict[tuple[str, str], int], object, int, float, int]:
    """MORON with two sharers of a buffer, one of them under a memory policy without MPOL_F_MOF (its faults are
    not migratable) once it has faulted: the record of a run with MigrateMisplaced's rule carried out by the
    mechanism, or (hooks) with every batch given to Moron.on_faults through the driver. ``split``: THPs split on
    their first fault (the default with ``thp``), else faulted and migrated whole."""
    m = FluidMachine(SNB, seed=3, config=MachineConfig(thp=thp, thp_split=thp if split is None else split))
    spec = get("moron")
    numa = attach(m, spec.make(spec.make_config({})))
    calls = [0]
    inner = numa.driver.faults

    def faults(batch):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return inner(batch)

    numa.driver.faults = faults  # type: ignore[method-assign]
    if hooks:
        numa.use_hooks()
    mm = m.new_mm("p")
    buf = mm.mmap(256 * MIB, "b")
    threads = (
        ThreadSpec("remote", (SchedSetaffinity(SNB.node_cpus(1)), Touch(buf, 30))),
        # (its policy set once it has faulted: a cache of the tasks' policies must see the change)
        ThreadSpec(
            "bound",
            (SchedSetaffinity(SNB.node_cpus(0)), Touch(buf, 40), SetMempolicy(Mempolicy.bind((0,))), Touch(buf, 20)),
        ),
    )
    prog = (SchedSetaffinity(SNB.node_cpus(0)), Touch(buf, 1), Spawn(threads), Join())
    m.spawn_process("p", prog, mm=mm)
    m.run(until=20 * NSEC_PER_SEC)
    return (m.vmstat.snapshot(), dict(numa.results), numa.metrics(), m.elapsed_ns, m.system_ns(), calls[0])


@pytest.mark.parametrize("thp", [True, False])
def test_misplaced_rule_in_the_mechanism_is_the_hook(thp: bool) -> None:
    """MORON's on_faults (MigrateMisplaced) carried out by the mechanism on the batch's arrays gives the run the
    hook gives through the driver: the same counters, action results, metrics and times, faults not
    migratable (no MPOL_F_MOF) included; the driver is not asked for a fault batch."""
    rule, hooks = _misplaced_run(hooks=False, thp=thp), _misplaced_run(hooks=True, thp=thp)
    assert rule[-1] == 0 and hooks[-1] > 0
    assert rule[:-1] == hooks[:-1]
    vmstat, results = rule[0], rule[1]
    assert vmstat["numa_pages_migrated"] > 0 and results[("MigratePages", "applied")] > 0


def _counted_rule_kernels(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The kernels in use from now on (``MEMSCHED_JIT=1``, a fresh gate), with the calls of the rule's kernels
    from Python counted in the dict returned: ``migrate_misplaced`` (the migration alone) and ``reach_deliver``
    (the look at the pages reached, their faults, the migration and the settle)."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.fluid import jit

    monkeypatch.setattr(jit, "_gate", jit._Gate())
    monkeypatch.setenv(jit.ENV, "1")
    assert jit.load_ahead()
    calls = {"migrate_misplaced": 0, "reach_deliver": 0}

    def counted(name: str):  # type: ignore[no-untyped-def]
        inner = getattr(kernels, name)

        def call(*args):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return inner(*args)

        return call

    for name in calls:
        monkeypatch.setattr(kernels, name, counted(name))
    return calls


@pytest.mark.parametrize(("thp", "split"), [(True, True), (True, False), (False, False)], ids=["split", "huge", "4k"])
def test_misplaced_rule_in_one_kernel_is_the_numpy_path(
    thp: bool, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the kernels in use, the mechanism carries out MigrateMisplaced's rule and the rest of the fault
    batch in one kernel, from the look at the pages reached on (``NumaBalancing._reached_compiled``: which pages
    fault, their batch, the huge faults' lock holds, the migration and its holds, ``_fault_after`` and the
    settle); where that may not run, the rule alone in one kernel (``SimActuator.migrate_misplaced_cols``). Each
    run is the one the numpy path gives (``_misplaced_numpy``: the rule's mask, then ``_migrate_sync``): the
    same counters, action results, metrics and times, the faults without MPOL_F_MOF included; THPs split,
    faulted and migrated whole (their page table lock), or 4 KiB pages."""
    from memsched.sim.numa.actuator import SimActuator
    from memsched.sim.numa.balancing import NumaBalancing

    calls = _counted_rule_kernels(monkeypatch)
    fused = _misplaced_run(hooks=False, thp=thp, split=split)
    assert calls["reach_deliver"] > 0, calls  # (and the rule's kernel while huge blocks are left to split)
    assert calls["migrate_misplaced"] == 0 or split, calls

    steps = (
        (NumaBalancing, "_reached_compiled", lambda *args: False, "migrate_misplaced"),
        (SimActuator, "migrate_misplaced_cols", SimActuator._misplaced_numpy, None),
    )
    for cls, name, way, used in steps:
        monkeypatch.setattr(cls, name, way)
        calls.update(dict.fromkeys(calls, 0))
        assert _misplaced_run(hooks=False, thp=thp, split=split) == fused, name
        assert {k for k, v in calls.items() if v} == ({used} if used else set()), (name, calls)


def test_misplaced_rule_kernel_out_of_range_changes_nothing_and_raises_as_numpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch whose page lies past the mm (which ``_fault_rows`` never gives) is refused by the kernel before it
    changes anything, and the numpy path then raises as numpy indexing does."""
    calls = _counted_rule_kernels(monkeypatch)
    m, mm, numa = setup("moron")
    m.run(until=2 * NSEC_PER_SEC)
    assert m.progress.synced()  # (else the batch would not reach the kernels)
    calls.update(dict.fromkeys(calls, 0))
    st = numa.mm_scan[mm.id]
    numa.contention.hold(mm.id, 0, "ptl", 3, 500.0)  # (a pending batch, which must stay as it is)

    def state() -> list[object]:
        arrays = (mm.page_node, mm.node_pages, m.page_alloc.free_pages, st.last_nid, st.last_pid, st.last_cpu)
        progress = (m.progress.arrays.debt, numa.contention.sums, numa.contention.counts)
        return [
            *(a.copy() for a in (*arrays, *progress)), m.vmstat.snapshot(), dict(m.progress.system_by_cause),
            [ev.rows()[1].tobytes() for ev in numa.contention.pending.values()], dict(numa.results),
        ]  # fmt: skip

    def same(before: list[object], after: list[object]) -> bool:
        return all(
            np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after, strict=True)
        )

    before = state()
    cols = np.zeros((10, 2), dtype=np.int64)
    cols[0] = [0, mm.nr_pages]  # pages: the second past the mm
    cols[3] = 1  # the CPUs' node
    cols[4] = 0  # the pages' node: both misplaced
    with pytest.raises(IndexError):
        numa.actuator.migrate_misplaced_cols(mm.id, cols, None)
    assert calls == {"migrate_misplaced": 1, "reach_deliver": 0}
    assert same(before, state())


def test_two_stage_filter_cuts_migrations_under_sharing() -> None:
    """With two nodes' threads sharing a buffer, MORON bounces pages; the two-stage filter cuts that."""
    runs = {}
    for pol in ("moron", "balancenuma"):
        m, _, _ = setup(pol, sharers=2, passes=20)
        m.run(until=20 * NSEC_PER_SEC)
        runs[pol] = m.vmstat["numa_pages_migrated"]
    assert runs["balancenuma"] < runs["moron"] / 3


def test_system_time_from_scans_faults_and_migrations() -> None:
    """Scanning, hinting faults and migrations show up as system time, beyond the first-touch faults."""
    base, _, _ = setup("none")
    base.run()
    moron, _, _ = setup("moron")
    moron.run()
    assert moron.system_ns() > base.system_ns() + 0.1 * NSEC_PER_SEC
    assert moron.elapsed_ns < base.elapsed_ns  # and the migrated memory is local afterwards


def test_numacore_scans_whole_address_space() -> None:
    """numa/core marks every present page on each scan."""
    m, mm, _ = setup("numacore", scan_delay_ms="100")
    m.run(until=150 * NSEC_PER_MSEC)
    assert m.vmstat["numa_huge_pte_updates"] == mm.rss_pages == 513


def test_autonuma_migrates_asynchronously_under_its_rate() -> None:
    """AutoNUMA queues pages for knuma_migratedN, which moves at most 128 MB per 100 ms per node, as kernel
    thread work rather than in the faulting task's context."""
    m, _mm, numa = setup("autonuma", passes=200)
    m.run(until=60 * NSEC_PER_SEC)
    assert m.vmstat["numa_pages_migrated"] > 0
    assert numa.metrics()["kthread_s"] > 0
    # Replay the queue logic directly: 1 GiB queued to node 1 takes 8 wake-ups of 64 THPs.
    m2 = FluidMachine(SNB, seed=0)
    spec = get("autonuma")
    numa2 = attach(m2, spec.make())
    mm2 = m2.new_mm("q")
    mm2.mmap(1 * GIB, "b")
    mm2.set_nodes(np.arange(mm2.nr_pages), np.zeros(mm2.nr_pages, dtype=np.int64))
    m2.page_alloc.free_pages[0] -= mm2.nr_pages
    mm2.users = 1
    numa2.actuator.async_queue[1].append((mm2.id, np.arange(mm2.nr_pages)))
    numa2.actuator._knuma_migrated(1)
    assert mm2.node_pages[1] == 64  # 128 MB of 2 MiB pages


def test_rate_limit_window() -> None:
    """numamigrate_update_ratelimit(): 128 MB per 100 ms per destination node, overshooting by one page."""
    m = FluidMachine(SNB, seed=0, config=MachineConfig(thp=False))
    mig = Migrator(m, MigrationRules(rate_limit=True), MigrationCosts())
    mm = m.new_mm("p")
    mm.mmap(512 * MIB, "b")
    n = mm.nr_pages
    mm.set_nodes(np.arange(n), np.zeros(n, dtype=np.int64))
    res = mig.migrate(mm.id, np.arange(n), np.ones(n, dtype=np.int64), apply_ratelimit=True)
    assert res.moved.shape[0] == 32768 + 1
    assert res.refused_ratelimit == n - 32769
    m.engine.run(until=101 * NSEC_PER_MSEC)
    rest = np.flatnonzero(mm.page_node == 0)
    res2 = mig.migrate(mm.id, rest, np.ones(rest.shape[0], dtype=np.int64), apply_ratelimit=True)
    assert res2.moved.shape[0] == 32769
    assert m.vmstat["numa_pages_migrated"] == 2 * 32769


def test_migrate_balanced_pgdat_refuses_a_full_node() -> None:
    """A destination without room above its high watermark refuses the migration."""
    m = FluidMachine(SNB, seed=0)
    mig = Migrator(m, MigrationRules(rate_limit=False), MigrationCosts())
    mm = m.new_mm("p")
    mm.mmap(64 * MIB, "b")
    n = mm.nr_pages
    mm.set_nodes(np.arange(n), np.zeros(n, dtype=np.int64))
    m.page_alloc.free_pages[1] = mig.high_wmark[1] + 5
    res = mig.migrate(mm.id, np.arange(n), np.ones(n, dtype=np.int64), apply_ratelimit=False)
    assert res.moved.shape[0] == 5 and res.refused_balance == n - 5


def test_copy_bytes_per_source_and_destination_node() -> None:
    """A migration copies each page's bytes: read from its source node, written to its destination node (the
    memory model then charges them to both controllers and the links between, ``FluidProgress.charge_copy``)."""
    m = FluidMachine(SNB, seed=0)
    mig = Migrator(m, MigrationRules(), MigrationCosts(migrate_fixed_ns=0))
    src_b, dst_b = mig.copy_bytes(np.array([1, 1, 0]), np.array([0, 0, 1]))
    assert src_b.tolist() == [2 * MIB, 4 * MIB]
    assert dst_b.tolist() == [4 * MIB, 2 * MIB]
    m.new_mm("p")
    assert mig.fixed_ns(0, 3) == 0.0


def test_task_actions_respect_affinity_and_cost() -> None:
    """MigrateTask/SwapTasks go through the scheduler with their cost; a move outside the affinity is refused
    with the reason; a hook that returns a non-action is a PolicyError naming the policy."""
    from memsched.errors import PolicyError
    from memsched.policies.numa.actions import MigrateTask, SwapTasks

    m, _mm, numa = setup("homenode", passes=5)
    m.run(until=500 * NSEC_PER_MSEC)
    remote = next(t for t in m.tasks if t.name == "remote")
    before_sys = m.task_times(remote)[1]
    res = numa.actuator.apply(MigrateTask(remote.id, SNB.node_cpus(0)[3]))  # not allowed: pinned to node 1
    assert res.status == "skipped" and "affinity" in res.message
    assert SNB.cpu_node()[remote.cpu] == 1
    free = next(c for c in SNB.node_cpus(1) if not m.sched.rq[c])
    assert numa.actuator.apply(MigrateTask(remote.id, free)).status == "applied"
    assert remote.cpu == free and numa.actuator.stats["numa_task_migrations"] == 1
    assert numa.actuator.apply(MigrateTask(remote.id, free)).status == "no-op"
    m.run(until=510 * NSEC_PER_MSEC)
    assert m.task_times(remote)[1] > before_sys
    with pytest.raises(PolicyError, match="policy homenode: on_tick returned 'not an action'"):
        not_actions: list[Any] = ["not an action"]  # (what a policy with a bug returns)
        numa.driver._apply("on_tick", not_actions)
    assert isinstance(SwapTasks(1, 2), SwapTasks)


def test_an_action_naming_what_the_machine_lacks_is_a_policy_error() -> None:
    """An action that names a task, page, node, CPU or mm the simulated machine does not have is the policy's bug:
    a PolicyError naming the policy, the hook, the field, the value and what the machine has, raised before the
    action changes anything."""
    from memsched.errors import PolicyError
    from memsched.policies.numa.actions import (
        MigrateMmNodes,
        MigratePages,
        MigrateTask,
        SetAffinity,
        SetPreferredNode,
        SetScanPeriod,
        SwapTasks,
    )

    m, mm, numa = setup("homenode", passes=5)
    m.run(until=300 * NSEC_PER_MSEC)
    n, tasks = mm.nr_pages, len(m.tasks)
    ok = np.array([0, 1], dtype=np.int64)
    cases = [
        (MigratePages(mm.id, ok, np.array([0, 9]), payer=ok), "dst 9", "node ids 0 to 1"),
        (MigratePages(mm.id, np.array([0, n]), ok, payer=ok), f"pages {n}", f"pages of mm {mm.id} 0 to {n - 1}"),
        (MigratePages(mm.id, ok, ok, payer=np.array([0, tasks])), f"payer {tasks}", f"task ids 0 to {tasks - 1}"),
        (MigratePages(5, ok, ok, mode="syscall"), "mm 5", "mm ids 0 to 0"),
        (MigratePages(-1, ok, ok, mode="async"), "mm -1", "mm ids 0 to 0"),
        (MigrateMmNodes(mm.id, (0,), (2,)), "to_nodes 2", "node ids 0 to 1"),
        (MigrateTask(tasks, 0), f"task {tasks}", "task ids"),
        (MigrateTask(0, SNB.nr_cpus), f"dst_cpu {SNB.nr_cpus}", f"CPU ids 0 to {SNB.nr_cpus - 1}"),
        (SwapTasks(0, -2), "b -2", "task ids"),
        (SetAffinity(0, (0, 99)), "cpus 99", "CPU ids"),
        (SetPreferredNode(0, 2), "node 2", "node ids -1 to 1"),
        (SetScanPeriod(-1, 10), "task -1", "task ids"),
    ]
    placement = mm.page_node.copy()
    for action, what, allowed in cases:
        with pytest.raises(PolicyError) as err:
            numa.driver._apply("on_tick", [action])
        text = str(err.value)
        name = type(action).__name__
        assert text.startswith(f"policy homenode: on_tick returned {name} with {what}:"), text
        assert allowed in text, text
    assert mm.page_node.tobytes() == placement.tobytes()  # nothing moved
    assert not any(q for q in numa.actuator.async_queue)  # nothing queued
