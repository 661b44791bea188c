"""Rich tables for ``memsched run`` and ``memsched compare``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from memsched.record import RunRecord

__all__ = [
    "cells",
    "compare_summary",
    "compare_table",
    "diagnosis_table",
    "figures_text",
    "median_run",
    "run_table",
    "score_ratio",
    "spread",
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


def _fmt_spread(values: Sequence[float | None], spec: str = ".1f") -> str:
    """One run: its value. Several seeds: ``median [min–max]``."""
    if len(values) == 1:
        return _fmt(values[0], spec)
    s = spread(values)
    if s is None:
        return "-"
    med, lo, hi = s
    return escape(f"{format(med, spec)} [{format(lo, spec)}–{format(hi, spec)}]")


def cells(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """The runs of each (workload, label) cell, in table order; a cell holds one run per seed."""
    out: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        out.setdefault((r.base, r.label), []).append(r)
    return out


def _references(records: Sequence[RunRecord], label: str) -> dict[tuple[str, int], RunRecord]:
    return {(r.base, r.seed): r for r in records if r.is_reference and r.label == label}


def compare_summary(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> list[dict[str, object]]:
    """Median, minimum and maximum over the seeds of each cell, for ``compare --json`` with ``--seeds``: elapsed,
    system time, local fraction, the score and the ratio to the same seed's reference run."""
    ref = _references(records, reference_label)
    out: list[dict[str, object]] = []
    for (base, label), runs in cells(records).items():
        row: dict[str, object] = {"base": base, "label": label, "role": runs[0].role, "seeds": [r.seed for r in runs]}
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


def run_table(rec: RunRecord) -> Table:
    """One run: times, locality and the NUMA counters."""
    t = Table(title=f"{rec['workload']} on {rec['topology']} — policy {rec['policy']} (seed {rec['seed']})")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("elapsed (simulated s)", _fmt(rec["elapsed_s"], ".2f"))
    t.add_row("user s", _fmt(rec["user_s"], ".1f"))
    t.add_row("system s", _fmt(rec["system_s"], ".2f"))
    t.add_row("local access fraction", _fmt(rec["local_fraction"], ".3f"))
    for key, value in rec["vmstat"].items():
        if value:
            t.add_row(key, str(value))
    for key, value in rec.get("metrics", {}).items():
        if isinstance(value, int | float | str):
            t.add_row(key, str(value))
        elif key == "numa_groups" and isinstance(value, dict):
            sizes = sorted((len(v) for v in value.values()), reverse=True)
            shown = "; ".join(f"group {g}: tasks {_span(v)}" for g, v in list(value.items())[:6])
            more = f"; +{len(value) - 6} more" if len(value) > 6 else ""
            t.add_row(key, f"{len(value)} groups of sizes {sizes[:8]}{'...' if len(sizes) > 8 else ''}: {shown}{more}")
        elif isinstance(value, dict | list) and value:
            text = str(value)
            t.add_row(key, text if len(text) <= 100 else text[:97] + "...")
    return t


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


def compare_table(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> Table:
    """Rows: workload x label (policy or bind variant); the ratio compares each run's score to the reference's
    (of the same seed). With several seeds per cell, every figure is ``median [min–max]`` over the seeds."""
    topo = records[0]["topology"] if records else "?"
    groups = cells(records)
    nseeds = max((len(g) for g in groups.values()), default=1)
    over = escape(f"; median [min–max] over {nseeds} seeds") if nseeds > 1 else ""
    t = Table(
        title=f"memsched compare on {topo} (simulated seconds; vs {reference_label}: elapsed ratio, or throughput "
        f"ratio for fixed-time benchmarks{over})"
    )
    figures = {id(r): figures_text(r) for r in records}
    show_figures = any(figures.values())
    for col, just in (
        ("workload", "left"),
        ("run", "left"),
        ("elapsed s", "right"),
        ("system s", "right"),
        ("hint faults", "right"),
        ("local", "right"),
        ("pages migrated", "right"),
        *((("figures", "left"),) if show_figures else ()),
        (f"vs {reference_label}", "right"),
    ):
        t.add_column(col, justify=just)
    ref = _references(records, reference_label)
    last = None
    for (base, label), runs in groups.items():
        if last is not None and base != last:
            t.add_section()
        last = base
        mid = median_run(runs)
        t.add_row(
            base,
            label,
            _fmt_spread([r["elapsed_s"] for r in runs], ".1f"),
            _fmt_spread([r["system_s"] for r in runs], ".2f"),
            _fmt_spread([r["vmstat"].get("numa_hint_faults", 0) for r in runs], ".0f"),
            _fmt_spread([r["local_fraction"] for r in runs], ".3f"),
            _fmt_spread([r["vmstat"].get("numa_pages_migrated", 0) for r in runs], ".0f"),
            *((figures[id(mid)],) if show_figures else ()),
            _fmt_spread([score_ratio(r, ref.get((base, r.seed))) for r in runs], ".2f"),
        )
    return t


def median_run(runs: Sequence[RunRecord]) -> RunRecord:
    """The run whose score is the median of the cell's (the lower middle one for an even count)."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: (r["score"]["value"] is None, r["score"]["value"] or 0.0, r.seed))
    return ranked[(len(ranked) - 1) // 2]


def diagnosis_table(records: Sequence[RunRecord], *, only_problems: bool = True) -> Table | None:
    """Notes on why runs lost time (all runs with notes, or only those that lose or trail HARD_BIND)."""
    from memsched.report.diagnose import diagnose

    notes = diagnose(records)
    rows = [
        (base, label, "; ".join(n))
        for (base, label), n in notes.items()
        if n and (not only_problems or any(x.startswith(("loses",)) or "hard-bound" in x for x in n))
    ]
    if not rows:
        return None
    t = Table(title="why (from each run's own counters)")
    t.add_column("workload")
    t.add_column("run")
    t.add_column("notes")
    for row in rows:
        t.add_row(*row)
    return t


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
