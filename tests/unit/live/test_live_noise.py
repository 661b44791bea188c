"""The osnoise-style loop on a scripted clock, and the /proc/interrupts and softirqs parsers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memsched.errors import ConfigError
from memsched.live.noise import CpuNoise, calibrate, measure_noise, spin


def scripted_clock(times: list[int]) -> Iterator[int]:
    yield from times


def test_spin_counts_gaps_above_threshold() -> None:
    """Gaps longer than the threshold are noise; a gap equal to it is not (osnoise compares with >)."""
    times = [0, 100, 200, 7200, 7300, 12300, 12400, 25000, 25100]
    clock = scripted_clock(times)
    result = spin(25_000, 5_000, clock=lambda: next(clock))
    assert result.gaps_ns == (7000, 12600)
    assert result.noise_ns == 19600 and result.max_single_ns == 12600
    assert result.loops == len(times) - 2 and result.runtime_ns == 25000


def test_spin_without_noise() -> None:
    """A clock that never jumps gives no gaps and a full runtime."""
    clock = iter(range(0, 10_001, 50))
    result = spin(10_000, 5_000, clock=lambda: next(clock))
    assert result.gaps_ns == () and result.loops == 200 and result.runtime_ns == 10_000


def test_calibrate_returns_the_smallest_delta() -> None:
    """The floor is the smallest delta between two back-to-back reads."""
    clock = iter([0, 90, 150, 400, 470])
    assert calibrate(4, clock=lambda: next(clock)) == 60


def test_cpu_noise_figures() -> None:
    """% CPU available and the loop resolution follow from runtime, noise, loops and gap count."""
    c = CpuNoise(
        cpu=0,
        runtime_ns=1_000_000,
        noise_ns=20_000,
        max_single_ns=9_000,
        count=3,
        loops=9_803,
        floor_ns=60,
        irq=None,
        nmi=None,
        softirq=None,
        thread=None,
        threshold_ns=5_000,
    )
    assert c.cpu_available_pct == pytest.approx(98.0)
    assert c.resolution_ns == pytest.approx(980_000 / 9_800)
    assert c.to_dict()["resolution_ns"] == 100.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_ns": 0}, "--duration"),
        ({"duration_ns": 1000, "threshold_ns": 0}, "--threshold"),
        ({"duration_ns": 1000, "cpus": [100_000]}, "--cpus"),
    ],
)
def test_measure_noise_refuses_bad_input(kwargs: dict[str, object], field: str) -> None:
    """Bad durations, thresholds or CPUs are ConfigErrors naming the option, before anything runs."""
    with pytest.raises(ConfigError, match=field):
        measure_noise(**kwargs)  # type: ignore[arg-type]
