"""Time from the first memory-pressure event to the kill, for each user-space killer, on the running kernel.

Set-up per trial (as tests/live/test_kernel_act.py): a 64 MiB v1 memory cgroup with a v2 twin; in its child
``leak`` a slow leak (1 MiB per ``--interval``) that re-reads a cold 24 MiB file, so that reclaim, refaults
and PSI stall precede the OOM killer; a protected idle sibling. ``LiveActor`` runs the policy in this process.
A watcher thread polls the leak cgroup's v2 ``memory.pressure`` every 2 ms: the **first pressure event** is
the first change of its ``some total=``. The **kill** is the monotonic time of the sample whose action
signalled the leak (the log's ``monotonic_ns``; the signal follows within the same pass). A trial where the
kernel's OOM killer fired (``memory.oom_control`` ``oom_kill``) counts as a miss.

systemd-oomd runs with a 2 % limit held for 1 s (its 60 % for 30 s would not fire before the kernel's OOM
killer in a 64 MiB cgroup) and a slower leak.

Usage::

    sudo python benchmarks/act_latency.py [--trials 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from memsched.live.act import LiveActor, Protect, open_subtree
from memsched.live.act.load import idle_sibling, slow_leaker
from memsched.live.cgroups import MemcgV1Child
from memsched.policies.act.conformance import load_policy

MIB = 1 << 20
POLICIES = {
    "earlyoom": ({}, 0.05),
    "systemd-oomd": ({"mem_pressure_limit_pct": "2", "mem_pressure_duration_s": "1"}, 0.2),
    "lmkd": ({}, 0.05),
}


def _cold(path: Path) -> Path:
    path.write_bytes(b"y" * (24 * MIB))
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    return path


def _some_total(p: Path) -> int:
    return int(p.read_text().split()[4].split("=")[1])


def trial(policy: str, n: int, workdir: Path) -> dict[str, object]:
    sets, interval = POLICIES[policy]
    cg = MemcgV1Child(f"memsched-actbench-{os.getpid()}-{n}", limit_bytes=64 * MIB, v2=True)
    with cg:
        leak_dir, steady_dir = cg.child("leak", v2=True), cg.child("steady", v2=True)
        assert cg.v2_path is not None
        psi = cg.v2_path / "leak" / "memory.pressure"
        first: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            base = _some_total(psi)
            while not stop.is_set():
                if _some_total(psi) != base:
                    first.append(time.monotonic_ns())
                    return
                time.sleep(0.002)

        steady = cg.run_in(steady_dir, idle_sibling())
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        leak = cg.run_in(leak_dir, slow_leaker(reread=_cold(workdir / f"ws{n}"), interval_s=interval,
                                               oom_score_adj=500))
        log = io.StringIO()
        actor = LiveActor(load_policy(policy, sets), open_subtree("/" + cg.path.name),
                          protect=Protect(frozenset({steady.pid}), frozenset()), log=log)
        actor.run(duration_s=60, until=lambda _: leak.poll() is not None)
        actor.close()
        stop.set()
        leak.wait(10)
        oom = sum(int((d / "memory.oom_control").read_text().split()[-1]) for d in (cg.path, leak_dir, steady_dir))
        lines = [json.loads(x) for x in log.getvalue().splitlines() if json.loads(x)["status"] == "applied"]
        kill_ns = lines[0]["monotonic_ns"] if lines else None
        latency = (kill_ns - first[0]) / 1e6 if kill_ns is not None and first else None
        return {"policy": policy, "latency_ms": latency, "oom_kills": oom, "steady_alive": steady.poll() is None,
                "reason": lines[0]["reason"] if lines else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("act_latency: needs root (memory cgroups)", file=sys.stderr)
        return 2
    print(f"kernel {os.uname().release}; {args.trials} trials per policy; 64 MiB memcg v1; no swap")
    print(f"{'policy':14} {'kills':>5} {'kernel OOM':>10} {'p50 ms':>8} {'min ms':>8} {'max ms':>8}  reason")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        for policy in POLICIES:
            rows = [trial(policy, i, Path(tmp)) for i in range(args.trials)]
            lat = [r["latency_ms"] for r in rows if r["latency_ms"] is not None and not r["oom_kills"]]
            ooms = sum(1 for r in rows if r["oom_kills"])
            reasons = sorted({str(r["reason"]).split(" of /")[0] for r in rows if r["reason"]})
            fmt = (lambda v: f"{v:8.0f}") if lat else (lambda v: f"{'-':>8}")
            print(f"{policy:14} {len(lat):5d} {ooms:10d} {fmt(statistics.median(lat) if lat else 0)} "
                  f"{fmt(min(lat) if lat else 0)} {fmt(max(lat) if lat else 0)}  {', '.join(reasons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
