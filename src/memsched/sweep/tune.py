"""``memsched tune``: Optuna searches a NUMA policy's knobs on chosen workloads and one machine.

**Search space.** A knob declared with both bounds (``knob(min=, max=)``) close together (two decades at most,
or from 0 up to a hundred times its default) is searched between them; one with choices, or a bool, over its values.
A knob with only a lower bound, or with bounds further apart (most scan sysctls), is searched from a tenth to
ten times its default (clipped to the declared bounds), on a log scale when that spans two decades or more:
the declared bounds say what is legal, not what is sensible, and an unbounded integer cannot be sampled.
``--range key=lo:hi`` overrides either; a knob whose default is 0 and that has no upper bound needs one.
An integer knob never goes above :data:`INT_MAX` (nor its own maximum), so that every value the search can
recommend is one its sysctl holds; a ``--range`` outside a knob's range, or for a knob not searched, is refused.

**Objective** (maximised). ``speedup``: the geometric mean, over workloads and tuning seeds, of each run's
speed-up over the same run under ``none`` (elapsed time ratio; the score ratio for fixed-time benchmarks).
``hard-bind``: the same against the workload's HARD_BIND reference (1.0 = as good as hand placement).

**Trials are sweep cells.** Each trial is one cell per (workload, seed) with the trial's ``--set`` values, run on
the same executors by :func:`~memsched.sweep.run.run_cells` into the same database (a tuning run is registered
as a sweep of kind ``tune``, its trials in the ``trials`` table). Trial 0 is the defaults. Trials are asked in
batches (one per worker by default) and told in order, and the sampler is seeded, so the same command gives
the same trials; rerun after an interruption, it finds every finished cell in the database and replays them
without simulating.

**Held-out seeds.** The best settings and the defaults are run on seeds the search never saw; the gain reported
is the ratio of their objectives there.

**Sysctls.** Knobs that are real kernel tunables print as an ``/etc/sysctl.d`` snippet: ``kernel.numa_balancing_
scan_{delay,period_min,period_max,size}`` (Documentation/sysctl/kernel.txt, Linux 3.8-5.12; from 5.13 the same
files are ``/sys/kernel/debug/sched/numa_balancing/scan_*``, Documentation/scheduler/sched-debug.rst, after
"sched: Move SCHED_DEBUG sysctl to debugfs", Peter Zijlstra, 2021), and 3.8's
``kernel.numa_balancing_scan_period_reset`` (removed in 3.13).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memsched.config import KNOB_LIMIT, check_seed, format_bound
from memsched.errors import ConfigError, MemschedError
from memsched.numeric import seq_sum
from memsched.policies.numa import registry as policies
from memsched.policies.numa.base import SYSCTL_INT_MAX
from memsched.record import MODEL_VERSION, Role
from memsched.results.store import ResultStore
from memsched.sweep.cell import Cell
from memsched.sweep.executors import Executor
from memsched.sweep.plan import Machine, check_cells, make_cell
from memsched.sweep.run import run_cells
from memsched.sweep.spec import MAX_SEEDS
from memsched.sweep.values import Scalar
from memsched.workloads import base as workloads
from memsched.workloads.numa import NumaOptions

__all__ = [
    "INT_MAX",
    "OBJECTIVES",
    "SYSCTLS",
    "Dim",
    "TuneResult",
    "TuneSetup",
    "check_seeds",
    "search_space",
    "tune",
]

OBJECTIVES = {"speedup": "geometric-mean speed-up over none", "hard-bind": "geometric-mean ratio to HARD_BIND"}

#: Knobs that are kernel sysctls, per policy (the policy models that kernel's tunables).
SYSCTLS: dict[str, dict[str, str]] = {
    "mainline": {
        "scan_delay_ms": "kernel.numa_balancing_scan_delay_ms",
        "scan_period_min_ms": "kernel.numa_balancing_scan_period_min_ms",
        "scan_period_max_ms": "kernel.numa_balancing_scan_period_max_ms",
        "scan_size_mb": "kernel.numa_balancing_scan_size_mb",
    },
    "balancenuma": {
        "scan_delay_ms": "kernel.numa_balancing_scan_delay_ms",
        "scan_period_min_ms": "kernel.numa_balancing_scan_period_min_ms",
        "scan_period_max_ms": "kernel.numa_balancing_scan_period_max_ms",
        "scan_period_reset_ms": "kernel.numa_balancing_scan_period_reset",
        "scan_size_mb": "kernel.numa_balancing_scan_size_mb",
    },
}

#: How far from its default a knob with no upper bound is searched (a factor each way).
SPAN = 10.0

#: The largest value searched for an integer knob that declares no maximum: the numa_balancing sysctls are C
#: ints written through ``proc_dointvec``/``proc_dointvec_minmax`` (kernel/sysctl.c, Linux 3.8-5.12), which
#: refuse anything above INT_MAX with EINVAL, so a recommended ``kernel.numa_balancing_scan_size_mb =
#: 16199129468987638`` could never be written. The other integer knobs model C ints too.
INT_MAX = SYSCTL_INT_MAX


#: Trials of one tuning run at most.
MAX_TRIALS = 10_000

@dataclass(frozen=True)
class Dim:
    """One searched knob: ``kind`` int, float or a list of ``choices``; ``origin`` says where the range came from."""

    name: str
    kind: str
    default: Scalar
    lo: float | None = None
    hi: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()
    origin: str = "declared bounds"
    #: Another searched knob this one may not exceed (``knob(at_most=)``): it is drawn after that one, no higher.
    at_most: str | None = None

    def describe(self) -> str:
        if self.choices:
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        scale = " log" if self.log else ""
        assert self.lo is not None and self.hi is not None
        span = f"[{format_bound(self.lo)}, {format_bound(self.hi)}]"
        most = f", at most {self.at_most}" if self.at_most else ""
        return f"{self.name} {span}{scale}{most} ({self.origin}; default {self.default})"


def search_space(
    policy: str, *, knobs: Sequence[str] | None = None, ranges: Mapping[str, tuple[float, float]] | None = None
) -> tuple[list[Dim], list[str]]:
    """The dimensions to search for ``policy``, and a note for each knob left at its default."""
    cls = policies.get(policy).config_cls
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    ranges = dict(ranges or {})
    if knobs is not None and not knobs:  # an empty list is not "every knob": leave knobs out for that
        raise ConfigError("--knobs", "", "must name at least one knob (leave --knobs out to search every knob)")
    for name in [*(knobs or []), *ranges]:
        if name not in fields:
            its = f"its knobs: {', '.join(fields)}" if fields else "it has none"
            raise ConfigError("--knobs" if name not in ranges else "--range", name,
                              f"is not a knob of policy {policy}; {its}")
    for name in ranges:
        if knobs and name not in knobs:
            raise ConfigError("--range", name, f"names {name}, which --knobs {','.join(knobs)} does not search: "
                              "add it to --knobs or drop the --range")
        if fields[name].metadata.get("choices") or hints[name] not in (int, float):
            raise ConfigError("--range", name, f"names {name}, a knob that is not a number (a choice is searched "
                              "over its values)")
    dims, skipped = [], []
    for name, f in fields.items():
        if knobs and name not in knobs:
            continue
        kind, meta = hints[name], f.metadata
        default: Any = f.default
        if meta.get("choices"):
            dims.append(Dim(name, "choice", default, choices=tuple(meta["choices"])))
        elif kind is bool:
            dims.append(Dim(name, "choice", default, choices=(False, True)))
        elif kind not in (int, float):
            skipped.append(f"{name}: a {getattr(kind, '__name__', kind)} without declared choices")
        else:
            lo, hi, origin = _bounds(
                name, kind, default, meta.get("min"), meta.get("max"), ranges.get(name),
                limit=bool(meta.get("limit")),
            )
            if lo is None or hi is None:
                skipped.append(f"{name}: default {default} and no upper bound to search to (give --range "
                               f"{name}=LO:HI)")
                continue
            log = lo > 0 and hi / lo >= 100
            dims.append(Dim(name, kind.__name__, default, lo, hi, log, origin=origin))
    if not dims:
        raise _nothing_to_search(policy, knobs, skipped)
    return _ordered(dims, fields), skipped


def _nothing_to_search(policy: str, knobs: Sequence[str] | None, skipped: Sequence[str]) -> ConfigError:
    """The error of an empty search space, naming what emptied it: --knobs when given, else the policy."""
    why = "; ".join(skipped)
    if knobs:
        return ConfigError("--knobs", ",".join(knobs), f"leave nothing to search for policy {policy}: {why}")
    if why:
        return ConfigError("--policy", policy, f"has no knob that can be searched: {why}")
    return ConfigError("--policy", policy, "has no knobs to search (memsched list settings --policy NAME lists "
                       "a policy's knobs)")  # fmt: skip


def _ordered(dims: list[Dim], fields: Mapping[str, dataclasses.Field[Any]]) -> list[Dim]:
    """``dims`` with the pairs of knobs that must stay in order (``knob(at_most=)``: a minimum and its maximum)
    kept in order: a knob whose bound is not searched is searched no higher than the bound's default (and the
    bound no lower than the knob's default, the other way round); when both are searched the lower one is drawn
    after the other, no higher (:func:`_suggest_all`), and the other no lower than the lower one can go. Every
    trial is then a valid setting (independent draws turned about half of them around, each a failed trial)."""
    at = {d.name: i for i, d in enumerate(dims)}
    for name, f in fields.items():
        high = f.metadata.get("at_most")
        if high is None or (name not in at and high not in at):
            continue
        low_dim = dims[at[name]] if name in at else None
        high_dim = dims[at[high]] if high in at else None
        # (numbers, with defaults: each is a searched knob, or bounds one)
        low_default = float(typing.cast(float, f.default))
        high_default = float(typing.cast(float, fields[high].default))
        if low_dim is not None and high_dim is None:
            assert low_dim.hi is not None
            low_dim = dataclasses.replace(low_dim, hi=min(low_dim.hi, high_default))
        elif high_dim is not None:
            assert high_dim.lo is not None
            floor = low_default if low_dim is None or low_dim.lo is None else low_dim.lo
            high_dim = dataclasses.replace(high_dim, lo=max(high_dim.lo, floor))
            if low_dim is not None:
                low_dim = dataclasses.replace(low_dim, at_most=high)
        for d in (low_dim, high_dim):
            if d is None:
                continue
            assert d.lo is not None and d.hi is not None
            if d.lo > d.hi or (d.kind == "int" and math.ceil(d.lo) > math.floor(d.hi)):
                raise ConfigError(
                    "--range", f"{name}, {high}",
                    f"leaves nothing to search: {name} must be <= {high}, and their ranges "
                    f"({', '.join(x.describe() for x in (low_dim, high_dim) if x is not None)}) and defaults "
                    f"({format_bound(low_default)}, {format_bound(high_default)}) do not allow it",
                )  # fmt: skip
            dims[at[d.name]] = dataclasses.replace(d, log=d.lo > 0 and d.hi / d.lo >= 100)
    return dims


def _suggest_all(trial: Any, dims: Sequence[Dim]) -> dict[str, Scalar]:
    """One value per dimension, in order, except that a knob bounded by another searched knob
    (``Dim.at_most``) is drawn after it, no higher than the value drawn."""
    params = {d.name: _suggest(trial, d) for d in dims if d.at_most is None}
    for d in dims:
        if d.at_most is not None:
            assert d.hi is not None
            params[d.name] = _suggest(trial, dataclasses.replace(d, hi=min(d.hi, float(params[d.at_most]))))
    return {d.name: params[d.name] for d in dims}


def _bounds(
    name: str,
    kind: type,
    default: Any,
    lo: float | None,
    hi: float | None,
    given: tuple[float, float] | None,
    *,
    limit: bool,
) -> tuple[float | None, float | None, str]:
    """The search range of a knob: ``--range``, else its declared bounds when they are a range to search
    (:func:`_narrow`), else the default /SPAN..xSPAN clipped to what the knob can hold. A ``max`` declared as
    a limit (:func:`memsched.config.knob`) is not a range: it only clips."""
    # What the knob can hold: its declared bounds, else what validate() allows, and an int no more than INT_MAX.
    k_lo = -KNOB_LIMIT if lo is None else lo
    k_hi = KNOB_LIMIT if hi is None else hi
    if kind is int:
        k_lo, k_hi = max(k_lo, -INT_MAX - 1), min(k_hi, INT_MAX)
    if given is not None:
        g_lo, g_hi = given
        if not (math.isfinite(g_lo) and math.isfinite(g_hi) and k_lo <= g_lo < g_hi <= k_hi) or (
            kind is int and math.ceil(g_lo) > math.floor(g_hi)
        ):
            whole = " holding a whole number" if kind is int else ""
            raise ConfigError("--range", f"{name}={format_bound(g_lo)}:{format_bound(g_hi)}",
                              f"must be LO:HI with LO < HI{whole} inside {name}'s range "
                              f"{format_bound(k_lo)}..{format_bound(k_hi)}")
        return g_lo, g_hi, "--range"
    if lo is not None and hi is not None and not limit and _narrow(lo, k_hi, default):
        return lo, k_hi, "declared bounds"
    if default <= 0:
        return lo, None, ""
    d_lo, d_hi = default / SPAN, default * SPAN
    return max(k_lo, d_lo), min(k_hi, d_hi), f"default /{SPAN:g}..x{SPAN:g}"


def _narrow(lo: float, hi: float, default: Any) -> bool:
    """Declared bounds close enough to search between: two decades at most, or, from 0 or below, up to a hundred
    times the default. A wider declared range (a sysctl's maximum, say) is what is legal, not what is sensible:
    it is searched like a knob with a lower bound only, around its default."""
    if lo > 0:
        return hi / lo <= SPAN * SPAN
    return bool(default > 0 and hi <= default * SPAN * SPAN)


def check_seeds(seeds: Sequence[int], option: str, *, at_least: int = 1) -> tuple[int, ...]:
    """``seeds`` if they are ``at_least`` and at most MAX_SEEDS distinct seeds, else a ConfigError naming ``option``
    (an empty ``--seeds`` used to run the references, fail every trial and blame ``--trials``)."""
    shown = ",".join(map(str, seeds))
    if not at_least <= len(seeds) <= MAX_SEEDS:
        raise ConfigError(option, shown, f"must list {at_least} to {MAX_SEEDS:,} seeds")
    for s in seeds:
        check_seed(s, option)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(option, shown, "must not repeat a seed")
    return tuple(seeds)


@dataclass(frozen=True)
class TuneSetup:
    policy: str
    workloads: tuple[str, ...]
    machine: Machine
    dims: tuple[Dim, ...]
    trials: int
    objective: str = "speedup"
    seeds: tuple[int, ...] = (0,)
    holdout_seeds: tuple[int, ...] = (100, 101, 102)
    sampler_seed: int = 0
    batch: int = 1
    options: NumaOptions = field(default_factory=NumaOptions)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError("--objective", self.objective, "must be one of: " + ", ".join(OBJECTIVES))
        if not 1 <= self.trials <= MAX_TRIALS:  # TPE's own cost grows with the history; a sweep holds the rest
            raise ConfigError("--trials", self.trials, f"must be in 1..{MAX_TRIALS:,}")
        if not 1 <= self.batch <= 1024:
            raise ConfigError("--batch", self.batch, "must be in 1..1024")
        check_seed(self.sampler_seed, "--sampler-seed")  # numpy's RandomState, under TPESampler, takes 32 bits
        check_seeds(self.seeds, "--seeds")
        check_seeds(self.holdout_seeds, "--holdout-seeds", at_least=0)
        if set(self.seeds) & set(self.holdout_seeds):
            raise ConfigError("--holdout-seeds", list(self.holdout_seeds), "must not repeat a tuning seed")
        if not self.dims:
            raise ConfigError("--knobs", None, f"leave nothing to search for policy {self.policy}")
        for wl in self.workloads:
            self.reference(wl)

    @property
    def study_id(self) -> str:
        """The id of this tuning run (its sweep id): a hash of everything that decides its trials."""
        doc = {"policy": policies.get(self.policy).versioned_id, "workloads": self.workloads,
               "topology": self.machine.topology.to_mapping(), "dims": [dataclasses.asdict(d) for d in self.dims],
               "objective": self.objective, "seeds": self.seeds, "holdout": self.holdout_seeds,
               "sampler_seed": self.sampler_seed, "batch": self.batch, "options": dataclasses.asdict(self.options),
               "model_version": MODEL_VERSION}  # fmt: skip
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
        return digest

    def reference(self, workload: str) -> tuple[str, str, str]:
        """(workload, policy, label) of the run ``workload`` is measured against."""
        if self.objective == "speedup":
            return workload, "none", "none"
        for ref in workloads.get(workload).references:
            if ref.workload.endswith("_HARD_BIND"):
                return ref.workload, "none", ref.label
        raise ConfigError("--objective", self.objective, f"needs a HARD_BIND reference, which {workload} lacks")

    def cells(self, sets: Mapping[str, Scalar], seeds: Sequence[int]) -> dict[tuple[str, int], Cell]:
        return {(wl, s): make_cell(self.machine, wl, self.policy, s, sets, options=self.options)
                for wl in self.workloads for s in seeds}  # fmt: skip

    def reference_cells(self, seeds: Sequence[int]) -> dict[tuple[str, int], Cell]:
        out = {}
        for wl in self.workloads:
            ref, pol, label = self.reference(wl)
            role: Role = "policy" if self.objective == "speedup" else "reference"
            for s in seeds:
                out[(wl, s)] = make_cell(self.machine, ref, pol, s, {}, options=self.options, role=role, base=wl,
                                         label=label)
        return out


@dataclass
class TuneResult:
    study: str
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    default_value: float | None
    holdout: dict[str, Any]
    sysctls: dict[str, Scalar]
    wall_s: float
    cells_run: int
    cells_cached: int


def tune(
    setup: TuneSetup,
    store: ResultStore,
    executor: Executor,
    *,
    name: str,
    on_trial: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Run the search and the held-out comparison; every cell goes through ``store``."""
    import optuna

    start = time.monotonic()
    counts = {"run": 0, "cached": 0}
    keys: list[str] = []

    def run(cells: Sequence[Cell]) -> dict[str, dict[str, Any]]:
        progress = run_cells(cells, store, executor)
        counts["run"] += progress.ran
        counts["cached"] += progress.skipped + progress.elsewhere
        keys.extend(c.key for c in cells)
        store.register_sweep(setup.study_id, name, "tune", _doc(setup), [c.key for c in cells])
        return store.records(c.key for c in cells)

    all_seeds = [*setup.seeds, *setup.holdout_seeds]
    refs = setup.reference_cells(all_seeds)
    ref_docs = run(list(refs.values()))
    missing = [k for k, c in refs.items() if c.key not in ref_docs]
    if missing:
        why = store.failures([refs[missing[0]].key])
        raise ConfigError("--workloads", missing[0][0], f"has a reference run that failed: {why}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=setup.sampler_seed, constant_liar=setup.batch > 1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({d.name: d.default for d in setup.dims})
    trials: list[dict[str, Any]] = []
    while len(trials) < setup.trials:
        asked = [study.ask() for _ in range(min(setup.batch, setup.trials - len(trials)))]
        planned: list[tuple[Any, dict[str, Scalar], dict[tuple[str, int], Cell], str | None]] = []
        for t in asked:
            params = _suggest_all(t, setup.dims)
            try:
                cells = setup.cells(params, setup.seeds)
                check_cells(cells.values())
            except ConfigError as e:
                planned.append((t, params, {}, str(e)))
                continue
            planned.append((t, params, cells, None))
        docs = run([c for _, _, cells, _ in planned for c in cells.values()])
        for t, params, cells, reason in planned:
            value = None if reason else _objective(cells, refs, docs, ref_docs)
            state = "complete" if value is not None else "failed"
            if value is None:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, value)
            trials.append({"number": t.number, "params": params, "value": value, "state": state,
                           "keys": sorted(c.key for c in cells.values()),
                           "reason": reason or (None if value is not None else "a run failed")})  # fmt: skip
        store.put_trials(setup.study_id, trials[-len(planned):])
        if on_trial:
            on_trial(len(trials), setup.trials)
    done = [t for t in trials if t["value"] is not None]
    if not done:
        # Not the user's --trials: the seeds and ranges were checked up front, so this is runs failing.
        raise MemschedError(f"no trial completed: all {len(trials)} failed (trial 0, the defaults: "
                            f"{trials[0]['reason']}); the trials table of the database has each one's reason")
    best = max(done, key=lambda t: (t["value"], -t["number"]))
    defaults = {d.name: d.default for d in setup.dims}
    holdout = _holdout(setup, best["params"], defaults, refs, ref_docs, run)
    sysctl_names = SYSCTLS.get(policies.get(setup.policy).id, {})
    return TuneResult(
        study=setup.study_id,
        trials=trials,
        best=best,
        default_value=trials[0]["value"],
        holdout=holdout,
        sysctls={sysctl_names[k]: v for k, v in best["params"].items() if k in sysctl_names},
        wall_s=time.monotonic() - start,
        cells_run=counts["run"],
        cells_cached=counts["cached"],
    )


def _suggest(trial: Any, d: Dim) -> Scalar:
    if d.choices:
        value: Scalar = trial.suggest_categorical(d.name, list(d.choices))
        return value
    assert d.lo is not None and d.hi is not None
    if d.kind == "int":
        return int(trial.suggest_int(d.name, math.ceil(d.lo), math.floor(d.hi), log=d.log))
    return float(trial.suggest_float(d.name, d.lo, d.hi, log=d.log))


def _ratio(run: Mapping[str, Any], ref: Mapping[str, Any]) -> float:
    """How much better ``run`` is than ``ref``: elapsed time ratio, or score ratio when higher is better."""
    score, base = run["score"], ref["score"]
    if score["value"] is None or base["value"] is None or score["value"] <= 0 or base["value"] <= 0:
        return math.nan
    if score.get("higher_is_better"):
        return float(score["value"] / base["value"])
    return float(base["value"] / score["value"])


def _objective(
    cells: Mapping[tuple[str, int], Cell],
    refs: Mapping[tuple[str, int], Cell],
    docs: Mapping[str, Mapping[str, Any]],
    ref_docs: Mapping[str, Mapping[str, Any]],
) -> float | None:
    """Geometric mean of the ratios of ``cells`` to their references; None when a run failed."""
    logs = []
    for k, cell in cells.items():
        if cell.key not in docs:
            return None
        r = _ratio(docs[cell.key], ref_docs[refs[k].key])
        if not r > 0:
            return None
        logs.append(math.log(r))
    return math.exp(seq_sum(logs) / len(logs)) if logs else None


def _holdout(
    setup: TuneSetup,
    best: Mapping[str, Scalar],
    defaults: Mapping[str, Scalar],
    refs: Mapping[tuple[str, int], Cell],
    ref_docs: Mapping[str, Mapping[str, Any]],
    run: Callable[[Sequence[Cell]], dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """The best settings against the defaults on the held-out seeds, overall and per workload."""
    if not setup.holdout_seeds:
        return {}
    b, d = setup.cells(best, setup.holdout_seeds), setup.cells(defaults, setup.holdout_seeds)
    docs = run([*b.values(), *d.values()])
    out: dict[str, Any] = {"seeds": list(setup.holdout_seeds)}
    vb, vd = _objective(b, refs, docs, ref_docs), _objective(d, refs, docs, ref_docs)
    out |= {"best": vb, "default": vd, "gain": (vb / vd - 1) if vb and vd else None, "per_workload": {}}
    for wl in setup.workloads:
        pb = _objective({k: c for k, c in b.items() if k[0] == wl}, refs, docs, ref_docs)
        pd_ = _objective({k: c for k, c in d.items() if k[0] == wl}, refs, docs, ref_docs)
        out["per_workload"][wl] = {"best": pb, "default": pd_, "gain": (pb / pd_ - 1) if pb and pd_ else None}
    return out


def _doc(setup: TuneSetup) -> dict[str, Any]:
    return {"policy": setup.policy, "workloads": list(setup.workloads), "topology": setup.machine.name,
            "objective": setup.objective, "seeds": list(setup.seeds), "holdout_seeds": list(setup.holdout_seeds),
            "space": [d.describe() for d in setup.dims], "trials": setup.trials, "sampler_seed": setup.sampler_seed,
            "model_version": MODEL_VERSION}  # fmt: skip
