"""Simulated seconds per wall-clock second for the autonuma-benchmark workloads, and old against new code.

    python benchmarks/sim_speed.py [--policies none,...] [--workloads numa01,...] [--topologies ...] [--json]
    python benchmarks/sim_speed.py --compare-to REV [--repeat 3] [--policies all] [--topologies ...] [--no-thp]
    python benchmarks/sim_speed.py --compare-to REV --whole [-- compare arguments...]
    python benchmarks/sim_speed.py --compare-to REV --whole --presets

Without ``--compare-to``: runs each (topology, workload, policy) once in this process, timing only the
simulation, and prints the elapsed simulated time, the wall time and their ratio.

With ``--compare-to REV``: checks REV out into a temporary git worktree and runs every cell in both the
old code (REV) and this tree's, each in a fresh interpreter, alternating old and new ``--repeat`` times, and
prints the median CPU seconds of each and their ratio (new / old). Each tree's numba kernels, where it has
them, are compiled first, untimed. The two sides run one after the other in
the same minutes, so machine noise touches both alike; on a shared machine read the ratios, not the absolute
times. ``--whole`` times whole ``memsched compare`` commands instead (default: ``memsched compare`` on its
defaults), wall time and CPU time of the command and its workers. ``--presets`` adds ``-t`` with the three
presets of issue 17's second target (westmere-ex-4n48, opteron-4n32, x86-8n64): one command where the tree's
``compare`` takes a list of topologies, else the three commands one after the other, their times summed.

Figures are machine-dependent; nothing asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_WORKLOADS = "numa01,numa01_THREAD_ALLOC,numa02,numa02_SMT"
HERE = Path(__file__).resolve().parent.parent

#: Runs in a fresh interpreter with one tree's ``src`` first on the path: times each cell's simulation.
CHILD = r"""
import json, sys, time
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec
from memsched.workloads.numa import NumaOptions
out = []
opts = None if sys.argv[2] == "thp" else NumaOptions(thp=False)
for topo, wl, pol, seed in json.loads(sys.argv[1]):
    t0, c0 = time.perf_counter(), time.process_time()
    rec = run_one(RunSpec(wl, topo, pol, seed, options=opts))
    out.append({"elapsed_s": rec["elapsed_s"], "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
print(json.dumps(out))
"""


def _presets() -> list[str]:
    from memsched.topology import list_presets

    return [p for p in list_presets() if p != "pressure-1n4"]


def _policies(arg: str) -> list[str]:
    if arg != "all":
        return arg.split(",")
    from memsched.policies import numa as numa_policies

    return list(numa_policies.names())


def _worktree(rev: str, where: str) -> Path:
    path = Path(where) / "old"
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    return path


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _precompile(src: Path) -> None:
    """Compile a tree's numba kernels into its cache before anything is timed (a fresh worktree has none, and
    its first run would count the compile), where the tree has kernels and numba is installed."""
    if (src / "memsched" / "sim" / "fluid" / "jit.py").exists():
        subprocess.run(
            [sys.executable, "-m", "memsched.sim.fluid.jit"], env=_env(src), capture_output=True, check=False
        )


def _cells_in(src: Path, cells: list[tuple[str, str, str, int]], thp: bool = True) -> list[dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cells), "thp" if thp else "4k"],
        env=_env(src),
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, float]] = json.loads(done.stdout)
    return rows


def _whole_in(src: Path, argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and its worker processes) of one ``memsched`` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "memsched", *argv], env=_env(src), stdout=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


#: The presets of issue 17's second target: ``memsched compare`` over these, every policy, in 15 s.
PRESETS = ("westmere-ex-4n48", "opteron-4n32", "x86-8n64")


def _takes_topology_lists(src: Path) -> bool:
    """Whether the tree's ``memsched compare`` takes several topologies (``-t a,b``), tried on two small runs."""
    probe = ["compare", "-t", "laptop-1n8,sandybridge-2n32", "-w", "numa02", "--policies", "none", "-j", "1", "--json"]
    done = subprocess.run([sys.executable, "-m", "memsched", *probe], env=_env(src), capture_output=True, check=False)
    return done.returncode == 0


def _compare_to(args: argparse.Namespace, extra: list[str]) -> None:
    new_src = HERE / "src"
    with tempfile.TemporaryDirectory(prefix="sim-speed-") as tmp:
        old = _worktree(args.compare_to, tmp)
        try:
            for src in (old / "src", new_src):
                _precompile(src)
            if args.whole:
                argv = ["compare", *extra]
                runs = {"old": [argv], "new": [argv]}
                if args.presets:
                    argv = [*argv, "-t", ",".join(PRESETS)]
                    for side, src in (("old", old / "src"), ("new", new_src)):
                        one = _takes_topology_lists(src)
                        runs[side] = [argv] if one else [[*argv[:-1], t] for t in PRESETS]
                        print(f"{side}: the three presets in {'one command' if one else 'three commands'}")
                walls: dict[str, list[float]] = {"old": [], "new": []}
                cpus: dict[str, list[float]] = {"old": [], "new": []}
                for _ in range(args.repeat):
                    for side, src in (("old", old / "src"), ("new", new_src)):
                        times = [_whole_in(src, a) for a in runs[side]]
                        walls[side].append(sum(w for w, _ in times))
                        cpus[side].append(sum(c for _, c in times))
                ow, nw = statistics.median(walls["old"]), statistics.median(walls["new"])
                oc, nc = statistics.median(cpus["old"]), statistics.median(cpus["new"])
                print(f"memsched {' '.join(argv)}  (median of {args.repeat}, old = {args.compare_to})")
                print(f"  wall  old {ow:8.2f} s  new {nw:8.2f} s  new/old {nw / ow:5.2f}")
                print(f"  cpu   old {oc:8.2f} s  new {nc:8.2f} s  new/old {nc / oc:5.2f}")
                # Parallel efficiency: CPU used over what the workers could have used while the command ran.
                ncpu = os.cpu_count() or 1
                eff_old, eff_new = oc / (ow * ncpu), nc / (nw * ncpu)
                print(f"  parallel efficiency (cpu / (wall x {ncpu}))  old {eff_old:5.2f}  new {eff_new:5.2f}")
                return
            cells = [
                (t, w, p, args.seed)
                for t in args.topologies.split(",")
                for w in args.workloads.split(",")
                for p in _policies(args.policies)
            ]
            times: dict[str, list[list[float]]] = {"old": [], "new": []}
            for _ in range(args.repeat):
                for side, src in (("old", old / "src"), ("new", new_src)):
                    times[side].append([r["cpu_s"] for r in _cells_in(src, cells, not args.no_thp)])
            head = f"{'topology':18s} {'workload':20s} {'policy':12s}"
            print(f"{head} {'old cpu s':>10s} {'new cpu s':>10s} {'new/old':>8s}")
            tot_old = tot_new = 0.0
            for i, (t, w, p, _) in enumerate(cells):
                o = statistics.median(rep[i] for rep in times["old"])
                n = statistics.median(rep[i] for rep in times["new"])
                tot_old, tot_new = tot_old + o, tot_new + n
                print(f"{t:18s} {w:20s} {p:12s} {o:10.3f} {n:10.3f} {n / o:8.2f}")
            print(f"{'total':52s} {tot_old:10.3f} {tot_new:10.3f} {tot_new / tot_old:8.2f}")
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)], check=False)


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topologies", default=None)
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS)
    ap.add_argument("--policies", default="none", help="comma-separated, or 'all'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare-to", metavar="REV", help="time this git revision's code side by side with this tree's")
    ap.add_argument("--repeat", type=int, default=3, help="alternations of old and new (with --compare-to)")
    ap.add_argument("--whole", action="store_true", help="time whole `memsched compare ARGS` commands")
    ap.add_argument(
        "--presets", action="store_true", help="with --whole: compare over the three presets of issue 17's target"
    )
    ap.add_argument("--no-thp", action="store_true", help="cells with 4 KiB pages (memsched run --no-thp)")
    args = ap.parse_args(argv)
    if args.presets and not (args.whole and args.compare_to):
        ap.error("--presets goes with --compare-to REV --whole")
    if args.topologies is None:
        args.topologies = ",".join(_presets())
    if args.compare_to:
        _compare_to(args, extra)
        return
    from memsched.workloads.numa import NumaOptions
    from memsched.workloads.runner import run_one
    from memsched.workloads.runspec import RunSpec

    opts = NumaOptions(thp=False) if args.no_thp else None
    rows = []
    for topo in args.topologies.split(","):
        for wl in args.workloads.split(","):
            for pol in _policies(args.policies):
                t0 = time.perf_counter()
                rec = run_one(RunSpec(wl, topo, pol, args.seed, options=opts))
                wall = time.perf_counter() - t0
                rows.append(
                    {
                        "topology": topo,
                        "workload": wl,
                        "policy": pol,
                        "elapsed_s": rec["elapsed_s"],
                        "wall_s": round(wall, 4),
                        "sim_s_per_wall_s": round(rec["elapsed_s"] / wall, 1),
                    }
                )
                if not args.json:
                    r = rows[-1]
                    print(
                        f"{topo:18s} {wl:22s} {pol:12s} sim {r['elapsed_s']:9.1f} s  wall {wall:7.3f} s  "
                        f"{r['sim_s_per_wall_s']:10.1f} sim-s/wall-s",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
