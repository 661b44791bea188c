"""instrument: only the hooks an instrument overrides (and wants) are called; several combine by the rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Compute, FluidTask, Spawn, ThreadSpec, Touch
from memsched.topology import load_topology
from memsched.units import MIB, NSEC_PER_SEC

SNB = load_topology("sandybridge-2n32")


class Recorder(Instrument):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def task_created(self, task: FluidTask) -> None:
        self.calls.append(f"created {task.name}")

    def after_fault(self, task: FluidTask, pages: Any, nodes: Any) -> None:
        self.calls.append(f"faulted {task.name} {len(pages)}")

    def mm_exit(self, mm: Any) -> None:
        self.calls.append(f"exit {mm.name}")

    def timeline_sample(self) -> dict[str, Any]:
        return {"n": len(self.calls)}


def test_only_overridden_hooks_are_registered() -> None:
    """A hook the instrument does not override is not in the machine's lists; the ones it does are called."""
    m = FluidMachine(SNB)
    rec = Recorder()
    m.add_instrument(rec)
    assert m.instruments.task_created and m.instruments.after_fault and not m.instruments.before_fault
    assert not m.instruments.lb_score and not m.instruments.sched_changed
    mm = m.new_mm("p")
    buf = mm.mmap(64 * MIB, "b")
    m.spawn_process("p", (Touch(buf, 1),), mm=mm)
    m.run()
    assert rec.calls[0] == "created p" and rec.calls[1].startswith("faulted p ") and rec.calls[-1] == "exit p"
    assert m.timeline.samples[0]["workload"] == [{"n": 2}]  # the first sample sees creation and first touch


class Veto(Instrument):
    def __init__(self, allow: bool) -> None:
        self.allow = allow

    def wants(self, hook: str) -> bool:
        return self.allow

    def lb_score(self, task: FluidTask, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        return None


def test_wants_declines_a_hook_and_one_none_vetoes() -> None:
    """An instrument may decline a hook it overrides; with it accepted, lb_score None forbids every move."""
    results = []
    for allow in (False, True):
        m = FluidMachine(SNB, seed=1)
        m.add_instrument(Veto(allow))
        assert bool(m.instruments.lb_score) is allow
        prog = (Spawn(tuple(ThreadSpec(f"t{i}", (Compute(NSEC_PER_SEC),)) for i in range(4))),)
        m.spawn_process("p", prog)
        m.run()
        results.append(m.sched.task_node_moves)
    assert results[1] == 0


def test_struct_of_arrays_grows_from_its_table() -> None:
    """Every declared column grows with the task count and new rows hold the field's initial value."""
    from memsched.sim.fluid.state import FIELDS, TaskArrays

    a = TaskArrays(nr_nodes=3, capacity=2)
    a.oncpu[:2] = 7
    a.grow(5)
    assert a.capacity == 5
    for f in FIELDS:
        col = getattr(a, f.name)
        assert col.shape[0] == 5 and (col.shape[1:] == (3,)) is f.per_node
        assert np.all(col[2:] == f.fill)
    assert list(a.oncpu[:2]) == [7, 7]
