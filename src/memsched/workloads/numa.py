"""The ``numa`` family's runner: a NUMA workload under a NUMA policy, on the fluid machine.

A :class:`~memsched.workloads.runspec.RunSpec` with ``family="numa"`` names the workload (``memsched list
workloads``), the topology (a preset or a TOML file), the policy (``memsched list policies``), the seed and the
``--set`` keys, split between the workload and the policy by :func:`memsched.config.split_sets`.
:func:`compare_specs` lists the runs of a comparison: every (workload, policy) pair plus the reference runs each
workload declares.

Record figures: ``workload``, ``policy``, ``label``, ``topology``, ``seed``, ``elapsed_s`` (simulated seconds
until the last task exited, or the benchmark's fixed duration), ``user_s`` and ``system_s`` (CPU time of all
tasks, as ``time(1)`` reports them), ``system_by_cause`` (the kernel CPU time charged, by mechanism:
``page_faults``, ``scanning``, ``hint_faults``, ``migration``, ``copy``, ``lock_spin``, ``tlb_flush``,
``tlb_ipi``, ``thp_split``, ``task_moves``, ``kthreads``; charged, so debts still unpaid at the end of a
fixed-time run count), ``vmstat`` (``/proc/vmstat`` names), ``local_fraction`` (bytes served by
the local node over all bytes), ``numastat`` per node, ``timeline`` samples, workload and policy ``metrics``,
and the ``score`` a comparison ranks the run by.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from memsched.config import finite_number, split_sets
from memsched.errors import ConfigError
from memsched.policies.numa import registry as policies
from memsched.policies.numa.base import BASE_PAGE_SHIFT, KnumaScand, NumaPolicy, TaskWorkScan
from memsched.record import RunRecord
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.topology import Topology, load_topology
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC
from memsched.workloads import base as workloads
from memsched.workloads.runspec import RunSpec

__all__ = [
    "MAX_SAMPLE_INTERVAL_S",
    "MAX_SCAN_WORK_MB",
    "MAX_TASKS",
    "MAX_TIMELINE_SAMPLES",
    "MIN_SAMPLE_INTERVAL_S",
    "NumaOptions",
    "NumaRunner",
    "compare_specs",
    "relative_cost",
    "scan_work_mb",
    "size_factor",
]


#: 4 KiB pages are tracked in runs of this size (``sim/mm/mm.py``): within a run a streaming sweep has one
#: first toucher except where a cursor or a buffer's end falls inside it.
NUMA_RUN_KIB = 256
#: A page walk after a TLB miss that hits the caches (estimate), paid per 4 KiB page streamed where memory is
#: mapped by 4 KiB pages.
NUMA_PAGE_WALK_NS = 30


#: The timeline's resolution, ``sample_interval_s``, is bounded by what a sample costs: each one syncs the
#: fluid progress and keeps a row, about 26 µs of CPU and 0.5 KB (numa02 on sandybridge-2n32 under mainline:
#: 0.11 s at 1 s, 0.93 s at 1 ms, 8.3 s and 214 MB at 0.1 ms, for 31 simulated seconds). At 10 ms, an hour
#: of simulated time (the longest workload duration) costs about 9 s and 180 MB more; 1e-6 ran for minutes.
#: Above an hour no run gets a sample after its first.
MIN_SAMPLE_INTERVAL_S = 0.01
MAX_SAMPLE_INTERVAL_S = 3600.0


# ---- what a run may ask of the simulator ---------------------------------------------------------------------
# Estimated from the workload's footprint (``WorkloadSpec.footprint``: its duration, address spaces and tasks) and
# the policy's scan cadence before anything is built, and refused above these limits, as rt-app files are
# refused above 10 million scheduler events. Calibration, CPU seconds on the 2-CPU development VM:
#
# * numa02 under moron on opteron-4n32 (18.5 simulated s): scan_period_ms=10 with scan_size_mb=16 (1,670 scans)
#   took 1.5 s, with 256 (1,950 scans) 3.3 s, with 1024 (3,275 scans, 32.8 s) 9.6 s, of which 0.5 s start-up:
#   a scan costs ~0.54 ms plus ~3.5 us per MB it marks (its hinting faults and migrations follow from them);
# * against the estimate (which takes a policy's shortest period throughout, and the slowest placement's run
#   time): MORON at scan_period_ms=1 on numa02/opteron-4n32, estimated 23.2 million MB, took 35.5 s (36.4
#   simulated s); MORON's default numa01 on westmere-ex-4n48, 13.0 million, 28 s; the scan_period_ms=10 runs
#   above 1.4 us per MB estimated: 1.4 to 2.2 us per MB in all. Policies that lengthen their period scan less;
# * mixed on sandybridge-2n32: 1,186 tasks took 0.9 s, 11,570 tasks (job_s=0.1) 2.0 s and 23,106 (job_s=0.05)
#   3.3 s and 82 MB: ~0.11 ms and ~1 KiB per task.

#: Each scan counts as this many MB marked on top of what it marks: its fixed cost (0.54 ms / 3.5 us per MB).
SCAN_FIXED_MB = 150
#: The most scan work a run may ask for, in MB marked (fixed costs included): at most 70 to 110 s of CPU, as
#: rt-app's limit (the heaviest default, mainline's numa01 on westmere-ex-4n48, asks for 13.9 million; the
#: heaviest cell of the docs/sweeps.md example, balancenuma's numa01 on x86-8n64 at 100 ms and 1024 MB, 30.5).
MAX_SCAN_WORK_MB = 50_000_000
#: The most tasks a run may create (every batch job of ``mixed`` is one): about 25 s of CPU and 300 MB.
MAX_TASKS = 200_000
#: The most timeline samples a run may take (``sample_interval_s``); the defaults take at most a few thousand.
MAX_TIMELINE_SAMPLES = 100_000


def _cadence_knob(config: Any, *, tick: bool) -> str:
    """The knob that sets the policy's shortest scan period, or its tick, to name in a refusal."""
    ticks: tuple[str, ...] = ("migrate_check_ms", "balance_interval_ms", "min_interval_s") if tick else ()
    names = (*ticks, "scan_period_ms", "scan_period_min_ms", "scan_sleep_ms")
    return next((n for n in names if hasattr(config, n)), "scan_size_mb")


