"""What compiling the fluid NUMA engine's hot code buys: pure numpy, the numba kernels, mypyc, on the same runs.

    python benchmarks/numa_compile_options.py [--cells westmere-ex-4n48:numa01:moron,...] [--repeat 2]
                                              [--sides pure,kernels,mypyc]

Each side runs every cell (``memsched run``'s simulation, ``run_one``) in a fresh interpreter, the sides
alternating ``--repeat`` times, and the script prints the median CPU seconds per cell and each side's ratio to
the pure one. Every side's record must equal the pure side's byte for byte (the script stops otherwise):
only time may change.

* ``pure``: this tree's pure numpy code (``MEMSCHED_JIT=0``; so are the sides below but ``kernels``).
* ``kernels``: this tree's numba kernels (``memsched.sim.fluid.jit``, ``MEMSCHED_JIT=1``), the ones shipped as
  the ``fast`` extra; their compile (or cache load) is paid before the timed runs and printed on its own.
* (The sixth pass's ``numba-fill`` and ``numba-faults`` sides, one-kernel patches that the shipped kernels
  replace, are in this file at 915cafa; docs/design.md keeps their figures.)
* ``mypyc``: the fluid engine's and the scan/fault path's modules (:data:`MYPYC_FLUID`) compiled with mypyc,
  from a copy of ``src/`` (needs mypy >= 1.10 and a C compiler; ``sim/numa/contention.py`` is left out: a
  lambda in it crashes mypyc 1.19).

Figures are machine-dependent; nothing asserts them. On this shared 2-core machine read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

#: The modules the ``mypyc`` side compiles.
MYPYC_FLUID = [
    "src/memsched/sim/fluid/progress.py",
    "src/memsched/sim/fluid/memmodel.py",
    "src/memsched/sim/numa/balancing.py",
    "src/memsched/sim/numa/faults.py",
]

#: One side's runs: prints [{"cpu_s": ..., "record": ...}] (plus the numba compile time when patched).
CHILD = r"""
import json, sys, time
patch = sys.argv[2]
compile_s = 0.0
if patch:
    ns = {}
    exec(patch, ns)
    compile_s = ns["COMPILE_S"]
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec
out = []
for topo, wl, pol, seed in json.loads(sys.argv[1]):
    c0 = time.process_time()
    rec = run_one(RunSpec(wl, topo, pol, seed))
    out.append({"cpu_s": time.process_time() - c0, "record": json.dumps(rec, sort_keys=True, default=str)})
print(json.dumps({"runs": out, "compile_s": compile_s}))
"""


#: The shipped kernels, compiled (or loaded from numba's cache) before the timed runs.
KERNELS = r"""
import time as _t
_c0 = _t.process_time()
from memsched.sim.fluid import _kernels
_kernels.warm()
COMPILE_S = _t.process_time() - _c0
"""

#: What each side runs before its cells (``mypyc`` runs a compiled copy instead).
PATCHES = {
    "pure": "",
    "kernels": KERNELS,
}


def _build_mypyc(tmp: Path) -> Path:
    dst = tmp / "mypyc"
    shutil.copytree(HERE / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    script = (
        "from setuptools import find_packages, setup\nfrom mypyc.build import mypycify\n"
        f"setup(name='memsched-bench', ext_modules=mypycify({MYPYC_FLUID!r}, opt_level='3'),"
        " package_dir={'': 'src'}, packages=find_packages('src'), script_args=['-q', 'build_ext', '--inplace'])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=dst, capture_output=True, text=True, timeout=1800
    )
    if res.returncode != 0:
        sys.exit(f"numa_compile_options: the mypyc build failed:\n{res.stderr.strip()[-2000:]}")
    return dst / "src"


def _side(src: Path, cells: list[tuple[str, str, str, int]], patch: str, jit: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(src), MEMSCHED_JIT=jit)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cells), patch],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        sys.exit(f"numa_compile_options: a side failed:\n{done.stderr.strip()[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cells", default="westmere-ex-4n48:numa01:moron", help="topology:workload:policy,...")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sides", default="pure,kernels")
    args = ap.parse_args()
    cells = [(*c.split(":"), args.seed) for c in args.cells.split(",")]
    if any(len(c) != 4 for c in cells):
        ap.error("--cells: each cell is topology:workload:policy")
    sides = args.sides.split(",")
    if "pure" not in sides or not set(sides) <= set(PATCHES) | {"mypyc"}:
        ap.error("--sides: pure and any of kernels, mypyc")
    with tempfile.TemporaryDirectory(prefix="compile-options-") as tmp:
        src = {side: HERE / "src" for side in PATCHES}
        if "mypyc" in sides:
            src["mypyc"] = _build_mypyc(Path(tmp))
        cpu: dict[str, list[list[float]]] = {s: [] for s in sides}
        records: dict[str, list[str]] = {}
        compile_s: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for side in sides:
                got = _side(src[side], cells, PATCHES.get(side, ""), "1" if side == "kernels" else "0")
                runs = got["runs"]
                assert isinstance(runs, list)
                cpu[side].append([r["cpu_s"] for r in runs])
                recs = [r["record"] for r in runs]
                if records.setdefault(side, recs) != recs:
                    sys.exit(f"numa_compile_options: {side} gave two different records for the same runs")
                if side == "kernels":
                    compile_s.setdefault(side, []).append(float(got["compile_s"]))  # type: ignore[arg-type]
        for side in sides:
            if records[side] != records["pure"]:
                sys.exit(f"numa_compile_options: the {side} side's records differ from the pure side's")
    cols = [f"{s} cpu s" for s in sides] + [f"pure/{s}" for s in sides[1:]]
    print(f"{'cell':34s}" + "".join(f"{c:>{len(c) + 2}s}" for c in cols))
    for i, c in enumerate(cells):
        med = {s: statistics.median(rep[i] for rep in cpu[s]) for s in sides}
        figures = [f"{med[s]:.2f}" for s in sides] + [f"{med['pure'] / med[s]:.2f}" for s in sides[1:]]
        name = ":".join(map(str, c[:3]))
        print(f"{name:34s}" + "".join(f"{f:>{len(h) + 2}s}" for f, h in zip(figures, cols, strict=True)))
    for side, secs in compile_s.items():
        print(f"{side}: compile time {statistics.median(secs):.2f} s once per process (not in the figures above)")
    print("records: byte-identical across the sides")


if __name__ == "__main__":
    main()
