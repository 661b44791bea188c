"""``mixed``: a memory-bound service beside CPU-bound batch jobs — where moving tasks costs more than it gains.

A service process runs ``service_threads`` threads (default one per core) streaming over ``service_mb`` of
memory interleaved over all nodes at start-up, as a tuned database does (``numactl --interleave=all``), so it
already draws on every memory controller. Batch work fills the other CPUs with CPU-bound jobs of ``job_s`` CPU
seconds, started in waves back to back for ``duration_s``.

No placement can improve the service: its accesses are spread by design and every controller already
serves it. A policy that chases its faults migrates pages that every node shares, and pulls threads and
batch jobs across nodes, paying copies and cache refills for nothing. Doing nothing is the best answer.

Figures: ``service_gb_per_s`` and ``batch_jobs`` completed (with ``task_node_moves`` in the record).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsched.config import knob, validate
from memsched.numeric import seq_sum
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Compute, Join, SetMempolicy, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.topology import Topology
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.base import Built, Footprint, WorkloadSpec, register

__all__ = ["MixedConfig"]

FOREVER = 10**9


@dataclass(frozen=True)
class MixedConfig:
    service_threads: int = knob(0, "service threads; 0 = one per core", min=0, max=1024)
    service_mb: int = knob(4096, "service working set (MB), interleaved over all nodes", min=1, max=1 << 20)
    batch_jobs: int = knob(0, "batch jobs per wave; 0 = the CPUs the service leaves free", min=0, max=1024)
    job_s: float = knob(1.0, "CPU seconds per batch job", min=0.001, max=3600.0)
    duration_s: float = knob(120.0, "run time (simulated seconds)", min=0.1, max=3600.0)

    def __post_init__(self) -> None:
        validate(self)


def _shape(topo: Topology, cfg: MixedConfig) -> tuple[int, int, int]:
    """Service threads, batch jobs per wave, and waves (back to back for ``duration_s``, plus two)."""
    threads = cfg.service_threads or topo.nr_cores
    jobs = cfg.batch_jobs or max(1, topo.nr_cpus - threads)
    return threads, jobs, int(cfg.duration_s / cfg.job_s) + 2


def _footprint(topo: Topology, cfg: MixedConfig) -> Footprint:
    """Every batch job is a task of its own: ``duration_s / job_s`` waves of them."""
    threads, jobs, waves = _shape(topo, cfg)
    return Footprint(cfg.duration_s, mms=2, mm_mb=cfg.service_mb, tasks=2 + threads + waves * jobs)


def _build(machine: FluidMachine, cfg: MixedConfig) -> Built:
    topo = machine.topology
    threads, jobs, waves = _shape(topo, cfg)
    mm = machine.new_mm("service")
    region = mm.mmap(cfg.service_mb * MIB, "service")
    specs = tuple(ThreadSpec(f"svc.t{i}", (Touch(region, FOREVER, write=0.5),)) for i in range(threads))
    interleave = SetMempolicy(Mempolicy.interleave(tuple(range(topo.nr_nodes))))
    service = machine.spawn_process("service", (interleave, Touch(region, 1), Spawn(specs), Join()), mm=mm)
    job = ThreadSpec("batch.job", (Compute(round(cfg.job_s * NSEC_PER_SEC)),))
    driver_prog: list[Any] = []
    for _ in range(waves):
        driver_prog += [Spawn((job,) * jobs), Join()]
    driver = machine.spawn_process("batch", tuple(driver_prog), parent_cpu=topo.nr_cpus - 1)

    def metrics(m: FluidMachine) -> dict[str, Any]:
        moved = seq_sum(m.progress.phase_progress(t) for t in m.tasks if t.tgid == service.id and t.parent is not None)
        done = sum(1 for t in m.tasks if t.tgid == driver.id and t.parent is not None and t.exit_ns is not None)
        return {"service_gb_per_s": round(moved / cfg.duration_s / 1e9, 3), "batch_jobs": done}

    return Built([service, driver], metrics=metrics, duration_ns=round(cfg.duration_s * NSEC_PER_SEC))


register(
    WorkloadSpec(
        id="mixed",
        description="memory-bound service (interleaved memory) beside waves of CPU-bound batch jobs",
        family="mixed",
        config_cls=MixedConfig,
        build=_build,
        headline=(("service_gb_per_s", "service GB/s", ".2f"), ("batch_jobs", "jobs", "d")),
        footprint=_footprint,
    )
)
