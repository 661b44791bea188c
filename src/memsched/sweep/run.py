"""Running cells into the results database: skip what is finished, commit each result as it arrives.

:func:`run_cells` is the one loop behind ``memsched sweep`` and ``memsched tune``. It reads which cells already
finished (by any earlier or concurrent run), keeps the executor ``capacity`` cells busy, and commits the
outcomes of every poll in one transaction, so an interrupted sweep — Ctrl-C, SIGKILL of this process, a dead
worker, a lost Ray node — loses only the cells in flight, and a rerun does only the rest. Between polls it lets
go of the database when another process waits for it (``results/lock.py``), and every few seconds it rereads
the finished keys, so two sweeps over overlapping cells on one database split the work instead of doing it
twice (a cell both happen to run is written once: the first commit wins, the second is ignored).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memsched.record import MODEL_VERSION
from memsched.results.store import Outcome, ResultStore
from memsched.sweep.cell import Cell
from memsched.sweep.executors import Executor
from memsched.sweep.spec import SweepSpec

__all__ = ["Progress", "run_cells", "run_sweep", "timelines_dir"]

#: How long one poll of the executor waits (s): the longest another process waits for the database.
POLL_S = 0.2
#: How often the finished keys are reread while cells are pending (s).
REFRESH_S = 2.0


@dataclass
class Progress:
    """Counts of a run of cells, updated as outcomes arrive."""

    total: int
    skipped: int
    ran: int = 0
    ok: int = 0
    failed: int = 0
    elsewhere: int = 0
    commits: int = 0
    wall_s: float = 0.0

    @property
    def to_run(self) -> int:
        return self.total - self.skipped

    @property
    def finished(self) -> int:
        return self.ran + self.elsewhere


def timelines_dir(db: Path) -> Path:
    return Path(f"{db}.timelines")


def run_cells(
    cells: Sequence[Cell],
    store: ResultStore,
    executor: Executor,
    *,
    timelines: Path | None = None,
    on_progress: Callable[[Progress, Sequence[Outcome]], None] | None = None,
) -> Progress:
    """Run every cell not yet finished in ``store``; return the counts."""
    start = time.monotonic()
    unique = list({c.key: c for c in cells}.values())
    done = store.finished_keys()
    pending = deque(c for c in unique if c.key not in done)
    progress = Progress(total=len(unique), skipped=len(unique) - len(pending))
    refreshed = time.monotonic()
    if on_progress:
        on_progress(progress, [])
    while pending or executor.in_flight():
        while pending and executor.in_flight() < executor.capacity:
            cell = pending.popleft()
            if cell.key in done:
                progress.elsewhere += 1
                continue
            executor.submit(cell)
        outcomes = executor.poll(POLL_S)
        if outcomes:
            store.commit(outcomes, timelines=timelines)
            progress.commits += 1
            progress.ran += len(outcomes)
            progress.ok += sum(o.ok for o in outcomes)
            progress.failed += sum(not o.ok for o in outcomes)
            done.update(o.key for o in outcomes if o.ok)
        if pending and time.monotonic() - refreshed > REFRESH_S:
            done |= store.finished_keys()
            refreshed = time.monotonic()
        store.yield_if_contended()
        progress.wall_s = time.monotonic() - start
        if on_progress and outcomes:
            on_progress(progress, outcomes)
    progress.wall_s = time.monotonic() - start
    return progress


def run_sweep(
    spec: SweepSpec,
    db: Path,
    executor: Executor,
    *,
    timelines: bool | None = None,
    on_progress: Callable[[Progress, Sequence[Outcome]], None] | None = None,
) -> Progress:
    """Register ``spec`` in the database at ``db`` and run its missing cells there."""
    with ResultStore(db) as store:
        doc = {"spec": dict(spec.doc), "source": spec.source, "knobs": list(spec.knobs), "baseline": spec.baseline,
               "families": list(spec.families), "model_version": MODEL_VERSION}  # fmt: skip
        store.register_sweep(spec.id, spec.name, "sweep", doc, [c.key for c in spec.cells])
        use_timelines = spec.timelines if timelines is None else timelines
        return run_cells(
            spec.cells, store, executor, timelines=timelines_dir(db) if use_timelines else None,
            on_progress=on_progress,
        )  # fmt: skip
