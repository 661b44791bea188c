"""The HTML report of a sweep (``memsched sweep --report``), in the style of the compare report.

It reads the sweep's rows of the results database (a DataFrame, one row per run) and shows:

* **speed-up against each swept knob**, per policy: the speed-up of a run is its baseline run's elapsed time
  over its own (the score ratio for fixed-time benchmarks), the baseline being the same machine, workload,
  workload settings and seed under the spec's ``baseline`` policy. For each knob value the runs of one seed
  are summarised by their geometric mean (over workloads, machines and the other knobs); the chart shows the
  median over seeds with the min-max spread as error bars;
* **heatmaps for two knobs at a time** (median speed-up per pair of values);
* **the winner per topology family** (a preset, a file or a generated family), overall and per workload: the
  policy and settings with the best geometric-mean speed-up, and the best setting of the runner-up policy;
* **the sensitivity of each policy**: the share of the variance of its log speed-ups explained by each knob
  (and by the seed, for scale), with the spread of the knob's medians;
* the failed cells and their errors.

A knob with more than :data:`MAX_LEVELS` distinct values (random sweeps) is cut into that many quantile bins.
"""

from __future__ import annotations

import dataclasses
import html
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from memsched.errors import MemschedError
from memsched.report.page import svg_img
from memsched.units import unit_of_key
from memsched.workloads import base as workloads

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_LEVELS", "speedups", "sweep_report"]

MAX_LEVELS = 8
MAX_HEATMAPS = 8
_ID = ["topology", "base", "seed"]


