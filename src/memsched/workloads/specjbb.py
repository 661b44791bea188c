"""``specjbb``: SPECjbb2005-like JVMs, measured in business operations per second (bops).

Mel Gorman's runs of the debate (mmtests, in his "Automatic NUMA Balancing" postings, linux-mm, Nov–Dec
2012): four JVMs, one per node, each ``-Xmx12882m`` on a 64 GB
four-node machine, THP on; results in bops, with a "manually placed" reference where each JVM is bound to
its own node (``numactl --cpunodebind=N --membind=N``). The figures themselves are withheld; this builds
the same shape:

* ``jvms`` processes (default one per node), each with ``warehouses`` threads (default CPUs / JVMs) sharing
  one heap (default the same 12882/16384 share of a node's memory as Mel's ``-Xmx``);
* the JVM commits its heap at start-up from its main thread (as with ``-XX:+AlwaysPreTouch``), so each
  heap starts on the node where the scheduler put that JVM's main thread;
* each warehouse thread runs transactions forever: ``txn_cpu_us`` of computation and ``txn_kib`` of object
  accesses (30 % writes, dependent pointer-chasing loads: a quarter of a stream's memory-level
  parallelism), most on its own warehouse's objects and a ``shared`` fraction anywhere in the heap;
* bops = transactions completed per second during the measurement window (``duration_s`` = 240 s after a
  ``warmup_s`` = 30 s ramp-up, SPECjbb2005's defaults), summed over JVMs.

``specjbb_HARD_BIND`` is the manually placed reference: JVM i's CPUs and memory bound to node i (JVMs beyond
the node count wrap around).

Deviations: no garbage collector threads or GC pauses, no warehouse ramp (one warehouse count per run),
transactions are a fluid mix rather than discrete business operations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.numeric import seq_sum
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Join, Phase, SchedSetaffinity, SetMempolicy, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.topology import Topology
from memsched.units import KIB, MIB, NSEC_PER_SEC
from memsched.workloads.base import Built, Footprint, Reference, Sampler, WorkloadSpec, register

__all__ = ["SpecjbbConfig"]

FOREVER = 10**9  # passes: the run ends at duration_s, never by the program
XMX_SHARE = 12882 / 16384  # Mel's -Xmx12882m on 16 GB nodes


@dataclass(frozen=True)
class SpecjbbConfig:
    jvms: int = knob(0, "JVM processes; 0 = one per node (Mel Gorman's setup)", min=0, max=64)
    warehouses: int = knob(0, "warehouse threads per JVM; 0 = CPUs / JVMs", min=0, max=1024)
    heap_mb: int = knob(
        0, "heap per JVM in MB; 0 = 12882/16384 of a node (-Xmx12882m on 16 GB nodes)", min=0, max=1 << 20
    )
    txn_cpu_us: float = knob(15.0, "CPU time per transaction (estimate)", min=0.0, max=1e6)
    txn_kib: float = knob(16.0, "heap touched per transaction, KiB (estimate)", min=0.01, max=1 << 20)
    shared: float = knob(
        0.2, "share of a transaction's accesses outside its own warehouse (estimate)", min=0.0, max=0.99
    )
    warmup_s: int = knob(30, "ramp-up before measuring (SPECjbb2005 ramp_up_seconds = 30)", min=0, max=3600)
    duration_s: int = knob(240, "measurement time (SPECjbb2005 measurement_seconds = 240)", min=1, max=3600)

    def __post_init__(self) -> None:
        validate(self)


def _footprint(topo: Topology, cfg: SpecjbbConfig) -> Footprint:
    jvms = cfg.jvms or topo.nr_nodes
    warehouses = cfg.warehouses or max(1, topo.nr_cpus // jvms)
    heap = (cfg.heap_mb * MIB) if cfg.heap_mb else int(min(n.memory_bytes for n in topo.nodes) * XMX_SHARE)
    return Footprint(cfg.warmup_s + cfg.duration_s, mms=jvms, mm_mb=heap // MIB, tasks=jvms * (1 + warehouses))


def _build(machine: FluidMachine, cfg: SpecjbbConfig, *, bound: bool) -> Built:
    topo = machine.topology
    jvms = cfg.jvms or topo.nr_nodes
    warehouses = cfg.warehouses or max(1, topo.nr_cpus // jvms)
    heap = (cfg.heap_mb * MIB) if cfg.heap_mb else int(min(n.memory_bytes for n in topo.nodes) * XMX_SHARE)
    if heap * jvms > topo.memory_bytes:
        raise ConfigError("heap_mb", heap // MIB, f"x {jvms} JVMs must fit in {topo.memory_bytes // MIB} MB")
    txn_bytes = cfg.txn_kib * KIB
    cpb = cfg.txn_cpu_us * 1000.0 / txn_bytes
    procs: list[Any] = []
    for j in range(jvms):
        mm = machine.new_mm(f"jvm{j}")
        region = mm.mmap(heap, "java heap")
        setup: list[Phase] = []
        if bound:
            node = j % topo.nr_nodes
            setup = [SchedSetaffinity(topo.node_cpus(node)), SetMempolicy(Mempolicy.bind((node,)))]
        specs = []
        for w in range(warehouses):
            own = region.slice(w, warehouses)
            # Transactions work mostly on the warehouse's own objects and partly on common ones.
            work = Touch(
                own, FOREVER, write=0.3, cpu_ns_per_byte=cpb, mlp_scale=0.25, shared=region, shared_fraction=cfg.shared
            )
            specs.append(ThreadSpec(f"jvm{j}.wh{w}", (work,)))
        # The JVM commits its heap at start-up from its main thread (-XX:+AlwaysPreTouch), then starts the
        # warehouses.
        program = (*setup, Touch(region, 1), Spawn(tuple(specs)), Join())
        procs.append(machine.spawn_process(f"jvm{j}", program, mm=mm))

    def done_per_jvm() -> list[float]:
        progress = machine.progress.phase_progress
        return [
            seq_sum(progress(t) for t in machine.tasks if t.tgid == proc.id and t.parent is not None) for proc in procs
        ]

    machine.add_instrument(Sampler(lambda: {"bytes_per_jvm": done_per_jvm()}))
    warmup = float(cfg.warmup_s)

    def metrics(m: FluidMachine) -> dict[str, Any]:
        start = next(
            (s["workload"][-1]["bytes_per_jvm"] for s in m.timeline.samples if s["t_s"] >= warmup - 1e-9),
            [0.0] * jvms,
        )
        end = done_per_jvm()
        per_jvm = [round((e - s) / txn_bytes / cfg.duration_s, 1) for s, e in zip(start, end, strict=True)]
        return {"bops": round(seq_sum(per_jvm), 1), "bops_per_jvm": per_jvm, "jvms": jvms, "warehouses": warehouses}

    return Built(procs, metrics=metrics, duration_ns=(cfg.warmup_s + cfg.duration_s) * NSEC_PER_SEC)


for _bound in (False, True):
    register(
        WorkloadSpec(
            id="specjbb" + ("_HARD_BIND" if _bound else ""),
            description=(
                "SPECjbb2005-like: one JVM per node, warehouse threads sharing a heap; throughput in bops"
                + ("; manually placed: JVM i bound to node i" if _bound else "")
            ),
            family="specjbb",
            config_cls=SpecjbbConfig,
            build=functools.partial(_build, bound=_bound),
            references=() if _bound else (Reference("HARD_BIND", "specjbb_HARD_BIND"),),
            headline=(("bops", "bops", ".0f"),),
            footprint=_footprint,
        )
    )
