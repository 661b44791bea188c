"""How long the live NUMA tools take on this machine: a ``numa top`` snapshot of every process, and a
balancer sample (page sampling with the move_pages status query, homenode's hooks) of one big process.

Starts a child holding ``--mib`` MiB of touched anonymous memory, then times ``take_snapshot`` over all of
``/proc`` and ``LiveBalancer.step`` with homenode on the child (applying for real; on one node everything is
a no-op). Usage::

    python benchmarks/numa_live_speed.py [--mib 1024] [--samples 4096] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from memsched.live.numa.balance import LiveBalancer
from memsched.live.numa.snapshot import take_snapshot
from memsched.live.roots import LiveRoots
from memsched.policies.numa import registry
from memsched.topology.sysfs import topology_from_sysfs

CHILD = """
import sys, time
buf = bytearray({mib} << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
print("ready", flush=True)
end = time.time() + 600
while time.time() < end and not sys.stdin.closed:
    sum(buf[::1 << 20])
"""


def timed(fn: object, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), max(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="memory of the child process")
    parser.add_argument("--samples", type=int, default=4096, help="--max-samples of the balancer")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(mib=args.mib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        roots = LiveRoots()
        topo = topology_from_sysfs("/sys")
        snap = take_snapshot(roots, topo)
        med, worst = timed(lambda: take_snapshot(roots, topo), args.repeat)
        print(
            f"numa top snapshot: {len(snap.processes)} processes, median {med * 1e3:.1f} ms, max {worst * 1e3:.1f} ms"
        )
        spec = registry.get("homenode")
        policy = spec.make(spec.make_config({"scan_size_mb": str(max(256, 2 * args.mib))}))
        balancer = LiveBalancer(policy, pids=[child.pid], max_samples=args.samples)
        faults: list[int] = []
        med, worst = timed(lambda: faults.append(balancer.step().faults), args.repeat)
        print(
            f"balancer sample of a {args.mib} MiB process (homenode, whole address space per sample): "
            f"{faults[-1]} sampled pages, median {med * 1e3:.1f} ms, max {worst * 1e3:.1f} ms"
        )
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
