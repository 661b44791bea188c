"""The parts every HTML report shares: the page, its sections, SVG charts and the colours.

* **Self-contained.** Charts are SVG documents inlined as ``data:image/svg+xml`` images (each image keeps its
  own ids, so two charts cannot clash), with text kept as text; the style sheet is in the page. Nothing is
  fetched from the network.
* **No empty section.** :func:`page` drops a section whose body is empty, so a report never shows a heading
  with nothing under it.
* **One meaning per colour.** :data:`LEVEL_COLOURS` are the notification levels (and only them); each policy or
  design has one colour of its own (:func:`series_colour`) in every chart of a report, drawn from a palette
  without the levels' green, orange and red; NUMA nodes are shades of one sequential map; the summary's
  heatmap is one sequential hue (darker: further behind the reference).
* **Deterministic.** The SVG carries no date and its ids come from a fixed salt: the same records give the
  same bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = [
    "LEVEL_COLOURS",
    "heat_colour",
    "node_colour",
    "page",
    "series_colour",
    "svg_img",
]

matplotlib.rcParams["svg.hashsalt"] = "memsched"
matplotlib.rcParams["svg.fonttype"] = "none"

#: Notification levels: these three colours mean a level wherever they appear (lines, markers, thresholds).
LEVEL_COLOURS = {"low": "#2ca02c", "medium": "#ff7f0e", "critical": "#d62728"}

#: Colours of policies and designs: tab10 without its green, orange and red (the levels), then tab20's
#: darker shades of the same hues, for up to 14 series.
_SERIES = (
    "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{margin-top:1.6em;border-bottom:1px solid #ccc}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{padding:.15em .6em;border-bottom:1px solid #eee}
th.num,td.num{text-align:right} th.txt,td.txt{text-align:left}
tr.group th{text-align:left;background:#f4f4f4}
ul.legend{font-size:.85em;color:#555;margin-top:0}
table.heat td{text-align:center;min-width:4.5em}
table.heat td.best{outline:2px solid #222;outline-offset:-2px;font-weight:bold}
.winners li{margin:.2em 0}
details summary{cursor:pointer;font-weight:bold;margin:.4em 0}
"""


def series_colour(label: str, labels: Sequence[str]) -> str:
    """The colour of ``label`` (a policy, a bind variant, a design) among ``labels``, the same in every chart."""
    return _SERIES[list(labels).index(label) % len(_SERIES)]


def node_colour(node: int, nodes: int) -> str:
    """NUMA node ``node`` of ``nodes``: shades of one sequential map (never a series or level colour)."""
    r, g, b, _ = plt.get_cmap("viridis")(node / max(1, nodes - 1) * 0.9)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def heat_colour(badness: float) -> tuple[str, str]:
    """Background and text colour of a heatmap cell: ``badness`` 0 (as good as the reference) to 1 and more."""
    t = min(1.0, max(0.0, badness))
    lo, hi = (0xF2, 0xF0, 0xF7), (0x54, 0x27, 0x8F)  # ColorBrewer Purples, lightest and darkest
    rgb = tuple(round(a + (b - a) * t) for a, b in zip(lo, hi, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb), ("#fff" if t > 0.55 else "#222")


def svg_img(fig: Any, alt: str) -> str:
    """The figure as an inline SVG image (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}"/>'


def page(title: str, sections: Sequence[tuple[str, str]], *, lead: str = "") -> str:
    """The HTML document: ``title``, an optional ``lead`` paragraph, and each non-empty ``(heading, body)``."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if lead:
        parts.append(f"<p>{lead}</p>")
    for heading, body in sections:
        if body.strip():
            parts.append(f"<section><h2>{html.escape(heading)}</h2>\n{body}\n</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
