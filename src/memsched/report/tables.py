"""Rich tables for ``memsched run`` and ``memsched compare``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

__all__ = ["compare_table", "run_table"]


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def run_table(rec: dict[str, Any]) -> Table:
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
    return t


def compare_table(records: Sequence[dict[str, Any]], *, reference_label: str = "HARD_BIND") -> Table:
    """Rows: workload x label (policy or bind variant); ratio is elapsed over the reference run's elapsed."""
    topo = records[0]["topology"] if records else "?"
    t = Table(title=f"memsched compare on {topo} (simulated seconds; ratio = elapsed / {reference_label})")
    for col, just in (
        ("workload", "left"),
        ("run", "left"),
        ("elapsed s", "right"),
        ("system s", "right"),
        ("hint faults", "right"),
        ("local", "right"),
        ("pages migrated", "right"),
        (f"vs {reference_label}", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    ref: dict[str, float] = {}
    for r in records:
        if r["label"] == reference_label:
            ref[_base(r)] = r["elapsed_s"]
    last = None
    for r in records:
        base = _base(r)
        if last is not None and base != last:
            t.add_section()
        last = base
        ratio = r["elapsed_s"] / ref[base] if ref.get(base) else None
        t.add_row(
            base,
            r["label"],
            _fmt(r["elapsed_s"], ".1f"),
            _fmt(r["system_s"], ".2f"),
            str(r["vmstat"].get("numa_hint_faults", 0)),
            _fmt(r["local_fraction"], ".3f"),
            str(r["vmstat"].get("numa_pages_migrated", 0)),
            _fmt(ratio, ".2f"),
        )
    return t


def _base(rec: dict[str, Any]) -> str:
    return str(rec.get("base", rec["workload"]))
