"""The scenario × policy table of ``memsched pressure act-sim`` (terminal and HTML)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rich.table import Table

__all__ = ["COLUMNS", "act_html", "act_rows", "act_table"]

COLUMNS = ("scenario", "policy", "thrash s", "trouble s", "1st act s", "trouble→act s", "killed (user)", "kernel OOM",
           "sheds", "verdict", "work lost cpu s", "protected", "req ms")


def _f(v: object) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def act_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for f in runs:
        s = f["score"]
        p = s["protected"]
        users = ", ".join(s["user_kills"]) + (f" ×{s['user_kill_count']}" if s["user_kill_count"] > 1 else "")
        kernel = str(s["kernel_oom_kills"]) + (f" ({', '.join(s['kernel_victims'])})" if s["kernel_victims"] else "")
        if not p:
            prot = "-"
        else:
            prot = f"{p['name']} KILLED" if p["killed"] else f"{p['name']} {p['throughput']:g} {p['unit']}"
        rows.append([f["scenario"], f["policy"].removesuffix("-v1"), _f(s["thrashing_s"]), _f(s["trouble_s"]),
                     _f(s["first_action_s"]), _f(s["time_to_action_s"]),
                     users or "-", kernel, str(s["sheds"]), s["verdict"], _f(s["work_lost_cpu_s"]), prot,
                     _f(p.get("mean_request_ms") if p else None)])
    return rows


def act_table(runs: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="acting on pressure (simulated)")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("scenario", "policy", "killed (user)", "verdict", "protected")
                     else "right")
    for row in act_rows(runs):
        t.add_row(*row)
    return t


def act_html(runs: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>" for row in act_rows(runs))
    actions = "".join(
        f"<h3>{html.escape(f['scenario'])} / {html.escape(f['policy'])}</h3><ul>"
        + "".join(f"<li>{a['t_s']:.3f} s: {html.escape(a['action'])} {html.escape(a['target'])} "
                  f"({html.escape(a['reason'])}) {html.escape(a['status'])}</li>" for a in f["actions"][:50])
        + "</ul>" for f in runs)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>memsched pressure act-sim</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ccc}</style>"
            f"</head><body><h1>Acting on pressure (simulated)</h1><table><tr>{head}</tr>{body}</table>"
            f"<h2>Actions</h2>{actions}</body></html>\n")
