"""Rich tables for ``memsched run`` and ``memsched compare``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from memsched.record import RunRecord

__all__ = ["compare_table", "diagnosis_table", "figures_text", "run_table", "score_ratio", "workload_notes"]


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


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
    """Rows: workload x label (policy or bind variant); the ratio compares each run's score to the reference's."""
    topo = records[0]["topology"] if records else "?"
    t = Table(
        title=f"memsched compare on {topo} (simulated seconds; vs {reference_label}: elapsed ratio, or throughput "
        "ratio for fixed-time benchmarks)"
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
    ref = {r.base: r for r in records if r.is_reference and r.label == reference_label}
    last = None
    for r in records:
        base = r.base
        if last is not None and base != last:
            t.add_section()
        last = base
        t.add_row(
            base,
            r.label,
            _fmt(r["elapsed_s"], ".1f"),
            _fmt(r["system_s"], ".2f"),
            str(r["vmstat"].get("numa_hint_faults", 0)),
            _fmt(r["local_fraction"], ".3f"),
            str(r["vmstat"].get("numa_pages_migrated", 0)),
            *((figures[id(r)],) if show_figures else ()),
            _fmt(score_ratio(r, ref.get(base)), ".2f"),
        )
    return t


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
