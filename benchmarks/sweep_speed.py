"""Sweep throughput on this machine (local pool and local Ray), and the rates ``memsched sweep --dry-run`` uses.

    python benchmarks/sweep_speed.py throughput [--cells 200] [--jobs 2] [--no-ray] [--cores 1000] [--json]
    python benchmarks/sweep_speed.py rates [--jobs 2] [--write src/memsched/sweep/rates.json]

``throughput`` runs one sweep of short runs (numa02 and numa02_SMT on laptop-1n8 and sandybridge-2n32 under five
policies, seeds enough for ``--cells``; no baseline) into a fresh database, once on the local pool and once on a
local Ray instance (``ray.init(num_cpus=jobs)``), and reports for each:

* cells/s: cells over the sweep's wall time (pool or Ray start-up excluded: the clock starts at the first
  submission, and a warm-up cell runs first);
* the mean cell time (``wall_s`` of the runs, measured inside the worker around ``run_one``);
* the per-task overhead: ``(wall x workers - sum of cell times) / cells``, everything a cell costs besides its
  simulation (dispatch, pickling, the commit, idle workers);
* the driver's CPU per cell (``time.process_time`` of this process over the sweep / cells), split into the
  database commits (a fixed cost per commit plus a cost per row, measured separately by committing batches
  of 1 and of 100 copies of one real outcome) and the executor's own share (submitting, waiting, receiving);
* what ``--cores`` cores would do, **computed** from these figures, not simulated:
  ``min(cores / (cell + per-task overhead), 1 / (row cost + executor driver share))``. On many cores each
  poll brings many results, so one commit's fixed cost is shared by all of them; the per-task overhead
  measured on two workers also counts the time a worker waited for this driver, so the compute bound is
  conservative.

``rates`` runs every autonuma-benchmark workload (with its references), SPECjbb, perf-bench-numa and mixed
under every policy on every preset once, and writes the median cell wall time per (workload, policy,
topology) and the local pool's per-cell overhead, with the machine they were measured on, as the rates file.
Figures are machine-dependent; nothing asserts them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memsched.results.store import Outcome, ResultStore
from memsched.sweep.cell import run_cell
from memsched.sweep.executors import Executor, LocalPool, RayPool
from memsched.sweep.run import run_cells
from memsched.sweep.spec import parse_spec

SHORT_POLICIES = ["none", "mainline", "balancenuma", "autonuma", "numacore"]


def short_spec(cells: int) -> dict[str, Any]:
    per_seed = 2 * 2 * len(SHORT_POLICIES)
    return {
        "name": "throughput", "workloads": ["numa02", "numa02_SMT"], "policies": SHORT_POLICIES,
        "topologies": ["laptop-1n8", "sandybridge-2n32"], "seeds": max(1, -(-cells // per_seed)), "baseline": False,
    }  # fmt: skip


def commit_costs(outcome: Outcome) -> tuple[float, float]:
    """CPU seconds of one commit (fixed) and of one more row in it, from batches of 1 and of 100 rows."""
    with tempfile.TemporaryDirectory() as tmp, ResultStore(Path(tmp) / "c.duckdb") as store:
        copies = [dataclasses.replace(outcome, key=f"c{i}") for i in range(321)]
        store.commit(copies[:1])  # columns created
        t0 = time.process_time()
        for i in range(20):
            store.commit(copies[1 + i : 2 + i])
        one = (time.process_time() - t0) / 20
        t0 = time.process_time()
        for i in range(3):
            store.commit(copies[21 + 100 * i : 121 + 100 * i])
        hundred = (time.process_time() - t0) / 3
    per_row = max(0.0, (hundred - one) / 99)
    return max(0.0, one - per_row), per_row


def measure(executor: Executor, doc: dict[str, Any], cells_wanted: int,
            costs: tuple[float, float]) -> dict[str, Any]:
    spec = parse_spec(doc, source="<throughput>", base_dir=Path.cwd())
    cells = list(spec.cells[:cells_wanted])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "t.duckdb"
        with ResultStore(db) as store:
            run_cells(cells[:1], store, executor)  # warm-up: workers started, modules imported
            cpu0, t0 = time.process_time(), time.perf_counter()
            progress = run_cells(cells[1:], store, executor)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            walls = [w for (w,) in store.connection().execute(
                "SELECT wall_s FROM runs WHERE status = 'ok' ORDER BY key").fetchall()]  # fmt: skip
    n = progress.ran
    cell_s = statistics.fmean(walls[1:] if len(walls) > 1 else walls)
    overhead = (wall * executor.workers - cell_s * n) / n
    fixed, per_row = costs
    executor_share = max(0.0, (cpu - progress.commits * fixed - n * per_row) / n)
    return {
        "executor": executor.name, "workers": executor.workers, "cells": n, "failed": progress.failed,
        "wall_s": round(wall, 3), "cells_per_s": round(n / wall, 2), "mean_cell_s": round(cell_s, 4),
        "overhead_s_per_cell": round(overhead, 4), "driver_cpu_s_per_cell": round(cpu / n, 5),
        "commits": progress.commits, "commit_fixed_s": round(fixed, 5), "commit_row_s": round(per_row, 5),
        "executor_driver_s_per_cell": round(executor_share, 5),
    }  # fmt: skip


def project(row: dict[str, Any], cores: int) -> dict[str, Any]:
    compute = cores / (row["mean_cell_s"] + row["overhead_s_per_cell"])
    driver_s = row["commit_row_s"] + row["executor_driver_s_per_cell"]
    driver = 1 / driver_s if driver_s > 0 else float("inf")
    return {
        "cores": cores, "cells_per_s": round(min(compute, driver), 1), "compute_bound_cells_per_s": round(compute, 1),
        "driver_bound_cells_per_s": round(driver, 1), "bound_by": "driver" if driver < compute else "compute",
    }  # fmt: skip


def throughput(args: argparse.Namespace) -> None:
    doc = short_spec(args.cells + 1)
    first = parse_spec(doc, source="<throughput>", base_dir=Path.cwd()).cells[0]
    costs = commit_costs(run_cell(first))
    rows = []
    pool = LocalPool(args.jobs)
    try:
        rows.append(measure(pool, doc, args.cells + 1, costs))
    finally:
        pool.close()
    if not args.no_ray:
        import ray

        ray.init(num_cpus=args.jobs, include_dashboard=False, logging_level="warning")
        try:
            rows.append(measure(RayPool("local"), doc, args.cells + 1, costs))
        finally:
            ray.shutdown()
    for row in rows:
        row["projection"] = project(row, args.cores)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        p = r["projection"]
        ms = {k: v * 1000 for k, v in r.items() if isinstance(v, int | float) and k.endswith(("_s", "_cell"))}
        print(
            f"{r['executor']:5s} x{r['workers']}: {r['cells']} cells in {r['wall_s']:.2f} s = {r['cells_per_s']:.1f} "
            f"cells/s; mean cell {ms['mean_cell_s']:.1f} ms, overhead {ms['overhead_s_per_cell']:.1f} ms per cell; "
            f"driver CPU {ms['driver_cpu_s_per_cell']:.2f} ms per cell (commit {ms['commit_fixed_s']:.1f} ms + "
            f"{ms['commit_row_s']:.2f} ms a row, executor {ms['executor_driver_s_per_cell']:.2f} ms); "
            f"{p['cores']} cores (computed): {p['cells_per_s']:.0f} cells/s, bound by the {p['bound_by']}"
        )


def rates(args: argparse.Namespace) -> None:
    from memsched.policies.numa import registry as policies
    from memsched.topology import list_presets

    presets = [p for p in list_presets() if p != "pressure-1n4"]
    doc = {
        "name": "rates", "workloads": ["numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT", "specjbb",
                                       "perf-bench-numa", "mixed"],
        "policies": policies.names(), "topologies": presets, "references": True,
    }  # fmt: skip
    spec = parse_spec(doc, source="<rates>", base_dir=Path.cwd())
    pool = LocalPool(args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rates.duckdb"
        try:
            with ResultStore(db) as store:
                done = [0]

                def tick(progress: Any, outcomes: Any) -> None:
                    done[0] = progress.ran
                    print(f"\r{done[0]}/{progress.total}", end="", file=sys.stderr, flush=True)

                t0 = time.perf_counter()
                progress = run_cells(spec.cells, store, pool, on_progress=tick)
                wall = time.perf_counter() - t0
                rows = store.connection().execute(
                    "SELECT workload, policy, topology, median(wall_s), sum(wall_s) FROM runs WHERE status = 'ok' "
                    "GROUP BY ALL ORDER BY ALL"
                ).fetchall()
        finally:
            pool.close()
    total_cell = sum(r[4] for r in rows)
    overhead = max(0.0, (wall * pool.workers - total_cell) / max(1, progress.ran))
    out = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "measured": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/sweep_speed.py rates",
        "overhead_s": round(overhead, 4),
        "cells": {f"{w}|{p}|{t}": round(s, 4) for w, p, t, s, _ in rows},
    }
    print(f"\n{progress.ran} cells ({progress.failed} failed) in {wall:.0f} s; overhead {overhead * 1000:.1f} ms/cell",
          file=sys.stderr)
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--cells", type=int, default=200)
    t.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    t.add_argument("--cores", type=int, default=1000)
    t.add_argument("--no-ray", action="store_true")
    t.add_argument("--json", action="store_true")
    r = sub.add_parser("rates")
    r.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    r.add_argument("--write", default=None)
    args = ap.parse_args()
    throughput(args) if args.what == "throughput" else rates(args)


if __name__ == "__main__":
    main()