def speedups(frame: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """The finished runs with a ``speedup`` column against their baseline runs (NaN where there is none)."""
    ok = frame[(frame["status"] == "ok") & (frame["role"] == "policy")].copy()
    if ok.empty:
        return ok.assign(speedup=np.nan, config="", wl_sets="")
    ok["wl_sets"] = [_workload_sets(b, s) for b, s in zip(ok["base"], ok["sets"], strict=True)]
    ok["config"] = [_config(p, s) for p, s in zip(ok["policy"], ok["sets"], strict=True)]
    if baseline is None or "score_value" not in ok.columns:
        return ok.assign(speedup=np.nan)
    base = ok[ok["policy"] == baseline][[*_ID, "wl_sets", "score_value"]].rename(columns={"score_value": "b"})
    ok = ok.merge(base.drop_duplicates([*_ID, "wl_sets"]), on=[*_ID, "wl_sets"], how="left")
    higher = ok["score_higher_is_better"].fillna(False).astype(bool)
    ok["speedup"] = np.where(higher, ok["score_value"] / ok["b"], ok["b"] / ok["score_value"])
    return ok


def _workload_sets(workload: str, sets: str) -> str:
    try:
        owned = {f.name for f in dataclasses.fields(workloads.get(workload).config_cls)}
    except MemschedError:
        owned = set()
    values = json.loads(sets) if sets else {}
    return json.dumps({k: v for k, v in values.items() if k in owned}, sort_keys=True)


def _config(policy: str, sets: str) -> str:
    values = json.loads(sets) if sets else {}
    return policy + "".join(f" {k}={v}" for k, v in sorted(values.items()))


def _levels(series: pd.Series) -> pd.Series:
    """Knob values as plotted: themselves, or the median of their quantile bin when there are too many."""
    import pandas as pd

    values = series.dropna()
    if values.nunique() <= MAX_LEVELS or not pd.api.types.is_numeric_dtype(values):
        return series
    bins = pd.qcut(series, MAX_LEVELS, duplicates="drop")
    return series.groupby(bins, observed=False).transform("median")


def _gmean(x: pd.Series) -> float:
    v = x[x > 0]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def _per_seed(rows: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Geometric-mean speed-up per (keys, seed), then median, min and max over seeds."""
    by_seed = rows.groupby([*keys, "seed"], dropna=True)["speedup"].agg(_gmean).reset_index()
    return by_seed.groupby(list(keys))["speedup"].agg(["median", "min", "max"]).reset_index()


def _knob_charts(runs: pd.DataFrame, knobs: Sequence[str]) -> str:
    out = []
    for knob in knobs:
        rows = runs[runs[knob].notna() & runs["speedup"].notna()]
        rows = rows.assign(level=_levels(rows[knob]))
        if rows.empty:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for policy, grp in rows.groupby("policy"):
            s = _per_seed(grp, ["level"]).sort_values("level")
            if s.empty:
                continue
            x = s["level"].to_numpy()
            xs = x if np.issubdtype(x.dtype, np.number) else np.arange(len(x))
            err = np.vstack([s["median"] - s["min"], s["max"] - s["median"]])
            ax.errorbar(xs, s["median"], yerr=err, marker="o", capsize=3, label=str(policy))
            if not np.issubdtype(x.dtype, np.number):
                ax.set_xticks(xs, [str(v) for v in x])
        if _log_axis(rows[knob]):
            ax.set_xscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"speed-up against {knob_label(knob)}")
        ax.set_xlabel(knob_label(knob))
        ax.set_ylabel("speed-up (median, min-max over seeds)")
        ax.legend(fontsize="small")
        out.append(_img(fig, f"speed-up against {knob}"))
    return "\n".join(out) or "<p>(no swept knob with speed-ups)</p>"


def knob_label(column: str) -> str:
    """A swept column as the chart names it: a ``--set`` knob (``set_scan_size_mb``) by its key and the unit its
    name says (``scan_size_mb (MiB, --set)``, as ``memsched list settings`` gives it), other columns as they are."""
    if not column.startswith("set_"):
        return column
    key = column.removeprefix("set_")
    unit = unit_of_key(key)
    return f"{key} ({unit}, --set)" if unit else f"{key} (--set)"


def _log_axis(values: pd.Series) -> bool:
    v = values.dropna()
    try:
        v = v.astype(float)
    except (TypeError, ValueError):
        return False
    return bool(len(v) and v.min() > 0 and v.max() / v.min() >= 50)


def _heatmaps(runs: pd.DataFrame, knobs: Sequence[str]) -> str:
    out: list[str] = []
    for a, b in itertools.combinations(knobs, 2):
        for policy, grp in runs[runs[a].notna() & runs[b].notna() & runs["speedup"].notna()].groupby("policy"):
            if len(out) >= MAX_HEATMAPS or grp[a].nunique() < 2 or grp[b].nunique() < 2:
                continue
            levels = grp.assign(la=_levels(grp[a]), lb=_levels(grp[b]))
            cells = _per_seed(levels, ["la", "lb"]).pivot(index="lb", columns="la", values="median")
            fig, ax = plt.subplots(figsize=(6, 4))
            im = ax.imshow(cells.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
            ax.set_xticks(range(cells.shape[1]), [_tick(v) for v in cells.columns])
            ax.set_yticks(range(cells.shape[0]), [_tick(v) for v in cells.index])
            for (i, j), v in np.ndenumerate(cells.to_numpy(dtype=float)):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
            ax.set_xlabel(knob_label(a))
            ax.set_ylabel(knob_label(b))
            ax.set_title(f"{policy}: median speed-up")
            fig.colorbar(im, ax=ax)
            out.append(_img(fig, f"{policy}: {a} x {b}"))
    return "\n".join(out) or "<p>(fewer than two knobs swept together)</p>"


def _tick(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _winners(runs: pd.DataFrame) -> list[list[str]]:
    rows = [["family", "workload", "winner", "speed-up", "runner-up policy", "speed-up"]]
    runs = runs[runs["speedup"].notna()]
    for fam, grp in runs.groupby("topology_family"):
        for wl, sub in [("all", grp), *grp.groupby("base")]:
            score = sub.groupby(["policy", "config"])["speedup"].agg(_gmean).reset_index()
            score = score.sort_values(["speedup", "config"], ascending=[False, True])
            if score.empty:
                continue
            win = score.iloc[0]
            other = score[score["policy"] != win["policy"]]
            second = other.iloc[0] if not other.empty else None
            rows.append([str(fam), str(wl), str(win["config"]), f"{win['speedup']:.3f}",
                         str(second["config"]) if second is not None else "",
                         f"{second['speedup']:.3f}" if second is not None else ""])  # fmt: skip
    return rows


def _sensitivity(runs: pd.DataFrame, knobs: Sequence[str]) -> list[list[str]]:
    rows = [["policy", "knob", "variance explained", "median speed-up by value (min - max)"]]
    runs = runs[runs["speedup"] > 0]
    for policy, grp in runs.groupby("policy"):
        y = np.log(grp["speedup"])
        total = float(((y - y.mean()) ** 2).sum())
        found = []
        for knob in [*knobs, "seed"]:
            g = grp.assign(level=_levels(grp[knob]), y=y)
            g = g[g["level"].notna()]
            if g["level"].nunique() < 2:
                continue
            means = g.groupby("level")["y"].agg(["mean", "count"])
            between = float((means["count"] * (means["mean"] - g["y"].mean()) ** 2).sum())
            medians = g.groupby("level")["speedup"].median()
            share = between / total if total > 0 else 0.0
            found.append((share, knob, f"{medians.min():.3f} - {medians.max():.3f}"))
        for share, knob, spread in sorted(found, reverse=True):
            rows.append([str(policy), knob, f"{share:.0%}", spread])
    return rows


def _failures(frame: pd.DataFrame) -> list[list[str]]:
    rows = [["workload", "policy", "topology", "seed", "attempts", "error"]]
    for r in frame[frame["status"] == "failed"].itertuples():
        rows.append([str(r.workload), str(r.policy), str(r.topology), str(r.seed), str(r.attempts), str(r.error)])
    return rows


def _table(rows: list[list[str]]) -> str:
    if len(rows) < 2:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(fig: Any, alt: str) -> str:
    return svg_img(fig, alt)  # SVG, as the other reports


def sweep_report(frame: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """The report of one sweep: ``frame`` its rows of ``runs``; ``meta`` its ``name``, ``id``, ``knobs``,
    ``baseline`` and ``source``."""
    knobs = [k for k in meta.get("knobs", []) if k in frame.columns]
    runs = speedups(frame, meta.get("baseline"))
    ok, failed = int((frame["status"] == "ok").sum()), int((frame["status"] == "failed").sum())
    models = ", ".join(sorted(frame["model_version"].dropna().unique())) or "-"
    buf = io.StringIO()
    buf.write(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>memsched sweep {html.escape(str(meta.get('name', '')))}</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto} img{max-width:100%}"
        "table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:2px 8px;"
        "font-size:small;text-align:left}</style></head><body>"
    )
    buf.write(f"<h1>memsched sweep — {html.escape(str(meta.get('name', '')))}</h1>")
    buf.write(
        f"<p>{len(frame)} cells ({ok} ok, {failed} failed) from {html.escape(str(meta.get('source', '')))}; "
        f"sweep id {html.escape(str(meta.get('id', '')))}; model {html.escape(models)}; speed-ups against "
        f"{html.escape(str(meta.get('baseline') or 'nothing (no baseline)'))}; swept: "
        f"{html.escape(', '.join(knobs) or 'no knob')}.</p>"
    )
    buf.write("<h2>Speed-up against each swept knob</h2>" + _knob_charts(runs, knobs))
    buf.write("<h2>Two knobs at a time</h2>" + _heatmaps(runs, knobs))
    buf.write("<h2>Winner per topology family</h2>" + _table(_winners(runs)))
    buf.write("<h2>Which knobs matter (sensitivity per policy)</h2>" + _table(_sensitivity(runs, knobs)))
    buf.write("<h2>Failed cells</h2>" + _table(_failures(frame)))
    buf.write("</body></html>")
    return buf.getvalue()
