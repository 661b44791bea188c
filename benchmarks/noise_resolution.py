"""How finely can a Python loop see scheduling noise? Measures the ``rt noise`` loop on every CPU.

Prints, per CPU and threshold, the loop's mean uninterrupted iteration (the resolution: the sampling interval
of ``memsched.live.noise.spin``), the clock floor (smallest back-to-back ``perf_counter_ns`` delta), and the
noise figures, one CPU at a time and all at once. Usage::

    python benchmarks/noise_resolution.py [--duration 2s] [--thresholds 1us,5us,20us]
"""

from __future__ import annotations

import argparse

from memsched.live.noise import measure_noise
from memsched.units import format_ns, parse_duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="2s")
    parser.add_argument("--thresholds", default="1us,5us,20us")
    args = parser.parse_args()
    duration = parse_duration(args.duration, field="--duration")
    for sequential in (True, False):
        for text in args.thresholds.split(","):
            threshold = parse_duration(text.strip(), field="--thresholds")
            report = measure_noise(duration_ns=duration, threshold_ns=threshold, sequential=sequential)
            mode = "one CPU at a time" if sequential else "all CPUs at once"
            print(f"threshold {format_ns(threshold)}, {format_ns(duration)} per CPU, {mode}")
            for c in report.cpus:
                print(
                    f"  cpu{c.cpu}: resolution {c.resolution_ns:.1f} ns, floor {c.floor_ns} ns, "
                    f"{c.loops} loops; noise {c.noise_ns / 1000:.1f} us in {c.count} gaps "
                    f"(max {c.max_single_ns / 1000:.1f} us), {c.cpu_available_pct:.3f} % available; "
                    f"irq {c.irq} softirq {c.softirq} nmi {c.nmi} thread {c.thread}"
                )


if __name__ == "__main__":
    main()
