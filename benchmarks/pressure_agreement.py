"""Agreement with the kernel: the ``reclaim-index`` backend against the kernel's own ``memory.pressure_level``.

Each run creates a fresh v1 memory cgroup (64 MiB by default), registers the kernel's listeners on it (the
``memcg-v1`` backend: one eventfd per level) and, at the same time, several ``reclaim-index`` monitors
(flavour x sampling interval), then runs one workload inside the cgroup and compares what each reported:

* **per-second agreement**: the workload's time is cut into 1 s buckets from its start; in every bucket where
  the kernel reported something, does the monitor's highest level equal the kernel's highest level?
  (kernel critical == the RFC's OOM);
* **per-event agreement**: of the kernel's events (weighted by their eventfd counts), the share for which the
  monitor reported the *same level* within +-1 s; and the converse share of the monitor's events;
* **extra latency**: per run and level, the monitor's first event at that level minus the kernel's first
  (the kernel's events are read as they come: the reference).

Workloads (``memsched.live.pressure.load``): ``writer`` (rewrites 4x the limit of page cache for
``--seconds``), ``reread`` (re-reads a file of 3x the limit), ``anon`` (anonymous memory without swap until
the OOM kill), ``mixed`` (a writer, then the anonymous allocator). Needs root and the v1 memory controller;
leaves nothing behind. Usage::

    python benchmarks/pressure_agreement.py [--runs 5] [--seconds 3] [--limit-mib 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memsched.live.capabilities import capabilities
from memsched.live.cgroups import MemcgV1Child
from memsched.live.pressure import PressureOptions, PressureRecord, open_monitor
from memsched.live.pressure.load import anon_allocator, file_rereader, page_cache_writer
from memsched.uapi.pressure import VmpressureLevel

MIB = 1 << 20
KERNEL = "kernel"
LEVELS = list(VmpressureLevel)


@dataclass
class Event:
    t_ns: int
    level: VmpressureLevel
    weight: int = 1


@dataclass
class RunResult:
    workload: str
    events: dict[str, list[Event]] = field(default_factory=dict)
    duration_ns: int = 0


def monitors() -> dict[str, PressureOptions]:
    """The reclaim-index variants compared with the kernel."""
    out = {}
    for flavour in ("rfc2012", "mainline"):
        for interval in (10, 50, 100):
            if flavour == "mainline" and interval != 10:
                continue
            out[f"{flavour}@{interval}ms"] = PressureOptions(reclaim_flavour=flavour, reclaim_interval_ms=interval)
    return out


def _workload(name: str, tmp: Path, limit: int, seconds: float) -> list[list[str]]:
    cache = tmp / "cache"
    if name == "writer":
        loops = max(1, round(seconds / 0.6))
        return [page_cache_writer(cache, 4 * limit) for _ in range(loops)]
    if name == "reread":
        return [page_cache_writer(cache, 3 * limit), file_rereader(cache, max(1, round(seconds / 0.4)))]
    if name == "anon":
        return [anon_allocator(4 * limit)]
    if name == "mixed":
        return [page_cache_writer(cache, 4 * limit), anon_allocator(4 * limit)]
    raise SystemExit(f"unknown workload {name}")


def run_once(name: str, run: int, limit: int, seconds: float) -> RunResult:
    res = RunResult(name)
    lock = threading.Lock()

    def sink(key: str):  # type: ignore[no-untyped-def]
        def add(rec: PressureRecord) -> None:
            weight = int(str(rec.details.get("count", 1)))
            with lock:
                res.events.setdefault(key, []).append(Event(rec.monotonic_ns, rec.level, weight))

        return add

    with tempfile.TemporaryDirectory(prefix="memsched-agree-", dir="/var/tmp") as tmpdir:
        tmp = Path(tmpdir)
        with MemcgV1Child(f"memsched-agree-{os.getpid()}-{run}", limit_bytes=limit) as cg:
            spec = "/" + cg.path.name
            mons = [open_monitor(backend="memcg-v1", cgroup=spec, on_record=sink(KERNEL))]
            for key, opts in monitors().items():
                mons.append(open_monitor(backend="reclaim-index", cgroup=spec, options=opts, on_record=sink(key)))
            try:
                start = time.monotonic_ns()
                for argv in _workload(name, tmp, limit, seconds):
                    cg.run(argv).wait(120)
                time.sleep(0.5)  # let the last windows arrive
                res.duration_ns = time.monotonic_ns() - start
            finally:
                for m in mons:
                    m.close()
    for evs in res.events.values():
        for e in evs:
            e.t_ns -= start
    res.events.setdefault(KERNEL, [])
    return res


def _buckets(events: Sequence[Event]) -> dict[int, VmpressureLevel]:
    out: dict[int, VmpressureLevel] = {}
    for e in events:
        b = e.t_ns // 1_000_000_000
        out[b] = max(out.get(b, e.level), e.level)
    return out


def compare(kernel: Sequence[Event], mine: Sequence[Event]) -> dict[str, float | int | None]:
    """The three measures of the module docstring for one run."""
    kb, mb = _buckets(kernel), _buckets(mine)
    seconds = sorted(kb)
    sec_agree = sum(1 for b in seconds if mb.get(b) == kb[b])

    def matched(src: Sequence[Event], other: Sequence[Event]) -> tuple[int, int]:
        total = hit = 0
        for e in src:
            total += e.weight
            if any(o.level == e.level and abs(o.t_ns - e.t_ns) <= 1_000_000_000 for o in other):
                hit += e.weight
        return hit, total

    k_hit, k_total = matched(kernel, mine)
    m_hit, m_total = matched(mine, kernel)
    lat = {}
    for level in LEVELS:
        kf = min((e.t_ns for e in kernel if e.level == level), default=None)
        mf = min((e.t_ns for e in mine if e.level == level), default=None)
        lat[level.name.lower()] = None if kf is None or mf is None else (mf - kf) / 1e6
    first_k = min((e.t_ns for e in kernel), default=None)
    first_m = min((e.t_ns for e in mine), default=None)
    return {
        "seconds": len(seconds),
        "seconds_agree": sec_agree,
        "kernel_events": k_total,
        "kernel_events_matched": k_hit,
        "monitor_events": m_total,
        "monitor_events_matched": m_hit,
        "first_event_latency_ms": None if first_k is None or first_m is None else (first_m - first_k) / 1e6,
        **{f"latency_{k}_ms": v for k, v in lat.items()},
    }


def _pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:5.1f} %" if b else "    -  "


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return f"{statistics.median(values):7.1f} / {p90:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per workload")
    parser.add_argument("--seconds", type=float, default=3.0, help="approximate length of the writer/reread loads")
    parser.add_argument("--limit-mib", type=int, default=64, help="memory limit of the cgroup")
    parser.add_argument("--workloads", default="writer,reread,anon,mixed")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    args = parser.parse_args()
    capabilities().require("memcg_v1_pressure_level")
    limit = args.limit_mib * MIB
    results: dict[str, dict[str, list[dict[str, float | int | None]]]] = {}
    t0 = time.perf_counter()
    for name in args.workloads.split(","):
        for run in range(args.runs):
            res = run_once(name, run, limit, args.seconds)
            for key in monitors():
                results.setdefault(name, {}).setdefault(key, []).append(
                    compare(res.events[KERNEL], res.events.get(key, []))
                )
            print(
                f"{name} run {run}: kernel {sum(e.weight for e in res.events[KERNEL])} events "
                + " ".join(
                    f"{lv.name.lower()}={sum(e.weight for e in res.events[KERNEL] if e.level == lv)}" for lv in LEVELS
                ),
                file=sys.stderr,
            )
    elapsed = time.perf_counter() - t0
    summary: dict[str, dict[str, int]] = {}
    for key in monitors():
        rows = [r for per in results.values() for r in per[key]]
        summary[key] = {
            "seconds_agree": sum(int(r["seconds_agree"] or 0) for r in rows),
            "seconds": sum(int(r["seconds"] or 0) for r in rows),
            "kernel_events_matched": sum(int(r["kernel_events_matched"] or 0) for r in rows),
            "kernel_events": sum(int(r["kernel_events"] or 0) for r in rows),
            "monitor_events_matched": sum(int(r["monitor_events_matched"] or 0) for r in rows),
            "monitor_events": sum(int(r["monitor_events"] or 0) for r in rows),
        }
    if args.json:
        json.dump({"runs": results, "summary": summary, "elapsed_s": elapsed}, sys.stdout, sort_keys=True, indent=1)
        print()
        return
    print(f"limit {args.limit_mib} MiB, {args.runs} runs per workload, {elapsed:.0f} s")
    header = (
        f"{'workload':8} {'monitor':16} {'same top level/s':>17} {'kernel ev. matched':>19} {'monitor ev. matched':>20}"
    )
    header += "   first-event / low / medium / oom extra latency ms (median / p90)"
    print(header)
    for name, per in results.items():
        for key, rows in per.items():
            sa = sum(int(r["seconds_agree"] or 0) for r in rows)
            s = sum(int(r["seconds"] or 0) for r in rows)
            kh = sum(int(r["kernel_events_matched"] or 0) for r in rows)
            kt = sum(int(r["kernel_events"] or 0) for r in rows)
            mh = sum(int(r["monitor_events_matched"] or 0) for r in rows)
            mt = sum(int(r["monitor_events"] or 0) for r in rows)
            lats = []
            for col in ("first_event_latency_ms", "latency_low_ms", "latency_medium_ms", "latency_oom_ms"):
                lats.append(_ms([float(r[col]) for r in rows if r[col] is not None]))  # type: ignore[arg-type]
            print(
                f"{name:8} {key:16} {sa:3}/{s:<3} {_pct(sa, s)} {kh:6}/{kt:<6} {_pct(kh, kt)} "
                f"{mh:6}/{mt:<6} {_pct(mh, mt)}   " + " | ".join(lats)
            )
    print("overall")
    for key, tot in summary.items():
        print(
            f"  {key:16} same top level in {_pct(tot['seconds_agree'], tot['seconds'])} of seconds "
            f"({tot['seconds_agree']}/{tot['seconds']}); kernel events matched within 1 s "
            f"{_pct(tot['kernel_events_matched'], tot['kernel_events'])}; "
            f"monitor events matched {_pct(tot['monitor_events_matched'], tot['monitor_events'])}"
        )


if __name__ == "__main__":
    main()
