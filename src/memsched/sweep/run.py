"""Running cells into the results database: skip what is finished, commit each result as it arrives.

:func:`run_cells` is the one loop behind ``memsched sweep`` and ``memsched tune``. It reads which cells already
finished (by any earlier or concurrent run), keeps the executor ``capacity`` cells busy, and commits the
outcomes of every poll in one transaction, so an interrupted sweep — Ctrl-C, SIGKILL of this process, a dead
worker, a lost Ray node — loses only the cells in flight, and a rerun does only the rest. Between polls it lets
go of the database when another process waits for it (``results/lock.py``), and every few seconds it rereads
the finished keys, so two sweeps over overlapping cells on one database split the work instead of doing it
twice (a cell both happen to run is written once: the first commit wins, the second is ignored). For that, a
process that finds it ran a cell another process also ran (two sweeps started together walk the cells in the
same order side by side), or meets a cell another finished, goes on from a new place (:func:`_jump`): inside the
longest stretch of cells nobody is known to have done, at a point its process id chooses.
"""

from __future__ import annotations

import itertools
import os
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
#: How often the finished keys are reread while cells are pending (s), at least: and no more often than keeps the
#: rereading under 5 % of the time (20 times as long as the last reread took; a database of many runs).
REFRESH_S = 0.5


@dataclass
class Progress:
    """Counts of a run of cells, updated as outcomes arrive."""

    total: int
    skipped: int
    ran: int = 0
    ok: int = 0
    failed: int = 0
    elsewhere: int = 0
    #: Cells finished ``ok`` that have no timeline file although timelines were asked for (they finished in a
    #: run that did not ask for them; a finished cell is not run again).
    without_timeline: int = 0
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


def start_offset(n: int, pid: int | None = None) -> int:
    """A place among ``n`` chosen by a process id (Knuth's multiplicative hash): consecutive ids (processes
    started together) get places far apart, and one id always the same place."""
    if n <= 1:
        return 0
    return ((os.getpid() if pid is None else pid) * 2654435761 & 0xFFFFFFFF) * n >> 32


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
    todo = [c for c in unique if c.key not in done]
    pid = os.getpid()
    jumps = 0
    pending = deque(todo)
    progress = Progress(total=len(unique), skipped=len(unique) - len(pending))
    refreshed = time.monotonic()
    reread_s = 0.0
    running: set[str] = set()  # the keys this process has in flight
    if on_progress:
        on_progress(progress, [])
    while pending or executor.in_flight():
        while pending and executor.in_flight() < executor.capacity:
            cell = pending.popleft()
            if cell.key in done:
                # Finished by another process: this one has come to where another went before it, and would
                # soon walk beside it. Go on from a new place of its own, without the cells known to be done.
                progress.elsewhere += 1
                pending, jumps = _jump(todo, pending, done, progress, pid, jumps + 1)
                continue
            executor.submit(cell)
            running.add(cell.key)
        outcomes = executor.poll(POLL_S)
        if outcomes:
            twice = store.commit(outcomes, timelines=timelines)
            progress.commits += 1
            progress.ran += len(outcomes)
            progress.ok += sum(o.ok for o in outcomes)
            progress.failed += sum(not o.ok for o in outcomes)
            done.update(o.key for o in outcomes if o.ok)
            running.difference_update(o.key for o in outcomes)
            if twice and pending:  # another process ran these too: they walk the same cells side by side
                pending, jumps = _jump(todo, pending, done | twice, progress, pid, jumps + 1)
        if pending and time.monotonic() - refreshed > max(REFRESH_S, 20 * reread_s):
            t0 = time.monotonic()
            now_done = store.finished_keys()
            reread_s = time.monotonic() - t0
            ahead = {c.key for c in itertools.islice(pending, max(1, executor.capacity))}
            collide = (now_done - done) & (running | ahead)
            done |= now_done
            if collide:  # another process finishes what this one runs, or is about to: they walk side by side
                pending, jumps = _jump(todo, pending, done, progress, pid, jumps + 1)
            refreshed = time.monotonic()
        store.yield_if_contended()
        progress.wall_s = time.monotonic() - start
        if on_progress and outcomes:
            on_progress(progress, outcomes)
    progress.wall_s = time.monotonic() - start
    return progress


def _jump(
    order: Sequence[Cell], pending: deque[Cell], done: set[str], progress: Progress, pid: int, jumps: int
) -> tuple[deque[Cell], int]:
    """The cells still to run, without those known to be done (counted as done elsewhere), from a new place:
    inside the longest stretch of ``order`` with no cell known to be done, a quarter, half or three quarters of
    the way in (by this process's id and jump count, so that two processes jumping at once land apart), as far
    as can be from where any other process is known to have been. It then walks on (round to the start)."""
    left_keys = {c.key for c in pending if c.key not in done}
    progress.elsewhere += len(pending) - len(left_keys)
    best_start, best_len, run_start = 0, 0, -1
    for i, c in enumerate(order):
        if c.key in left_keys:
            if run_start < 0:
                run_start = i
            if i - run_start + 1 > best_len:
                best_start, best_len = run_start, i - run_start + 1
        else:
            run_start = -1
    first = best_start + best_len * (1 + start_offset(3, pid + jumps)) // 4
    walk = [*order[first:], *order[:first]]
    return deque(c for c in walk if c.key in left_keys), jumps


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
        folder = timelines_dir(db) if use_timelines else None
        progress = run_cells(spec.cells, store, executor, timelines=folder, on_progress=on_progress)
        if folder is not None and progress.skipped + progress.elsewhere:
            ok = store.finished_keys()
            progress.without_timeline = sum(
                c.key in ok and not (folder / f"{c.key}.parquet").exists() for c in spec.cells
            )
        return progress
