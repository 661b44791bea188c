"""memsched tune's pieces: the search space from the knobs' declared bounds, and both objectives as the geometric
mean of each trial's ratio to the right reference runs, read back from the database."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from memsched import results
from memsched.errors import ConfigError
from memsched.results.store import ResultStore
from memsched.sweep.executors import LocalPool
from memsched.sweep.plan import Machine
from memsched.sweep.tune import TuneSetup, search_space, tune


def test_the_search_space_comes_from_the_declared_bounds() -> None:
    """Both bounds declared: searched between them; a lower bound only: a tenth to ten times the default,
    clipped to the bound, log when that spans two decades; --range overrides and --knobs restricts."""
    dims, skipped = search_space("mainline")
    by = {d.name: d for d in dims}
    assert skipped == []
    period = by["scan_period_min_ms"]
    assert (period.kind, period.lo, period.hi, period.log, period.default) == ("int", 100, 10000, True, 1000)
    assert period.origin == "default /10..x10"
    group = by["group_active_in"]
    assert (group.kind, group.lo, group.hi, group.log, group.origin) == ("float", 0, 1, False, "declared bounds")
    imbalance = by["imbalance_pct"]
    assert (imbalance.lo, imbalance.hi, imbalance.log) == (100, 1120, False)  # the declared min=100 clips /10
    dims, _ = search_space("mainline", knobs=["scan_size_mb"], ranges={"scan_size_mb": (64, 1024)})
    assert [(d.name, d.lo, d.hi, d.log, d.origin) for d in dims] == [("scan_size_mb", 64, 1024, False, "--range")]
    with pytest.raises(ConfigError, match="'--range'"):
        search_space("mainline", ranges={"scan_size_mb": (0, 1024)})  # below the declared min=1


def test_a_declared_limit_only_clips_the_default_window() -> None:
    """A max declared as a limit (the sysctl's INT_MAX) is no range to search: the window stays a tenth to ten
    times the default, and a window that would pass the limit ends at it."""
    by = {d.name: d for d in search_space("mainline")[0]}
    size = by["scan_size_mb"]
    assert (size.lo, size.hi, size.origin) == (25.6, 2560, "default /10..x10")
    with pytest.raises(ConfigError, match="'--range'"):
        search_space("mainline", ranges={"scan_size_mb": (1, 1e30)})  # above the sysctl's INT_MAX
    by = {d.name: d for d in search_space("numacore")[0]}
    assert (by["numa_settle"].lo, by["numa_settle"].hi) == (1, 20)


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "reference", "role"), [
    ("speedup", "numa02", "policy"),
    ("hard-bind", "numa02_HARD_BIND", "reference"),
])  # fmt: skip
def test_the_objective_is_the_geometric_mean_ratio_to_the_reference_runs(
    objective: str, reference: str, role: str, tmp_path: Path
) -> None:
    """Two trials of scan_size_mb on two seeds: each trial's value is the geometric mean over seeds of its run's
    ratio to the same seed's reference run (numa02 under none, or numa02_HARD_BIND), as stored in the database."""
    db = tmp_path / "t.duckdb"
    dims, _ = search_space("mainline", knobs=["scan_size_mb"])
    setup = TuneSetup("mainline", ("numa02",), Machine.named("opteron-4n32", tmp_path), tuple(dims), trials=2,
                      objective=objective, seeds=(0, 1), holdout_seeds=(), batch=2)  # fmt: skip
    pool = LocalPool(2)
    try:
        with ResultStore(db) as store:
            result = tune(setup, store, pool, name="t")
    finally:
        pool.close()
    frame = results.open(db)
    refs = frame[(frame["workload"] == reference) & (frame["policy"] == "none")].set_index("seed")
    assert sorted(refs.index) == [0, 1] and set(refs["role"]) == {role}
    assert result.trials[0]["params"] == {"scan_size_mb": 256}  # trial 0: the defaults
    assert result.default_value == result.trials[0]["value"]
    for trial in result.trials:
        runs = frame[frame["key"].isin(trial["keys"])].set_index("seed")
        assert sorted(runs.index) == [0, 1] and set(runs["set_scan_size_mb"]) == {trial["params"]["scan_size_mb"]}
        ratios = [refs.loc[s, "score_value"] / runs.loc[s, "score_value"] for s in (0, 1)]  # lower time is better
        assert trial["value"] == pytest.approx(math.sqrt(ratios[0] * ratios[1]), rel=1e-12)
    assert result.best["value"] == max(t["value"] for t in result.trials)
    assert result.holdout == {} and result.sysctls == {"kernel.numa_balancing_scan_size_mb": result.best["params"][
        "scan_size_mb"]}  # fmt: skip
    stored = results.query(db, "SELECT number, value, state FROM trials ORDER BY number")
    assert stored["value"].tolist() == [t["value"] for t in result.trials] and set(stored["state"]) == {"complete"}