def scan_work_mb(policy: NumaPolicy, fp: workloads.Footprint) -> int:
    """:func:`_scan_and_tick_work` in all."""
    return sum(_scan_and_tick_work(policy, fp))


def _scan_and_tick_work(policy: NumaPolicy, fp: workloads.Footprint) -> tuple[int, int]:
    """The scan work ``policy`` asks for over ``fp``'s run, in MB marked (:data:`SCAN_FIXED_MB` per scan on top),
    at the shortest scan period it may choose: ``task_numa_work()`` once per period and address space, at most
    ``scan_size_mb`` or the whole address space each time; AutoNUMA's ``knuma_scand`` once per ``scan_sleep_ms``
    over all of them; and apart, a policy's own tick (``tick_interval_ns``), which counts as a scan that marks
    nothing."""
    duration_ms = fp.duration_s * 1000
    scan = policy.scan
    work = ticks = 0.0
    if isinstance(scan, TaskWorkScan):
        lo_ns, _ = scan.period_bounds_ns(fp.mm_mb << (20 - BASE_PAGE_SHIFT))
        period_ms = max(1.0, lo_ns / NSEC_PER_MSEC)  # task_numa_work() runs from the tick: 1 ms at HZ=1000
        marked = fp.mm_mb if scan.whole_address_space else min(scan.scan_size_mb, fp.mm_mb)
        work += fp.mms * math.ceil(duration_ms / period_ms) * (SCAN_FIXED_MB + marked)
    elif isinstance(scan, KnumaScand):
        marked = min(scan.pages_to_scan_mb, fp.mms * fp.mm_mb)
        work += math.ceil(duration_ms / scan.scan_sleep_ms) * (SCAN_FIXED_MB + marked)
    if policy.tick_interval_ns:
        ticks = math.ceil(duration_ms * NSEC_PER_MSEC / policy.tick_interval_ns) * SCAN_FIXED_MB
    return int(work), int(ticks)


