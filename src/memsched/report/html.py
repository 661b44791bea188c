"""The HTML report of ``memsched compare``: a summary first, then the tables and the charts (SVG, self-contained).

The page opens with what a reader wants first: the best policy of each workload with its ratio to HARD_BIND,
and a heatmap of workload x policy (ratio to HARD_BIND; darker is further behind). Then the same tables as
the terminal (the same rows, from the same functions, "why" notes included), and the charts: elapsed time,
throughput of fixed-time benchmarks, the workloads' own convergence charts, and locality and placement over
time. A section with nothing to show is left out (:func:`memsched.report.page.page`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt

from memsched.errors import MemschedError
from memsched.record import RunRecord
from memsched.report.page import heat_colour, node_colour, page, series_colour, svg_img
from memsched.report.tables import (
    cell_ratio,
    cells,
    compare_table,
    diagnosis_table,
    median_run,
    spread,
    winners,
    workload_notes,
)
from memsched.workloads import base as workloads

__all__ = ["compare_report", "summary_html"]


def _labels(records: Sequence[RunRecord]) -> list[str]:
    return list(dict.fromkeys(r.label for r in records))


def _elapsed_chart(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> str:
    """Elapsed time of every run, one panel per workload: a bar per run (named on the axis, no legend to
    decode) and a dashed line at the reference's time; with several seeds, the median with a min-max bar."""
    if not records:
        return ""
    bases = list(dict.fromkeys(r.base for r in records))
    labels = _labels(records)
    cols = min(len(bases), 2)
    rows = -(-len(bases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, (0.32 * len(labels) + 1.2) * rows), squeeze=False)
    for ax in axes.flat[len(bases) :]:
        ax.set_visible(False)
    groups = cells(records)
    for ax, base in zip(axes.flat, bases, strict=False):
        runs = [(label, rs) for (b, label), rs in groups.items() if b == base]
        stats = [spread([r["elapsed_s"] for r in rs]) or (0.0, 0.0, 0.0) for _, rs in runs]
        ys = list(range(len(runs)))[::-1]
        several = any(len(rs) > 1 for _, rs in runs)
        ax.barh(
            ys,
            [m for m, _, _ in stats],
            xerr=[[m - lo for m, lo, _ in stats], [hi - m for m, _, hi in stats]] if several else None,
            color=[series_colour(label, labels) for label, _ in runs],
        )
        ax.set_yticks(ys, [label for label, _ in runs])
        ref = next((st for (label, _), st in zip(runs, stats, strict=True) if label == reference_label), None)
        if ref is not None:
            ax.axvline(ref[0], color="#222222", linestyle="--", linewidth=0.8)
        ax.set_title(base)
        ax.set_xlabel(
            "elapsed (simulated s)"
            + ("; median, min–max bars" if several else "")
            + (f"; dashed: {reference_label}" if ref is not None else "")
        )
    fig.tight_layout()
    return svg_img(fig, "elapsed per workload and run")


def _headline_charts(records: Sequence[RunRecord]) -> str:
    """For fixed-time benchmarks: their headline figure (bops, GB/s) per run, one chart per workload."""
    labels = _labels(records)
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
        ax.bar(
            [r.label for r in runs],
            [r["score"]["value"] or 0 for r in runs],
            color=[series_colour(r.label, labels) for r in runs],
        )
        ax.set_ylabel(name)
        ax.set_title(f"{base}: {name}")
        ax.tick_params(axis="x", rotation=30)
        out.append(svg_img(fig, f"{base} {name}"))
    return "\n".join(out)


def _workload_charts(records: Sequence[RunRecord]) -> str:
    """Each workload's own timeline figures (its ``charts``: perf-bench's converged processes), one line per run."""
    labels = _labels(records)
    out = []
    for base in dict.fromkeys(r.base for r in records):
        try:
            charts = workloads.get(base).charts
        except MemschedError:  # a record of a workload this version does not know: no charts
            continue
        runs = [median_run(rs) for (b, _), rs in cells(records).items() if b == base]
        runs = [r for r in runs if "workload" in r["timeline"]]
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
                ax.step(xs, ys, where="post", label=label, color=series_colour(label, labels))
            ax.set_xlabel("simulated s")
            ax.set_ylabel(chart.ylabel)
            ax.set_title(f"{base}: {chart.title}")
            ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
            out.append(svg_img(fig, f"{base} {chart.title}"))
    return "\n".join(out)


def node_memory_axis(timeline: Mapping[str, Any]) -> tuple[float, str]:
    """How the memory-per-node chart shows a timeline's ``node_pages``: (factor, axis label). GiB where the record
    says how long its pages are (``page_bytes``: 2 MiB with THP, a run of 4 KiB pages without), else the model's
    pages, so that records from before ``page_bytes`` still draw."""
    page_bytes = timeline.get("page_bytes")
    if isinstance(page_bytes, int) and page_bytes > 0:
        return page_bytes / 2**30, "GiB on node"
    return 1.0, "pages on node (model units)"


