"""``memsched sweep SPEC.toml``: many simulated runs into one results database, on this machine or on Ray."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memsched.cli.app import app
from memsched.cli.common import (
    check_writable,
    emit_json,
    output_file,
    show_progress,
    whole_number,
    write_atomic,
)
from memsched.errors import ConfigError, MemschedError
from memsched.results import DEFAULT_DB

if TYPE_CHECKING:
    from memsched.results.store import Outcome

DbOpt = Annotated[Path, typer.Option("--db", help="the results database (DuckDB file)")]
RayOpt = Annotated[
    str | None,
    typer.Option("--ray", metavar="ADDRESS", help="run each cell as a Ray task: a cluster address, auto or local"),
]
JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", help="local worker processes (default: one per CPU)", parser=whole_number),
]
RetriesOpt = Annotated[
    int, typer.Option("--retries", help="reruns of a cell whose worker died, before it fails", parser=whole_number)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="the sweep spec (TOML; see docs/sweeps.md)")],
    db: DbOpt = Path(DEFAULT_DB),
    ray: RayOpt = None,
    jobs: JobsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count the cells and estimate the wall time")] = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="write an HTML report of the sweep", parser=output_file),
    ] = None,
    retries: RetriesOpt = 1,
    timelines: Annotated[
        bool | None, typer.Option("--timelines/--no-timelines", help="timelines to Parquet (default: the spec's)")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run every cell of a sweep spec not yet in the database; each result is committed as it arrives."""
    from memsched.conformance import checked_spec
    from memsched.sweep.executors import check_executor_options, make_executor
    from memsched.sweep.run import run_sweep, timelines_dir
    from memsched.sweep.spec import load_spec

    check_executor_options(jobs, retries)
    if dry_run and report is not None:
        raise ConfigError("--report", str(report), "cannot be given with --dry-run, which runs nothing to report on")
    plan = load_spec(spec)
    for pol in {c.doc["policy"] for c in plan.cells}:
        checked_spec(pol)
    check_writable(db, "--db")
    if report is not None:
        check_writable(report, "--report")
    if dry_run:
        _dry_run(plan.cells, plan.name, db, ray, jobs, json_out)
        return
    executor = make_executor(ray, jobs, retries)
    try:
        with sweep_progress(len(plan.cells), f"sweep {plan.name}") as tick:
            progress = run_sweep(plan, db, executor, timelines=timelines, on_progress=tick)
    finally:
        executor.close()
    if report is not None:
        from memsched.report.sweep import sweep_report
        from memsched.results import open as open_results

        meta = {"name": plan.name, "id": plan.id, "knobs": list(plan.knobs), "baseline": plan.baseline,
                "source": plan.source}  # fmt: skip
        write_atomic(report, sweep_report(open_results(db, sweep=plan.id), meta))
    summary = {
        "sweep": plan.name, "id": plan.id, "db": str(db), "executor": executor.name, "workers": executor.workers,
        "cells": progress.total, "skipped": progress.skipped, "ran": progress.ran, "ok": progress.ok,
        "failed": progress.failed, "done_elsewhere": progress.elsewhere, "without_timeline": progress.without_timeline,
        "wall_s": round(progress.wall_s, 3),
    }  # fmt: skip
    if json_out:
        emit_json(summary)
    else:
        print(
            f"sweep {plan.name}: {progress.total} cells, {progress.skipped} already in {db}, ran {progress.ran} "
            f"({progress.ok} ok, {progress.failed} failed) in {progress.wall_s:.1f} s on {executor.name} "
            f"x{executor.workers}" + (f"; {progress.elsewhere} finished by another run" if progress.elsewhere else ""),
            file=sys.stderr,
        )
    if progress.without_timeline:
        print(
            f"sweep {plan.name}: {progress.without_timeline} cells finished earlier without a timeline and keep none "
            f"in {timelines_dir(db)} (finished cells are not rerun); for their timelines, sweep into a new --db",
            file=sys.stderr,
        )
    if progress.failed:
        raise MemschedError(
            f"{progress.failed} of {progress.total} cells failed; their errors: memsched results query "
            f"\"SELECT workload, policy, topology, seed, error FROM runs WHERE status = 'failed'\" --db {db}"
        )


def _dry_run(cells: Sequence[Any], name: str, db: Path, ray: str | None, jobs: int | None, json_out: bool) -> None:
    from memsched.cli.common import out_console
    from memsched.results.store import ResultStore
    from memsched.sweep.estimate import estimate, history

    done: set[str] = set()
    seen = None
    if db.is_file():
        with ResultStore(db, read_only=True) as store:
            done = store.finished_keys()
            seen = history(store)
    todo = [c for c in cells if c.key not in done]
    workers = jobs or os.cpu_count() or 1
    where = f"local x{workers}"
    if ray is not None and jobs is None:
        from memsched.sweep.executors import RayPool

        pool = RayPool(ray)
        workers, where = pool.workers, f"ray x{pool.workers}"
        pool.close()
    est = estimate(todo, workers, seen=seen)
    doc = {
        "sweep": name, "cells": len(cells), "done": len(cells) - len(todo), "to_run": len(todo), "workers": workers,
        "executor": where, "estimate_s": round(est.wall_s, 1), "cell_s": round(est.cell_s, 1),
        "overhead_s_per_cell": est.overhead_s, "priced_from": est.sources, "rates_measured_on": est.rates_machine,
    }  # fmt: skip
    if json_out:
        emit_json(doc)
        return
    priced = ", ".join(f"{n} from {src}" for src, n in sorted(est.sources.items())) or "nothing to run"
    out_console.print(
        f"sweep {name}: {len(cells)} cells, {len(cells) - len(todo)} already in {db}, {len(todo)} to run on "
        f"{where}\nestimated wall time: {_duration(est.wall_s)} ({est.cell_s:.0f} s of runs + "
        f"{est.overhead_s * 1000:.0f} ms per cell; priced: {priced}; rates measured on {est.rates_machine})",
        highlight=False,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@contextmanager
def sweep_progress(total: int, description: str) -> Iterator[Callable[[Any, Sequence[Outcome]], None]]:
    """A progress bar with an ETA on stderr (only on a terminal) over the cells to run (not those already in
    the database, which would make the first rate look fast); yields the ``on_progress`` callback."""
    from memsched.cli.common import err_console

    if not show_progress():
        yield lambda progress, outcomes: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[failed]}")]  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=total, failed="")

        def tick(progress: Any, outcomes: Sequence[Outcome]) -> None:
            bar.update(
                task,
                total=progress.to_run,
                completed=progress.finished,
                failed=f"{progress.failed} failed" if progress.failed else "",
            )

        yield tick
