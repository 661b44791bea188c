"""One way to run any simulated workload: a :class:`~memsched.workloads.runspec.RunSpec` in, a
:class:`~memsched.record.RunRecord` out.

Every workload family has a :class:`~memsched.workloads.runspec.Runner` with the same two calls:
``check(spec)`` validates every name and setting before any work starts (so nothing is half-done), and
``run(spec)`` simulates and returns the record. :func:`run_one` dispatches on ``spec.family``;
:func:`run_many` fans a list of runs out over worker processes (runs are independent and CPU-bound) and
returns the records in input order, so the output never depends on which worker finished first. Workers take
the runs costliest first (a runner's optional ``cost(spec)``, e.g. the NUMA runner's static estimate), one at a
time, so both cores stay busy until the last run ends instead of one long run starting last. The same
cell function serves a command, a sweep or a test.

**Interruptions.** Workers ignore SIGINT (Ctrl-C reaches the whole foreground process group) and take SIGTERM's
default action: the parent alone decides. When :func:`run_many` ends by an exception (Ctrl-C's
``KeyboardInterrupt``, SIGTERM's ``Terminated``, a failed run), the pool is *terminated*, not drained: every
worker gets SIGTERM at once, so the command stops within a second instead of finishing the runs under way.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.pool
import os
import signal
from collections.abc import Callable, Sequence

from memsched.errors import ConfigError, UnknownNameError
from memsched.record import RunRecord
from memsched.sim.fluid import jit
from memsched.workloads.runspec import Runner, RunSpec

__all__ = ["FAMILIES", "RUNNERS", "longest_first", "pool_worker_init", "run_many", "run_one", "runner_for"]

#: Each workload family's runner class, as (module, name): imported at the family's first run, so that a NUMA
#: run does not import the realtime and pressure simulators (about 70 ms of a command's start).
FAMILIES: dict[str, tuple[str, str]] = {
    "numa": ("memsched.workloads.numa", "NumaRunner"),
    "rt": ("memsched.workloads.rt.run", "RtRunner"),
    "pressure": ("memsched.workloads.pressure.run", "PressureRunner"),
}
#: The runner of each family used so far in this process (:func:`runner_for` adds them).
RUNNERS: dict[str, Runner] = {}


def runner_for(family: str) -> Runner:
    runner = RUNNERS.get(family)
    if runner is None:
        where = FAMILIES.get(family)
        if where is None:
            raise UnknownNameError("family", family, sorted(FAMILIES))
        runner = RUNNERS[family] = getattr(importlib.import_module(where[0]), where[1])()
    return runner


def run_one(spec: RunSpec, *, progress: Callable[[float], None] | None = None) -> RunRecord:
    """Simulate one run of any family and return its record."""
    if not isinstance(spec, RunSpec):
        raise ConfigError("spec", spec, "must be a memsched.workloads.runspec.RunSpec")
    runner = runner_for(spec.family)
    runner.check(spec)
    _load_ahead([spec])
    return runner.run(spec, progress=progress)


#: The work (the NUMA runner's :func:`~memsched.workloads.numa.expected_work`, in runs on westmere-ex-4n48's
#: scale) from which the runs load the fluid engine's compiled kernels before they start
#: (:func:`~memsched.sim.fluid.jit.load_ahead`): one MORON numa01 run there (about 62,000 rate solves). Below it
#: the ``auto`` rule decides in each process, as before.
LOAD_AHEAD_COST = 32.0
#: The work from which those runs may also compile the kernels, where numba's cache lacks them (after installing
#: ``[fast]``, or an upgrade that changed them): about 50 s of CPU on 2 cores, which the kernels earn back at
#: about 0.23 s a unit of work (the default compare, 175 units: 57 s of CPU pure, 16 s with them), so about 200
#: units, six MORON numa01 runs. Below it such runs stay pure and say how to compile them
#: (``python -m memsched.sim.fluid.jit``).
LOAD_AHEAD_COLD_COST = 200.0


def _load_ahead(specs: Sequence[RunSpec], every: bool = False) -> None:
    """Under ``MEMSCHED_JIT=auto``, load the compiled kernels now when the runs' expected work adds up to
    :data:`LOAD_AHEAD_COST`: forked workers inherit them (loaded once, not once per worker), and no run solves
    its first :data:`~memsched.sim.fluid.jit.AUTO_AFTER` rates in the slower pure code. The results are the same
    bits either way; only the runs of a runner that estimates its work (``work(specs)``: the NUMA runner, whose
    runs use the kernels) count. Nothing is estimated once the process has decided (a worker that inherited the
    kernels, ``MEMSCHED_JIT=0`` after its first solve). Where numba's cache lacks a kernel, they are compiled only
    for work of :data:`LOAD_AHEAD_COLD_COST` or more. ``every``: every kernel now (before a fork), not each at
    its first call."""
    if not jit.undecided():
        return
    by_family: dict[str, list[RunSpec]] = {}
    for spec in specs:
        by_family.setdefault(spec.family, []).append(spec)
    total = 0.0
    for family, group in by_family.items():
        work = getattr(runner_for(family), "work", None)
        if work is not None:
            total += float(work(group))
    if total >= LOAD_AHEAD_COST:
        jit.load_ahead(every, may_compile=total >= LOAD_AHEAD_COLD_COST)


def longest_first(specs: Sequence[RunSpec]) -> list[int]:
    """Indices of ``specs`` in the order to start them: the costliest first by their runner's ``cost(spec)``
    (runs whose runner has none count 1.0), ties in input order."""
    costs = []
    for spec in specs:
        cost = getattr(runner_for(spec.family), "cost", None)
        costs.append(float(cost(spec)) if cost is not None else 1.0)
    return sorted(range(len(specs)), key=lambda i: -costs[i])


def _worker(item: tuple[int, RunSpec]) -> tuple[int, RunRecord]:
    return item[0], run_one(item[1])


#: Signals blocked while the pool forks its workers, so that none arrives before a worker has set its handlers.
_POOL_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def pool_worker_init(parent: int) -> None:
    """In each worker: Ctrl-C is the parent's to handle; SIGTERM (the pool's terminate) simply ends it; and the
    worker dies with its parent, also when that is SIGKILLed (a pool's workers otherwise wait on their queue
    forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    from memsched.live.pdeathsig import set_parent_death_signal  # (imported by the parent before the fork)

    if not set_parent_death_signal(signal.SIGKILL, parent):
        os._exit(1)  # the parent is already gone
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _POOL_SIGNALS)