def _timeline_charts(rec: RunRecord) -> str:
    tl = rec["timeline"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3))
    pts = [(t, f) for t, f in zip(tl["t_s"], tl["local_fraction"], strict=True) if f is not None]
    if pts:
        a1.plot([p[0] for p in pts], [p[1] for p in pts], color="#222222")
    a1.set_ylim(0, 1.02)
    a1.set_xlabel("simulated s")
    a1.set_ylabel("local access fraction")
    pages = tl["node_pages"]
    scale, ylabel = node_memory_axis(tl)
    if pages:
        nodes = len(pages[0])
        for n in range(nodes):
            a2.plot(tl["t_s"], [p[n] * scale for p in pages], label=f"node {n}", color=node_colour(n, nodes))
        a2.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    a2.set_xlabel("simulated s")
    a2.set_ylabel(ylabel)
    title = f"{rec.workload} — {rec.label}"
    fig.suptitle(title)
    return svg_img(fig, title)


def _timelines(records: Sequence[RunRecord]) -> str:
    """Locality and pages per node over time: one folded block per workload, one chart per run."""
    out = []
    for base in dict.fromkeys(r.base for r in records):
        runs = [median_run(rs) for (b, _), rs in cells(records).items() if b == base]
        runs = [r for r in runs if r["timeline"]["t_s"]]
        if runs:
            charts = "\n".join(_timeline_charts(r) for r in runs)
            out.append(f"<details><summary>{html.escape(base)} ({len(runs)} runs)</summary>\n{charts}</details>")
    return "\n".join(out)


def summary_html(records: Sequence[RunRecord], *, reference_label: str = "HARD_BIND") -> str:
    """The winner of each workload, and the heatmap workload x policy of the ratio to the reference."""
    best = winners(records, reference_label=reference_label)
    items = []
    for base, policy, ratio, what in best:
        if policy is None:
            items.append(f"<li><b>{html.escape(base)}</b>: no policy run has a score</li>")
            continue
        against = (
            f" (no {html.escape(reference_label)} run to compare with)"
            if ratio is None
            else f", {ratio:.2f}× {html.escape(reference_label)}’s {html.escape(what)}"
        )
        items.append(f"<li><b>{html.escape(base)}</b>: best <b>{html.escape(policy)}</b>{against}</li>")
    policies = list(dict.fromkeys(r.label for r in records if not r.is_reference))
    groups = cells(records)
    refs = {(r.base, r.seed): r for r in records if r.is_reference and r.label == reference_label}
    head = "".join(f"<th>{html.escape(p)}</th>" for p in policies)
    rows = []
    for base, winner, _, _ in best:
        tds = []
        for p in policies:
            runs = groups.get((base, p), [])
            ratio = cell_ratio(runs, refs) if runs else None
            if ratio is None:
                tds.append("<td>-</td>")
                continue
            higher = bool(runs[0]["score"]["higher_is_better"])
            behind = (1 / ratio if higher and ratio > 0 else ratio) - 1.0  # 0.5: 1.5x the time, 2/3 the throughput
            bg, fg = heat_colour(behind / 0.5)
            cls = ' class="best"' if p == winner else ""
            tds.append(f'<td{cls} style="background:{bg};color:{fg}">{ratio:.2f}</td>')
        rows.append(f"<tr><th class='txt'>{html.escape(base)}</th>{''.join(tds)}</tr>")
    heat = (
        f'<table class="heat"><caption>ratio to {html.escape(reference_label)} (elapsed time; throughput for '
        f"fixed-time benchmarks)</caption><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table><ul class='legend'><li>Darker: further behind "
        f"{html.escape(reference_label)} (white: as good; the darkest: 1.5× the time, or ⅔ the throughput, or worse). "
        "Framed: the workload's best policy.</li></ul>"
    )
    return f"<ul class='winners'>{''.join(items)}</ul>\n{heat}" if items else ""


def compare_report(records: Sequence[RunRecord], *more: Sequence[RunRecord]) -> str:
    """The self-contained HTML page of a comparison (see the module docstring); with ``more``, of one comparison
    per topology (``compare -t a,b``): each one's sections in turn, their headings led by its topology."""
    groups = [records, *more]
    topos = [g[0]["topology"] if g else "?" for g in groups]
    sections: list[tuple[str, str]] = []
    for topo, group in zip(topos, groups, strict=True):
        lead = f"{topo}: " if more else ""
        why = diagnosis_table(group)
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in workload_notes(group))
        timed = [r for r in group if not r.get("score", {}).get("higher_is_better")]
        sections += [
            (f"{lead}Summary", summary_html(group)),
            (f"{lead}Results", compare_table(group).to_html()),
            (f"{lead}Why", (why.to_html() if why is not None else "") + notes),
            (f"{lead}Elapsed time", _elapsed_chart(timed)),
            (f"{lead}Throughput of fixed-time benchmarks", _headline_charts(group)),
            (f"{lead}Convergence", _workload_charts(group)),
            (f"{lead}Locality and placement over time", _timelines(group)),
        ]
    return page(f"memsched compare — {', '.join(topos)}", sections)
