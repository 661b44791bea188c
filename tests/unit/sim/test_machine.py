"""machine: fluid progress, fair sharing, sleeps and joins, first touch, system time."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Compute, Join, SchedSetaffinity, SetMempolicy, Sleep, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.topology import load_topology
from memsched.units import MIB, NSEC_PER_SEC

WSM = load_topology("westmere-ex-4n48")


def machine(**kw: object) -> FluidMachine:
    return FluidMachine(WSM, seed=1, config=MachineConfig(**kw))  # type: ignore[arg-type]


def test_compute_runs_for_its_cpu_time() -> None:
    """A 1 s compute phase alone on a CPU ends at 1 s with 1 s of user time."""
    m = machine()
    t = m.spawn_process("p", (Compute(NSEC_PER_SEC),))
    m.run()
    assert t.exit_ns == NSEC_PER_SEC
    assert m.user_ns() == pytest.approx(NSEC_PER_SEC)


def test_two_tasks_share_one_cpu_by_weight() -> None:
    """Pinned to one CPU, two 1 s tasks both finish at 2 s; a nice 5 task gets a third of the weight share."""
    m = machine(cross_node_move_ns=0)
    prog = (SchedSetaffinity((5,)), Compute(NSEC_PER_SEC))
    a = m.spawn_process("a", prog)
    b = m.spawn_process("b", prog)
    m.run()
    assert a.exit_ns == b.exit_ns == 2 * NSEC_PER_SEC
    m2 = machine(cross_node_move_ns=0)
    hi = m2.spawn_process("hi", prog)
    lo = m2.spawn_process("lo", prog, nice=5)
    m2.run()
    # weights 1024 vs 335: the nice-0 task finishes first at (1024+335)/1024 s.
    assert hi.exit_ns == pytest.approx(NSEC_PER_SEC * (1024 + 335) / 1024, abs=2)
    assert lo.exit_ns == pytest.approx(2 * NSEC_PER_SEC, abs=2)


def test_sleep_and_join() -> None:
    """A parent blocked in Join wakes when its last thread exits; sleeping uses no CPU."""
    m = machine()
    child = ThreadSpec("c", (Sleep(NSEC_PER_SEC), Compute(NSEC_PER_SEC)))
    parent = m.spawn_process("p", (Spawn((child, child)), Join(), Compute(NSEC_PER_SEC // 2)))
    m.run()
    assert parent.exit_ns == int(2.5 * NSEC_PER_SEC)
    assert m.user_ns() == pytest.approx(2.5 * NSEC_PER_SEC)


def test_system_time_delays_user_work() -> None:
    """Kernel work charged to a task is system time and pushes its user work back."""
    m = machine(page_fault_ns=0)
    t = m.spawn_process("p", (Compute(NSEC_PER_SEC),))
    m.charge_system(t, NSEC_PER_SEC / 2)
    m.run()
    assert t.exit_ns == int(1.5 * NSEC_PER_SEC)
    assert m.system_ns() == pytest.approx(NSEC_PER_SEC / 2)


@pytest.mark.parametrize(
    ("policy", "expect"),
    [
        (Mempolicy.bind((2,)), {2}),
        (Mempolicy.preferred(3), {3}),
        (Mempolicy.interleave((0, 1)), {0, 1}),
    ],
)
def test_first_touch_follows_mempolicy(policy: Mempolicy, expect: set[int]) -> None:
    """The first touch of a buffer allocates under the toucher's policy."""
    m = machine(thp=False)
    mm = m.new_mm("p")
    buf = mm.mmap(8 * MIB, "b")
    m.spawn_process("p", (SetMempolicy(policy), Touch(buf, 1)), mm=mm)
    m.run()
    nodes = set(np.flatnonzero(mm.final_node_pages).tolist())
    assert nodes == expect
    if policy.mode.name == "INTERLEAVE":
        assert abs(int(mm.final_node_pages[0]) - int(mm.final_node_pages[1])) <= 1
        assert m.vmstat["numa_interleave"] == mm.final_node_pages.sum()


def test_default_first_touch_is_local() -> None:
    """Under MPOL_DEFAULT pages land on the node of the CPU the toucher runs on."""
    m = machine()
    mm = m.new_mm("p")
    buf = mm.mmap(64 * MIB, "b")
    t = m.spawn_process("p", (SchedSetaffinity(WSM.node_cpus(3)), Touch(buf, 2)), mm=mm)
    m.run()
    assert mm.final_node_pages.tolist() == [0, 0, 0, 33]
    assert m.vmstat["pgfault"] == 33 and m.vmstat["thp_fault_alloc"] == 33
    user, sys = m.task_times(t)
    assert sys > 0 and user > 0


def test_concurrent_first_touch_splits_between_touchers() -> None:
    """Threads on two nodes touching one buffer at the same instant each get a share of its pages."""
    m = machine(thp=False)
    mm = m.new_mm("p")
    buf = mm.mmap(64 * MIB, "b")
    a = ThreadSpec("a", (SchedSetaffinity(WSM.node_cpus(0)), Touch(buf, 1)))
    b = ThreadSpec("b", (SchedSetaffinity(WSM.node_cpus(1)), Touch(buf, 1)))
    m.spawn_process("p", (Spawn((a, b)), Join()), mm=mm)
    m.run()
    pages = mm.final_node_pages
    assert pages[0] + pages[1] == mm.nr_pages
    assert 0.4 < pages[0] / mm.nr_pages < 0.6


def test_same_seed_same_run() -> None:
    """Two machines with one seed give the same times and placement; the clock only moves forward."""

    def once(seed: int) -> tuple[int | None, list[int]]:
        m = FluidMachine(WSM, seed=seed, config=MachineConfig(thp=False))
        mm = m.new_mm("p")
        buf = mm.mmap(32 * MIB, "b")
        specs = tuple(ThreadSpec(f"t{i}", (Touch(buf, 3),)) for i in range(6))
        m.spawn_process("p", (Spawn(specs), Join()), mm=mm)
        m.run()
        assert mm.final_node_pages is not None
        return m.tasks[0].exit_ns, mm.final_node_pages.tolist()

    assert once(3) == once(3)


def test_cross_node_move_costs_a_cache_refill() -> None:
    """Moving a task to another node charges cross_node_move_ns of system time; a move within a node is free."""
    m = machine(cross_node_move_ns=3_000_000)
    t = m.spawn_process("p", (Compute(NSEC_PER_SEC),))
    m.run(until=1000)
    same_node = next(c for c in WSM.node_cpus(int(WSM.cpu_node()[t.cpu])) if c != t.cpu)
    m.sched.move_task(t, same_node)
    other_node = WSM.node_cpus((int(WSM.cpu_node()[t.cpu]) + 1) % 4)[0]
    m.sched.move_task(t, other_node)
    m.run()
    assert m.sched.task_node_moves == 1
    assert m.system_ns() == pytest.approx(3_000_000)
    assert t.exit_ns == NSEC_PER_SEC + 3_000_000


def test_deadlock_is_reported_not_spun() -> None:
    """A task waiting for something that can never happen ends the run with a SimulationError."""
    from memsched.errors import SimulationError
    from memsched.sim.fluid.task import Wait

    class Never:
        def poll_ready(self, task: object) -> bool:
            return False

        def add_waiter(self, task: object, wake: object) -> None:
            pass

    m = machine()
    m.spawn_process("p", (Compute(1000), Wait(Never())))
    with pytest.raises(SimulationError, match="not exited"):
        m.run()
