"""The sweep report's arithmetic: speed-ups against the matching baseline run, the winner, the sensitivity."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from memsched.report.sweep import _sensitivity, _winners, speedups, sweep_report


def row(policy: str, seed: int, score: float, size: int | None = None, *, higher: bool = False,
        mof: bool | None = None) -> dict[str, object]:
    sets = ({"scan_size_mb": size} if size is not None else {}) | ({"mof": mof} if mof is not None else {})
    return {
        "key": f"{policy}-{seed}-{size}-{mof}", "status": "ok", "role": "policy", "workload": "numa02",
        "base": "numa02", "policy": policy, "topology": "t", "topology_family": "fam", "seed": seed,
        "sets": json.dumps(sets), "score_value": score, "score_higher_is_better": higher, "set_scan_size_mb": size,
        "set_mof": mof, "model_version": "m", "attempts": 1, "error": None,
    }  # fmt: skip


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = [row("none", s, 100.0) for s in (0, 1)]
    rows += [row("none", s, 50.0, mof=True) for s in (0, 1)]
    rows += [row("mainline", s, 100.0 / f, size) for s in (0, 1) for size, f in ((64, 1.0), (512, 2.0))]
    rows += [row("mainline", s, 40.0, 512, mof=True) for s in (0, 1)]
    return pd.DataFrame(rows)


def test_speedup_is_the_matching_baseline_over_the_run(frame: pd.DataFrame) -> None:
    """Each run is measured against none on the same machine, seed and workload settings (mof here)."""
    out = speedups(frame, "none").set_index("key")
    assert out.loc["mainline-0-512-None", "speedup"] == pytest.approx(2.0)
    assert out.loc["mainline-1-64-None", "speedup"] == pytest.approx(1.0)
    assert out.loc["mainline-0-512-True", "speedup"] == pytest.approx(1.25)  # 50 / 40, not 100 / 40
    assert out.loc["none-0-None-None", "speedup"] == pytest.approx(1.0)


def test_higher_is_better_scores_are_ratios_the_other_way() -> None:
    """For a fixed-time benchmark (bops) the speed-up is run over baseline."""
    frame = pd.DataFrame([row("none", 0, 10.0, higher=True), row("mainline", 0, 15.0, 64, higher=True)])
    out = speedups(frame, "none").set_index("policy")
    assert out.loc["mainline", "speedup"] == pytest.approx(1.5)


def test_winner_and_sensitivity(frame: pd.DataFrame) -> None:
    """mainline at 512 MB wins the family; for mainline the scan size explains the variance, the seed none."""
    runs = speedups(frame, "none")
    winners = _winners(runs)
    assert winners[1][:4] == ["fam", "all", "mainline scan_size_mb=512", "2.000"]
    sens = {(r[0], r[1]): r[2] for r in _sensitivity(runs, ["set_scan_size_mb"])[1:]}
    # log speed-ups 0, 0 (64 MB), log 2, log 2 (512 MB), log 1.25, log 1.25 (512 MB, mof): size explains 56%
    assert sens[("mainline", "set_scan_size_mb")] == "56%" and sens[("mainline", "seed")] == "0%"


def test_report_has_every_section(frame: pd.DataFrame) -> None:
    """The page has the knob chart, heatmaps (or why not), winners, sensitivity and failures."""
    page = sweep_report(frame, {"name": "s", "knobs": ["set_scan_size_mb", "set_mof"], "baseline": "none"})
    for heading in ("Speed-up against each swept knob", "Two knobs at a time", "Winner per topology family",
                    "Which knobs matter", "Failed cells"):  # fmt: skip
        assert heading in page
    assert page.count("<img") >= 2


def test_swept_knobs_are_labelled_by_key_and_unit() -> None:
    """The chart says what a user typed and its unit, not the results table's column name (review 2)."""
    from memsched.report.sweep import knob_label

    assert knob_label("set_scan_size_mb") == "scan_size_mb (MiB, --set)"
    assert knob_label("set_imbalance_pct") == "imbalance_pct (%, --set)"
    assert knob_label("set_mof") == "mof (--set)"
    assert knob_label("topology") == "topology"


def test_binary_unit_suffixes_have_units() -> None:
    """Review 3: specjbb's txn_kib showed no unit in list settings and the sweep charts."""
    from memsched.units import unit_of_key

    assert [unit_of_key(k) for k in ("txn_kib", "buf_mib", "heap_gib", "scan_size_mb")] == ["KiB", "MiB", "GiB", "MiB"]
