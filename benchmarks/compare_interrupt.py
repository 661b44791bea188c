"""How fast Ctrl-C stops ``memsched compare``, and what it leaves behind.

    python benchmarks/compare_interrupt.py [--trials 5] [--jobs 2] [--after 2.0]

Each trial starts ``memsched compare --workloads numa01 --jobs N --report FILE`` in a session of its own,
waits until its worker processes run and ``--after`` seconds more, sends SIGINT to the process group (as
Ctrl-C on a terminal does: the workers get it too), and measures the time until the command has exited. It
reports, per trial, that time, the exit status, the last line on stderr, whether the report file exists, and
how many of the workers seen are still alive. With the worker pool drained rather than terminated (before
issue 14) the stop took as long as the runs under way (about 12 s on a 2-core VM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def trial(jobs: int, after_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.html"
        proc = subprocess.Popen(
            [sys.executable, "-m", "memsched", "compare", "--workloads", "numa01", "--jobs", str(jobs),
             "--report", str(report)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        workers: set[int] = set()
        give_up = time.monotonic() + 120
        while len(workers) < jobs and time.monotonic() < give_up and proc.poll() is None:
            workers |= _children(proc.pid)
            time.sleep(0.01)
        time.sleep(after_s)
        workers |= _children(proc.pid)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        stopped_s = time.monotonic() - t0
        alive = [w for w in workers if Path(f"/proc/{w}").exists()]
        return {
            "stopped_s": round(stopped_s, 3),
            "exit": proc.returncode,
            "stderr": err.strip().splitlines()[-1:] if err.strip() else [],
            "report_written": report.exists(),
            "workers_seen": len(workers),
            "workers_alive": len(alive),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--after", type=float, default=2.0, help="seconds to let the workers run before Ctrl-C")
    args = ap.parse_args()
    results = [trial(args.jobs, args.after) for _ in range(args.trials)]
    for r in results:
        print(json.dumps(r, sort_keys=True))
    times = [float(r["stopped_s"]) for r in results]  # type: ignore[arg-type]
    median, worst = statistics.median(times), max(times)
    print(f"stop after Ctrl-C: median {median:.3f} s, max {worst:.3f} s over {len(times)} trials")


if __name__ == "__main__":
    main()
