"""Why a real run of a pressure_vs_kernel workload hears 1 or ~300 critical events at an OOM kill: the kernel's
own trace events, around real runs of one workload (v1 memcg, as ``pressure_vs_kernel.py --cgroup v1``).

Per run it prints, from tracefs: the listener's events per level (exact, as the comparison counts them), the
memcg reclaim rounds of the OOM-killed task (``vmscan:mm_vmscan_memcg_reclaim_begin``), how long its charge
loop ran from its first reclaim round to its exit, how often ``vmpressure_work_fn`` was queued and run
(``workqueue:workqueue_queue_work`` / ``workqueue_execute_start``), how many of those runs preempted the
reclaimer at once (a ``sched_switch`` from it, ``R+``, straight to the kworker, before the victim exited), the
writeback throttles (``vmscan:mm_vmscan_throttled``) with the time they slept, the pages reclaim met under
writeback and the batches that freed nothing (``vmscan:mm_vmscan_lru_shrink_inactive``), how many other tasks were
switched out while still runnable on the victim's CPU in the 50 ms before its first reclaim round (contention
there; on 5 Dec 2026 it did not separate the two outcomes: 13-15 before merged runs, 9-25 before per-window
ones). ``--save-trace DIR`` keeps each run's raw trace. Tracing itself slows the reclaimers down (the issue
workload's writer hears more critical windows while traced).

The kernel facts behind the reading (6.18): ``schedule_work()`` queues the work on the reclaimer's CPU and
wakes its kworker; with ``CONFIG_PREEMPT_NONE`` the reclaimer gives the CPU up only at ``cond_resched()`` or
when it sleeps, and only if ``need_resched`` was set. ``check_preempt_wakeup_fair()`` sets it at the wakeup when
``__pick_eevdf()`` picks the kworker: an eligible current task inside its protected slice (``RUN_TO_PARITY``,
``protect_slice()``: ``vruntime < vprot``) is kept; an ineligible one is not protected (kernel/sched/fair.c).
Kept: the windows of the whole charge loop merge into one or two work runs (the tick's ``update_curr()``
ends the protection); not kept: the kworker runs after every window.

Needs root, the v1 memory controller and tracefs (``/sys/kernel/tracing``, mounted on a temporary directory
if it is not there and unmounted afterwards); the tracing state it touches (the events it enables,
``tracing_on``, ``buffer_size_kb``) is put back. Real runs are short and sequential. Usage::

    python benchmarks/pressure_vs_kernel_trace.py [--workload anon] [--runs 4] [--save-trace DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pressure_vs_kernel import WORKLOADS

from memsched.errors import ConfigError
from memsched.workloads.pressure.vskernel import phase_stats, pick_mode, run_real

EVENTS = (
    "workqueue/workqueue_execute_start",
    "workqueue/workqueue_queue_work",
    "vmscan/mm_vmscan_memcg_reclaim_begin",
    "vmscan/mm_vmscan_throttled",
    "oom/mark_victim",
    "sched/sched_switch",
    "sched/sched_process_exit",
    "vmscan/mm_vmscan_lru_shrink_inactive",
)
_LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>[\d.]+):\s+(?P<ev>\w+):\s?(?P<rest>.*)$"
)


@contextlib.contextmanager
def tracefs() -> Iterator[Path]:
    """The tracefs directory, mounted on a temporary directory when /sys/kernel/tracing is empty."""
    sys_dir = Path("/sys/kernel/tracing")
    if (sys_dir / "trace").exists():
        yield sys_dir
        return
    with tempfile.TemporaryDirectory(prefix="memsched-tracefs-") as tmp:
        subprocess.run(["mount", "-t", "tracefs", "nodev", tmp], check=True)
        try:
            yield Path(tmp)
        finally:
            subprocess.run(["umount", tmp], check=True)


@contextlib.contextmanager
def tracing(t: Path) -> Iterator[None]:
    """Enable :data:`EVENTS` with an empty 16 MiB-per-CPU buffer; put everything back afterwards."""
    saved = {f: (t / f).read_text().split()[0] for f in ("tracing_on", "buffer_size_kb")}
    enabled = {e: (t / "events" / e / "enable").read_text().strip() for e in EVENTS}
    try:
        (t / "buffer_size_kb").write_text("16384")
        (t / "trace").write_text("")
        for e in EVENTS:
            (t / "events" / e / "enable").write_text("1")
        (t / "tracing_on").write_text("1")
        yield
    finally:
        (t / "tracing_on").write_text("0")
        for e, v in enabled.items():
            (t / "events" / e / "enable").write_text(v)
        (t / "trace").write_text("")
        for f, v in saved.items():
            (t / f).write_text(v)


def analyse(text: str) -> dict[str, float]:
    """The figures of one run's trace (see the module's docstring); the victim is the OOM-killed task."""
    lines = [m.groupdict() for m in map(_LINE.match, text.splitlines()) if m]
    victim = next((re.search(r"pid=(\d+)", d["rest"]).group(1) for d in lines if d["ev"] == "mark_victim"), None)  # type: ignore[union-attr]
    out: dict[str, float] = {"reclaim_rounds": 0, "queued": 0, "ran": 0, "preempted_at_once": 0, "throttles": 0,
                             "throttled_ms": 0.0, "loop_ms": float("nan"), "under_writeback": 0,
                             "fruitless_batches": 0}
    first = exit_ts = None
    last_queue_by: dict[str, str] = {}
    for i, d in enumerate(lines):
        ev, rest = d["ev"], d["rest"]
        if ev == "mm_vmscan_memcg_reclaim_begin" and d["pid"] == victim:
            out["reclaim_rounds"] += 1
            first = first if first is not None else float(d["ts"])
        elif ev == "sched_process_exit" and f"pid={victim} " in rest + " ":
            exit_ts = float(d["ts"])
        elif ev == "workqueue_queue_work" and "vmpressure_work_fn" in rest:
            out["queued"] += 1
            last_queue_by[d["cpu"]] = d["pid"]
        elif ev == "workqueue_execute_start" and "vmpressure_work_fn" in rest:
            out["ran"] += 1
            prev = next((p for p in reversed(lines[max(0, i - 3) : i]) if p["ev"] == "sched_switch"), None)
            by_reclaimer = prev is not None and prev["pid"] == last_queue_by.get(d["cpu"])
            if by_reclaimer and exit_ts is None and prev is not None and "prev_state=R+" in prev["rest"]:
                out["preempted_at_once"] += 1
        elif ev == "mm_vmscan_lru_shrink_inactive":  # pages met under writeback; batches that freed nothing
            m = re.search(r"nr_reclaimed=(\d+) .*nr_writeback=(\d+)", rest)
            if m:
                out["under_writeback"] += int(m.group(2))
                out["fruitless_batches"] += int(m.group(1)) == 0
        elif ev == "mm_vmscan_throttled":
            out["throttles"] += 1
            m = re.search(r"usect_delayed=(\d+)", rest)
            out["throttled_ms"] += int(m.group(1)) / 1000 if m else 0.0
    if first is not None and exit_ts is not None:
        out["loop_ms"] = (exit_ts - first) * 1000
        # Contention on the victim's CPU just before: other tasks switched out while still runnable (R, R+).
        cpu = next((d["cpu"] for d in lines if d["ev"] == "mm_vmscan_memcg_reclaim_begin" and d["pid"] == victim), None)
        out["others_preempted_before"] = sum(
            1
            for d in lines
            if d["ev"] == "sched_switch" and d["cpu"] == cpu and first - 0.05 <= float(d["ts"]) < first
            and d["pid"] != victim and re.search(r"prev_state=R\+? ", d["rest"])
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workload", default="anon", choices=sorted(WORKLOADS))
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--save-trace", metavar="DIR", help="also write each run's raw trace to DIR/run-N.txt")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50:
        print(f"pressure_vs_kernel_trace: --runs: must be 1..50, not {args.runs}", file=sys.stderr)
        raise SystemExit(2)
    try:
        pick_mode("v1")
    except ConfigError as e:
        print(f"pressure_vs_kernel_trace: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if os.geteuid() != 0:
        print("pressure_vs_kernel_trace: needs root (tracefs, cgroups)", file=sys.stderr)
        raise SystemExit(2)
    w = WORKLOADS[args.workload]
    with tracefs() as t:
        for run in range(args.runs):
            with tracing(t):
                trace = run_real(w, 200 + run, args.timeout, "v1")
                (t / "tracing_on").write_text("0")
                text = (t / "trace").read_text()
            if args.save_trace:
                Path(args.save_trace).mkdir(parents=True, exist_ok=True)
                (Path(args.save_trace) / f"run-{run}.txt").write_text(text)
            events = {name: s["events"] for name, s in phase_stats(trace).items()}
            fig = analyse(text)
            print(f"run {run}: events {events}; victim's reclaim rounds {fig['reclaim_rounds']:.0f}, charge loop "
                  f"{fig['loop_ms']:.1f} ms; vmpressure work queued {fig['queued']:.0f}, ran {fig['ran']:.0f} "
                  f"({fig['preempted_at_once']:.0f} preempting the reclaimer at once); writeback throttles "
                  f"{fig['throttles']:.0f} ({fig['throttled_ms']:.0f} ms asleep); pages met under writeback "
                  f"{fig['under_writeback']:.0f} ({fig['fruitless_batches']:.0f} batches freed nothing); other "
                  f"tasks preempted on its CPU "
                  f"in the 50 ms before {fig.get('others_preempted_before', float('nan')):.0f}", flush=True)


if __name__ == "__main__":
    main()
