"""The mechanisms of issue 12 on small hand-built cases: copy traffic, lock queueing, memory policy (MPOL_F_MOF),
huge pages split on a hinting fault."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from memsched.policies.numa import get
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import SchedSetaffinity, Touch
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.numa.balancing import NumaBalancing
from memsched.sim.numa.contention import Contention, ContentionCosts
from memsched.topology import load_topology
from memsched.units import GIB, NSEC_PER_MSEC, NSEC_PER_SEC

sys.path.insert(0, str(Path(__file__).parent))
from test_balancing import SNB, setup


def _streamers(m: FluidMachine) -> None:
    """Eight processes streaming on the CPUs of node 0: together they saturate its controller."""
    for i, cpu in enumerate(SNB.node_cpus(0)[:8]):
        mm = m.new_mm(f"s{i}")
        buf = mm.mmap(256 * 1024 * 1024, "b")
        m.spawn_process(f"s{i}", (SchedSetaffinity([cpu]), Touch(buf, 200)), mm=mm)


def test_copy_traffic_slows_a_co_running_streamer() -> None:
    """Kernel threads copying pages off node 0 on idle CPUs of node 1 load node 0's controller and the link: the
    tasks streaming on node 0 slow down while the copies run, and not after."""
    m = FluidMachine(SNB, seed=0, config=MachineConfig())
    _streamers(m)
    m.run(until=500 * NSEC_PER_MSEC)
    m.progress.recompute()
    alone = float(m.progress.arrays.rate[0])
    util_alone = m.progress.controller_util.copy()
    for cpu in SNB.node_cpus(1)[:4]:
        m.progress.start_kernel_copy(cpu, np.array([1.0 * GIB, 0.0]), np.array([0.0, 1.0 * GIB]))
    m.progress.recompute()
    during = float(m.progress.arrays.rate[0])
    assert during < 0.95 * alone
    assert m.progress.controller_util[1] > util_alone[1]  # the destination controller works too
    m.run(until=m.engine.now + 5 * NSEC_PER_SEC)  # the copies (1 GiB each) are over by then
    m.progress.recompute()
    assert m.progress.kernel_copies == []
    assert float(m.progress.arrays.rate[0]) == alone
    # every byte of the four copies, up to the rounding of a sum of floats (the pieces each advance moved): an
    # exact 4 GiB held only under one BLAS kernel's summation order of the rates
    assert m.progress.copy_bytes == pytest.approx(4.0 * GIB, rel=1e-12, abs=0)


def _waits(nthreads: int) -> float:
    """Mean spin per thread when ``nthreads`` threads each take 200 huge-PMD hinting faults in a 10 ms window."""
    c = Contention(ContentionCosts(), anon_vma_mutex=False)
    for t in range(nthreads):
        c.hold(0, t, "ptl", 200, 500)
    cpus = {t: t for t in range(nthreads)}
    out = c.settle(0, 10 * NSEC_PER_MSEC, cpus)
    return sum(out.spin_ns.values()) / nthreads


def test_lock_queueing_grows_with_the_number_of_threads_faulting() -> None:
    """page_table_lock waits: none for a lone faulting thread, then growing faster than the thread count."""
    w = [_waits(n) for n in (1, 2, 4, 8, 16)]
    assert w[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(w))
    assert w[4] > 8 * w[1]


def test_mutex_waiters_sleep_and_wake_through_the_scheduler() -> None:
    """On 3.7's anon_vma mutex a long wait is mostly slept: the waiter leaves its CPU and a waker CPU is named."""
    c = Contention(ContentionCosts(), anon_vma_mutex=True)
    for t in range(8):
        c.hold(0, t, "anon", 100, 40_000)  # splits: long holds
    out = c.settle(0, 10 * NSEC_PER_MSEC, {t: t for t in range(8)})
    assert out.sleep_ns and all(out.sleep_ns[t] > 0 for t in range(8))
    assert set(out.waker) == set(range(8)) and all(out.waker[t] != t for t in out.waker)
    assert c.counts[0] == 8  # (lock blocks)


def test_tlb_shootdowns_interrupt_every_other_cpu_of_the_process() -> None:
    c = Contention(ContentionCosts(), anon_vma_mutex=False)
    c.flush(0, 0, 3)
    out = c.settle(0, 1.0, {0: 0, 1: 1, 2: 2})
    assert out.flushes == 3 and out.ipis == 6
    assert set(out.ipi_ns) == {1, 2} and 0 in out.send_ns


