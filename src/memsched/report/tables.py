"""The tables of ``memsched run`` and ``memsched compare`` (laid out by :mod:`memsched.report.fit`), the best
policy per workload, and the "why" notes, for the terminal and the HTML report alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memsched.record import RunRecord
from memsched.report.fit import Column, FitTable, count

__all__ = [
    "best_lines",
    "cell_ratio",
    "cells",
    "compare_summary",
    "compare_table",
    "diagnosis_table",
    "figures_text",
    "median_run",
    "metric_text",
    "run_table",
    "score_ratio",
    "spread",
    "why_rows",
    "winners",
    "workload_notes",
]


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def spread(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    """(median, minimum, maximum) of the values that are not None; None when there are none. The median of an
    even count is the mean of the two middle values."""
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    med = xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    return med, xs[0], xs[-1]


def _fmt_spread(values: Sequence[float | None], spec: str = ".1f", fmt: Callable[[float], str] | None = None) -> str:
    """One run: its value. Several seeds: ``median [min-max]``."""
    show = fmt or (lambda x: format(x, spec))
    if len(values) == 1:
        return "-" if values[0] is None else show(values[0])
    s = spread(values)
    if s is None:
        return "-"
    med, lo, hi = s
    return f"{show(med)} [{show(lo)}–{show(hi)}]"


def cells(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """The runs of each (workload, label) cell, in table order; a cell holds one run per seed."""
    out: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        out.setdefault((r.base, r.label), []).append(r)
    return out


def median_run(runs: Sequence[RunRecord]) -> RunRecord:
    """The run whose score is the median of the cell's (the lower middle one for an even count)."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: (r["score"]["value"] is None, r["score"]["value"] or 0.0, r.seed))
    return ranked[(len(ranked) - 1) // 2]


def _references(records: Sequence[RunRecord], label: str) -> dict[tuple[str, int], RunRecord]:
    return {(r.base, r.seed): r for r in records if r.is_reference and r.label == label}


def cell_ratio(runs: Sequence[RunRecord], refs: dict[tuple[str, int], RunRecord]) -> float | None:
    """The median over a cell's seeds of each run's ratio to the same seed's reference run."""
    s = spread([score_ratio(r, refs.get((r.base, r.seed))) for r in runs])
    return None if s is None else s[0]


def compare_summary(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> list[dict[str, object]]:
    """Median, minimum and maximum over the seeds of each cell, for ``compare --json`` with ``--seeds``: elapsed,
    system time, local fraction, the score and the ratio to the same seed's reference run."""
    ref = _references(records, reference_label)
    out: list[dict[str, object]] = []
    for (base, label), runs in cells(records).items():
        row: dict[str, object] = {
            "topology": runs[0]["topology"], "base": base, "label": label, "role": runs[0].role,
            "seeds": [r.seed for r in runs],
        }  # fmt: skip
        series: dict[str, list[float | None]] = {
            "elapsed_s": [r["elapsed_s"] for r in runs],
            "system_s": [r["system_s"] for r in runs],
            "local_fraction": [r["local_fraction"] for r in runs],
            "score": [r["score"]["value"] for r in runs],
            f"vs_{reference_label}": [score_ratio(r, ref.get((base, r.seed))) for r in runs],
        }
        for key, values in series.items():
            s = spread(values)
            row[key] = None if s is None else {"median": s[0], "min": s[1], "max": s[2]}
        out.append(row)
    return out


def run_table(rec: RunRecord) -> FitTable:
    """One run: times, locality and the NUMA counters (maps of tasks and groups as plain text, not dicts)."""
    t = FitTable(
        f"{rec['workload']} on {rec['topology']}, policy {rec['policy']}, seed {rec['seed']}",
        [Column("measure"), Column("value", wrap=True)],
    )
    rows = t.add_group(None)
    rows.append(["elapsed (simulated s)", _fmt(rec["elapsed_s"], ".2f")])
    rows.append(["user s", _fmt(rec["user_s"], ".1f")])
    rows.append(["system s", _fmt(rec["system_s"], ".2f")])
    rows.append(["local access fraction", _fmt(rec["local_fraction"], ".3f")])
    for key, value in rec["vmstat"].items():
        if value:
            rows.append([key, str(value)])
    for key, value in rec.get("metrics", {}).items():
        text = metric_text(key, value)
        if text:
            rows.append([key, text])
    return t


def metric_text(key: str, value: object) -> str:
    """A run's metric in words: numbers as they are, maps of tasks, groups and nodes as ranges (``tasks 1-3``)."""
    if isinstance(value, bool | int | float | str):
        return str(value)
    if not isinstance(value, dict | list) or not value:
        return ""
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return _span(value)
        return ", ".join(metric_text(key, v) or "-" for v in value)
    if key == "numa_groups":
        return f"{len(value)} groups: " + "; ".join(f"group {g} tasks {_span(v)}" for g, v in value.items())
    if key == "numa_group_active_nodes":
        return "; ".join(f"group {g} nodes {_span(v)}" for g, v in value.items())
    if key == "preferred_nodes" and all(isinstance(v, int) for v in value.values()):
        by_node: dict[int, list[int]] = {}
        for task, node in value.items():
            by_node.setdefault(int(node), []).append(int(task))
        return "; ".join(
            f"{'no node' if node < 0 else f'node {node}'}: tasks {_span(tasks)}"
            for node, tasks in sorted(by_node.items())
        )
    parts = []
    for k, v in value.items():
        inner = _span(v) if isinstance(v, list) and all(isinstance(x, int) for x in v) else metric_text(k, v)
        parts.append(f"{k} {inner or '-'}")
    return "; ".join(parts)


def _span(ids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def score_ratio(rec: RunRecord, ref: RunRecord | None) -> float | None:
    """The run's score over the reference's: elapsed / reference (lower is better) for timed runs,
    throughput / reference (higher is better) for fixed-duration benchmarks."""
    if ref is None:
        return None
    a, b = rec["score"]["value"], ref["score"]["value"]
    if a is None or not b:
        return None
    return float(a) / float(b)


def figures_text(rec: RunRecord) -> str:
    """The workload's own headline figures (bops, GB/s, convergence), formatted."""
    from memsched.errors import MemschedError
    from memsched.workloads import base as workloads

    try:
        spec = workloads.get(rec["workload"])
    except MemschedError:  # a record from another version: show nothing rather than fail
        return ""
    parts = []
    for key, title, fmt in spec.headline:
        value = rec.get("metrics", {}).get(key)
        parts.append(f"{title} {'never' if value is None else format(value, fmt)}")
    return ", ".join(parts)


#: The compare table's columns: short heads with units, spelled out in the legend.
_COMPARE_COLUMNS = (
    Column("run"),
    Column("elapsed s", "simulated elapsed seconds", right=True),
    Column("sys s", "system seconds (scans, hint faults, page copies)", right=True),
    Column("faults", "NUMA hint faults (numa_hint_faults)", right=True),
    Column("local", "fraction of memory accesses served by the local node", right=True),
    Column("migr pg", "pages migrated (numa_pages_migrated)", right=True),
)


def _ratio_column(reference_label: str) -> Column:
    return Column(
        "vs ref",
        f"ratio to {reference_label}: elapsed time (lower is better), or throughput for fixed-time benchmarks "
        "(higher is better)",
        right=True,
    )


def compare_table(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> FitTable:
    """Rows: workload x label (policy or bind variant); the ratio compares each run's score to the reference's
    (of the same seed). With several seeds per cell, every figure is ``median [min-max]`` over the seeds."""
    topo = records[0]["topology"] if records else "?"
    seeds = list(dict.fromkeys(r.seed for r in records))
    groups = cells(records)
    figures = {id(r): figures_text(r) for r in records}
    show_figures = any(figures.values())
    columns = [
        *_COMPARE_COLUMNS,
        *((Column("figures", "the workload's own headline figures", wrap=True),) if show_figures else ()),
        _ratio_column(reference_label),
    ]
    which = f"seed {seeds[0] if seeds else '?'}"
    if len(seeds) > 1:
        run_of_seeds = seeds == list(range(seeds[0], seeds[-1] + 1))
        which = f"seeds {f'{seeds[0]}–{seeds[-1]}' if run_of_seeds else ', '.join(map(str, seeds))}, median [min–max]"
    t = FitTable(f"memsched compare on {topo}, {which}", columns)
    ref = _references(records, reference_label)
    rows: dict[str, list[list[str]]] = {}
    for (base, label), runs in groups.items():
        if base not in rows:
            rows[base] = t.add_group(base)
        mid = median_run(runs)
        rows[base].append(
            [
                label,
                _fmt_spread([r["elapsed_s"] for r in runs], ".1f"),
                _fmt_spread([r["system_s"] for r in runs], ".2f"),
                _fmt_spread([r["vmstat"].get("numa_hint_faults", 0) for r in runs], fmt=lambda x: count(int(x))),
                _fmt_spread([r["local_fraction"] for r in runs], ".3f"),
                _fmt_spread([r["vmstat"].get("numa_pages_migrated", 0) for r in runs], fmt=lambda x: count(int(x))),
                *((figures[id(mid)],) if show_figures else ()),
                _fmt_spread([score_ratio(r, ref.get((base, r.seed))) for r in runs], ".2f"),
            ]
        )
    return t


def best_lines(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> list[str]:
    """One line per workload: the best policy and its ratio to the reference (``numa02: best moron, 1.00x ...``)."""
    out = []
    for base, policy, ratio, what in winners(records, reference_label=reference_label):
        if policy is None:
            out.append(f"{base}: no policy run has a score")
        elif ratio is None:
            out.append(f"{base}: best {policy} (no {reference_label} run to compare with)")
        else:
            out.append(f"{base}: best {policy}, {ratio:.2f}x {reference_label}'s {what}")
    return out


def winners(
    records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND"
) -> list[tuple[str, str | None, float | None, str]]:
    """``(workload, best policy, its ratio to the reference, what the score is)`` per workload, in order.

    The best policy run has the lowest elapsed time, or the highest throughput for fixed-time benchmarks (the
    median over the seeds, with ``--seeds``); reference runs (the bind variants) are not candidates."""
    out: list[tuple[str, str | None, float | None, str]] = []
    refs = _references(records, reference_label)
    groups = cells(records)
    for base in dict.fromkeys(r.base for r in records):
        scored: dict[str, float] = {}
        for (b, label), runs in groups.items():
            s = spread([r["score"]["value"] for r in runs]) if b == base and not runs[0].is_reference else None
            if s is not None:
                scored[label] = s[0]
        if not scored:
            out.append((base, None, None, ""))
            continue
        first = next(r for r in records if r.base == base and r.label in scored)
        higher = bool(first["score"]["higher_is_better"])
        best = (max if higher else min)(scored, key=lambda k: scored[k])
        name = "throughput" if higher else "elapsed time"
        out.append((base, best, cell_ratio(groups[(base, best)], refs), name))
    return out


def diagnosis_table(records: Sequence[RunRecord], *, only_problems: bool = True) -> FitTable | None:
    """Notes on why runs lost time (all runs with notes, or only those that lose or trail HARD_BIND)."""
    rows = why_rows(records, only_problems=only_problems)
    if not rows:
        return None
    t = FitTable("why (from each run's own counters)", [Column("run"), Column("notes", wrap=True)])
    groups: dict[str, list[list[str]]] = {}
    for base, label, notes in rows:
        if base not in groups:
            groups[base] = t.add_group(base)
        groups[base].append([label, notes])
    return t


def why_rows(records: Sequence[RunRecord], *, only_problems: bool = True) -> list[tuple[str, str, str]]:
    """``(workload, run, notes)``: the one source of the "why" notes, for the terminal and the HTML report."""
    from memsched.report.diagnose import diagnose

    notes = diagnose(records)
    return [
        (base, label, "; ".join(n))
        for (base, label), n in notes.items()
        if n and (not only_problems or any(x.startswith(("loses",)) or "hard-bound" in x for x in n))
    ]


def workload_notes(records: Sequence[RunRecord]) -> list[str]:
    """Each workload's note about what it shows on this machine (e.g. numa01's adverse case on >2 nodes)."""
    from memsched.errors import MemschedError
    from memsched.topology import load_topology
    from memsched.workloads import base as workloads

    out: list[str] = []
    seen: set[str] = set()
    for r in records:
        wid = r.base
        if wid in seen:
            continue
        seen.add(wid)
        try:
            spec, topo = workloads.get(wid), load_topology(r["topology"])
        except MemschedError:  # a topology file that moved since the run: no note
            continue
        note = spec.note(topo)
        if note:
            out.append(f"Note — {note}")
    return out
