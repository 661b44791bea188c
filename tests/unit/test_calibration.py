"""Calibration of the mechanism alone (no balancing): simulated versus published autonuma-benchmark times.

Published figures: Ingo Molnar's Opteron (v3.7 vanilla and HARD_BIND) and Mel Gorman's E7-4807 box (vanilla,
his V1/V3/V10 balancenuma postings' baselines), Srikar Dronamraju's 8-node box (linux-mm, 13 Oct and 10 Dec 2012
baselines). The vanilla / HARD_BIND ratio must come out of the bandwidth model
(one controller serving everything versus all of them), so only hardware figures are tuned, never a
per-workload factor; docs/calibration.md derives them.
"""

from __future__ import annotations

import pytest

from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

OPTERON = {
    "numa01": (340.3, 166.6),
    "numa01_THREAD_ALLOC": (425.1, 200.56),
    "numa02": (56.1, 14.9),
    "numa02_SMT": (56.1, 14.6),
}
WESTMERE_VANILLA = {  # ranges over the V1/V3/V10 postings
    "numa01": (1511.76, 1514.61),
    "numa01_THREAD_ALLOC": (1264.08, 1387.17),
    "numa02": (176.81, 181.88),
    "numa02_SMT": (163.59, 168.41),
}
TOLERANCE = 0.25


def elapsed(workload: str, topology: str) -> float:
    return float(run_one(RunSpec(workload, topology, "none", seed=0))["elapsed_s"])


@pytest.mark.parametrize("workload", sorted(OPTERON))
def test_opteron_vanilla_and_hard_bind_within_25_percent(workload: str) -> None:
    """Opteron vanilla and HARD_BIND times are within ±25 % of Ingo's v3.7 figures."""
    vanilla, hard = OPTERON[workload]
    assert elapsed(workload, "opteron-4n32") == pytest.approx(vanilla, rel=TOLERANCE)
    assert elapsed(workload + "_HARD_BIND", "opteron-4n32") == pytest.approx(hard, rel=TOLERANCE)


@pytest.mark.parametrize("workload", sorted(WESTMERE_VANILLA))
def test_westmere_vanilla_within_25_percent(workload: str) -> None:
    """Westmere-EX vanilla times are within ±25 % of the published range."""
    lo, hi = WESTMERE_VANILLA[workload]
    sim = elapsed(workload, "westmere-ex-4n48")
    assert lo * (1 - TOLERANCE) <= sim <= hi * (1 + TOLERANCE)


def test_numa02_speedup_is_the_number_of_controllers() -> None:
    """numa02 vanilla/HARD_BIND on the Opteron is ~4x: one controller versus four."""
    ratio = elapsed("numa02", "opteron-4n32") / elapsed("numa02_HARD_BIND", "opteron-4n32")
    assert 3.4 < ratio < 4.2


@pytest.mark.parametrize("topology", ["westmere-ex-4n48", "opteron-4n32", "x86-8n64", "sandybridge-2n32"])
@pytest.mark.parametrize("workload", sorted(OPTERON))
def test_inverse_bind_slower_than_hard_bind(topology: str, workload: str) -> None:
    """INVERSE_BIND is slower than HARD_BIND on every workload and every multi-node preset."""
    assert elapsed(workload + "_INVERSE_BIND", topology) > 1.05 * elapsed(workload + "_HARD_BIND", topology)


#: Srikar Dronamraju's 8-node box, "Re: [PATCH 00/49] Automatic NUMA Balancing v10", linux-mm, 10 Dec 2012
#: (3.7.0-rc8 baseline, averages of five runs): vanilla, HARD_BIND, INVERSE_BIND.
X86_8N64 = {
    "numa01": (1555.24, 993.30, 3634.86),
    "numa01_THREAD_ALLOC": (1121.17, 792.73, 1988.95),
    "numa02": (147.04, 26.94, 349.10),
}


#: The same box's v3.6 baseline, "Re: [PATCH 00/33] AutoNUMA27", linux-mm, 13 Oct 2012 (averages of five runs).
X86_8N64_OCT = {
    "numa01": (1793.90, 1334.85, 3345.12),
    "numa01_THREAD_ALLOC": (1214.32, 825.63, 2186.33),
    "numa02": (136.88, 25.97, 345.59),
    "numa02_SMT": (186.85, 33.57, 296.44),
}


@pytest.mark.parametrize("workload", sorted(X86_8N64))
def test_x86_8n64_no_balancing_rows_within_25_percent(workload: str) -> None:
    """The 8-node box's vanilla, HARD_BIND and INVERSE_BIND rows of the fitted workloads are within ±25 % of
    the 10 Dec averages (numa02_SMT's averages there are pulled up by outlier runs: the next test)."""
    for suffix, published in zip(("", "_HARD_BIND", "_INVERSE_BIND"), X86_8N64[workload], strict=True):
        assert elapsed(workload + suffix, "x86-8n64") == pytest.approx(published, rel=TOLERANCE), suffix


@pytest.mark.parametrize("workload", sorted(X86_8N64_OCT))
def test_x86_8n64_rows_within_25_percent_of_the_v3_6_baseline(workload: str) -> None:
    """Every row of all four workloads, numa02_SMT included, is within ±25 % of the same box's 13 Oct v3.6
    averages, which were not fitted. (On 10 Dec numa02_SMT's five runs spread 144-923 s vanilla and 27-171 s
    HARD_BIND, so its averages there, 386 and 102 s, say more about outliers than about the machine.)"""
    for suffix, published in zip(("", "_HARD_BIND", "_INVERSE_BIND"), X86_8N64_OCT[workload], strict=True):
        assert elapsed(workload + suffix, "x86-8n64") == pytest.approx(published, rel=TOLERANCE), suffix


def test_x86_8n64_inverse_bind_slower_than_vanilla_where_published() -> None:
    """The posted check: INVERSE_BIND is slower than vanilla on numa01, numa01_THREAD_ALLOC and numa02 (and
    slower than HARD_BIND everywhere, above); HARD_BIND numa01 is well under vanilla but far from the 3-4x of
    the four-node boxes (1.57x published)."""
    for wl in X86_8N64:
        assert elapsed(wl + "_INVERSE_BIND", "x86-8n64") > elapsed(wl, "x86-8n64")
    ratio = elapsed("numa01", "x86-8n64") / elapsed("numa01_HARD_BIND", "x86-8n64")
    assert 1.3 < ratio < 2.5
