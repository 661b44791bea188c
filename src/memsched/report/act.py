"""The scenario × policy table of ``memsched pressure act-sim`` (terminal and HTML).

The table is a :class:`~memsched.report.fit.FitTable`: one group per scenario, one row per policy, so that a
narrow terminal gets the stacked layout and no policy or scenario id is ever cut (they are what a user types
back into ``--policies``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from memsched.report.fit import Column, FitTable
from memsched.report.page import page

__all__ = ["COLUMNS", "act_html", "act_rows", "act_table"]

#: The columns after the policy (the scenario is each group's heading); the heads are those of docs/act.md.
COLUMNS = (
    Column("policy"),
    Column("thrash s", "seconds with PSI memory full avg10 above 10 %", right=True),
    Column("trouble s", "first memory stall or free memory at the low watermark, simulated s", right=True),
    Column("1st act s", "first applied action, simulated s", right=True),
    Column("trouble→act s", "from trouble to the first action (negative: before trouble)", right=True),
    Column("killed (user)", "processes the policy killed (×N: N kills)", wrap=True),
    Column("kernel OOM", "kills by the kernel's OOM killer (victims)", wrap=True),
    Column("sheds", "requests to a service to shed memory", right=True),
    Column("verdict", "the kills against the scenario's culprit: right, wrong, mixed or none"),
    Column("work lost cpu s", "CPU time (user + system) of the killed processes", right=True),
    Column("protected", "the protected service's throughput, or KILLED", wrap=True),
    Column("req ms", "the protected service's mean request time", right=True),
)


def _f(v: object) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def act_rows(runs: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(scenario, cells under COLUMNS)`` for each run, in order."""
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
        rows.append((f["scenario"], [f["policy"].removesuffix("-v1"), _f(s["thrashing_s"]), _f(s["trouble_s"]),
                                     _f(s["first_action_s"]), _f(s["time_to_action_s"]),
                                     users or "-", kernel, str(s["sheds"]), s["verdict"], _f(s["work_lost_cpu_s"]),
                                     prot, _f(p.get("mean_request_ms") if p else None)]))
    return rows


def act_table(runs: Sequence[dict[str, Any]]) -> FitTable:
    """The runs under one heading per scenario (in the order they come), one row per policy."""
    t = FitTable("acting on pressure (simulated)", COLUMNS)
    groups: dict[str, list[list[str]]] = {}
    for scenario, row in act_rows(runs):
        if scenario not in groups:
            groups[scenario] = t.add_group(scenario)
        groups[scenario].append(row)
    return t


def act_html(runs: Sequence[dict[str, Any]]) -> str:
    """A self-contained page: the same table as the terminal's, then every run's first 50 actions."""
    actions = "".join(
        f"<h3>{html.escape(f['scenario'])} / {html.escape(f['policy'])}</h3><ul>"
        + "".join(f"<li>{a['t_s']:.3f} s: {html.escape(a['action'])} {html.escape(a['target'])} "
                  f"({html.escape(a['reason'])}) {html.escape(a['status'])}</li>" for a in f["actions"][:50])
        + "</ul>" for f in runs)
    return page("memsched pressure act-sim", [("Acting on pressure (simulated)", act_table(runs).to_html()),
                                              ("Actions", actions)])