def _check_work(spec: RunSpec, topo: Topology, wl: workloads.WorkloadSpec, wl_cfg: Any, policy: NumaPolicy,
                pol_cfg: Any, opts: NumaOptions) -> None:
    """Refuse a run that asks for more than the limits above (see there), naming the key to change."""
    if wl.footprint is None:
        return
    fp = wl.footprint(topo, wl_cfg)
    what = f"workload {wl.id} on {topo.name}"
    if fp.tasks > MAX_TASKS:
        key = "job_s" if hasattr(wl_cfg, "job_s") else "duration_s"
        raise ConfigError(
            key, getattr(wl_cfg, key, None),
            f"makes {what} create about {fp.tasks:,} tasks; at most {MAX_TASKS:,} are simulated "
            "(lengthen the jobs, shorten the run or use fewer jobs)",
        )  # fmt: skip
    samples = fp.duration_s / opts.sample_interval_s
    if samples > MAX_TIMELINE_SAMPLES:
        raise ConfigError(
            "sample_interval_s", opts.sample_interval_s,
            f"gives about {samples:,.0f} timeline samples over the ~{fp.duration_s:,.0f} s of {what}; "
            f"at most {MAX_TIMELINE_SAMPLES:,} are taken (a longer interval, a shorter run or faster memory)",
        )  # fmt: skip
    scans, ticks = _scan_and_tick_work(policy, fp)
    work = scans + ticks
    if work > MAX_SCAN_WORK_MB:
        key = _cadence_knob(pol_cfg, tick=ticks > scans)
        raise ConfigError(
            key, getattr(pol_cfg, key),
            f"with policy {policy.id} makes the ~{fp.duration_s:,.0f} s of {what} ask for about {work:,} MB of "
            f"NUMA scanning (a policy tick counting as a scan); at most {MAX_SCAN_WORK_MB:,} are simulated "
            "(lengthen the scan period or the tick, shrink scan_size_mb or shorten the run)",
        )  # fmt: skip


@dataclass(frozen=True)
class NumaOptions:
    """How a NUMA run is simulated: page size, the runs 4 KiB pages are tracked in, timeline resolution
    (``MIN_SAMPLE_INTERVAL_S``..``MAX_SAMPLE_INTERVAL_S``), and whether to record a trace."""

    thp: bool = True
    sample_interval_s: float = 1.0
    run_kib: int = NUMA_RUN_KIB
    #: Attach a :class:`~memsched.report.numa_trace.NumaTraceRecorder` (in the record's ``extras["trace"]``).
    trace: bool = False

    def __post_init__(self) -> None:
        interval = finite_number(
            self.sample_interval_s, "sample_interval_s", lo=MIN_SAMPLE_INTERVAL_S, hi=MAX_SAMPLE_INTERVAL_S, unit=" s"
        )
        object.__setattr__(self, "sample_interval_s", interval)


def compare_specs(
    topology: str, names: Sequence[str], policies_: Sequence[str], seed: int, options: NumaOptions | None = None
) -> list[RunSpec]:
    """Every (workload, policy) run plus each workload's reference runs, in table order."""
    specs = []
    known = set(workloads.names())
    for wl in names:
        for pol in policies_:
            specs.append(RunSpec(wl, topology, pol, seed, label=pol, options=options))
        for ref in workloads.get(wl).references:
            if ref.workload in known:
                reference = RunSpec(
                    ref.workload, topology, "none", seed, label=ref.label, role="reference", base=wl, options=options
                )
                specs.append(reference)
    return specs


#: Relative simulation cost of a workload (numa02 = 1), from CPU seconds measured per run on westmere-ex-4n48
#: (numa01, with 0.7 s of interpreter start-up: moron 34, homenode 3.5, autonuma 3.4, mainline 2.6, numacore 2.0,
#: balancenuma 1.4, none 0.8)
#: (``benchmarks/golden_numa.py`` records them): only the order matters, so that a comparison starts its longest
#: runs first. The ``_HARD_BIND``/``_INVERSE_BIND`` references cost about what their base does under ``none``.
_WORKLOAD_COST = {"numa01": 4.0, "numa01_THREAD_ALLOC": 2.0, "specjbb": 2.0, "perf-bench-numa": 1.3}
#: Relative cost of a policy (``none`` = 1): the policies that migrate on every fault simulate far more events.
_POLICY_COST = {"moron": 8.0, "homenode": 2.6, "autonuma": 2.5, "mainline": 2.0, "numacore": 1.5, "balancenuma": 1.3}


