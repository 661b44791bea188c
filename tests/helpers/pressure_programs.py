"""Program builders shared by the simulated-pressure tests (imported by test modules in this folder)."""

from __future__ import annotations

from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Compute, FluidTask, Phase, Touch, Wait
from memsched.sim.mm.reclaim import Reclaim
from memsched.units import MIB, ms, s


def writer(m: FluidMachine, r: Reclaim, total_mib: int, chunk_kib: int = 256, name: str = "writer") -> FluidTask:
    """A page-cache writer (dirty-throttled), alive afterwards so its page cache stays."""
    mm = m.new_mm(name)
    reg = mm.mmap(total_mib * MIB, f"{name}:file", header=0)
    r.map_file(mm, reg)
    prog: list[Phase] = []
    for i in range(total_mib * 1024 // chunk_kib):
        prog += [
            Touch(reg.sub(i * chunk_kib * 1024, chunk_kib * 1024), write=1.0),
            Wait(r.writeback.throttle),
        ]
    prog.append(Compute(s(60)))
    return m.spawn_process(name, tuple(prog), mm=mm)


def allocator(
    m: FluidMachine, total_mib: int, chunk_mib: int = 1, think_ms: float = 1.0, name: str = "alloc"
) -> FluidTask:
    """An anonymous allocator that keeps what it allocates."""
    mm = m.new_mm(name)
    reg = mm.mmap(total_mib * MIB, f"{name}:heap", header=0)
    prog: list[Phase] = []
    for i in range(total_mib // chunk_mib):
        prog += [Touch(reg.sub(i * chunk_mib * MIB, chunk_mib * MIB)), Compute(ms(think_ms))]
    prog.append(Compute(s(60)))
    return m.spawn_process(name, tuple(prog), mm=mm)
