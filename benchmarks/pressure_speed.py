"""Wall-clock cost of the memory-pressure simulator: each design of a scenario, run sequentially.

    python benchmarks/pressure_speed.py [SCENARIO]

Prints, per design, the wall time, the simulated seconds, the engine events processed and the reclaim
volume, so changes to vmscan/vmpressure/PSI can be compared. Not a test: machines are noisy.
"""

from __future__ import annotations

import sys
import time

from memsched.workloads.pressure import PressureRun, load_scenario


def main() -> None:
    ref = sys.argv[1] if len(sys.argv) > 1 else "default"
    sc = load_scenario(ref)
    print(f"scenario {sc.name}: {sc.duration / 1e9:g} simulated s")
    total = 0.0
    for design in sc.designs:
        t0 = time.perf_counter()
        run = PressureRun(sc, design, 0)
        rec = run.run()
        wall = time.perf_counter() - t0
        total += wall
        vs = rec["vmstat"]
        print(
            f"  {design:9s} wall {wall:6.2f} s  events {run.machine.engine.events_processed:7d}  "
            f"pgscan {vs['pgscan_kswapd'] + vs['pgscan_direct']:8d}  allocstall {vs['allocstall']:5d}  "
            f"windows {rec['index']['mainline']['windows']:5d}"
        )
    print(f"  total     wall {total:6.2f} s")


if __name__ == "__main__":
    main()