def relative_cost(spec: RunSpec) -> float:
    """An estimate of how long ``spec`` takes to simulate, relative to the other runs of a comparison (unknown
    workloads and policies count as the cheapest): :func:`~memsched.workloads.runner.run_many` starts the
    costliest first so that no long run is left alone at the end."""
    wl = spec.workload
    for suffix in ("_HARD_BIND", "_INVERSE_BIND"):
        wl = wl.removesuffix(suffix)
    return _WORKLOAD_COST.get(wl, 1.0) * _POLICY_COST.get(spec.policy or "none", 1.0)


#: The machine :func:`expected_work` counts in: its CPUs (westmere-ex-4n48's 48).
_WORK_CPUS = 48


def expected_work(spec: RunSpec, topology: Topology) -> float:
    """:func:`relative_cost` on ``topology``, in runs of its size on westmere-ex-4n48: 0 on a single node (no
    page or task ever has another node to move to, so even MORON's numa01 solves its rates a few dozen times
    there), else the cost times ``nr_cpus / 48`` (the benchmarks' threads follow the CPUs; MORON numa01 solves
    about 10,000 times on the 32-CPU presets, 62,000 on westmere-ex-4n48). What the runner weighs to load the
    fluid engine's compiled kernels before the runs start (``runner.LOAD_AHEAD_COST``)."""
    if topology.nr_nodes <= 1:
        return 0.0
    return relative_cost(spec) * topology.nr_cpus / _WORK_CPUS


@functools.lru_cache(maxsize=64)
def size_factor(topology: str | None) -> float:
    """How a run's cost grows with its machine, relative to westmere-ex-4n48: ``nr_cpus * nr_nodes / (48 * 4)``
    (the benchmarks' threads follow the CPUs, and the balancing's searches and scans the nodes; numa01 under
    MORON costs 2.6 times its westmere-ex-4n48 run on x86-8n64, where the rule gives 2.7, under mainline 15
    times). Only the order of a comparison's runs depends on it; 1.0 for a topology that does not load."""
    if topology is None:
        return 1.0
    try:
        topo = load_topology(topology)
    except ConfigError:
        return 1.0
    return topo.nr_cpus * topo.nr_nodes / (_WORK_CPUS * 4)


