"""Simulated versus published autonuma-benchmark times (no balancing), as the table in docs/calibration.md.

    python benchmarks/calibration.py [--seed N]

Published: Ingo Molnar's Opteron, v3.7 vanilla and HARD_BIND; Mel Gorman's E7-4807 box, vanilla, V1/V3/V10
postings; Srikar Dronamraju's 8-node box, vanilla, HARD_BIND and INVERSE_BIND (linux-mm, 10 Dec 2012, the
fitted averages; and his 13 Oct 2012 posting's v3.6 baseline, for the run-to-run spread). No balancing policy
runs here, and no policy's published result is used.
"""

from __future__ import annotations

import argparse

from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

OPTERON = {
    "numa01": (340.3, 166.6),
    "numa01_THREAD_ALLOC": (425.1, 200.56),
    "numa02": (56.1, 14.9),
    "numa02_SMT": (56.1, 14.6),
}
WESTMERE = {
    "numa01": (1511.76, 1514.61),
    "numa01_THREAD_ALLOC": (1264.08, 1387.17),
    "numa02": (176.81, 181.88),
    "numa02_SMT": (163.59, 168.41),
}

#: Srikar Dronamraju, linux-mm, 10 Dec 2012 (3.7-rc-era kernel without balancing): vanilla, HARD, INVERSE.
X86_8N64 = {
    "numa01": (1555.24, 993.30, 3634.86),
    "numa01_THREAD_ALLOC": (1121.17, 792.73, 1988.95),
    "numa02": (147.04, 26.94, 349.10),
    "numa02_SMT": (386.43, 101.98, 325.26),
}


#: The same box's v3.6 baseline, five runs each (Srikar Dronamraju, "Re: [PATCH 00/33] AutoNUMA27", linux-mm,
#: 13 Oct 2012): averages of vanilla, HARD, INVERSE.
X86_8N64_OCT = {
    "numa01": (1793.90, 1334.85, 3345.12),
    "numa01_THREAD_ALLOC": (1214.32, 825.63, 2186.33),
    "numa02": (136.88, 25.97, 345.59),
    "numa02_SMT": (186.85, 33.57, 296.44),
}
#: numa02_SMT's five runs on 10 Dec 2012 (min, max): its averages above are pulled up by outliers.
X86_8N64_SMT_DEC_RANGE = ((144.32, 922.65), (26.61, 170.71), (288.12, 456.45))


def sim(workload: str, topology: str, seed: int) -> float:
    return float(run_one(RunSpec(workload, topology, "none", seed))["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    seed = ap.parse_args().seed
    print("| machine | workload | run | published s | simulated s | deviation |")
    print("|---|---|---|---|---|---|")
    for wl, (van, hard) in OPTERON.items():
        for label, suffix, pub in (("vanilla", "", van), ("HARD_BIND", "_HARD_BIND", hard)):
            s = sim(wl + suffix, "opteron-4n32", seed)
            print(f"| opteron-4n32 | {wl} | {label} | {pub:.2f} | {s:.1f} | {100 * (s / pub - 1):+.1f} % |")
    for wl, (lo, hi) in WESTMERE.items():
        s = sim(wl, "westmere-ex-4n48", seed)
        if s < lo:
            dev = f"{100 * (s / lo - 1):+.1f} %"
        elif s > hi:
            dev = f"{100 * (s / hi - 1):+.1f} %"
        else:
            dev = "inside the range"
        print(f"| westmere-ex-4n48 | {wl} | vanilla | {lo:.2f}–{hi:.2f} | {s:.1f} | {dev} |")
    for wl, pubs in X86_8N64.items():
        runs = zip(("vanilla", "HARD_BIND", "INVERSE_BIND"), ("", "_HARD_BIND", "_INVERSE_BIND"), pubs, strict=True)
        for label, suffix, pub in runs:
            s = sim(wl + suffix, "x86-8n64", seed)
            print(f"| x86-8n64 | {wl} | {label} | {pub:.2f} | {s:.1f} | {100 * (s / pub - 1):+.1f} % |")
    print("\nx86-8n64 against the same box's v3.6 baseline (13 Oct 2012) and, for numa02_SMT, the 10 Dec runs' range:")
    print("| workload | run | 13 Oct s | simulated s | deviation | 10 Dec min-max s |")
    print("|---|---|---|---|---|---|")
    for wl, pubs in X86_8N64_OCT.items():
        labels = ("vanilla", "HARD_BIND", "INVERSE_BIND")
        for i, (label, suffix) in enumerate(zip(labels, ("", "_HARD_BIND", "_INVERSE_BIND"), strict=True)):
            s = sim(wl + suffix, "x86-8n64", seed)
            rng = X86_8N64_SMT_DEC_RANGE[i] if wl == "numa02_SMT" else None
            span = f"{rng[0]:.2f}-{rng[1]:.2f}" if rng else ""
            print(f"| {wl} | {label} | {pubs[i]:.2f} | {s:.1f} | {100 * (s / pubs[i] - 1):+.1f} % | {span} |")


if __name__ == "__main__":
    main()
