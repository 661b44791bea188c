"""``memsched tune``: search a NUMA policy's knobs with Optuna; trials are sweep cells in the results database."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from memsched.cli.app import app
from memsched.cli.common import (
    check_writable,
    emit_json,
    no_repeats,
    progress_bar,
    whole_number,
)
from memsched.cli.sweep import DbOpt, JobsOpt, JsonOpt, RayOpt, RetriesOpt
from memsched.errors import ConfigError
from memsched.results import DEFAULT_DB


def _ints(text: str, field: str, *, at_least: int = 1) -> tuple[int, ...]:
    """A comma-separated list of seeds, checked (range, count, repeats) before anything runs."""
    from memsched.sweep.tune import check_seeds

    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(field, text, "must be a comma-separated list of integers") from None
    return check_seeds(values, field, at_least=at_least)


def _knobs(text: str | None) -> list[str] | None:
    """``--knobs``: None (every knob) when not given; given, at least one knob, none named twice."""
    if text is None:
        return None
    names = [k.strip() for k in text.split(",") if k.strip()]
    if not names:
        raise ConfigError("--knobs", text, "must name at least one knob (leave --knobs out to search every knob)")
    no_repeats("--knobs", names)
    return names


def _ranges(items: list[str]) -> dict[str, tuple[float, float]]:
    """``KEY=LO:HI`` items; finite numbers, one range per key (the knob's own range is checked by the search
    space, which knows the knob)."""
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        key, sep, span = item.partition("=")
        lo_text, colon, hi_text = span.partition(":")
        key = key.strip()
        try:
            if not sep or not colon or not key:
                raise ValueError
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            raise ConfigError("--range", item, "must be KEY=LO:HI (e.g. scan_size_mb=64:1024)") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ConfigError("--range", item, "must be KEY=LO:HI with finite numbers (not NaN or infinity)")
        if key in out:
            raise ConfigError("--range", item, f"gives a second range for {key}")
        out[key] = (lo, hi)
    return out


@app.command()
def tune(
    policy: Annotated[str, typer.Option("--policy", "-p", help="the NUMA policy whose knobs are searched")],
    workloads: Annotated[str, typer.Option("--workloads", "-w", help="comma-separated workload ids")],
    topology: Annotated[str, typer.Option("--topology", "-t", help="preset or TOML file")] = "x86-8n64",
    trials: Annotated[
        int, typer.Option("--trials", help="number of trials (trial 0: the defaults)", parser=whole_number)
    ] = 100,
    objective: Annotated[str, typer.Option("--objective", help="speedup (over none) or hard-bind")] = "speedup",
    seeds: Annotated[
        str, typer.Option("--seeds", metavar="SEED[,SEED…]", help="seeds each trial runs (at least one)")
    ] = "0",
    holdout_seeds: Annotated[
        str,
        typer.Option(
            "--holdout-seeds", metavar="SEED[,SEED…]", help="seeds the best settings are checked on ('': none)"
        ),
    ] = "100,101,102",
    knobs: Annotated[
        str | None,
        typer.Option("--knobs", metavar="KEY[,KEY…]", help="search only these knobs (comma-separated)"),
    ] = None,
    range_: Annotated[
        list[str] | None,
        typer.Option("--range", metavar="KEY=LO:HI", help="search range of a searched knob (repeatable)"),
    ] = None,
    sampler_seed: Annotated[
        int, typer.Option("--sampler-seed", help="seed of the TPE sampler", parser=whole_number)
    ] = 0,
    batch: Annotated[
        int | None, typer.Option("--batch", help="trials run at once (default: one per worker)", parser=whole_number)
    ] = None,
    db: DbOpt = Path(DEFAULT_DB),
    ray: RayOpt = None,
    jobs: JobsOpt = None,
    retries: RetriesOpt = 1,
    json_out: JsonOpt = False,
) -> None:
    """Search a policy's knobs for the best geometric-mean speed-up; print them as --set lines and sysctls."""
    from memsched.conformance import checked_spec
    from memsched.results.store import ResultStore
    from memsched.sweep.executors import make_executor
    from memsched.sweep.plan import Machine
    from memsched.sweep.tune import TuneSetup, search_space
    from memsched.sweep.tune import tune as run_tune

    checked_spec(policy)
    wls = tuple(w.strip() for w in workloads.split(",") if w.strip())
    if not wls:
        raise ConfigError("--workloads", workloads, "must be a comma-separated list of workload ids")
    no_repeats("--workloads", wls)  # a repeat would count twice in the geometric mean, as a sweep spec refuses
    from memsched.workloads import base as workload_registry

    for w in wls:
        workload_registry.get(w)
    dims, skipped = search_space(policy, knobs=_knobs(knobs), ranges=_ranges(range_ or []))
    tuning_seeds, holdout = _ints(seeds, "--seeds"), _ints(holdout_seeds, "--holdout-seeds", at_least=0)
    machine = Machine.named(topology, Path.cwd(), field="--topology")
    check_writable(db, "--db")
    executor = make_executor(ray, jobs, retries)
    try:
        setup = TuneSetup(
            policy, wls, machine, tuple(dims), trials, objective, tuning_seeds, holdout, sampler_seed,
            executor.workers if batch is None else batch,
        )  # fmt: skip
        name = f"tune {policy} {'+'.join(wls)} {machine.name} {objective}"
        with ResultStore(db) as store, progress_bar(trials, name) as advance:
            result = run_tune(setup, store, executor, name=name, on_trial=lambda n, total: advance(n))
    finally:
        executor.close()
    doc = _document(setup, result, skipped, executor)
    if json_out:
        emit_json(doc)
    else:
        _print(doc)


