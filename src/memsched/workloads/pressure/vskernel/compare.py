"""Comparing runs: phases, events per level and phase, phase-tenth agreement, stall and counters per phase.

A *phase* is an interval between process starts and exits, named by what runs in it. Per phase:

* the events at each exact level: on the v1 side the listener's eventfds are cumulative (a critical window
  signals low, medium and critical together), so exact counts are differences of the cumulative ones; on the
  v2 side the PSI triggers are counted as they fire (``medium`` = the ``some`` trigger, ``critical`` = ``full``);
* the time from the phase's start to its first event;
* the top level in each tenth of the phase; the share of phase-tenths whose top level agrees between two runs;
* the growth of the cumulative PSI ``some``/``full`` stall (ms) and of each memcg counter, from the samples
  (interpolated linearly between samples at the phase's edges).

Events up to :data:`TAIL_NS` after the last process exits count in the last phase (the work item of the last
windows may run after the OOM victim is gone; the real run listens 0.1 s more); on the v2 side up to
:data:`TAIL_V2_NS`: a trigger with a 2 s window fires at most once per window, unprivileged ones only from the
2 s averaging work, so a run shorter than a window shows its events after it ends (the real run listens that
long).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memsched.workloads.pressure.vskernel.describe import LEVELS, Trace, Workload

__all__ = ["TAIL_NS", "TAIL_V2_NS", "agreement", "compare", "phase_stats", "phases", "within"]

TAIL_NS = 100_000_000
TAIL_V2_NS = 2_100_000_000


@dataclass(frozen=True)
class Phase:
    name: str
    t0: int
    t1: int


def phases(trace: Trace) -> list[Phase]:
    """Intervals between process starts and exits, named by what runs in them (empty intervals dropped)."""
    cuts = sorted({t for t0, t1, _ in trace.procs.values() for t in (t0, t1)})
    out = []
    for a, b in itertools.pairwise(cuts):
        running = [n for n, (t0, t1, _) in trace.procs.items() if t0 <= a and b <= t1]
        if running and b > a:
            out.append(Phase("+".join(running), a, b))
    return out


def _exact(trace: Trace, t0: int, t1: int) -> dict[str, int]:
    tot = {lv: sum(n for t, l2, n in trace.signals if l2 == lv and t0 <= t < t1) for lv in LEVELS}
    if trace.mode != "v1":
        return tot
    return {"low": tot["low"] - tot["medium"], "medium": tot["medium"] - tot["critical"], "critical": tot["critical"]}


def _top(signals: Sequence[tuple[int, str, int]], t0: int, t1: int) -> str:
    top = "none"
    for t, level, _ in signals:
        if t0 <= t < t1 and (top == "none" or LEVELS.index(level) > LEVELS.index(top)):
            top = level
    return top


def _at(samples: Sequence[tuple[int, float]], t: int) -> float:
    """A cumulative series at ``t``, linear between samples (flat outside them)."""
    if not samples:
        return 0.0
    times = [s[0] for s in samples]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (ta, va), (tb, vb) = samples[i - 1], samples[i]
    return va + (vb - va) * (t - ta) / max(tb - ta, 1)


def phase_stats(trace: Trace) -> dict[str, dict[str, Any]]:
    """Per phase: exact events per level, ms to the first event, top level per tenth, stall ms, counters."""
    out = {}
    all_phases = phases(trace)
    some = [(t, s / 1000) for t, s, _ in trace.psi]
    full = [(t, f / 1000) for t, _, f in trace.psi]
    keys = sorted({k for _, c in trace.counters for k in c})
    series = {k: [(t, float(c.get(k, 0))) for t, c in trace.counters] for k in keys}
    for i, ph in enumerate(all_phases):
        end = ph.t1 + (TAIL_NS if trace.mode == "v1" else TAIL_V2_NS) if i == len(all_phases) - 1 else ph.t1
        first = min((t for t, _, _ in trace.signals if ph.t0 <= t < end), default=None)
        edges = [ph.t0 + (ph.t1 - ph.t0) * k // 10 for k in range(11)]
        out[ph.name] = {
            "ms": (ph.t1 - ph.t0) / 1e6,
            "events": _exact(trace, ph.t0, end),
            "first_ms": None if first is None else (first - ph.t0) / 1e6,
            "tenths": [_top(trace.signals, edges[k], edges[k + 1]) for k in range(10)],
            "some_ms": _at(some, end) - _at(some, ph.t0) if some else None,
            "full_ms": _at(full, end) - _at(full, ph.t0) if full else None,
            "counters": {k: round(_at(v, end) - _at(v, ph.t0)) for k, v in series.items()},
        }
    return out


def agreement(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> float | None:
    """Share of phase-tenths (over the phases both have) whose top level is the same."""
    same = total = 0
    for name in a.keys() & b.keys():
        for x, y in zip(a[name]["tenths"], b[name]["tenths"], strict=True):
            same += x == y
            total += 1
    return same / total if total else None


def within(real: float, sim: float, factor: float = 1.5) -> bool:
    """``sim`` within ``factor`` of ``real`` (both 0 counts as within)."""
    return (real == sim == 0) or (min(real, sim) > 0 and max(real, sim) / min(real, sim) <= factor)


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def compare(w: Workload, real: list[Trace], sim: Trace) -> dict[str, Any]:
    """The figures of one workload: per phase, sim vs the real median (and range); agreements; OOM kills."""
    rs = [phase_stats(t) for t in real]
    ss = phase_stats(sim)
    names = [n for n in ss if all(n in r for r in rs)] or list(ss)
    rows = []
    for name in names:
        present = [r[name] for r in rs if name in r]
        row: dict[str, Any] = {"phase": name, "sim_ms": ss[name]["ms"], "real_ms": _median([p["ms"] for p in present])}
        for lv in LEVELS:
            vals = [p["events"][lv] for p in present]
            row[f"sim_{lv}"] = ss[name]["events"][lv]
            row[f"real_{lv}"] = _median(vals)
            row[f"real_{lv}_range"] = (min(vals), max(vals)) if vals else None
            row[f"within_1.5x_{lv}"] = within(row[f"real_{lv}"], row[f"sim_{lv}"])
        row["sim_first_ms"] = ss[name]["first_ms"]
        firsts = [p["first_ms"] for p in present if p["first_ms"] is not None]
        row["real_first_ms"] = _median(firsts) if firsts else None
        for key in ("some_ms", "full_ms"):
            vals = [p[key] for p in present if p[key] is not None]
            row[f"sim_{key}"] = ss[name][key]
            row[f"real_{key}"] = _median(vals) if vals else None
            row[f"real_{key}_range"] = (min(vals), max(vals)) if vals else None
        shared = sorted(ss[name]["counters"].keys() & set.intersection(*(set(p["counters"]) for p in present)))
        row["counters"] = {
            k: {"sim": ss[name]["counters"][k], "real": _median([p["counters"][k] for p in present]),
                "real_range": (min(p["counters"][k] for p in present), max(p["counters"][k] for p in present))}
            for k in shared
        }
        rows.append(row)
    sim_vs_real = [x for x in (agreement(ss, r) for r in rs) if x is not None]
    real_vs_real = [x for i, a in enumerate(rs) for b in rs[i + 1 :] if (x := agreement(a, b)) is not None]
    return {
        "workload": w.name,
        "description": w.description,
        "mode": real[0].mode if real else sim.mode,
        "phases": rows,
        "agreement_sim_vs_real": _median(sim_vs_real),
        "agreement_sim_vs_real_min": min(sim_vs_real, default=math.nan),
        "agreement_real_vs_real": _median(real_vs_real),
        "oom_kills_sim": sim.oom_kills,
        "oom_kills_real": [t.oom_kills for t in real],
        "sim_tenths": {n: ss[n]["tenths"] for n in names},
    }
