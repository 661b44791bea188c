"""Tables and the HTML report of ``memsched pressure sim``: one row and one chart per notification design.

The chart of each design has three panels over simulated time: memory (free, page cache, anonymous,
dirty + writeback, in MiB), the reclaimer inefficiency index of every computed window of both flavours
(mainline at the root memcg, rfc2012 system-wide; 0-100), and the notifications the services read
(vertical lines coloured by level) with the OOM kills (black crosses).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from memsched.record import RunRecord
from memsched.report.html import figure_png

__all__ = ["pressure_chart", "pressure_report", "pressure_table"]

_LEVEL_COLOURS = {"low": "tab:green", "medium": "tab:orange", "critical": "tab:red"}


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def pressure_table(records: Sequence[RunRecord]) -> Table:
    """One row per design: events read by the services, OOM kills, memory given back, throughputs."""
    first = records[0]
    table = Table(
        title=f"memory pressure: scenario {first['scenario']} "
        f"({first['memory_mib']} MiB, {first['duration_s']:g} s)"
    )
    for col in ("design", "low", "med", "crit", "1st med s", "1st crit s", "OOM", "freed MiB"):
        table.add_column(col, justify="left" if col == "design" else "right")
    names = list(first["services"])
    for name in names:
        table.add_column(f"{name} {first['services'][name]['throughput_unit']}", justify="right")
    for rec in records:
        ev, first_s = rec["events"], rec["event_first_s"]
        victims = ", ".join(v["victim"] for v in rec["oom_victims"])
        row = [
            rec["design"],
            str(ev["low"]),
            str(ev["medium"]),
            str(ev["critical"]),
            _fmt_s(first_s["medium"]),
            _fmt_s(first_s["critical"]),
            f"{rec['oom_kills']}" + (f" ({victims})" if victims else ""),
            f"{rec['app_released_mib']:.0f}",
        ]
        for name in names:
            svc = rec["services"][name]
            row.append(f"{svc['throughput']:.1f}" + (" †" if svc["oom_killed"] else ""))
        table.add_row(*row)
    table.caption = "† OOM-killed (throughput over its life). Events: notifications the services read."
    return table


def pressure_chart(rec: RunRecord) -> Any:
    """The three-panel figure of one design's run."""
    tl = rec["timeline"]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 7), sharex=True, height_ratios=[3, 2, 1])
    t = tl["t_s"]
    a1.plot(t, tl["free_mib"], label="free", color="tab:blue")
    a1.plot(t, tl["file_mib"], label="page cache", color="tab:olive")
    a1.plot(t, tl["anon_mib"], label="anonymous", color="tab:purple")
    a1.plot(t, tl["dirty_mib"], label="dirty + writeback", color="tab:brown", linestyle=":")
    a1.set_ylabel("MiB")
    a1.legend(fontsize="small", loc="upper right", ncols=2)
    plotted = False
    for key, label, marker in (("index_mainline", "mainline (root)", "."), ("index_rfc2012", "rfc2012", "x")):
        pts = tl[key]
        if pts:
            a2.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, marker=marker, label=label, alpha=0.6)
            plotted = True
    a2.axhline(60, color="tab:orange", linewidth=0.8, linestyle="--")
    a2.axhline(95, color="tab:red", linewidth=0.8, linestyle="--")
    a2.set_ylim(-5, 105)
    a2.set_ylabel("index")
    if plotted:  # memcg-only reclaim leaves the root's and the RFC's index empty
        a2.legend(fontsize="small", loc="upper left")
    for level, times in rec["event_times_s"].items():
        for x in times:
            a3.axvline(x, color=_LEVEL_COLOURS[level], linewidth=1.0)
    for v in rec["oom_victims"]:
        a3.plot([v["t_s"]], [0.5], marker="x", color="black", markersize=10)
        a3.annotate(v["victim"], (v["t_s"], 0.55), fontsize="small")
    a3.set_yticks([])
    a3.set_ylim(0, 1)
    a3.set_xlabel("simulated s")
    a3.set_ylabel("events")
    a3.set_xlim(0, rec["duration_s"])
    fig.suptitle(f"{rec['scenario']} — {rec['design']}")
    return fig


def pressure_report(records: Sequence[RunRecord]) -> str:
    """A self-contained HTML page: the summary table and every design's chart (PNG inlined)."""
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(pressure_table(records))
    table_html = console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
    first = records[0]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>memsched pressure sim</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto} img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>memsched pressure sim — {html.escape(first['scenario'])}</h1>",
        table_html,
        "<p>Levels: green low, orange medium, red critical (OOM for rfc2012). Index panel: every window "
        "computed by each flavour (both always run; only the design decides who listens); dashed lines at "
        "60 and 95.</p>",
    ]
    for rec in records:
        title = f"design {rec['design']}"
        img = figure_png(pressure_chart(rec))
        parts.append(
            f"<h2>{html.escape(title)}</h2>"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{img}'/>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
