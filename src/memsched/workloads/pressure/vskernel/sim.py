"""The simulated side: a :class:`~memsched.workloads.pressure.vskernel.describe.Workload` as a ``memsched
pressure sim`` scenario, run under the ``mainline`` design (vmpressure listeners, as on cgroup v1) or the
``psi`` design (PSI triggers, as on v2), with the same samples the real side takes.

The scenario has the same limits, a pure ``listener`` service in the workload's memcg (mode ``default``, the
three levels), the processes as ``streamer`` / ``reader`` / ``allocator`` services with ``start_after``; rates
the description does not fix (``dd`` runs as fast as it can) are the median of the real runs; the disk's
bandwidths are measured; the simulated kernel is the running one's version, with its ``CONFIG_HZ``
(:func:`~.real.kernel_config`; when the vmpressure work item runs is sim/mm/vmpressure.py's rule). Under ``psi`` the
listener's triggers are :data:`~.watch.PSI_TRIGGERS`, privileged as the real side was.

Samples (every ``sample_ms``, like :class:`~.watch.Watcher`'s): the PSI totals as reading ``memory.pressure``
gives them (:meth:`memsched.sim.fluid.psi.SimPsi.show`, ``psi_show()``: fold the per-CPU times first) and the
workload memcg's counters (``failcnt`` and ``max``/``oom``/``oom_kill`` of
:class:`memsched.sim.mm.memcontrol.Memcg`).

Deviations from the kernel: the simulator's PSI group is system-wide (no per-cgroup groups); the simulated
machine runs only the workload, so it stands for the workload's cgroup. The simulated ``failcnt`` counts a
failed charge per reclaim try; the kernel's also counts the first, batched (``MEMCG_CHARGE_BATCH`` = 64 pages)
try of every charge that finds less than a batch of room (``try_charge_memcg()`` retries with the exact size),
so it runs higher where many small charges meet a full memcg.
"""

from __future__ import annotations

from typing import Any

from memsched.live.procfs import parse_psi
from memsched.sim.engine import Prio
from memsched.units import NSEC_PER_SEC
from memsched.workloads.pressure.scenario import scenario_from_dict
from memsched.workloads.pressure.services import PressureRun
from memsched.workloads.pressure.vskernel.describe import LEVELS, Trace, Workload
from memsched.workloads.pressure.vskernel.watch import PSI_TRIGGERS

__all__ = ["TOP", "run_sim", "scenario_doc"]

TOP = "box"


def scenario_doc(
    w: Workload,
    rates: dict[str, float],
    disk: tuple[float, float],
    duration_s: float,
    kernel: dict[str, Any] | None = None,
    sysctl: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``memsched pressure sim`` scenario of ``w`` (see the module's docstring)."""
    top = f"/{TOP}"
    services: list[dict[str, Any]] = [
        {"name": "listener", "kind": "listener", "levels": list(LEVELS), "mode": "default", "memcg": top,
         "limit": f"{w.limit_mib}MiB"}
    ]
    limits = dict(w.children)
    for p in w.procs:
        svc: dict[str, Any] = {"name": p.name, "chunk": "1MiB", "memcg": f"{top}/{p.memcg}" if p.memcg else top}
        if p.memcg and limits.get(p.memcg) is not None:
            svc["limit"] = f"{limits[p.memcg]}MiB"
        rate = p.rate_mib_s if p.rate_mib_s is not None else rates.get(p.name)
        if rate is not None:
            svc["rate"] = f"{max(1, round(rate))}MiB"
        if p.after is not None:
            svc["start_after"] = p.after
        if p.kind == "writer":
            svc |= {"kind": "streamer", "size": f"{p.size_mib}MiB"}
        elif p.kind == "reader":
            svc |= {"kind": "reader", "file": p.file}
        else:
            size = p.size_mib if p.size_mib is not None else 16 * w.limit_mib  # until killed
            svc |= {"kind": "allocator", "size": f"{size}MiB"}
            if p.size_mib is not None:
                svc["hold"] = f"{round(p.hold_s * 1000)}ms"
        services.append(svc)
    return {
        "name": f"vs-kernel-{w.name}",
        "description": w.description,
        "memory": "1GiB",
        "duration": f"{round(duration_s * 1000)}ms",
        "designs": ["mainline", "psi"],
        "psi": {**{lv: t.format() for lv, t in PSI_TRIGGERS.items()},
                "privileged": bool(kernel.get("psi_privileged", False)) if kernel else False},
        "sysctl": {
            "disk_write_bytes_per_s": f"{round(disk[0])}MiB",
            "disk_read_bytes_per_s": f"{round(disk[1])}MiB",
            "flusher_tick_ns": "1ms",
            **({"kernel": kernel["sim_kernel"]} if kernel else {}),
            **({"sched_hz": int(kernel["hz"])} if kernel and kernel.get("hz") else {}),
            **(sysctl or {}),
        },
        "service": services,
    }


def run_sim(
    w: Workload,
    rates: dict[str, float],
    disk: tuple[float, float],
    duration_s: float,
    kernel: dict[str, Any] | None = None,
    sysctl: dict[str, str] | None = None,
    *,
    design: str = "mainline",
    sample_ms: float = 10.0,
) -> Trace:
    """The simulated run of ``w`` under ``design`` (``mainline``: the v1 side, ``psi``: the v2 side)."""
    doc = scenario_doc(w, rates, disk, duration_s, kernel, sysctl)
    sc = scenario_from_dict(doc, source=f"benchmark {w.name}")
    run = PressureRun(sc, design, 0)
    trace = Trace(mode="v1" if design == "mainline" else "v2")
    engine, r = run.machine.engine, run.r
    memcg = r.memcgs.memcgs[r.memcgs.by_path[f"/{TOP}"]]
    period = round(sample_ms * 1e6)

    def sample() -> None:
        stats = parse_psi(r.psi.show(), source="simulated memory.pressure")
        trace.psi.append((engine.now, stats.some.total_us, stats.full.total_us if stats.full else 0))
        trace.counters.append((engine.now, {"failcnt": memcg.failcnt, **memcg.events}))
        if engine.now + period <= sc.duration:
            engine.after(period, Prio.SAMPLE, sample)

    engine.at(engine.now, Prio.SAMPLE, sample)
    fig = run.run()
    trace.oom_kills = int(fig["oom_kills"])
    for p in w.procs:
        s = fig["services"][p.name]
        end = s["end_s"] if s["end_s"] is not None else fig["duration_s"]
        start = s["start_s"] if s["start_s"] is not None else end
        trace.procs[p.name] = (round(start * NSEC_PER_SEC), round(end * NSEC_PER_SEC), bool(s["oom_killed"]))
    for level, times in fig["services"]["listener"]["signal_times_s"].items():
        trace.signals += [(round(t * NSEC_PER_SEC), level, 1) for t in times]
    trace.signals.sort()
    return trace