class NumaRunner:
    """The NUMA workloads (``memsched.workloads``) under a NUMA policy, on the fluid machine."""

    family: ClassVar[str] = "numa"

    def _parts(self, spec: RunSpec) -> tuple[Topology, workloads.WorkloadSpec, policies.PolicySpec, Any, Any]:
        if spec.topology is None:
            raise ConfigError("topology", None, "is required for a NUMA run (a preset name or a TOML file)")
        topo = load_topology(spec.topology)
        wl = workloads.get(spec.workload)
        pol = policies.get(spec.policy or "none")
        wl_sets, pol_sets = split_sets(
            spec.sets, ((f"workload {wl.id}", wl.config_cls), (f"policy {pol.id}", pol.config_cls))
        )
        opts = self._options(spec)  # NumaOptions checked its own fields when it was made
        wl_cfg, pol_cfg = wl.make_config(wl_sets), pol.make_config(pol_sets)
        _check_work(spec, topo, wl, wl_cfg, pol.make(pol_cfg), pol_cfg, opts)
        return topo, wl, pol, wl_cfg, pol_cfg

    @staticmethod
    def _options(spec: RunSpec) -> NumaOptions:
        if spec.options is None:
            return NumaOptions()
        if not isinstance(spec.options, NumaOptions):
            raise ConfigError("options", spec.options, "must be NumaOptions for a NUMA run")
        return spec.options

    def check(self, spec: RunSpec) -> None:
        self._parts(spec)

    @staticmethod
    def cost(spec: RunSpec) -> float:
        """:func:`relative_cost` times the machine's size (:func:`size_factor`): which runs of a comparison to
        start first, also across topologies (``compare -t a,b``)."""
        return relative_cost(spec) * size_factor(spec.topology)

    @staticmethod
    def work(specs: Sequence[RunSpec]) -> float:
        """:func:`expected_work` of the runs, summed (each topology loaded once)."""
        topologies: dict[str | None, Topology] = {}
        total = 0.0
        for spec in specs:
            topo = topologies.get(spec.topology)
            if topo is None:
                if spec.topology is None:
                    continue  # (check() refuses it)
                topo = topologies[spec.topology] = load_topology(spec.topology)
            total += expected_work(spec, topo)
        return total

    def run(self, spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
        from memsched.sim.numa.balancing import NumaBalancing, needs_mechanism

        topo, wl, pol, wl_cfg, pol_cfg = self._parts(spec)
        opts = self._options(spec)
        policy = pol.make(pol_cfg)
        machine = FluidMachine(
            topo,
            seed=spec.seed,
            config=MachineConfig(
                thp=opts.thp,
                thp_split=opts.thp and policy.kernel.thp_split,
                run_kib=opts.run_kib,
                page_walk_ns=NUMA_PAGE_WALK_NS,
                debt_events=False,
                sample_interval_ns=round(opts.sample_interval_s * NSEC_PER_SEC),
            ),
        )
        numa = NumaBalancing(machine, policy) if needs_mechanism(policy) else None
        if numa is not None:
            machine.add_instrument(numa)
        recorder = None
        if opts.trace:
            from memsched.report.numa_trace import NumaTraceRecorder

            recorder = NumaTraceRecorder(machine, machine.config.sample_interval_ns)
            machine.add_instrument(recorder)
            if numa is not None:
                recorder.attach_balancing(numa)
            recorder.start()
        built = wl.build(machine, wl_cfg)
        machine.run(
            until=built.duration_ns,
            progress=(lambda now: progress(now / NSEC_PER_SEC)) if progress else None,
        )
        elapsed_ns = built.duration_ns if built.duration_ns is not None else machine.elapsed_ns
        workload_metrics = built.metrics(machine)
        label = spec.label or pol.id
        figures: dict[str, Any] = {
            "workload": spec.workload,
            "policy": pol.id,
            "label": label,
            "topology": topo.name,
            "seed": spec.seed,
            "thp": opts.thp,
            "config": {"workload": wl.config_dict(wl_cfg), "policy": pol.config_dict(pol_cfg)},
            "elapsed_s": _r(elapsed_ns / NSEC_PER_SEC),
            "user_s": _r(machine.user_ns() / NSEC_PER_SEC),
            "system_s": _r(machine.system_ns() / NSEC_PER_SEC),
            "system_by_cause": {
                k: _r(v / NSEC_PER_SEC) for k, v in sorted(machine.progress.system_by_cause.items())
            },
            "local_fraction": _r(machine.local_fraction()),
            "tasks": len(machine.tasks),
            "task_node_moves": machine.sched.task_node_moves,
            "memory_bytes": int(machine.vmstat["numa_hit"] + machine.vmstat["numa_miss"]) * machine.kernel_page_size,
            "vmstat": machine.vmstat.snapshot(),
            "numastat": machine.vmstat.numastat(),
            "metrics": workload_metrics | (numa.metrics() if numa is not None else {}),
            "score": _score(wl, workload_metrics, elapsed_ns),
            "timeline": _timeline(machine),
        }
        return RunRecord(
            family=self.family,
            workload=spec.workload,
            policy=pol.id,
            label=label,
            seed=spec.seed,
            figures=figures,
            role=spec.role,
            base=spec.base or spec.workload,
            policy_version=pol.version,
            extras={} if recorder is None else {"trace": recorder},
        )



def _score(wl: workloads.WorkloadSpec, metrics: dict[str, Any], elapsed_ns: int) -> dict[str, Any]:
    """The figure a comparison ranks this run by: the workload's first headline figure, else elapsed time."""
    if wl.headline:
        key, title, _ = wl.headline[0]
        return {"name": title, "value": metrics.get(key), "higher_is_better": True}
    return {"name": "elapsed s", "value": _r(elapsed_ns / NSEC_PER_SEC), "higher_is_better": False}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _timeline(machine: FluidMachine) -> dict[str, Any]:
    tl = machine.timeline.samples
    return {
        "t_s": [_r(s["t_s"]) for s in tl],
        "local_fraction": [_r(s["local_fraction"]) for s in tl],
        # in the model's page units: a 2 MiB huge page, or a run of 4 KiB pages without THP (--no-thp)
        "node_pages": [s["node_pages"] for s in tl],
        "page_bytes": machine.page_size,
        "node_tasks": [s["node_tasks"] for s in tl],
        **({"workload": [s.get("workload") for s in tl]} if any("workload" in s for s in tl) else {}),
    }
