"""autonuma-benchmark: numa01, numa01_THREAD_ALLOC, numa02, numa02_SMT and their HARD_BIND / INVERSE_BIND
variants, as Andrea Arcangeli's 2012 sources define them (``pholasek/autonuma-benchmark`` at ``fdf7a42``,
19 Sep 2012; the Makefile builds numa01 with ``-DNO_BIND_FORCE_SAME_NODE`` since ``2e33cc1``).

What each program does (``numa01.c`` / ``numa02.c`` after ``preproc.awk`` filled in the topology):

* ``cpus`` is the highest CPU id + 1, or ``2 * nodes`` with the ``-m`` switch (``mof``).
* **numa01** (built with ``-DNO_BIND_FORCE_SAME_NODE``): ``nodemask_global`` (node 0 or node 1, from the wall
  clock's parity, here from the seed unless ``first_touch_node`` fixes it) is chosen before ``fork()``; each
  of the two processes mallocs 3 GiB and starts ``cpus/2`` threads. Every thread binds to
  ``nodemask_global``, writes the **whole** 3 GiB, drops the binding, then writes the whole 3 GiB 50 more
  times (numa01) or its own ``3 GiB / threads`` slice 1000 times (``THREAD_ALLOC``). All 6 GiB therefore
  start on one node.
* **numa02**: one process mallocs 1 GiB; the main thread first-touches it (with ``HARD_BIND``, slice ``n``
  while bound to node ``n``), then starts ``cpus`` threads (``cpus/2`` for ``_SMT``); thread ``i`` writes its
  own ``1 GiB / threads`` slice 800 times (800 GiB in all).
* **HARD_BIND** (no FORCE_SAME_NODE): numa01's child process gets the CPUs and an ``MPOL_BIND`` of the first
  half of the nodes, the parent those of the second half; numa02 pins thread ``i`` and its slice to node
  ``i / (threads / nodes)``.
* **INVERSE_BIND**, literally as published: numa01's swap tests ``NODEMASK1`` twice, so only the child
  (CPUs in the first half) gets its memory bound to the second half, and the parent stays local; numa02 pins
  thread ``i`` to the mirrored node ``(threads - 1 - i) / (threads / nodes)`` while its slice stays put.

On a one-node machine both "halves" are the whole machine (the awk script would produce an empty mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Join, Phase, SchedSetaffinity, SetMempolicy, Spawn, ThreadSpec, Touch
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.topology import Topology
from memsched.units import GIB, MIB
from memsched.workloads.base import Built, Footprint, Reference, WorkloadSpec, register

__all__ = ["VARIANTS", "AutonumaBenchConfig"]

NUMA01_SIZE = 3 * GIB
NUMA01_NR = 50  # repetitions after the first full write (numa01)
NUMA01_THREAD_ALLOC_NR = 1000  # slice repetitions (numa01_THREAD_ALLOC)
NUMA02_SIZE = 1 * GIB
NUMA02_TOTALSIZE = 4 * GIB * 200  # TOTALSIZE/SIZE = 800 slice writes per thread
MOF = 2


@dataclass(frozen=True)
class AutonumaBenchConfig:
    mof: bool = knob(False, "the -m switch of fdf7a42: cpus = 2 * nodes instead of nr_cpu_ids")
    first_touch_node: int = knob(
        -1, "numa01's nodemask_global: node 0 or 1; -1 = wall-clock parity, drawn from the seed", min=-1, max=1
    )

    def __post_init__(self) -> None:
        validate(self)


def _cpus(topo: Topology, cfg: AutonumaBenchConfig) -> int:
    return MOF * topo.nr_nodes if cfg.mof else topo.nr_cpus


def _halves(topo: Topology) -> tuple[tuple[int, ...], tuple[int, ...]]:
    nodes = tuple(range(topo.nr_nodes))
    if len(nodes) == 1:
        return nodes, nodes
    half = len(nodes) // 2
    return nodes[:half], nodes[half:]


def _cpus_of(topo: Topology, nodes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(c for n in nodes for c in topo.node_cpus(n)))


def _build_numa01(machine: FluidMachine, cfg: AutonumaBenchConfig, *, thread_alloc: bool, bind: str) -> Built:
    topo = machine.topology
    threads = _cpus(topo, cfg) // 2
    if threads < 1:
        raise ConfigError("cpus", _cpus(topo, cfg), "must be >= 2 for numa01 (THREADS = cpus/2)")
    node_global = cfg.first_touch_node
    if node_global < 0:
        node_global = int(machine.engine.rng("autonuma.time_parity").integers(2))
    node_global = min(node_global, topo.nr_nodes - 1)
    first, second = _halves(topo)
    processes = []
    # fork(): the child (fork() == 0) is "process 0" and gets the first half under HARD_BIND.
    for proc, own_half in ((0, first), (1, second)):
        mm = machine.new_mm(f"numa01.{proc}")
        buf = mm.mmap(NUMA01_SIZE, "p")
        setup: list[Phase] = []
        thread_prog: list[Phase] = []
        if bind == "none":
            thread_prog += [SetMempolicy(Mempolicy.bind((node_global,))), Touch(buf, 1)]
            thread_prog += [SetMempolicy(Mempolicy())]
        else:
            mem_half = own_half
            if bind == "inverse" and own_half == first:  # the published swap fires for process 0 only
                mem_half = second
            setup += [SchedSetaffinity(_cpus_of(topo, own_half)), SetMempolicy(Mempolicy.bind(mem_half))]
            thread_prog += [Touch(buf, 1)]
        specs = []
        for i in range(threads):
            prog = list(thread_prog)
            if thread_alloc:
                prog.append(Touch(buf.slice(i, threads), NUMA01_THREAD_ALLOC_NR))
            else:
                prog.append(Touch(buf, NUMA01_NR))
            specs.append(ThreadSpec(f"numa01.{proc}.t{i}", tuple(prog)))
        program = (*setup, Spawn(tuple(specs)), Join())
        processes.append(machine.spawn_process(f"numa01.{proc}", program, mm=mm))
    return Built(processes, metrics=lambda m: {"nodemask_global": node_global})


def _build_numa02(machine: FluidMachine, cfg: AutonumaBenchConfig, *, smt: bool, bind: str) -> Built:
    topo = machine.topology
    cpus = _cpus(topo, cfg)
    threads = cpus // 2 if smt else cpus
    nnodes = topo.nr_nodes
    per_node = threads // nnodes
    if threads < nnodes or per_node < 1:
        raise ConfigError("cpus", cpus, f"must give at least one thread per node ({nnodes} nodes)")
    mm = machine.new_mm("numa02")
    buf = mm.mmap(NUMA02_SIZE, "p")

    def bind_to(node: int) -> list[Phase]:
        if bind == "none":
            return []
        return [SchedSetaffinity(_cpus_of(topo, (node,))), SetMempolicy(Mempolicy.bind((node,)))]

    program: list[Phase] = []
    for n in range(nnodes):  # BINDMAP
        program += bind_to(n)
        program.append(Touch(buf.slice(n, nnodes), 1))
    reps = NUMA02_TOTALSIZE // NUMA02_SIZE
    for i in range(threads):
        node = (threads - 1 - i) // per_node if bind == "inverse" else i // per_node
        program += bind_to(min(node, nnodes - 1))
        prog = (Touch(buf.slice(i, threads), reps),)
        program.append(Spawn((ThreadSpec(f"numa02.t{i}", prog),)))
    program.append(Join())
    return Built([machine.spawn_process("numa02", tuple(program), mm=mm)])


#: DRAM traffic per byte written: read-for-ownership plus write-back (docs/calibration.md: controller_gibps is
#: twice the bzero rate).
WRITE_TRAFFIC = 2


def _check_first_touch_node(topo: Topology, cfg: AutonumaBenchConfig) -> None:
    """Refuse a ``first_touch_node`` the topology does not have (node 1 of a one-node machine), which the build
    would otherwise quietly replace by the last node. The footprint is asked before any run starts, with the
    topology: the one place a workload's settings meet the machine they run on."""
    if cfg.first_touch_node >= topo.nr_nodes:
        raise ConfigError(
            "first_touch_node", cfg.first_touch_node,
            f"must be -1 or a node of topology {topo.name} (0..{topo.nr_nodes - 1})",
        )  # fmt: skip