def test_a_bound_tasks_pages_are_never_migrated() -> None:
    """mpol_misplaced(): the remote thread runs under MPOL_BIND (no MPOL_F_MOF), so MORON's hinting faults move
    nothing, though they are taken and counted."""
    from memsched.sim.fluid.task import Join, SetMempolicy, Spawn, ThreadSpec
    from memsched.sim.mm.mempolicy import Mempolicy

    m = FluidMachine(SNB, seed=0, config=MachineConfig())
    spec = get("moron")
    numa = NumaBalancing(m, spec.make(spec.make_config({})))
    m.add_instrument(numa)
    mm = m.new_mm("p")
    buf = mm.mmap(1 * GIB, "b")
    remote = ThreadSpec("remote", (SchedSetaffinity(SNB.node_cpus(1)), Touch(buf, 20)))
    prog = (
        SchedSetaffinity(SNB.node_cpus(0)),
        SetMempolicy(Mempolicy.bind((0,))),
        Touch(buf, 1),
        Spawn((remote,)),  # inherits the bind policy
        Join(),
    )
    m.spawn_process("p", prog, mm=mm)
    m.run(until=5 * NSEC_PER_SEC)
    vs = m.vmstat
    assert vs["numa_hint_faults"] - vs["numa_hint_faults_local"] > 0
    assert vs["numa_pages_migrated"] == 0 and mm.node_pages[1] == 0
    assert numa.remote_kept == vs["numa_hint_faults"] - vs["numa_hint_faults_local"]
    # The same run with the default policy migrates.
    m2, mm2, _ = setup("moron")
    m2.run(until=5 * NSEC_PER_SEC)
    assert m2.vmstat["numa_pages_migrated"] > 0 and mm2.node_pages[1] > 0


def _moron_remote_streamer(config: MachineConfig) -> tuple[FluidMachine, NumaBalancing, MmStruct, Region]:
    """MORON over a 256 MiB buffer first-touched on node 0 and then streamed 200 times by a thread on node 1."""
    from memsched.sim.fluid.task import Join, SetMempolicy, Spawn, ThreadSpec
    from memsched.sim.mm.mempolicy import Mempolicy

    m = FluidMachine(SNB, seed=0, config=config)
    spec = get("moron")
    numa = NumaBalancing(m, spec.make(spec.make_config({})))
    m.add_instrument(numa)
    mm = m.new_mm("p")
    buf = mm.mmap(256 * 1024 * 1024, "b")
    remote = ThreadSpec("remote", (SchedSetaffinity(SNB.node_cpus(1)), Touch(buf, 200)))
    prog = (
        SchedSetaffinity(SNB.node_cpus(0)),
        SetMempolicy(Mempolicy.bind((0,))),
        Touch(buf, 1),
        SetMempolicy(Mempolicy()),
        Spawn((remote,)),
        Join(),
    )
    m.spawn_process("p", prog, mm=mm)
    return m, numa, mm, buf


def test_split_huge_pages_fault_and_migrate_per_4k() -> None:
    """Under a tree that splits huge pages on a hinting fault (MORON's), the first fault on a huge page splits it;
    from then on each 4 KiB page faults and migrates alone, and the stream pays a page walk per 4 KiB."""
    config = MachineConfig(thp=True, thp_split=True, run_kib=64, page_walk_ns=30)
    m, numa, mm, buf = _moron_remote_streamer(config)
    assert numa.policy.kernel.thp_split
    assert m.vmstat["thp_fault_alloc"] == 0
    m.run(until=1500 * NSEC_PER_MSEC)  # one scan at 1 s covers the whole buffer
    vs = m.vmstat
    assert vs["thp_fault_alloc"] == 129  # first touch: huge pages (256 MiB + the header's)
    assert vs["thp_split"] > 0 and numa.splits == vs["thp_split"]
    remote_faults = vs["numa_hint_faults"] - vs["numa_hint_faults_local"]
    assert remote_faults > 512  # per 4 KiB, not per huge page
    assert vs["numa_pages_migrated"] == remote_faults  # one base page per fault
    assert not mm.huge[: vs["thp_split"]].all()
    assert mm.region_small_fraction(buf) > 0  # the split blocks lost their TLB reach


def test_autonuma_tree_splits_and_migrates_on_fault() -> None:
    """The AutoNUMA tree as modelled: THP split on fault, the 3.6 anon_vma mutex, migrate on fault."""
    spec = get("autonuma")
    p = spec.make(spec.make_config({}))
    assert p.kernel.thp_split and p.kernel.anon_vma_lock == "mutex"
    topo = load_topology("sandybridge-2n32")
    assert topo.nr_nodes == 2


def _remote_faults_with_debt(debt_ns: int, at_ns: int, until_ns: int) -> int:
    """Remote hinting faults of a thread streaming a node-0 buffer from node 1 under MORON, when it is charged
    ``debt_ns`` of kernel work at ``at_ns`` (0: never)."""
    from memsched.sim.engine import Prio

    m, _numa, _mm, _buf = _moron_remote_streamer(MachineConfig())
    if debt_ns:
        m.engine.at(at_ns, Prio.TICK, lambda: m.charge_system(m.tasks[1], debt_ns, "other"))
    m.run(until=until_ns)
    return int(m.vmstat["numa_hint_faults"] - m.vmstat["numa_hint_faults_local"])


