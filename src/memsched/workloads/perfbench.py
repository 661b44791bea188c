"""``perf-bench-numa``: Ingo Molnar's ``perf bench numa mem`` layouts (tools/perf/bench/numa.c, Dec 2012).

``layout=PxT`` runs P processes of T threads; it reports a convergence time (until each group's memory and
threads sit on one node) and bandwidth in GB/s. Memory:

* ``mem=process`` (``-P``): each process has ``size_mb`` shared by all its threads;
* ``mem=thread`` (``-T``): each thread has its own ``size_mb``;
* ``mem=global`` (``-G``): one ``size_mb`` area shared by every thread of every process.

Each process's main thread first-touches its memory on the node the scheduler started it on (global memory:
the first process's), then its threads, spread by the scheduler like any new threads, loop over it
(sequential walks, half reads half writes) for ``duration_s``.

Two figures, as perf bench reports them:

* **convergence**: a process has converged when its threads run on as few nodes as its thread count needs
  (``ceil(T / CPUs per node)``) and at least 90 % of its memory sits on those nodes; the run converges at the
  first sample from which every process stays converged to the end (``convergence_s``; ``None`` if never).
* **GB/s**: bytes the threads moved per second over the run.

``perf-bench-numa_HARD_BIND`` pins process i's CPUs and memory to node i (mod the node count): the placement
convergence should reach.

GB/s and locality: with the default 4x8 layout on a four-node preset, each process's memory sits on its own
node whether or not its threads do, so both runs saturate the same four controllers. A remote byte then costs
more only where the machine has a resource it alone uses: a link that binds, or the machine-wide coherence
resource (``snoop_gibps``). Without them (westmere-ex-4n48: its links have headroom for this pattern and no
allowed data constrains a coherence figure) unbound and bound runs report the same GB/s; on x86-8n64 (narrow
ring links and cross-chassis cables, a fitted coherence resource) the unbound run reports 11.2 GB/s at locality
0.22 against 37.8 GB/s bound.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.numeric import seq_sum
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import (
    FluidTaskState,
    Join,
    Phase,
    SchedSetaffinity,
    SetMempolicy,
    Spawn,
    ThreadSpec,
    Touch,
)
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.mm import MmStruct, Region
from memsched.topology import Topology
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.base import Built, Footprint, Reference, Sampler, TimelineChart, WorkloadSpec, register

__all__ = ["PerfBenchConfig"]

FOREVER = 10**9
CONVERGED_MEMORY = 0.9


@dataclass(frozen=True)
class PerfBenchConfig:
    layout: str = knob("4x8", "processes x threads, e.g. 4x8, 2x16, 8x4")
    mem: str = knob(
        "process",
        "working set: per process (-P), per thread (-T) or global (-G)",
        choices=("process", "thread", "global"),
    )
    size_mb: int = knob(1024, "working set size in MB (per process, per thread, or global)", min=1, max=1 << 20)
    duration_s: float = knob(120.0, "run time (simulated seconds)", min=0.1, max=3600.0)

    def __post_init__(self) -> None:
        validate(self)
        if not re.fullmatch(r"[1-9][0-9]{0,3}x[1-9][0-9]{0,3}", self.layout):
            raise ConfigError("layout", self.layout, "must be PROCESSESxTHREADS, e.g. 4x8")
        if self.shape[0] * self.shape[1] > 1024:
            raise ConfigError("layout", self.layout, "must have at most 1024 threads in all")

    @property
    def shape(self) -> tuple[int, int]:
        p, t = self.layout.split("x")
        return int(p), int(t)


def _footprint(topo: Topology, cfg: PerfBenchConfig) -> Footprint:
    nproc, nthr = cfg.shape
    per_mm = cfg.size_mb * (nthr if cfg.mem == "thread" else 1)
    mms = 1 if cfg.mem == "global" else nproc
    return Footprint(cfg.duration_s, mms=mms, mm_mb=per_mm, tasks=nproc * (1 + nthr))


def _build(machine: FluidMachine, cfg: PerfBenchConfig, *, bound: bool) -> Built:
    topo = machine.topology
    nproc, nthr = cfg.shape
    size = cfg.size_mb * MIB
    total = size * (nproc * nthr if cfg.mem == "thread" else nproc if cfg.mem == "process" else 1)
    if total > topo.memory_bytes * 0.9:
        raise ConfigError("size_mb", cfg.size_mb, f"gives {total // MIB} MB in all, more than 90% of the machine")
    shared_mm: MmStruct | None = None
    shared_region: Region | None = None
    if cfg.mem == "global":
        shared_mm = machine.new_mm("global")
        shared_region = shared_mm.mmap(size, "global")
    procs = []
    for p in range(nproc):
        node = p % topo.nr_nodes
        mm = shared_mm if shared_mm is not None else machine.new_mm(f"proc{p}")
        setup: list[Phase] = []
        if bound:
            setup = [SchedSetaffinity(topo.node_cpus(node)), SetMempolicy(Mempolicy.bind((node,)))]
        if cfg.mem == "global":
            assert shared_region is not None
            regions = [shared_region] * nthr
            touch = [Touch(shared_region, 1)] if p == 0 else []
        elif cfg.mem == "process":
            region = mm.mmap(size, "process")
            regions = [region] * nthr
            touch = [Touch(region, 1)]
        else:
            regions = [mm.mmap(size, f"thread{t}") for t in range(nthr)]
            touch = [Touch(r, 1) for r in regions]
        specs = tuple(ThreadSpec(f"p{p}.t{t}", (Touch(regions[t], FOREVER, write=0.5),)) for t in range(nthr))
        procs.append(machine.spawn_process(f"proc{p}", (*setup, *touch, Spawn(specs), Join()), mm=mm))

    cpus_per_node = min(len(n.cpus) for n in topo.nodes)
    need_nodes = max(1, math.ceil(nthr / cpus_per_node))
    node_of = topo.cpu_node()

    def sample() -> dict[str, Any]:
        converged = 0
        for proc in procs:
            threads = [t for t in machine.tasks if t.tgid == proc.id and t.parent is not None]
            running = [t for t in threads if t.state is FluidTaskState.RUNNABLE and t.cpu >= 0]
            if len(running) < nthr:
                continue
            tnodes = np.unique(node_of[[t.cpu for t in running]])
            pages = proc.mm.node_pages
            on = pages[tnodes].sum() / max(pages.sum(), 1)
            if len(tnodes) <= need_nodes and on >= CONVERGED_MEMORY:
                converged += 1
        return {"converged_processes": converged}

    machine.add_instrument(Sampler(sample))

    def metrics(m: FluidMachine) -> dict[str, Any]:
        tl = m.timeline.samples
        conv = [s.get("workload", [{}])[-1].get("converged_processes", 0) for s in tl]
        times = [s["t_s"] for s in tl]
        at = None
        for t, c in zip(times, conv, strict=True):
            if c == nproc:
                if at is None:
                    at = t
            else:
                at = None
        moved = seq_sum(m.progress.phase_progress(t) for t in m.tasks if t.parent is not None)
        return {
            "convergence_s": at,
            "gb_per_s": round(moved / cfg.duration_s / 1e9, 3),
            "layout": cfg.layout,
            "converged_processes_final": conv[-1] if conv else 0,
        }

    return Built(procs, metrics=metrics, duration_ns=round(cfg.duration_s * NSEC_PER_SEC))


for _bound in (False, True):
    register(
        WorkloadSpec(
            id="perf-bench-numa" + ("_HARD_BIND" if _bound else ""),
            description=(
                "perf bench numa mem: PxT processes x threads (--set layout=4x8) over process/thread/global memory"
                + ("; process i bound to node i" if _bound else "")
            ),
            family="perf-bench-numa",
            config_cls=PerfBenchConfig,
            build=functools.partial(_build, bound=_bound),
            references=() if _bound else (Reference("HARD_BIND", "perf-bench-numa_HARD_BIND"),),
            headline=(("gb_per_s", "GB/s", ".2f"), ("convergence_s", "converged s", ".1f")),
            charts=(TimelineChart("converged_processes", "converged processes", "convergence over time"),),
            footprint=_footprint,
        )
    )
