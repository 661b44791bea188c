"""Golden check for the NUMA (fluid) simulator: rerun a fixed set of ``memsched`` commands and compare byte for byte.

    python benchmarks/golden_numa.py record DIR [--src SRC] [--jobs 2] [--only REGEX] [--full]
    python benchmarks/golden_numa.py check DIR OUT [--src SRC] [--jobs 2] [--only REGEX] [--full]

``record`` writes each command's ``--json`` stdout and exit status into DIR; ``check`` reruns the same
commands into OUT and prints ``same``/``DIFF`` per command and a ``same=N diff=M`` total. ``--src`` puts
another tree's ``src`` first on ``PYTHONPATH`` (e.g. a ``git archive`` of the base revision), so one venv
can record the old code's outputs. The set: every autonuma-benchmark workload plus specjbb and
perf-bench-numa under every NUMA policy on westmere-ex-4n48 and sandybridge-2n32 at seed 0 (seed 1 too for
the cheap workloads), the default ``memsched compare`` and ``memsched compare -t x86-8n64 -w numa02``.
Speed work must leave every output identical; nothing here is timed. The commands inherit the environment:
``MEMSCHED_JIT=1`` checks the fluid engine's numba kernels from every run's first solve, ``MEMSCHED_JIT=0`` the
pure numpy code (the default, ``auto``, switches in the long runs only).

``--full`` is issue 17's whole matrix instead (502 commands, about 10 minutes on two cores): every workload under every
NUMA policy on every NUMA preset at seeds 0 and 1, every ``rt sim`` scenario and every ``pressure sim``
scenario at seeds 0 and 1.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

POLICIES = ("none", "moron", "balancenuma", "homenode", "autonuma", "numacore", "mainline", "numad")
WORKLOADS = ("numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT", "specjbb", "perf-bench-numa")
CHEAP = ("numa02", "numa02_SMT", "specjbb", "perf-bench-numa")
TOPOLOGIES = ("westmere-ex-4n48", "sandybridge-2n32")


def commands() -> list[tuple[str, list[str]]]:
    """The golden set, as (name, argv) pairs: the cheapest first so a short check fails early."""
    cmds: list[tuple[str, list[str]]] = [
        ("compare.x86-8n64.numa02", ["memsched", "compare", "-t", "x86-8n64", "-w", "numa02", "--json"]),
    ]
    for seed in (0, 1):
        for wl in WORKLOADS:
            if seed == 1 and wl not in CHEAP:
                continue
            for topo in TOPOLOGIES:
                for pol in POLICIES:
                    argv = ["memsched", "run", wl, "-t", topo, "-p", pol, "--seed", str(seed), "--json"]
                    cmds.append((f"run.{topo}.{wl}.{pol}.{seed}", argv))
    cmds.append(("compare.default", ["memsched", "compare", "--json"]))
    return cmds


def full_commands() -> list[tuple[str, list[str]]]:
    """Every workload x policy x NUMA preset, every rt and pressure scenario (from their registries), at seeds
    0 and 1."""
    from memsched.topology import list_presets
    from memsched.workloads.pressure.scenario import list_scenarios
    from memsched.workloads.rt import SCENARIOS

    presets = [p for p in list_presets() if p != "pressure-1n4"]  # (the pressure scenarios' machine)
    cmds: list[tuple[str, list[str]]] = []
    for seed in ("0", "1"):
        for rt in SCENARIOS:
            cmds.append((f"rt.{rt.id}.{seed}", ["memsched", "rt", "sim", rt.id, "--seed", seed, "--json"]))
        for sc in list_scenarios():
            cmds.append((f"pressure.{sc}.{seed}", ["memsched", "pressure", "sim", sc, "--seed", seed, "--json"]))
        for topo in presets:
            for wl in WORKLOADS:
                for pol in POLICIES:
                    argv = ["memsched", "run", wl, "-t", topo, "-p", pol, "--seed", seed, "--json"]
                    cmds.append((f"run.{topo}.{wl}.{pol}.{seed}", argv))

    def cost(cmd: tuple[str, list[str]]) -> int:  # the longest first, so two workers end together
        name = cmd[0]
        return -(4 * ("moron" in name) + 2 * ("x86-8n64" in name) + ("numa01" in name))

    return sorted(cmds, key=cost)


def _run(name: str, argv: list[str], out: Path, src: str | None) -> None:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    exe = [sys.executable, "-m", "memsched", *argv[1:]]
    with open(out / f"{name}.json", "wb") as stdout:
        proc = subprocess.Popen(exe, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    (out / f"{name}.rc").write_text(f"{proc.returncode}\n")
    # CPU seconds of the command (its own, not its pool workers'): the cost hint behind run ordering.
    (out / f"{name}.cpu").write_text(f"{ru.ru_utime + ru.ru_stime:.2f}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "check"))
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--src", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="regex on command names")
    ap.add_argument("--full", action="store_true", help="the whole matrix of issue 17 (see above)")
    args = ap.parse_args(argv)
    out = Path(args.dirs[-1])
    out.mkdir(parents=True, exist_ok=True)
    cmds = full_commands() if args.full else commands()
    sel = [(n, a) for n, a in cmds if not args.only or re.search(args.only, n)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda c: _run(c[0], c[1], out, args.src), sel))
    if args.mode == "record":
        print(f"recorded {len(sel)} commands into {out}")
        return 0
    base = Path(args.dirs[0])
    same = diff = 0
    for name, _ in sel:
        ok = all((base / f"{name}.{x}").read_bytes() == (out / f"{name}.{x}").read_bytes() for x in ("json", "rc"))
        same += ok
        diff += not ok
        if not ok:
            print("DIFF", name)
    print(f"same={same} diff={diff}")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
