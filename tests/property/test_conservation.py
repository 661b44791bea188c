"""Invariants of the simulated machine: pages are conserved; CPU time never exceeds what the CPUs had."""

from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Compute, Join, SchedSetaffinity, SetMempolicy, Sleep, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.page_alloc import OutOfMemory, PageAllocator
from memsched.sim.mm.vmstat import VmStat
from memsched.topology import load_topology
from memsched.units import MIB, NSEC_PER_MSEC

TOPOS = ["westmere-ex-4n48", "opteron-4n32", "x86-8n64", "sandybridge-2n32", "laptop-1n8"]


@settings(max_examples=60, deadline=None)
@given(
    topo=st.sampled_from(TOPOS),
    batches=st.lists(
        st.tuples(st.integers(0, 7), st.integers(1, 3000), st.booleans(), st.integers(0, 255)), min_size=1, max_size=12
    ),
)
def test_frames_conserved_by_alloc_and_free(topo: str, batches: list[tuple[int, int, bool, int]]) -> None:
    """free + allocated frames always equal the machine's frames, per node, whatever fails or succeeds."""
    t = load_topology(topo)
    pa = PageAllocator(t, 2 * MIB, VmStat(t.nr_nodes))
    live: list[np.ndarray] = []
    for raw_node, count, do_free, mask_bits in batches:
        node = raw_node % t.nr_nodes
        allowed = np.array([(mask_bits >> n) & 1 for n in range(t.nr_nodes)], dtype=bool)
        allowed[node] = True
        if do_free and live:
            pa.free(live.pop())
        else:
            with contextlib.suppress(OutOfMemory):
                live.append(pa.alloc(np.full(count, node, dtype=np.int64), allowed, np.full(count, node)))
        used = np.zeros(t.nr_nodes, dtype=np.int64)
        for arr in live:
            used += np.bincount(arr, minlength=t.nr_nodes)
        assert (pa.free_pages + used == pa.total_pages).all()
        assert (pa.free_pages >= 0).all()


phase = st.one_of(
    st.builds(lambda ms: Compute(ms * NSEC_PER_MSEC), st.integers(1, 400)),
    st.builds(lambda ms: Sleep(ms * NSEC_PER_MSEC), st.integers(1, 200)),
)


@settings(max_examples=40, deadline=None)
@given(
    topo=st.sampled_from(["laptop-1n8", "sandybridge-2n32"]),
    threads=st.lists(
        st.tuples(
            st.lists(phase, min_size=1, max_size=4),
            st.one_of(st.none(), st.integers(0, 7)),
            st.booleans(),
            st.integers(-5, 5),
        ),
        min_size=1,
        max_size=20,
    ),
    seed=st.integers(0, 1000),
)
def test_cpu_time_never_exceeds_capacity_and_pages_balance(
    topo: str, threads: list[tuple[list[object], int | None, bool, int]], seed: int
) -> None:
    """user + system <= CPUs x elapsed; each task's CPU time <= its lifetime; mm placement matches frames."""
    t = load_topology(topo)
    m = FluidMachine(t, seed=seed, config=MachineConfig(thp=False))
    mm = m.new_mm("p")
    buf = mm.mmap(8 * MIB, "b")
    specs = []
    for i, (phases, cpu, touch, nice) in enumerate(threads):
        prog: list[object] = []
        if cpu is not None:
            prog.append(SchedSetaffinity((cpu % t.nr_cpus,)))
        if touch:
            prog += [SetMempolicy(Mempolicy.interleave(tuple(range(t.nr_nodes)))), Touch(buf.slice(i % 4, 4), 2)]
        prog += phases
        specs.append(ThreadSpec(f"t{i}", tuple(prog), nice=nice))  # type: ignore[arg-type]
    m.spawn_process("p", (Spawn(tuple(specs)), Join()), mm=mm)
    m.run()
    elapsed = m.elapsed_ns
    assert m.user_ns() + m.system_ns() <= t.nr_cpus * elapsed * (1 + 1e-9) + 1
    for task in m.tasks:
        user, sys = m.task_times(task)
        assert task.exit_ns is not None
        assert user + sys <= (task.exit_ns - task.start_ns) * (1 + 1e-9) + 1
    assert mm.final_node_pages is not None
    assert int(mm.final_node_pages.sum()) == int((mm.page_node >= 0).sum())
    assert (m.page_alloc.free_pages == m.page_alloc.total_pages).all()  # everything freed at exit
