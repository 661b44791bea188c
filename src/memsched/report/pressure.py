"""Tables and the HTML report of ``memsched pressure sim``: one row and one chart per notification design.

The chart of each design has three panels over simulated time: memory (free, page cache, anonymous,
dirty + writeback, in MiB), the reclaimer inefficiency index of every computed window of both flavours
(mainline at the root memcg, rfc2012 system-wide; 0-100) with PSI's ``some avg10`` (%), and the
notifications the services read (vertical lines coloured by level) with the OOM kills (black crosses).
Colours keep one meaning each (:mod:`memsched.report.page`): green, orange and red are the levels only.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

from memsched.record import RunRecord
from memsched.report.fit import Column, FitTable
from memsched.report.page import LEVEL_COLOURS, page, series_colour, svg_img

#: The events strip's bands, bottom to top.
_LEVEL_ORDER = tuple(LEVEL_COLOURS)

__all__ = ["pressure_chart", "pressure_report", "pressure_table"]

#: The designs in a fixed order, so that each keeps its colour in every chart and report.
_DESIGNS = ("none", "rfc2012", "mainline", "psi")
#: Memory panel: black and grey line styles, so that no memory line shares a colour with a design or a level.
_MEMORY_LINES = (
    ("free_mib", "free", "#000000", "-"),
    ("file_mib", "page cache", "#777777", "-"),
    ("anon_mib", "anonymous", "#000000", "--"),
    ("dirty_mib", "dirty + writeback", "#777777", ":"),
)


def _design_colour(design: str) -> str:
    return series_colour(design, _DESIGNS) if design in _DESIGNS else "#333333"


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def pressure_table(records: Sequence[RunRecord]) -> FitTable:
    """One row per design: events read by the services, OOM kills, memory given back, throughputs."""
    first = records[0]
    names = list(first["services"])
    table = FitTable(
        f"memory pressure: scenario {first['scenario']} ({first['memory_mib']} MiB, {first['duration_s']:g} s)",
        [
            Column("design"),
            Column("low", "low-level notifications the services read", right=True),
            Column("med", "medium-level notifications", right=True),
            Column("crit", "critical-level notifications (OOM for rfc2012)", right=True),
            Column("1st med s", "first medium notification, simulated s", right=True),
            Column("1st crit s", "first critical notification, simulated s", right=True),
            Column("OOM", "OOM kills (victims)", right=True),
            Column("freed MiB", "memory the services gave back", right=True),
            *(
                Column(f"{name} {first['services'][name]['throughput_unit']}", f"throughput of {name}", right=True)
                for name in names
            ),
        ],
        footnotes=["† OOM-killed (throughput over its life)"],
    )
    rows = table.add_group(None)
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
        rows.append(row)
    return table


def pressure_chart(rec: RunRecord) -> Any:
    """The three-panel figure of one design's run."""
    tl = rec["timeline"]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 7), sharex=True, height_ratios=[3, 2, 1])
    t = tl["t_s"]
    for key, label, colour, style in _MEMORY_LINES:
        a1.plot(t, tl[key], label=label, color=colour, linestyle=style)
    a1.set_ylabel("MiB")
    a1.legend(fontsize="small", loc="best", ncols=2)  # (where it covers the fewest points: not over a peak)
    for key, flavour, label, marker in (
        ("index_mainline", "mainline", "mainline index (root)", "o"),
        ("index_rfc2012", "rfc2012", "rfc2012 index", "x"),
    ):
        pts = tl[key]
        if pts:
            a2.scatter(
                [p[0] for p in pts], [p[1] for p in pts], s=10, marker=marker, label=label, alpha=0.7,
                color=_design_colour(flavour),
            )
    psi = [(x, y) for x, y in zip(t, tl.get("psi_some_avg10") or [], strict=False) if y is not None]
    if psi:
        a2.plot([p[0] for p in psi], [p[1] for p in psi], label="PSI some avg10 (%)", color=_design_colour("psi"))
    a2.axhline(60, color=LEVEL_COLOURS["medium"], linewidth=0.8, linestyle="--")
    a2.axhline(95, color=LEVEL_COLOURS["critical"], linewidth=0.8, linestyle="--")
    a2.set_ylim(-5, 105)
    a2.set_ylabel("index, PSI %")
    if a2.get_legend_handles_labels()[0]:
        a2.legend(fontsize="small", loc="upper left", markerscale=2)
    else:
        a2.text(0.5, 0.5, "no reclaim window computed, no PSI sample", transform=a2.transAxes, ha="center")
    # one band per level, so that events of two levels 10 ms apart are both seen (they share a pixel column), and
    # a band of their own for the OOM kills (a cross on a level's band read as an event of that level)
    levels = [level for level in _LEVEL_ORDER if level in rec["event_times_s"]]
    bands = [*levels, "OOM kill"]
    for i, level in enumerate(levels):
        times = rec["event_times_s"][level]
        if times:
            a3.vlines(times, i / len(bands) + 0.03, (i + 1) / len(bands) - 0.03, color=LEVEL_COLOURS[level], lw=1.0)
    oom_y = (len(bands) - 0.5) / len(bands)
    for v in rec["oom_victims"]:
        a3.plot([v["t_s"]], [oom_y], marker="x", color="black", markersize=8)
        a3.annotate(v["victim"], (v["t_s"], oom_y), xytext=(6, 0), textcoords="offset points", fontsize="small",
                    va="center")  # fmt: skip
    a3.set_yticks([(i + 0.5) / len(bands) for i in range(len(bands))], bands, fontsize="small")
    a3.set_ylim(0, 1)
    a3.set_xlabel("simulated s")
    a3.set_ylabel("events")
    a3.set_xlim(0, rec["duration_s"])
    a1.set_title(f"{rec['scenario']}, design {rec['design']}", fontsize="medium")
    return fig


def _colour_key() -> str:
    def swatch(colour: str, text: str) -> str:
        return f'<span style="color:{colour}">■</span> {html.escape(text)}'

    levels = ", ".join(swatch(c, level) for level, c in LEVEL_COLOURS.items())
    designs = ", ".join(swatch(_design_colour(d), d) for d in _DESIGNS[1:])
    return (
        f"<ul class='legend'><li>Levels (event lines, and the dashed thresholds at 60 and 95): {levels}.</li>"
        f"<li>Index panel, by flavour: {designs} (PSI some avg10 in %). Both indices are computed in every run; "
        "the design decides which one the services listen to.</li>"
        "<li>Memory panel: black and grey lines. Events strip: one band per level, and the OOM kills as black"
        " crosses on a band of their own.</li></ul>"
    )


def pressure_report(records: Sequence[RunRecord]) -> str:
    """A self-contained HTML page: the summary table and every design's chart (SVG inlined)."""
    first = records[0]
    charts = "\n".join(
        f"<h3>design {html.escape(rec['design'])}</h3>\n" + svg_img(pressure_chart(rec), f"design {rec['design']}")
        for rec in records
    )
    return page(
        f"memsched pressure sim — {first['scenario']}",
        [
            ("Summary", pressure_table(records).to_html()),
            ("Over time, per design", _colour_key() + charts),
        ],
    )
