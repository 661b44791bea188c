"""autonumabench: process/thread counts, first touch, bindings and repetition counts as the sources define."""

from __future__ import annotations

import numpy as np
import pytest

from memsched.errors import ConfigError
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Spawn, Touch
from memsched.topology import load_topology
from memsched.units import GIB
from memsched.workloads import get, names


def build(wid: str, topo: str = "westmere-ex-4n48", **cfg: str) -> FluidMachine:
    m = FluidMachine(load_topology(topo), seed=2)
    spec = get(wid)
    spec.build(m, spec.make_config(cfg))
    return m


def threads_of(m: FluidMachine) -> list:  # type: ignore[type-arg]
    return [t for t in m.tasks if t.parent is not None]


def programs(m: FluidMachine) -> list[tuple[object, ...]]:
    """Every program the workload will run: main threads' and, recursively, those they spawn."""
    out: list[tuple[object, ...]] = []
    todo = [t.program for t in m.tasks if t.parent is None]
    while todo:
        prog = todo.pop()
        out.append(prog)
        for p in prog:
            if isinstance(p, Spawn):
                todo += [s.program for s in p.threads]
    return out


def bytes_written(m: FluidMachine) -> float:
    return sum(p.work for prog in programs(m) for p in prog if isinstance(p, Touch))


def test_twelve_variants_registered() -> None:
    """All four workloads exist with _HARD_BIND and _INVERSE_BIND variants."""
    for base in ("numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT"):
        for suffix in ("", "_HARD_BIND", "_INVERSE_BIND"):
            assert base + suffix in names()


@pytest.mark.parametrize(
    ("wid", "topo", "procs", "threads"),
    [
        ("numa01", "westmere-ex-4n48", 2, 48),
        ("numa01", "opteron-4n32", 2, 32),
        ("numa02", "westmere-ex-4n48", 1, 48),
        ("numa02_SMT", "westmere-ex-4n48", 1, 24),
        ("numa02_SMT", "x86-8n64", 1, 32),
    ],
)
def test_process_and_thread_counts(wid: str, topo: str, procs: int, threads: int) -> None:
    """numa01: 2 x cpus/2 threads; numa02: cpus threads (cpus/2 with _SMT)."""
    m = build(wid, topo)
    assert len([t for t in m.tasks if t.parent is None]) == procs
    assert len(programs(m)) - procs == threads
    m.run(until=10**9)
    assert len(threads_of(m)) == threads


@pytest.mark.parametrize(
    ("wid", "gib"),
    [
        ("numa01", 2 * 24 * 51 * 3),
        ("numa01_THREAD_ALLOC", 2 * (24 * 3 + 3000)),
        ("numa02", 800 + 1),
        ("numa02_SMT", 801),
    ],
)
def test_write_volume_matches_numa_md(wid: str, gib: int) -> None:
    """Bytes written per run are those numa01.c / numa02.c imply on 48 CPUs (2 · T · 51 · 3 GiB, 6T + 6000 GiB,
    800 GiB)."""
    m = build(wid)
    assert bytes_written(m) == pytest.approx(gib * GIB, rel=1e-6)


def test_mof_switch() -> None:
    """With -m (mof), cpus = 2 * nodes: numa01 runs 2 x 4 threads on 4 nodes."""
    m = build("numa01", mof="true")
    assert len(threads_of(m)) == 8


def test_numa01_first_touch_on_one_node() -> None:
    """numa01's threads bind to nodemask_global for the first write: all 6 GiB land on that node."""
    m = build("numa01", first_touch_node="1")
    m.run(until=10**9)
    pages = sum(mm.node_pages for mm in m.mms)
    assert pages.tolist() == [0, 2 * 1537, 0, 0]


def test_numa01_hard_bind_halves() -> None:
    """HARD_BIND: the child runs and allocates on nodes 0-1, the parent on nodes 2-3."""
    m = build("numa01_HARD_BIND")
    m.run(until=10**9)
    node = load_topology("westmere-ex-4n48").cpu_node()
    for proc, half in ((0, {0, 1}), (1, {2, 3})):
        mm = m.mms[proc]
        assert set(np.flatnonzero(mm.node_pages).tolist()) == half
        cpus = [t.cpu for t in m.tasks if t.mm is mm and t.parent is not None]
        assert set(node[cpus].tolist()) == half


def test_numa01_inverse_bind_as_published() -> None:
    """INVERSE_BIND: only process 0's memory moves to the other half (the swap tests NODEMASK1 twice).

    Its threads run on nodes 0-1, so MPOL_BIND(2,3) takes the first node of the mask in their zonelists:
    node 2 for both ([0,1,2,3] and [1,2,3,0]).
    """
    m = build("numa01_INVERSE_BIND")
    m.run(until=10**9)
    assert set(np.flatnonzero(m.mms[0].node_pages).tolist()) == {2}
    assert set(np.flatnonzero(m.mms[1].node_pages).tolist()) == {2, 3}


def test_numa02_hard_and_inverse_bind_pin_threads() -> None:
    """numa02 HARD_BIND pins thread i to node i/(T/N) where its slice lives; INVERSE mirrors the node."""
    node = load_topology("westmere-ex-4n48").cpu_node()
    for wid, mirror in (("numa02_HARD_BIND", False), ("numa02_INVERSE_BIND", True)):
        m = build(wid)
        m.run(until=2 * 10**9)
        mm = m.mms[0]
        assert mm.node_pages.tolist() == [129, 128, 128, 128]
        for t in threads_of(m):
            i = int(t.name.rsplit("t", 1)[1])
            want = (47 - i) // 12 if mirror else i // 12
            assert node[t.cpu] == want


def test_numa02_default_first_touch_by_main() -> None:
    """Without binding, the main thread first-touches all of numa02's 1 GiB on its own node."""
    m = build("numa02")
    m.run(until=10**9)
    assert int((m.mms[0].node_pages > 0).sum()) == 1


def test_spawn_structure() -> None:
    """numa02 spawns its threads one by one after the first touch (Spawn phases follow the Touches)."""
    m = build("numa02_HARD_BIND")
    prog = m.tasks[0].program
    first_spawn = next(i for i, p in enumerate(prog) if isinstance(p, Spawn))
    assert all(not isinstance(p, Spawn) for p in prog[:first_spawn])
    assert sum(isinstance(p, Touch) for p in prog[:first_spawn]) == 4


def test_bad_config() -> None:
    """first_touch_node outside -1..1 is refused."""
    with pytest.raises(ConfigError, match="first_touch_node"):
        get("numa01").make_config({"first_touch_node": "3"})
