"""Self-contained HTML reports with matplotlib charts embedded as base64 PNG (no network, no assets)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from memsched.errors import MemschedError
from memsched.record import RunRecord
from memsched.report.tables import cells, compare_table, diagnosis_table, median_run, spread, workload_notes
from memsched.workloads import base as workloads

__all__ = ["compare_report", "figure_png"]


def figure_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{figure_png(fig)}"/>'


def _elapsed_chart(records: Sequence[RunRecord]) -> str:
    """Elapsed time per workload and run; with several seeds, the median with a min–max error bar."""
    if not records:
        return "<p>(no timed runs)</p>"
    groups = cells(records)
    bases = list(dict.fromkeys(b for b, _ in groups))
    labels = list(dict.fromkeys(lab for _, lab in groups))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(bases)), 4))
    width = 0.8 / max(1, len(labels))
    for j, label in enumerate(labels):
        xs, ys, lo, hi = [], [], [], []
        for i, b in enumerate(bases):
            s = spread([r["elapsed_s"] for r in groups.get((b, label), [])])
            if s is not None:
                xs.append(i + j * width)
                ys.append(s[0])
                lo.append(s[0] - s[1])
                hi.append(s[2] - s[0])
        ax.bar(xs, ys, width, label=label, yerr=[lo, hi] if any(lo) or any(hi) else None)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(bases))], bases, rotation=15)
    ax.set_ylabel("elapsed (simulated s)")
    ax.legend(fontsize="small")
    return _img(fig, "elapsed per workload and run")


def _headline_charts(records: Sequence[RunRecord]) -> str:
    """For fixed-time benchmarks: their headline figure (bops, GB/s) per run, one chart per workload."""
    out = []
    for base in dict.fromkeys(r.base for r in records):
        runs = [
            median_run(rs)
            for (b, _), rs in cells(records).items()
            if b == base and rs[0].get("score", {}).get("higher_is_better")
        ]
        if not runs:
            continue
        name = runs[0]["score"]["name"]
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(runs)), 3.5))
        ax.bar([r.label for r in runs], [r["score"]["value"] or 0 for r in runs])
        ax.set_ylabel(name)
        ax.set_title(f"{base}: {name}")
        ax.tick_params(axis="x", rotation=30)
        out.append(_img(fig, f"{base} {name}"))
    return "\n".join(out)


def _workload_charts(records: Sequence[RunRecord]) -> str:
    """Each workload's own timeline figures (its ``charts``: perf-bench's converged processes), one line per run."""
    out = []
    for base in dict.fromkeys(r.base for r in records):
        try:
            charts = workloads.get(base).charts
        except MemschedError:  # a record of a workload this version does not know: no charts
            continue
        groups = cells(records).items()
        runs = [median_run(rs) for (b, _), rs in groups if b == base and "workload" in rs[0]["timeline"]]
        for chart in charts:
            series = []
            for r in runs:
                ys = [(s or [{}])[-1].get(chart.key) for s in r["timeline"]["workload"]]
                if any(y is not None for y in ys):
                    series.append((r.label, r["timeline"]["t_s"], [y or 0 for y in ys]))
            if not series:
                continue
            fig, ax = plt.subplots(figsize=(8, 3.5))
            for label, xs, ys in series:
                ax.step(xs, ys, where="post", label=label)
            ax.set_xlabel("simulated s")
            ax.set_ylabel(chart.ylabel)
            ax.set_title(f"{base}: {chart.title}")
            ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
            out.append(_img(fig, f"{base} {chart.title}"))
    return "\n".join(out)


def _timeline_charts(rec: RunRecord) -> str:
    tl = rec["timeline"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3))
    pts = [(t, f) for t, f in zip(tl["t_s"], tl["local_fraction"], strict=True) if f is not None]
    if pts:
        a1.plot([p[0] for p in pts], [p[1] for p in pts])
    a1.set_ylim(0, 1.02)
    a1.set_xlabel("simulated s")
    a1.set_ylabel("local access fraction")
    pages = tl["node_pages"]
    if pages:
        for n in range(len(pages[0])):
            a2.plot(tl["t_s"], [p[n] for p in pages], label=f"node {n}")
        a2.legend(fontsize="small")
    a2.set_xlabel("simulated s")
    a2.set_ylabel("pages on node")
    title = f"{rec.workload} — {rec.label}"
    fig.suptitle(title)
    return f"<h3>{html.escape(title)}</h3>" + _img(fig, title)


def compare_report(records: Sequence[RunRecord]) -> str:
    from rich.console import Console

    console = Console(record=True, width=160, file=io.StringIO())
    console.print(compare_table(records))
    why = diagnosis_table(records, only_problems=False)
    if why is not None:
        console.print(why)
    for note in workload_notes(records):
        console.print(note)
    table_html = console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>memsched compare</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto} img{max-width:100%}</style></head><body>",
        f"<h1>memsched compare — {html.escape(records[0]['topology']) if records else ''}</h1>",
        table_html,
        "<h2>Elapsed time</h2>",
        _elapsed_chart([r for r in records if not r.get("score", {}).get("higher_is_better")]),
        "<h2>Throughput of fixed-time benchmarks</h2>",
        _headline_charts(records),
        "<h2>Convergence</h2>",
        _workload_charts(records),
        "<h2>Locality and placement over time</h2>",
    ]
    parts += [_timeline_charts(median_run(rs)) for rs in cells(records).values()]
    parts.append("</body></html>")
    return "\n".join(parts)