def _document(setup: Any, result: Any, skipped: list[str], executor: Any) -> dict[str, Any]:
    from memsched.sweep.tune import OBJECTIVES

    best = result.best
    failed = sum(t["value"] is None for t in result.trials)
    return {
        "study": result.study, "policy": setup.policy, "workloads": list(setup.workloads),
        "topology": setup.machine.name, "objective": setup.objective, "objective_text": OBJECTIVES[setup.objective],
        "seeds": list(setup.seeds), "space": [d.describe() for d in setup.dims], "not_searched": skipped,
        "trials": len(result.trials), "failed_trials": failed, "best_trial": best["number"],
        "best_value": best["value"], "default_value": result.default_value, "best_params": best["params"],
        "set_lines": [f"--set {k}={v}" for k, v in best["params"].items()], "sysctls": result.sysctls,
        "holdout": result.holdout, "wall_s": round(result.wall_s, 1), "cells_run": result.cells_run,
        "cells_from_db": result.cells_cached, "executor": executor.name, "workers": executor.workers,
    }  # fmt: skip


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def _lines(doc: dict[str, Any]) -> list[tuple[str, bool]]:
    """The text report as (line, may_wrap): prose may wrap at the terminal's width; a line to paste (the
    ``--set`` options, one per line and joined by backslashes as a shell reads them, and the sysctl lines) is
    printed whole, so that no terminal width splits ``--set`` from its ``KEY=VALUE``."""
    sets = doc["set_lines"]
    lines = [
        (f"tune {doc['policy']} on {'+'.join(doc['workloads'])}, {doc['topology']}: {doc['trials']} trials "
         f"({doc['failed_trials']} failed), objective: {doc['objective_text']} on seeds "
         f"{','.join(map(str, doc['seeds']))}", True),
        ("search space:", True), *((f"  {d}", True) for d in doc["space"]),
        *((f"  not searched: {s}", True) for s in doc["not_searched"]),
        (f"best: trial {doc['best_trial']}, {_num(doc['best_value'])} (defaults: {_num(doc['default_value'])})",
         True),
        *((f"  {line}" + (" \\" if i < len(sets) - 1 else ""), False) for i, line in enumerate(sets)),
    ]  # fmt: skip
    if doc["sysctls"]:
        lines += [
            ("/etc/sysctl.d/90-memsched-numa.conf (Linux 3.8-5.12; from 5.13 write the values to "
             "/sys/kernel/debug/sched/numa_balancing/scan_*):", True),
            *((f"  {k} = {v}", False) for k, v in doc["sysctls"].items()),
        ]  # fmt: skip
    h = doc["holdout"]
    if h:
        per = ", ".join(f"{w} {_pct(v['gain'])}" for w, v in h["per_workload"].items())
        lines.append((
            f"held-out seeds {','.join(map(str, h['seeds']))}: {_pct(h['gain'])} over the defaults "
            f"({_num(h['best'])} vs {_num(h['default'])}; {per})", True
        ))  # fmt: skip
    lines.append((
        f"wall time {doc['wall_s']:.0f} s on {doc['executor']} x{doc['workers']}: {doc['cells_run']} cells run, "
        f"{doc['cells_from_db']} found in the database", True
    ))  # fmt: skip
    return lines


def _text(doc: dict[str, Any]) -> str:
    return "\n".join(line for line, _ in _lines(doc))


def _print(doc: dict[str, Any]) -> None:
    from memsched.cli.common import out_console

    for line, may_wrap in _lines(doc):
        out_console.print(line, highlight=False, markup=False, soft_wrap=not may_wrap)
