"""Start-up time of the memsched command line: whole processes, median of N runs.

    python benchmarks/startup.py [-n 11] [--compare-to REV] [--json]

Times ``memsched list`` (its four catalogues), ``memsched list topologies``, ``memsched list settings``, ``memsched
rt admit`` of a typical reservation, ``memsched --version``, ``memsched --help`` and a short ``memsched run`` (numa02
on the one-node laptop preset: the start of a simulation command, then little simulation), each as the console script
runs them (a fresh interpreter calling ``memsched.__main__.console``, output to a pipe that is read and dropped),
and prints the median wall time and the median CPU time (user + system, the kernel's accounting of the finished
child) per command.

Compiled bytecode is kept in a temporary ``PYTHONPYCACHEPREFIX`` (written by the warm-up runs, even where
``PYTHONDONTWRITEBYTECODE`` is set), as an installed package has it: otherwise every run would compile
memsched's modules from source, which is not what a user waits for.

``--compare-to REV`` checks REV out in a temporary ``git worktree`` and runs the same commands from its
``src/`` (``PYTHONPATH``, the same interpreter and installed dependencies), old and new in turn (A B A B …)
so that both see the same machine, and prints old/new ratios of the medians. This machine is shared: quote
the ratios, and the CPU times, rather than absolute wall times from different runs. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

#: What is timed: (label, arguments).
COMMANDS = [
    ("list", ["list"]),
    ("list topologies", ["list", "topologies"]),
    ("list settings", ["list", "settings"]),  # the longest table: ~300 rows laid out by rich
    ("rt admit", ["rt", "admit", "--runtime", "2ms", "--deadline", "10ms", "--period", "10ms"]),
    ("--version", ["--version"]),
    ("--help", ["--help"]),
    # a simulation's own start: typer, numpy, the NUMA engine and its runner (a one-node run: no kernels loaded)
    ("run numa02 laptop-1n8", ["run", "numa02", "-t", "laptop-1n8", "--json"]),
]

_CONSOLE = "import sys; sys.argv[0] = 'memsched'; from memsched.__main__ import console; console()"


def _once(src: Path, args: list[str], pycache: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of the console script from ``src``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(src), PYTHONPYCACHEPREFIX=str(pycache))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _CONSOLE, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
        check=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@contextlib.contextmanager
def _checkout(rev: str) -> Iterator[Path]:
    """``rev`` checked out in a temporary worktree (removed afterwards); yields its ``src``."""
    with tempfile.TemporaryDirectory(prefix="memsched-startup-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            yield tree / "src"
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(tree)], check=False)


def _measure(sources: dict[str, Path], runs: int, pycache: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per command, per source: median wall and CPU milliseconds; sources alternate run by run."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, args in COMMANDS:
        for src in sources.values():  # warm-up: page cache, .pyc files
            _once(src, args, pycache)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
        for _ in range(runs):
            for name, src in sources.items():
                samples[name].append(_once(src, args, pycache))
        out[label] = {
            name: {
                "wall_ms": round(1000 * statistics.median(w for w, _ in s), 1),
                "cpu_ms": round(1000 * statistics.median(c for _, c in s), 1),
                "wall_min_ms": round(1000 * min(w for w, _ in s), 1),
            }
            for name, s in samples.items()
        }
    return out


def _print(results: dict[str, dict[str, dict[str, float]]], runs: int, rev: str | None) -> None:
    print(f"median of {runs} runs per command (ms); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if rev is None:
        print(f"{'command':18s} {'wall':>8s} {'cpu':>8s} {'min wall':>9s}")
        for label, by in results.items():
            r = by["new"]
            print(f"{label:18s} {r['wall_ms']:8.1f} {r['cpu_ms']:8.1f} {r['wall_min_ms']:9.1f}")
        return
    heads = ("old wall", "new wall", "old/new", "  old cpu", "new cpu", "old/new")
    print(f"{'command':18s} " + " ".join(f"{h:>9s}" for h in heads))
    for label, by in results.items():
        old, new = by["old"], by["new"]
        print(
            f"{label:18s} {old['wall_ms']:9.1f} {new['wall_ms']:9.1f} {old['wall_ms'] / new['wall_ms']:8.2f}x "
            f"{old['cpu_ms']:9.1f} {new['cpu_ms']:9.1f} {old['cpu_ms'] / max(new['cpu_ms'], 0.1):8.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=11, help="counted runs per command (default 11)")
    ap.add_argument("--compare-to", metavar="REV", help="also time this git revision, alternating with this tree")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = ap.parse_args()
    if not 1 <= args.runs <= 1000:
        ap.error("--runs must be in 1..1000")
    with contextlib.ExitStack() as stack:
        pycache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memsched-pycache-")))
        sources = {"new": HERE / "src"}
        if args.compare_to is not None:
            sources = {"old": stack.enter_context(_checkout(args.compare_to)), **sources}
        results = _measure(sources, args.runs, pycache)
    if args.json:
        print(json.dumps({"runs": args.runs, "compare_to": args.compare_to, "results": results}, indent=1))
    else:
        _print(results, args.runs, args.compare_to)


if __name__ == "__main__":
    main()
