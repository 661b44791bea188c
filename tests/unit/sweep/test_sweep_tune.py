"""memsched tune's pieces: the search space from the knobs' declared bounds, and both objectives as the geometric
mean of each trial's ratio to the right reference runs, read back from the database."""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path

import pytest

import memsched.sweep.tune as tune_module
from memsched import results
from memsched.errors import ConfigError
from memsched.results.store import ResultStore
from memsched.sweep.executors import LocalPool
from memsched.sweep.plan import Machine
from memsched.sweep.tune import INT_MAX, TuneSetup, search_space, tune


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


def test_an_int_knob_is_searched_only_where_its_sysctl_holds_it() -> None:
    """kernel.numa_balancing_* are C ints (proc_dointvec): a --range past INT_MAX is refused with the knob's range,
    and a range that reaches INT_MAX is searched up to it, never beyond."""
    with pytest.raises(ConfigError, match=r"'--range' .* scan_size_mb's range 1\.\.2147483647 "):
        search_space("mainline", ranges={"scan_size_mb": (1, 1e30)})
    (dim,) = search_space("mainline", knobs=["scan_size_mb"], ranges={"scan_size_mb": (1, INT_MAX)})[0]
    assert (dim.lo, dim.hi) == (1, INT_MAX) and "[1, 2147483647]" in dim.describe()


def test_a_wide_declared_range_is_searched_around_the_default() -> None:
    """A knob's maximum says what is legal (a sysctl's INT_MAX, say), not what is sensible: with it, a scan knob is
    still searched from a tenth to ten times its default; a declared range within two decades is searched whole."""
    from memsched.sweep.tune import _bounds

    assert _bounds("scan_size_mb", int, 256, 1, INT_MAX, None, limit=False) == (25.6, 2560, "default /10..x10")
    assert _bounds("scan_delay_ms", int, 1000, 0, INT_MAX, None, limit=False) == (100, 10000, "default /10..x10")
    assert _bounds("scan_size_mb", int, 256, 1, 1000, None, limit=False) == (25.6, 1000, "default /10..x10")
    assert _bounds("improvement_threshold", float, 5, 0, 100, None, limit=False) == (0, 100, "declared bounds")
    assert _bounds("hz", int, 250, 100, 1000, None, limit=False) == (100, 1000, "declared bounds")
    assert _bounds("offset", int, 0, 0, INT_MAX, None, limit=False)[1] is None  # nothing to search around


@pytest.mark.parametrize(
    ("knobs", "ranges", "match"),
    [
        (["scan_size_mb"], {"group_active_in": (0.1, 0.2)}, "group_active_in, which --knobs scan_size_mb does not"),
        (None, {"group_active_in": (0.5, math.nan)}, "'--range'"),
        (None, {"group_active_in": (0.5, 0.5)}, "LO < HI"),
        (None, {"scan_size_mb": (1.2, 1.5)}, "whole number"),
    ],
)
def test_a_range_must_fit_a_searched_knob(
    knobs: list[str] | None, ranges: dict[str, tuple[float, float]], match: str
) -> None:
    """A --range for a knob left out of --knobs, NaN, an empty span, or no integer in an int knob's span."""
    with pytest.raises(ConfigError, match=match):
        search_space("mainline", knobs=knobs, ranges=ranges)


@dataclasses.dataclass(frozen=True)
class _NamesOnly:
    """A policy config whose one knob cannot be searched (a string without declared choices)."""

    label: str = "x"


@pytest.mark.parametrize(
    ("policy", "knobs", "match"),
    [
        ("none", None, "'--policy' has no knobs to search .*got 'none'"),
        ("names-only", None, "'--policy' has no knob that can be searched: label: a str"),
        ("names-only", ["label"], "'--knobs' leave nothing to search for policy names-only: label.*got 'label'"),
        ("mainline", [], "'--knobs' must name at least one knob"),
    ],
)
def test_an_empty_search_space_names_what_emptied_it(
    policy: str, knobs: list[str] | None, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy none said "'--knobs' leave nothing to search (got None)" with no --knobs given; an empty knob
    list searched every knob."""
    real = tune_module.policies.get
    config = types.SimpleNamespace(config_cls=_NamesOnly)
    monkeypatch.setattr(tune_module.policies, "get", lambda name: config if name == "names-only" else real(name))
    with pytest.raises(ConfigError, match=match):
        search_space(policy, knobs=knobs)


def test_a_range_for_a_choice_knob_is_refused() -> None:
    """balancenuma's two_stage_filter is a bool, searched over its values: a --range for it is not ignored."""
    with pytest.raises(ConfigError, match="not a number"):
        search_space("balancenuma", ranges={"two_stage_filter": (0, 1)})


@pytest.mark.parametrize(
    ("seeds", "holdout", "field"),
    [((), (100,), "'--seeds'"), ((0, 0), (), "'--seeds'"), ((2**32,), (), "'--seeds'"), ((0,), (-1,), "'--holdout")],
)
def test_tuning_seeds_are_checked_before_anything_runs(
    seeds: tuple[int, ...], holdout: tuple[int, ...], field: str, tmp_path: Path
) -> None:
    """No tuning seed (it used to fail every trial and blame --trials), repeats, or seeds past 32 bits."""
    dims, _ = search_space("mainline", knobs=["scan_size_mb"])
    with pytest.raises(ConfigError, match=field):
        TuneSetup("mainline", ("numa02",), Machine.named("laptop-1n8", tmp_path), tuple(dims), trials=2, seeds=seeds,
                  holdout_seeds=holdout)  # fmt: skip
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


def test_knobs_that_must_stay_in_order_are_searched_in_order() -> None:
    """knob(at_most=): mainline's group_active_out may not exceed group_active_in, a scan period minimum its
    maximum. Searched together, every trial keeps them in order (drawn independently, about half of the trials
    turned the hysteresis around and failed); searched alone, a knob stays on its side of the other's default;
    ranges that leave no valid pair are refused up front."""
    import optuna

    from memsched.policies.numa.mainline import MainlineConfig
    from memsched.sweep.tune import _suggest_all

    dims, _ = search_space("mainline")
    by = {d.name: d for d in dims}
    assert by["group_active_out"].at_most == "group_active_in" and by["group_active_in"].at_most is None
    assert by["scan_period_min_ms"].at_most == "scan_period_max_ms"
    assert "at most group_active_in" in by["group_active_out"].describe()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    for i in range(60):
        trial = study.ask()
        params = _suggest_all(trial, dims)
        assert list(params) == [d.name for d in dims]
        assert params["group_active_out"] <= params["group_active_in"]
        assert params["scan_period_min_ms"] <= params["scan_period_max_ms"]
        MainlineConfig(**params)  # a valid setting: no ConfigError
        study.tell(trial, float(i % 7))
    (out,) = search_space("mainline", knobs=["group_active_out"])[0]
    assert (out.lo, out.hi, out.at_most) == (0, 6 / 16, None)  # no higher than group_active_in's default
    (inn,) = search_space("mainline", knobs=["group_active_in"])[0]
    assert (inn.lo, inn.hi) == (3 / 16, 1)  # no lower than group_active_out's default
    with pytest.raises(ConfigError, match="leaves nothing to search: group_active_out must be <= group_active_in"):
        search_space("mainline", knobs=["group_active_out"], ranges={"group_active_out": (0.5, 0.9)})