def _start_pool(processes: int) -> multiprocessing.pool.Pool:
    """A pool whose workers (and helper threads) start with the signals blocked: a Ctrl-C during the start stays
    pending in the parent, which takes it once the pool exists and can be terminated."""
    import memsched.live.pdeathsig  # noqa: F401  (the workers' initializer's, imported once before the fork)

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _POOL_SIGNALS)
    try:
        return multiprocessing.get_context().Pool(processes, initializer=pool_worker_init, initargs=(os.getpid(),))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
    _load_ahead(specs, every=jobs > 1 and len(specs) > 1)  # (before the pool forks: its workers inherit the kernels)
    results: list[RunRecord | None] = [None] * len(specs)
    if jobs <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            rec = results[i] = run_one(spec)
            if on_done:
                on_done(i, rec)
    else:
        pool = _start_pool(min(jobs, len(specs)))
        try:
            order = [(i, specs[i]) for i in longest_first(specs)]
            for i, rec in pool.imap_unordered(_worker, order):
                results[i] = rec
                if on_done:
                    on_done(i, rec)
        except BaseException:
            pool.terminate()  # SIGTERM to every worker now; the runs under way are abandoned
            raise
        else:
            pool.close()
        finally:
            pool.join()
    return [r for r in results if r is not None]


