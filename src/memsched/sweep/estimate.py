"""How long a sweep will take, before it runs (``memsched sweep --dry-run``).

Each cell's wall time is looked up, in order, in

1. the results database the sweep will write to: the median ``wall_s`` of finished runs of the same workload,
   policy and topology (measured where those runs ran);
2. ``rates.json`` beside this module, written by ``benchmarks/sweep_speed.py rates``: the wall time of every
   autonuma-benchmark, SPECjbb, perf-bench-numa and mixed workload under every policy on every preset with
   default settings, and the per-cell overhead of the local pool, measured on the machine named in the file;
3. for other machines (files, generated families, even one named like a preset), the same workload and
   policy on the preset with the nearest CPU count, scaled by the ratio of CPU counts (more CPUs, more tasks
   for these workloads);
4. otherwise the median of all rates.

The estimate is the sum over cells of (wall time + overhead), divided by the workers. Settings are ignored
(a short scan period makes a run slower than the default's), so it is a guide, not a promise; the output says
how many cells each source priced.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from memsched.results.store import ResultStore
from memsched.sweep.cell import Cell
from memsched.topology import load_topology

__all__ = ["Estimate", "estimate", "history", "load_rates"]


@dataclass(frozen=True)
class Estimate:
    cells: int
    workers: int
    wall_s: float
    cell_s: float
    overhead_s: float
    sources: Mapping[str, int]
    rates_machine: str


def load_rates() -> dict[str, Any]:
    """The packaged rates (``{"machine", "measured", "overhead_s", "cells": {"workload|policy|topology": s}}``)."""
    text = resources.files("memsched.sweep").joinpath("rates.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def history(store: ResultStore) -> dict[tuple[str, str, str], float]:
    """Median wall time of the finished runs in a database, per (workload, policy, topology)."""
    rows = store.connection().execute(
        "SELECT workload, policy, topology, median(wall_s) FROM runs WHERE status = 'ok' GROUP BY ALL"
    ).fetchall()
    return {(w, p, t): float(s) for w, p, t, s in rows}


def estimate(
    cells: Sequence[Cell], workers: int, *, seen: Mapping[tuple[str, str, str], float] | None = None
) -> Estimate:
    """The expected wall time of running ``cells`` on ``workers`` workers."""
    rates = load_rates()
    table: dict[tuple[str, str, str], float] = {}
    for k, v in rates["cells"].items():
        w, p, t = k.split("|")
        table[(w, p, t)] = float(v)
    cpus = {t: load_topology(t).nr_cpus for t in {t for _, _, t in table}}
    fallback = statistics.median(table.values()) if table else 1.0
    overhead = float(rates.get("overhead_s", 0.0))
    sources: Counter[str] = Counter()
    total = 0.0
    for cell in cells:
        doc = cell.doc
        key = (doc["workload"], doc["policy"], doc["topology"])
        if seen and key in seen:
            sources["this database"] += 1
            total += seen[key]
        elif key in table and cell.topology_toml is None:  # a file may carry a preset's name, not its machine
            sources["rates.json"] += 1
            total += table[key]
        else:
            scaled = _scaled(table, cpus, doc["workload"], doc["policy"], _nr_cpus(cell))
            if scaled is None:
                sources["median of all rates"] += 1
                total += fallback
            else:
                sources["rates.json, scaled by CPUs"] += 1
                total += scaled
    n = len(cells)
    return Estimate(
        cells=n,
        workers=workers,
        wall_s=(total + n * overhead) / max(1, min(workers, n or 1)),
        cell_s=total,
        overhead_s=overhead,
        sources=dict(sources),
        rates_machine=str(rates.get("machine", "?")),
    )


def _nr_cpus(cell: Cell) -> int:
    toml = cell.topology_toml
    if toml is None:
        return load_topology(cell.doc["topology"]).nr_cpus
    import tomllib

    from memsched.topology import Topology

    return Topology.from_mapping(tomllib.loads(toml)).nr_cpus


def _scaled(
    table: Mapping[tuple[str, str, str], float], cpus: Mapping[str, int], workload: str, policy: str, n: int
) -> float | None:
    options = [(abs(cpus[t] - n), t, s) for (w, p, t), s in table.items() if w == workload and p == policy]
    if not options:
        return None
    _, topo, seconds = min(options)
    return seconds * n / cpus[topo]
