"""balance: fork placement spreads nodes, then cores, then SMT threads; balancing fills idle CPUs."""

from __future__ import annotations

import functools

import numpy as np

from memsched.sim.fluid.balance import Balancer
from memsched.sim.fluid.domains import build_domains
from memsched.topology import load_topology

WSM = load_topology("westmere-ex-4n48")


def fork_n(b: Balancer, n: int, nr_cpus: int, parent_cpu: int = 0, allowed: np.ndarray | None = None) -> list[int]:
    load = np.zeros(nr_cpus)
    load[parent_cpu] = 1024  # the forking parent is running
    mask = np.ones(nr_cpus, bool) if allowed is None else allowed
    placed = []
    for _ in range(n):
        cpu = b.select_fork_cpu(parent_cpu, mask, load)
        load[cpu] += 1024
        placed.append(cpu)
    return placed


def test_domains_of_westmere() -> None:
    """CPU 0 has SMT (2 CPUs), MC (its node's 12) and one NUMA level (all 48)."""
    doms = build_domains(WSM)[0]
    assert [d.level for d in doms] == ["SMT", "MC", "NUMA20"]
    assert [len(d.span) for d in doms] == [2, 12, 48]
    assert len(doms[1].groups) == 6 and len(doms[2].groups) == 4


def test_fork_spreads_over_nodes_first() -> None:
    """Four new threads land on four different nodes."""
    b = Balancer(WSM)
    placed = fork_n(b, 4, 48)
    assert sorted(WSM.cpu_node()[placed].tolist()) == [0, 1, 2, 3]


def test_fork_one_thread_per_core_before_smt() -> None:
    """23 threads next to a running parent take 23 different idle cores (numa02_SMT's check)."""
    b = Balancer(WSM)
    placed = fork_n(b, 23, 48)
    cores = WSM.cpu_core()[placed]
    assert len(set(cores.tolist())) == 23
    assert WSM.cpu_core()[0] not in cores.tolist()


def test_fork_takes_the_first_idlest_node_after_its_own() -> None:
    """find_idlest_group() walks the groups from the forking CPU's own, then the ring after it, and keeps the
    first of equally idle ones: a parent on node 2 with the other nodes idle puts its first thread on node 3,
    then (node 3 busier) on node 0."""
    b = Balancer(WSM)
    parent = WSM.node_cpus(2)[0]
    placed = fork_n(b, 2, 48, parent_cpu=parent)
    assert WSM.cpu_node()[placed].tolist() == [3, 0]


def test_fork_respects_affinity() -> None:
    """Threads of a parent bound to node 2 stay there and still spread over its cores."""
    b = Balancer(WSM)
    allowed = np.zeros(48, bool)
    allowed[list(WSM.node_cpus(2))] = True
    placed = fork_n(b, 6, 48, parent_cpu=WSM.node_cpus(2)[0], allowed=allowed)
    assert set(WSM.cpu_node()[placed].tolist()) == {2}
    assert len(set(WSM.cpu_core()[placed].tolist())) == 6


def test_idle_cpu_pulls_from_overloaded_cpu() -> None:
    """Two tasks queued on CPU 0 and everything else idle: one moves away."""
    b = Balancer(WSM)
    rq: list[list[int]] = [[] for _ in range(48)]
    rq[0] = [1, 2]
    moves = b.balance(rq, lambda t: 1024.0, lambda t, s, d, i: 0.0)
    assert len(moves) == 1 and moves[0].src == 0
    assert sorted(len(q) for q in rq)[-1] == 1


def test_smt_pair_split_onto_idle_core() -> None:
    """Two tasks on sibling threads of one core, with whole cores idle: one moves to an idle core."""
    b = Balancer(WSM)
    rq: list[list[int]] = [[] for _ in range(48)]
    rq[0] = [1]
    rq[24] = [2]
    b.balance(rq, lambda t: 1024.0, lambda t, s, d, i: 0.0)
    busy = [c for c, q in enumerate(rq) if q]
    assert len(set(WSM.cpu_core()[busy].tolist())) == 2


def test_balanced_state_does_not_move() -> None:
    """One task per core is left alone; a veto stops every move."""
    b = Balancer(WSM)
    rq: list[list[int]] = [[i] if i < 24 else [] for i in range(48)]
    assert b.balance(rq, lambda t: 1024.0, lambda t, s, d, i: 0.0) == []
    rq2: list[list[int]] = [[] for _ in range(48)]
    rq2[0] = [1, 2, 3]
    assert b.balance(rq2, lambda t: 1024.0, lambda t, s, d, i: None) == []


def test_busy_cpus_even_out_load() -> None:
    """Without idle CPUs, 3 tasks vs 1 task on two CPUs become 2 and 2."""
    t = load_topology("laptop-1n8")
    b = Balancer(t)
    rq: list[list[int]] = [[10 + i] for i in range(8)]
    rq[0] = [1, 2, 3]
    rq[1] = [4]
    b.balance(rq, lambda x: 1024.0, lambda x, s, d, i: 0.0)
    assert max(len(q) for q in rq) == 2


