"""The tables of ``memsched run`` and ``memsched compare`` (laid out by :mod:`memsched.report.fit`), the best
policy per workload, and the "why" notes, for the terminal and the HTML report alike."""

from __future__ import annotations

from collections.abc import Sequence

from memsched.record import RunRecord
from memsched.report.fit import Column, FitTable, count

__all__ = [
    "best_lines",
    "compare_table",
    "diagnosis_table",
    "figures_text",
    "metric_text",
    "run_table",
    "score_ratio",
    "why_rows",
    "winners",
    "workload_notes",
]


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


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
    """Rows: workload x label (policy or bind variant); the ratio compares each run's score to the reference's."""
    topo = records[0]["topology"] if records else "?"
    seed = records[0]["seed"] if records else "?"
    figures = {id(r): figures_text(r) for r in records}
    show_figures = any(figures.values())
    columns = [
        *_COMPARE_COLUMNS,
        *((Column("figures", "the workload's own headline figures", wrap=True),) if show_figures else ()),
        _ratio_column(reference_label),
    ]
    t = FitTable(f"memsched compare on {topo}, seed {seed}", columns)
    ref = {r.base: r for r in records if r.is_reference and r.label == reference_label}
    groups: dict[str, list[list[str]]] = {}
    for r in records:
        base = r.base
        if base not in groups:
            groups[base] = t.add_group(base)
        groups[base].append(
            [
                r.label,
                _fmt(r["elapsed_s"], ".1f"),
                _fmt(r["system_s"], ".2f"),
                count(r["vmstat"].get("numa_hint_faults", 0)),
                _fmt(r["local_fraction"], ".3f"),
                count(r["vmstat"].get("numa_pages_migrated", 0)),
                *((figures[id(r)],) if show_figures else ()),
                _fmt(score_ratio(r, ref.get(base)), ".2f"),
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

    The best policy run has the lowest elapsed time, or the highest throughput for fixed-time benchmarks;
    reference runs (the bind variants) are not candidates."""
    out: list[tuple[str, str | None, float | None, str]] = []
    for base in dict.fromkeys(r.base for r in records):
        runs = [r for r in records if r.base == base]
        ref = next((r for r in runs if r.is_reference and r.label == reference_label), None)
        scored = [r for r in runs if not r.is_reference and r["score"]["value"] is not None]
        if not scored:
            out.append((base, None, None, ""))
            continue
        higher = bool(scored[0]["score"]["higher_is_better"])
        best = (max if higher else min)(scored, key=lambda r: float(r["score"]["value"]))
        name = "throughput" if higher else "elapsed time"
        out.append((base, best.label, score_ratio(best, ref), name))
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