def _footprint(topo: Topology, cfg: AutonumaBenchConfig, base: str) -> Footprint:
    """The run time under the slowest placement, all pages on one node: the traffic of the bytes the program
    writes (numa01: each thread its process's whole buffer, then 50 more times or its slice 1000 times; numa02:
    the first touch, then 800 slice writes per thread) through the slowest node's controller. numa01 under
    ``none`` on westmere-ex-4n48, all 6 GiB on one node, takes 1596.6 simulated s; this gives 1596.5 s. Every
    golden run (benchmarks/golden_numa.py) takes at most 0.5 % longer than it gives."""
    _check_first_touch_node(topo, cfg)
    cpus = _cpus(topo, cfg)
    if base.startswith("numa01"):
        threads = cpus // 2
        again = NUMA01_THREAD_ALLOC_NR if base.endswith("THREAD_ALLOC") else threads * NUMA01_NR
        again *= NUMA01_SIZE
        written, mms, size, tasks = 2 * (threads * NUMA01_SIZE + again), 2, NUMA01_SIZE, 2 * (1 + threads)
    else:
        threads = cpus // 2 if base.endswith("SMT") else cpus
        written, mms, size, tasks = NUMA02_SIZE + NUMA02_TOTALSIZE, 1, NUMA02_SIZE, 1 + threads
    slowest = min(n.controller_gibps for n in topo.nodes) * GIB
    return Footprint(WRITE_TRAFFIC * written / slowest, mms=mms, mm_mb=size // MIB, tasks=tasks)


def _numa01_note(topology: Topology) -> str | None:
    """numa01 is the adverse case on machines with more than two nodes: every thread of a process writes the whole
    3 GiB, so no node can be local to all of them (numa01.c)."""
    if topology.nr_nodes <= 2:
        return None
    half = topology.nr_nodes // 2
    return (
        f"numa01 on {topology.nr_nodes} nodes is the adverse case: each process's {topology.nr_cpus // 2} threads "
        f"need {half} nodes and every thread writes all of the process's 3 GiB, so no single node can be local to "
        f"them all. The right answer interleaves each process over its half of the machine, which HARD_BIND "
        f"approximates (first touch spreads each process over its {half} nodes); migration alone can only move "
        f"pages towards whichever thread faulted last, so balancing policies bounce pages or leave them remote."
    )


def _spec(base: str, bind: str) -> WorkloadSpec:
    suffix = {"none": "", "hard": "_HARD_BIND", "inverse": "_INVERSE_BIND"}[bind]
    wid = base + suffix
    about = {
        "numa01": (
            "2 processes x cpus/2 threads, each thread writes its process's whole 3 GiB 51 times; "
            "all 6 GiB first-touched on one node"
        ),
        "numa01_THREAD_ALLOC": (
            "as numa01, but after the shared first touch each thread writes only its 3 GiB/threads slice, "
            "1000 times"
        ),
        "numa02": "1 process x cpus threads, each writes its own slice of 1 GiB 800 times (800 GiB in all)",
        "numa02_SMT": "as numa02 with cpus/2 threads (checks one thread per core)",
    }[base]
    how = {
        "none": "",
        "hard": "; hard-bound: CPUs and MPOL_BIND of each process's half of the nodes",
        "inverse": "; inverse-bound: memory bound away from the CPUs (as published)",
    }[bind]

    def build(machine: FluidMachine, cfg: Any) -> Built:
        if base.startswith("numa01"):
            return _build_numa01(machine, cfg, thread_alloc=base.endswith("THREAD_ALLOC"), bind=bind)
        return _build_numa02(machine, cfg, smt=base.endswith("SMT"), bind=bind)

    return WorkloadSpec(
        id=wid,
        description=about + how,
        family="autonuma-benchmark",
        config_cls=AutonumaBenchConfig,
        build=build,
        references=()
        if bind == "hard"
        else (Reference("HARD_BIND", base + "_HARD_BIND"), Reference("INVERSE_BIND", base + "_INVERSE_BIND")),
        note=_numa01_note if base == "numa01" else (lambda topology: None),
        footprint=lambda topology, cfg: _footprint(topology, cfg, base),
    )


BASES = ("numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT")
VARIANTS = tuple(register(_spec(b, bind)) for b in BASES for bind in ("none", "hard", "inverse"))