def test_wake_prefers_prev_then_idle_core_in_llc() -> None:
    """A waking task returns to its idle previous CPU, else to an idle core of the same node."""
    b = Balancer(WSM)
    nr = np.zeros(48, dtype=np.int64)
    allowed = np.ones(48, bool)
    assert b.select_wake_cpu(3, allowed, nr) == 3
    nr[3] = 1
    cpu = b.select_wake_cpu(3, allowed, nr)
    assert WSM.cpu_node()[cpu] == 0 and cpu != 3 and nr[list(WSM.siblings(cpu))].sum() == 0


def test_wake_from_a_lock_goes_through_wake_affine() -> None:
    """A task woken by a lock holder on another node: wake_affine() pulls it next to the waker when the waker's
    CPU is idle or lighter (then select_idle_sibling() in the waker's LLC), and leaves it near its previous CPU
    when the waker's side is the busier one (3.7 kernel/sched/fair.c)."""
    b = Balancer(WSM)
    nr = np.zeros(48, dtype=np.int64)
    load = np.zeros(48)
    allowed = np.ones(48, bool)
    node = WSM.cpu_node()
    nr[3], load[3] = 1, 1024.0  # the previous CPU (node 0) is busy
    cpu = b.select_wake_cpu(3, allowed, nr, waker=7, load=load, weight=1024.0)
    assert node[cpu] == node[7] == 1 and cpu == 7  # the waker's CPU is idle: pulled onto it
    # The waker's node is loaded and the previous CPU idle: the task stays at home.
    nr[:] = 0
    load[:] = 0.0
    for c in WSM.node_cpus(1):
        nr[c], load[c] = 2, 2048.0
    cpu = b.select_wake_cpu(3, allowed, nr, waker=7, load=load, weight=1024.0)
    assert cpu == 3


def test_a_task_asleep_on_a_kernel_lock_blocks_and_wakes_through_the_wake_path() -> None:
    """Lifecycle.block_for: the task leaves its CPU for the wait, its phase resumes where it stopped, and the
    wake-up places it with the waker's CPU in view (here: pulled to the idle waker's node)."""
    from memsched.sim.fluid.machine import FluidMachine
    from memsched.sim.fluid.task import Compute, FluidTaskState, SchedSetaffinity

    m = FluidMachine(WSM, seed=0)
    m.spawn_process("busy", (SchedSetaffinity([3]), Compute(10**9)))
    t = m.spawn_process("p", (Compute(10**9),))
    m.run(until=1_000_000)
    assert t.cpu >= 0
    home = int(WSM.cpu_node()[t.cpu])
    other = (home + 2) % 4
    waker = WSM.node_cpus(other)[1]
    done_before = m.progress.phase_progress(t)
    assert m.lifecycle.block_for(t, 2_000_000, waker_cpu=waker)
    assert t.state is FluidTaskState.BLOCKED and t.kblocked
    m.run(until=2_000_000)
    assert m.progress.phase_progress(t) == done_before  # no progress while asleep
    m.run(until=3_500_000)
    assert t.state is FluidTaskState.RUNNABLE and not t.kblocked
    assert WSM.cpu_node()[t.cpu] == other and m.sched.wakeups_affine == 1
    m.run(until=10_000_000)  # after the cache refill of the cross-node move (system time)
    assert m.progress.phase_progress(t) > done_before


def _weight_of(w: np.ndarray, t: int) -> float:
    return float(w[t])


def test_skipping_the_busy_cpus_that_cannot_even_out_changes_no_move() -> None:
    """``balance`` passes over the busy CPUs that no CPU outweighs by ``imbalance_pct`` and by more than the
    lightest task: on random run queues (idle CPUs, CPUs with several tasks, nice levels' weights, moves vetoed
    or steered by a score) on three topologies, the same moves and the same queues as the full search."""
    rng = np.random.default_rng(3)
    weights = np.array([1024.0, 1024.0, 1024.0, 820.0, 335.0, 3121.0, 15.0])
    moved = 0
    for topo in (WSM, load_topology("sandybridge-2n32"), load_topology("x86-8n64")):
        for _ in range(60):
            nr_tasks = int(rng.integers(1, 2 * topo.nr_cpus))
            w = rng.choice(weights, nr_tasks) if rng.random() < 0.5 else np.full(nr_tasks, 1024.0)
            rq: list[list[int]] = [[] for _ in range(topo.nr_cpus)]
            dense = rng.random() < 0.5  # (one task per CPU, a few doubled or idle: the usual state)
            for t in range(nr_tasks):
                cpu = t % topo.nr_cpus if dense and rng.random() < 0.9 else int(rng.integers(topo.nr_cpus))
                rq[cpu].append(t)
            veto = rng.random((nr_tasks, topo.nr_cpus)) < 0.1
            pref = rng.random((nr_tasks, topo.nr_cpus))

            def score(
                t: int, src: int, dst: int, idle: bool, veto: np.ndarray = veto, pref: np.ndarray = pref
            ) -> float | None:
                return None if veto[t, dst] else float(pref[t, dst])

            out = []
            for skip in (True, False):
                b = Balancer(topo)
                b._skip_busy = skip
                queues = [list(q) for q in rq]
                out.append((b.balance(queues, functools.partial(_weight_of, w), score), queues))
            assert out[0] == out[1]
            moved += len(out[0][0])
    assert moved > 50  # (the draws need moves, not only balanced queues)
