"""Speed of the exact scheduler: 10 simulated seconds of 16 DL tasks on 4 CPUs, against SimSo and older code.

Run: ``python benchmarks/rt_sim_speed.py [--simso /path/to/simso-venv/bin/python] [--compare-to REV]``

The task set: 16 SCHED_DEADLINE tasks, UUniFast-Discard utilisations summing to 3.2, log-uniform periods in
10..100 ms (1 ms granularity), implicit deadlines, seed 1; ideal machine (no switch costs), HZ=1000.

Every side runs in its own interpreter, one after the other, ``--rounds`` times (this machine is noisy: the
sides are interleaved so that load hits them alike), and each reports the CPU time (``time.process_time``)
of building its model and simulating; the ratios are of the best rounds and of the medians, measured in
this one run.

* ours: this checkout's ``memsched`` (the one this interpreter imports);
* ``--simso PY``: the same set in SimSo 0.8.5's global EDF (``simso.schedulers.EDF``), run by ``PY``, the
  interpreter of a throwaway venv (SimSo needs SimPy 2.3.1; keep it out of this project's environment):
  ``python3.11 -m venv /tmp/simso-venv && /tmp/simso-venv/bin/pip install simso==0.8.5``;
* ``--compare-to REV``: the code of git revision ``REV`` (a temporary ``git worktree add`` of it, run with
  ``PYTHONPATH=<worktree>/src``), removed afterwards;
* ``--mypyc``: this checkout compiled with mypyc (``MEMSCHED_MYPYC=1 python setup.py build_ext --inplace`` in a
  temporary copy of ``src/``; needs mypy >= 1.10, setuptools >= 77 and a C compiler), whose counts must equal
  the pure-Python side's.

``--profile`` prints a cProfile of our side (by internal time) instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
c0 = time.process_time()
model = Model(cfg)
model.run_model()
cpu = time.process_time() - c0
misses = sum(1 for t in model.results.tasks.values() for j in t.jobs if j.exceeded_deadline)
jobs = sum(len(t.jobs) for t in model.results.tasks.values())
print(json.dumps({"cpu_s": cpu, "jobs": jobs, "misses": misses}))
"""

#: Our side, as a script, so that an older revision's code runs the very same driver (these imports have
#: been stable since the exact scheduler landed).
OURS_SCRIPT = r"""
import json, sys, time
import memsched
import memsched.sim.sched.core
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.sched import SchedConfig
from memsched.workloads.rt import spawn_dl_set
pairs = json.loads(sys.argv[1]); dur_ns = int(sys.argv[2])
c0 = time.process_time()
m = RtMachine(4, SchedConfig.ideal())
tasks = spawn_dl_set(m, pairs)
m.run(dur_ns)
cpu = time.process_time() - c0
print(json.dumps({
    "cpu_s": cpu,
    "events": m.engine.events_processed,
    "jobs": sum(t.stats.jobs for t in tasks),
    "misses": sum(t.stats.misses for t in tasks),
    "context_switches": sum(t.nvcsw + t.nivcsw for t in tasks),
    "memsched": memsched.__file__,
    "compiled": not memsched.sim.sched.core.__file__.endswith(".py"),
}))
"""


