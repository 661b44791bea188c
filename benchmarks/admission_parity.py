"""Admission parity on the running kernel: how often does ``memsched rt admit`` predict the kernel's answer?

Runs :func:`memsched.live.parity.admission_parity` (random seeded SCHED_DEADLINE reservations on idle helper
processes until the kernel refuses one, then probes one bandwidth unit over and exactly at the predicted
boundary) and prints attempts, agreement and any disagreement. Needs root (CAP_SYS_NICE) and leaves nothing
behind. Usage::

    python benchmarks/admission_parity.py [--seeds 1-10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import errno
import time

from memsched.live import capabilities
from memsched.live.parity import admission_parity
from memsched.uapi.cpumask import parse_cpulist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-10", help="seed list, e.g. 1-10")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per seed")
    args = parser.parse_args()
    capabilities().require("sched_deadline_permitted")
    total = agree = 0
    kinds: dict[str, int] = {}
    codes: dict[int, int] = {}
    start = time.perf_counter()
    for seed in sorted(parse_cpulist(args.seeds, field="--seeds")):
        report = admission_parity(seed=seed, rounds=args.rounds)
        print(report.summary())
        for a in report.disagreements:
            predicted = errno.errorcode.get(a.predicted_errno, "0")
            kernel = errno.errorcode.get(a.kernel_errno, "0")
            print(
                f"  DISAGREE {a.kind} {a.attr} requested {a.requested_bw} available {a.available_bw} "
                f"predicted {predicted} kernel {kernel}"
            )
        total += len(report.attempts)
        agree += report.agreements
        for a in report.attempts:
            kinds[a.kind] = kinds.get(a.kind, 0) + 1
            codes[a.kernel_errno] = codes.get(a.kernel_errno, 0) + 1
    print(
        f"total: {total} attempts, {agree} agree ({100.0 * agree / max(total, 1):.2f} %) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    print("by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(
        "kernel answers: "
        + ", ".join(
            f"{errno.errorcode.get(k, 'admitted') if k else 'admitted'} {v}" for k, v in sorted(codes.items())
        )
    )


if __name__ == "__main__":
    main()
