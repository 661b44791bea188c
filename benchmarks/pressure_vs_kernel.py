"""The simulated memory manager held against this machine's kernel, on the same workloads.

Each workload is described once (:data:`WORKLOADS`): a memory cgroup with a limit (and children), and
processes — a page-cache *writer*, a *reader* of a file another process wrote, an anonymous *grower* — each
starting at a time or when another one exits. It is run for real and in the simulator
(:mod:`memsched.workloads.pressure.vskernel` has the machinery):

* ``--cgroup v1``: a fresh v1 memcg, one vmpressure eventfd per level on ``memory.pressure_level`` (default
  mode); simulated under the ``mainline`` design with a listener per level;
* ``--cgroup v2``: a fresh v2 cgroup, PSI triggers (``some``/``full`` 100 ms in 2 s) on its
  ``memory.pressure``, its stall totals and ``memory.events`` sampled every 10 ms, ``memory.max`` for the
  limit; on a hybrid system without the v2 memory controller a v1 memcg twin sets the limit and gives the
  counters. Simulated under the ``psi`` design with the same triggers and samples;
* ``--cgroup auto`` (default): v2 where the v2 hierarchy has the memory controller, else v1.

Per *phase* (the intervals between process starts and exits) it prints the events at each exact level, the
time to the first event, the share of phase-tenths whose top level agrees between simulator and kernel (and
between the real runs themselves), the OOM kills; with v2 also the PSI stall (ms) and the memcg counters per
phase. Needs root; the real runs are short (a few seconds each), sequential and bounded by ``--timeout``.
Usage::

    python benchmarks/pressure_vs_kernel.py [--runs 5] [--workloads issue,anon,duo] [--cgroup v1|v2|auto]
        [--json] [--save-real FILE | --real FILE] [--disk-mib-s WRITE READ] [--sysctl KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from memsched.errors import ConfigError, MemschedError
from memsched.units import NSEC_PER_SEC
from memsched.workloads.pressure.vskernel import (
    CGROUP_MODES,
    DISK_METHOD,
    LEVELS,
    Proc,
    Trace,
    Workload,
    compare,
    kernel_config,
    measure_disk_mib_s,
    pick_mode,
    run_real,
    run_sim,
)

WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "issue",
            "64 MiB memcg: dd writes 400 MiB through the page cache, cat reads it back, then a grower adds "
            "1 MiB every 4 ms until the memcg OOM killer takes it",
            64,
            (
                Proc("writer", "writer", size_mib=400),
                Proc("reader", "reader", file="writer", size_mib=400, after="writer"),
                Proc("grower", "grower", rate_mib_s=256, after="reader"),
            ),
        ),
        Workload(
            "anon",
            "64 MiB memcg, no page cache: a grower adds 1 MiB every 16 ms until it is killed",
            64,
            (Proc("grower", "grower", rate_mib_s=64),),
        ),
        Workload(
            "duo",
            "two memcgs under a 96 MiB parent: dd writes 400 MiB in one while a grower takes 48 MiB in the "
            "other (256 MiB/s) and holds it for 0.5 s",
            96,
            (
                Proc("writer", "writer", memcg="a", size_mib=400),
                Proc("grower", "grower", memcg="b", size_mib=48, rate_mib_s=256, hold_s=0.5),
            ),
            children=(("a", None), ("b", None)),
        ),
    )
}


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _fmt(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def _pair(sim: float | None, real: float | None, rng: Sequence[float] | None, mark: bool) -> str:
    span = f" ({_fmt(rng[0])}-{_fmt(rng[1])})" if rng else ""
    return f"{_fmt(sim):>5} / {_fmt(real):>5}{span}{'' if mark else ' *'}"


def print_table(res: dict[str, Any]) -> None:
    v2 = res["mode"] != "v1"
    what = "PSI trigger events (medium = some, critical = full)" if v2 else "vmpressure events"
    print(f"\n{res['workload']} [{res['mode']}]: {res['description']}\n  {what}, sim / real median (range)")
    print(f"{'phase':14} {'ms sim/real':>13} " + " ".join(f"{lv:>26}" for lv in LEVELS) + f" {'1st ms sim/real':>16}")
    for row in res["phases"]:
        cells = [
            _pair(row[f"sim_{lv}"], row[f"real_{lv}"], row[f"real_{lv}_range"], row[f"within_1.5x_{lv}"]).rjust(26)
            for lv in LEVELS
        ]
        print(
            f"{row['phase'][:14]:14} {_fmt(row['sim_ms']):>6}/{_fmt(row['real_ms']):<6} " + " ".join(cells)
            + f" {_fmt(row['sim_first_ms']):>7}/{_fmt(row['real_first_ms']):<8}"
        )
        if row["real_some_ms"] is not None or row["counters"]:
            stall = [
                f"{key[:-3]} {_pair(row[f'sim_{key}'], row[f'real_{key}'], row[f'real_{key}_range'], True)} ms"
                for key in ("some_ms", "full_ms")
                if row[f"real_{key}"] is not None
            ]
            counts = [
                f"{k} {_pair(c['sim'], c['real'], c['real_range'], True)}" for k, c in row["counters"].items()
            ]
            print(f"{'':14}   stall " + ", ".join(stall) + ("; counters " if counts else "") + ", ".join(counts))
    print(
        f"phase-tenth agreement: sim vs real {_fmt(res['agreement_sim_vs_real'] * 100)} % "
        f"(min {_fmt(res['agreement_sim_vs_real_min'] * 100)} %), real vs real "
        f"{_fmt(res['agreement_real_vs_real'] * 100)} %; OOM kills sim {res['oom_kills_sim']}, "
        f"real {res['oom_kills_real']}   (* = outside x1.5 of the real median)"
    )


def _fail(msg: str) -> NoReturn:
    print(f"pressure_vs_kernel: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="real runs per workload")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--cgroup", default="auto", help="v1, v2 or auto (see above)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a real run may take")
    parser.add_argument("--real", type=Path, help="compare with real runs saved by --save-real (no real runs)")
    parser.add_argument("--save-real", type=Path, help="save the real runs (disk and kernel figures too) as JSON")
    parser.add_argument("--disk-mib-s", type=float, nargs=2, metavar=("WRITE", "READ"),
                        help="the disk's bandwidths instead of measuring them (or of the saved ones)")
    parser.add_argument("--sysctl", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the simulated scenario's [sysctl] table (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    args = parser.parse_args(argv)
    args.names = args.workloads.split(",")
    for n in args.names:
        if n not in WORKLOADS:
            _fail(f"--workloads: unknown workload {n!r} (known: {', '.join(WORKLOADS)})")
    if args.runs < 1:
        _fail(f"--runs: must be >= 1, not {args.runs}")
    if args.cgroup not in CGROUP_MODES:
        _fail(f"--cgroup: must be one of {', '.join(CGROUP_MODES)}, not {args.cgroup!r}")
    args.sysctl_map = {}
    for item in args.sysctl:
        key, eq, value = item.partition("=")
        if not eq or not key:
            _fail(f"--sysctl: {item!r} is not KEY=VALUE")
        args.sysctl_map[key] = value
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    names = args.names
    if args.real is not None:
        try:
            saved = json.loads(args.real.read_text())
            disk = tuple(float(x) for x in saved["disk_mib_s"])
            disk_how = str(saved.get("disk_method", "O_DIRECT"))
            kernel = saved["kernel"]
            reals = {n: [Trace.from_json(d) for d in saved["runs"][n]] for n in names}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            _fail(f"--real {args.real}: not a file saved by --save-real with {','.join(names)} ({e!r})")
        if args.disk_mib_s:
            disk, disk_how = tuple(args.disk_mib_s), "given"
    else:
        try:
            mode = pick_mode(args.cgroup)
        except ConfigError as e:
            _fail(str(e))
        kernel = kernel_config()
        disk = tuple(args.disk_mib_s) if args.disk_mib_s else measure_disk_mib_s()
        disk_how = "given" if args.disk_mib_s else DISK_METHOD
        reals = {}
        for n in names:
            reals[n] = []
            for run in range(args.runs):
                reals[n].append(run_real(WORKLOADS[n], run, args.timeout, mode))
                print(f"{n} run {run} ({reals[n][-1].mode}): done", file=sys.stderr)
        if args.save_real is not None:
            runs = {n: [asdict(t) for t in ts] for n, ts in reals.items()}
            doc = {"disk_mib_s": disk, "disk_method": disk_how, "kernel": kernel, "runs": runs}
            args.save_real.write_text(json.dumps(doc))
    results = []
    for n in names:
        w, real = WORKLOADS[n], reals[n]
        rates = {p.name: _median([t.rates(w)[p.name] for t in real]) for p in w.procs if p.size_mib is not None}
        span = _median([max(t1 for _, t1, _ in t.procs.values()) for t in real]) / NSEC_PER_SEC
        design = "mainline" if real[0].mode == "v1" else "psi"
        duration = 2 * span + 1.0 if design == "mainline" else max(2 * span + 1.0, span + 2.5)  # + a PSI window
        try:
            sim = run_sim(w, rates, (float(disk[0]), float(disk[1])), duration, kernel, args.sysctl_map, design=design)
        except MemschedError as e:
            _fail(f"--sysctl: {e}")
        results.append(compare(w, real, sim) | {"rates_mib_s": rates, "disk_mib_s": list(disk), "kernel": kernel})
    if args.json:
        json.dump(results, sys.stdout, indent=1, sort_keys=True)
        print()
        return
    rule = "the reclaimer's sleeps and by the kworker's EEVDF lag, else at the reclaimer's deadline tick"
    print(
        f"kernel {kernel['release']} (preempt={kernel['preempt']}, HZ={kernel['hz']}; simulated as "
        f"{kernel['sim_kernel']}, vmpressure work at {rule}); disk {disk[0]:.0f} MiB/s write, {disk[1]:.0f} "
        f"MiB/s read ({disk_how}); {len(reals[names[0]])} real runs per workload"
        + (f"; sysctl {args.sysctl_map}" if args.sysctl_map else "")
    )
    for res in results:
        print_table(res)


if __name__ == "__main__":
    main()
