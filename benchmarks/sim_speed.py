"""Simulated seconds per wall-clock second for the autonuma-benchmark workloads on every preset.

    python benchmarks/sim_speed.py [--policies none,...] [--workloads numa01,...] [--topologies ...] [--json]

Runs each (topology, workload, policy) once in this process, timing only the simulation, and prints the
elapsed simulated time, the wall time and their ratio. Figures are machine-dependent; nothing asserts them.
"""

from __future__ import annotations

import argparse
import json
import time

from memsched.topology import list_presets
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

DEFAULT_WORKLOADS = "numa01,numa01_THREAD_ALLOC,numa02,numa02_SMT"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topologies", default=",".join(p for p in list_presets() if p != "pressure-1n4"))
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS)
    ap.add_argument("--policies", default="none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for topo in args.topologies.split(","):
        for wl in args.workloads.split(","):
            for pol in args.policies.split(","):
                t0 = time.perf_counter()
                rec = run_one(RunSpec(wl, topo, pol, args.seed))
                wall = time.perf_counter() - t0
                rows.append(
                    {
                        "topology": topo,
                        "workload": wl,
                        "policy": pol,
                        "elapsed_s": rec["elapsed_s"],
                        "wall_s": round(wall, 4),
                        "sim_s_per_wall_s": round(rec["elapsed_s"] / wall, 1),
                    }
                )
                if not args.json:
                    r = rows[-1]
                    print(
                        f"{topo:18s} {wl:22s} {pol:12s} sim {r['elapsed_s']:9.1f} s  wall {wall:7.3f} s  "
                        f"{r['sim_s_per_wall_s']:10.1f} sim-s/wall-s",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