def test_a_task_busy_in_the_kernel_faults_only_the_pages_it_reaches() -> None:
    """Hinting faults follow a task's real progress. A thread with kernel work pending past the time its window
    is scanned again reaches no marked page in that time and takes no fault; one charged kernel work just after
    the scan has not come as far as its rate promised when the batch is due, and faults none of those pages."""
    scan = 1000 * NSEC_PER_MSEC  # MORON's first task_numa_work (numa_balancing_scan_delay_ms)
    free = _remote_faults_with_debt(0, 0, scan + 90 * NSEC_PER_MSEC)
    assert free >= 32  # huge pages: the batch due at the median of the 128 arrival times
    assert _remote_faults_with_debt(10 * NSEC_PER_SEC, scan - 100 * NSEC_PER_MSEC, scan + 90 * NSEC_PER_MSEC) == 0
    assert _remote_faults_with_debt(150 * NSEC_PER_MSEC, scan + 1, scan + 90 * NSEC_PER_MSEC) == 0
    # Once the work is done the thread streams, and faults, again.
    assert _remote_faults_with_debt(150 * NSEC_PER_MSEC, scan + 1, scan + 1500 * NSEC_PER_MSEC) > 0


def test_holds_and_flushes_of_many_tasks_are_those_of_each_in_turn() -> None:
    """``hold_each`` and ``flush_each`` (which ``hold`` and ``flush`` call for one task), or ``hold_each`` with the
    flushes, leave one slot per task in the order the tasks first came, a task with no hold (a count or a cost not
    positive) taking its slot too, and in each slot the sums of its holds (``n * each_ns``, the count,
    ``n * each_ns**2`` per lock) and flushes; a flush count is needed for every task. The first call into an empty
    batch keeps its rows as arrays (``BatchEvents.from_rows``): ``rows()`` gives the same bytes as the lists would,
    and the lists are made when read or added to."""
    rng = np.random.default_rng(14)
    cols = ("ptl_ns", "ptl_n", "ptl_sq", "anon_ns", "anon_n", "anon_sq", "flushes")
    costs = (0.0, 1000.0, 1500.0, 0, 1000, 1500)  # (the cost knobs are ints)
    for _ in range(200):
        c = Contention(ContentionCosts(), anon_vma_mutex=False)
        want: dict[int, dict[str, float]] = {}  # (insertion order: the slots' order)
        for _ in range(int(rng.integers(1, 5))):
            k = int(rng.integers(1, 8))
            tids = rng.choice(12, k, replace=False).tolist()
            counts = rng.integers(-1, 5, k).tolist()
            lock = str(rng.choice(["ptl", "anon"]))
            each = costs[int(rng.integers(len(costs)))]
            flushes = rng.integers(0, 3, k).tolist()
            way = rng.random()
            if way < 0.3:  # one task at a time
                for t, n, f in zip(tids, counts, flushes, strict=True):
                    c.hold(3, t, lock, n, each)
                    c.flush(3, t, f)
            elif way < 0.65:
                c.hold_each(3, tids, lock, counts, each)
                c.flush_each(3, tids, flushes)
            else:  # the holds and the flushes in one pass
                c.hold_each(3, tids, lock, counts, each, flushes)
            for t, n, f in zip(tids, counts, flushes, strict=True):
                slot = want.setdefault(t, dict.fromkeys(cols, 0))
                if n > 0 and each > 0:
                    slot[f"{lock}_ns"] += n * each
                    slot[f"{lock}_n"] += n
                    slot[f"{lock}_sq"] += n * each * each
                slot["flushes"] += f
        ev = c.pending[3]
        got_tids, got_f, got_n = ev.rows()  # (before the lists are read: the rows of a single call stay arrays)
        assert got_tids.tobytes() == np.array(list(want), dtype=np.int64).tobytes()
        want_f = [[float(want[t][col]) for t in want] for col in ("ptl_ns", "ptl_sq", "anon_ns", "anon_sq")]
        assert got_f.shape == (4, len(want)) and got_f.tobytes() == np.array(want_f).tobytes()
        want_n = [[want[t][col] for t in want] for col in ("ptl_n", "anon_n", "flushes")]
        assert got_n.shape == (3, len(want)) and got_n.tobytes() == np.array(want_n, dtype=np.int64).tobytes()
        assert ev.tids == list(want) and ev.slot == {t: i for i, t in enumerate(want)}
        for col in cols:
            assert getattr(ev, col) == [want[t][col] for t in want], col
        assert all(type(v) is float for col in ("ptl_ns", "ptl_sq", "anon_ns", "anon_sq") for v in getattr(ev, col))
    with pytest.raises(ValueError):  # (a flush count per task, as a hold count)
        Contention(ContentionCosts(), anon_vma_mutex=False).hold_each(3, [1, 2], "ptl", [1, 1], 1.0, [1])