def _side(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        sys.exit(f"rt_sim_speed: {cmd[0]} failed:\n{res.stderr.strip()}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpus = [r["cpu_s"] for r in runs]
    out = dict(runs[0])
    del out["cpu_s"]
    out.update(cpu_s_best=min(cpus), cpu_s_median=statistics.median(cpus), cpu_s_all=cpus)
    return out


def _ratio(slow: dict[str, Any], fast: dict[str, Any]) -> dict[str, float]:
    return {
        "best": round(slow["cpu_s_best"] / fast["cpu_s_best"], 2),
        "median": round(slow["cpu_s_median"] / fast["cpu_s_median"], 2),
    }


def _build_mypyc(tmp: Path) -> dict[str, str]:
    """Copy ``src/`` and ``setup.py`` to ``tmp`` and compile them there; the environment that imports it."""
    repo = Path(__file__).resolve().parent.parent
    dst = tmp / "mypyc"
    shutil.copytree(repo / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copytree(repo / "build_backend", dst / "build_backend", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(repo / f, dst / f)
    env = dict(os.environ, MEMSCHED_MYPYC="1")
    res = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        check=False,
        cwd=dst,
        capture_output=True,
        text=True,
        env=env,
    )
    if res.returncode != 0:
        sys.exit(f"rt_sim_speed: the mypyc build failed:\n{res.stderr.strip()[-2000:]}")
    return dict(os.environ, PYTHONPATH=str(dst / "src"))


def _profile(pairs: list[tuple[int, int]], duration_ns: int) -> None:
    from memsched.sim.sched.machine import RtMachine
    from memsched.sim.sched.sched import SchedConfig
    from memsched.workloads.rt import spawn_dl_set

    prof = cProfile.Profile()
    prof.enable()
    m = RtMachine(4, SchedConfig.ideal())
    spawn_dl_set(m, pairs)
    m.run(duration_ns)
    prof.disable()
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds (default 10)")
    ap.add_argument("--simso", metavar="PY", help="python interpreter of a venv with simso==0.8.5 installed")
    ap.add_argument("--compare-to", metavar="REV", help="also time git revision REV's code, side by side")
    ap.add_argument("--mypyc", action="store_true", help="also time this checkout compiled with mypyc (setup.py)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side (default 3)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of our side and stop")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    from memsched.workloads.rt import DlSetConfig, dl_taskset

    pairs = dl_taskset(DlSetConfig(tasks=16, utilisation=3.2, set_seed=1))
    dur_ns = int(args.seconds * 1e9)
    if args.profile:
        _profile(pairs, dur_ns)
        return
    argv = [json.dumps(pairs)]
    with tempfile.TemporaryDirectory(prefix="rt_sim_speed-") as tmp:
        sides: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "memsched": ([sys.executable, "-c", OURS_SCRIPT, *argv, str(dur_ns)], None)
        }
        old_wt = None
        if args.compare_to:
            repo = Path(__file__).resolve().parent.parent
            old_wt = Path(tmp) / "old"
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(old_wt), args.compare_to],
                check=True,
            )
            env = dict(os.environ, PYTHONPATH=str(old_wt / "src"))
            sides["old"] = ([sys.executable, "-c", OURS_SCRIPT, *argv, str(dur_ns)], env)
        if args.mypyc:
            sides["mypyc"] = ([sys.executable, "-c", OURS_SCRIPT, *argv, str(dur_ns)], _build_mypyc(Path(tmp)))
        if args.simso:
            sides["simso"] = ([args.simso, "-c", SIMSO_SCRIPT, *argv, str(int(args.seconds * 1000))], None)
        try:
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
            for _ in range(args.rounds):
                for name, (cmd, env_) in sides.items():
                    runs[name].append(_side(cmd, env_))
        finally:
            if old_wt is not None:
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(Path(__file__).resolve().parent.parent),
                        "worktree",
                        "remove",
                        "--force",
                        str(old_wt),
                    ],
                    check=False,
                )
    out: dict[str, Any] = {"task_set": pairs, "simulated_s": args.seconds, "rounds": args.rounds}
    for name, rs in runs.items():
        out[name] = _summary(rs)
    if "old" in out:
        if out["old"]["memsched"] == out["memsched"]["memsched"]:
            sys.exit("rt_sim_speed: the old revision's run imported this checkout's memsched")
        out["old"]["revision"] = args.compare_to
        out["speedup_vs_old"] = _ratio(out["old"], out["memsched"])
    if "mypyc" in out:
        counts = ("events", "jobs", "misses", "context_switches")
        if any(out["mypyc"][k] != out["memsched"][k] for k in counts):
            sys.exit(f"rt_sim_speed: the compiled build's counts differ: {out['mypyc']} vs {out['memsched']}")
        out["speedup_mypyc_vs_pure"] = _ratio(out["memsched"], out["mypyc"])
    if "simso" in out:
        out["speedup_vs_simso"] = _ratio(out["simso"], out["memsched"])
        for k in ("old", "mypyc"):
            if k in out:
                out[f"{k}_speedup_vs_simso"] = _ratio(out["simso"], out[k])
    text = json.dumps(out, indent=1)
    print(text.replace(json.dumps(pairs, indent=1).replace("\n", "\n "), json.dumps(pairs)))


if __name__ == "__main__":
    main()
