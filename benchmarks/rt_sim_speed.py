"""Speed of the exact scheduler: events per wall second, and 10 simulated seconds of 16 DL tasks on 4 CPUs.

Run: ``python benchmarks/rt_sim_speed.py [--simso /path/to/simso-venv/bin/python]``

The task set: 16 SCHED_DEADLINE tasks, UUniFast-Discard utilisations summing to 3.2, log-uniform periods in
10..100 ms (1 ms granularity), implicit deadlines, seed 1; ideal machine (no switch costs), HZ=1000.
With ``--simso`` the same set runs in SimSo's global EDF (``simso.schedulers.EDF``) in a separate
interpreter (SimSo needs SimPy 2.3.1 and Python-2-era code; keep it out of this project's environment).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import time

from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.sched import SchedConfig
from memsched.workloads.rt import DlSetConfig, dl_taskset, spawn_dl_set

SIMSO_SCRIPT = r"""
import json, sys, time
from simso.core import Model
from simso.configuration import Configuration
pairs = json.loads(sys.argv[1]); dur_ms = int(sys.argv[2])
cfg = Configuration()
cfg.cycles_per_ms = 1000  # 1 cycle = 1 us
cfg.duration = dur_ms * cfg.cycles_per_ms
cfg.etm = "wcet"
for i, (c_ns, p_ns) in enumerate(pairs):
    cfg.add_task(name="T%d" % i, identifier=i + 1, period=p_ns / 1e6, activation_date=0,
                 wcet=c_ns / 1e6, deadline=p_ns / 1e6)
for c in range(4):
    cfg.add_processor(name="CPU%d" % c, identifier=c + 1)
cfg.scheduler_info.clas = "simso.schedulers.EDF"
cfg.check_all()
t0 = time.perf_counter()
model = Model(cfg)
model.run_model()
wall = time.perf_counter() - t0
misses = sum(1 for t in model.results.tasks.values() for j in t.jobs if j.exceeded_deadline)
jobs = sum(len(t.jobs) for t in model.results.tasks.values())
print(json.dumps({"wall_s": wall, "jobs": jobs, "misses": misses}))
"""


def run_memsched(pairs: list[tuple[int, int]], duration_ns: int, profile: bool) -> dict[str, float]:
    m = RtMachine(4, SchedConfig.ideal())
    tasks = spawn_dl_set(m, pairs)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    m.run(duration_ns)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(12)
    ev = m.engine.events_processed
    return {
        "wall_s": wall,
        "events": ev,
        "events_per_s": ev / wall,
        "jobs": sum(t.stats.jobs for t in tasks),
        "misses": sum(t.stats.misses for t in tasks),
        "context_switches": sum(t.nvcsw + t.nivcsw for t in tasks),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--simso", help="python interpreter of a venv with simso installed")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    pairs = dl_taskset(DlSetConfig(tasks=16, utilisation=3.2, set_seed=1))
    dur = int(args.seconds * 1e9)
    out = {"task_set": pairs, "simulated_s": args.seconds, "memsched": run_memsched(pairs, dur, args.profile)}
    if args.simso:
        res = subprocess.run(
            [args.simso, "-c", SIMSO_SCRIPT, json.dumps(pairs), str(int(args.seconds * 1000))],
            capture_output=True,
            text=True,
            check=True,
        )
        out["simso"] = json.loads(res.stdout.strip().splitlines()[-1])
        out["speedup_vs_simso"] = out["simso"]["wall_s"] / out["memsched"]["wall_s"]
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
