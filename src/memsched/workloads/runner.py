"""One way to run any simulated workload: a :class:`~memsched.workloads.runspec.RunSpec` in, a
:class:`~memsched.record.RunRecord` out.

Every workload family has a :class:`~memsched.workloads.runspec.Runner` with the same two calls:
``check(spec)`` validates every name and setting before any work starts (so nothing is half-done), and
``run(spec)`` simulates and returns the record. :func:`run_one` dispatches on ``spec.family``;
:func:`run_many` fans a list of runs out over worker processes (runs are independent and CPU-bound) and
returns the records in input order, so the output never depends on which worker finished first. The same
cell function serves a command, a sweep or a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from memsched.errors import UnknownNameError
from memsched.record import RunRecord
from memsched.workloads.numa import NumaRunner
from memsched.workloads.pressure.run import PressureRunner
from memsched.workloads.rt.run import RtRunner
from memsched.workloads.runspec import Runner, RunSpec

__all__ = ["RUNNERS", "run_many", "run_one", "runner_for"]

#: The runner of each workload family.
RUNNERS: dict[str, Runner] = {r.family: r for r in (NumaRunner(), RtRunner(), PressureRunner())}


def runner_for(family: str) -> Runner:
    try:
        return RUNNERS[family]
    except KeyError:
        raise UnknownNameError("family", family, sorted(RUNNERS)) from None


def run_one(spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
    """Simulate one run of any family and return its record."""
    runner = runner_for(spec.family)
    runner.check(spec)
    return runner.run(spec, progress=progress)


def _worker(spec: RunSpec) -> RunRecord:
    return run_one(spec)


def run_many(
    specs: Sequence[RunSpec],
    *,
    jobs: int | None = None,
    on_done: Callable[[int, RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Run every spec (all validated up front), in parallel over ``jobs`` processes; records in input order.

    Records that come back from worker processes carry no ``extras``."""
    for spec in specs:
        runner_for(spec.family).check(spec)
    jobs = jobs or os.cpu_count() or 1
    results: list[RunRecord | None] = [None] * len(specs)
    if jobs <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            rec = results[i] = run_one(spec)
            if on_done:
                on_done(i, rec)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(specs))) as pool:
            futures = {pool.submit(_worker, spec): i for i, spec in enumerate(specs)}
            for fut in as_completed(futures):
                i = futures[fut]
                rec = results[i] = fut.result()
                if on_done:
                    on_done(i, rec)
    return [r for r in results if r is not None]


