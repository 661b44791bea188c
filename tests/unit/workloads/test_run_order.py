"""A comparison starts its costliest runs first, and still returns its records in input order."""

from __future__ import annotations

import pytest

from memsched.policies.numa import names as policy_names
from memsched.workloads import runner
from memsched.workloads.numa import NumaRunner, compare_specs, relative_cost, size_factor
from memsched.workloads.runspec import RunSpec


def test_default_compare_starts_with_numa01_under_moron() -> None:
    specs = compare_specs(
        "westmere-ex-4n48", ["numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT"], list(policy_names()), 0
    )
    order = runner.longest_first(specs)
    assert sorted(order) == list(range(len(specs)))
    first = specs[order[0]]
    assert (first.workload, first.policy) == ("numa01", "moron")
    costs = [relative_cost(specs[i]) for i in order]
    assert costs == sorted(costs, reverse=True)
    # numa02 under any policy is cheaper than numa01 under the policies that migrate on faults
    assert relative_cost(RunSpec("numa02", "westmere-ex-4n48", "moron")) < relative_cost(
        RunSpec("numa01", "westmere-ex-4n48", "autonuma")
    )


def test_a_comparison_of_several_topologies_starts_with_the_largest_machine() -> None:
    """Across topologies (compare -t a,b,c) a run's cost grows with its machine: x86-8n64's numa01 under MORON
    starts first and its mainline run before opteron-4n32's; within one topology the order is relative_cost's."""
    assert size_factor("westmere-ex-4n48") == 1.0
    assert size_factor("x86-8n64") == 64 * 8 / (48 * 4) and size_factor("opteron-4n32") == 32 * 4 / (48 * 4)
    assert size_factor(None) == 1.0 and size_factor("no-such-preset") == 1.0
    names, pols = ["numa01", "numa02"], ["none", "mainline", "moron"]
    topos = ("opteron-4n32", "westmere-ex-4n48", "x86-8n64")
    specs = [s for topo in topos for s in compare_specs(topo, names, pols, 0)]
    order = [(specs[i].topology, specs[i].workload, specs[i].policy) for i in runner.longest_first(specs)]
    assert order[0] == ("x86-8n64", "numa01", "moron")
    assert order.index(("x86-8n64", "numa01", "mainline")) < order.index(("opteron-4n32", "numa01", "mainline"))
    one = [s for s in specs if s.topology == "x86-8n64"]
    costs = [relative_cost(one[i]) for i in runner.longest_first(one)]
    assert costs == sorted(costs, reverse=True)


def test_ties_keep_input_order_and_unknown_families_count_one() -> None:
    specs = [RunSpec("numa02", "x", "none"), RunSpec("numa02_SMT", "x", "none"), RunSpec("numa01", "x", "moron")]
    assert runner.longest_first(specs) == [2, 0, 1]


def test_run_many_returns_input_order_whatever_the_start_order(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    def fake_run_one(spec: RunSpec) -> object:
        started.append(spec.seed)
        return spec.seed

    class Pool:
        def imap_unordered(self, fn, items):  # type: ignore[no-untyped-def]
            for i, spec in items:
                yield i, fake_run_one(spec)

        def close(self) -> None: ...
        def join(self) -> None: ...
        def terminate(self) -> None: ...

    monkeypatch.setattr(runner, "_start_pool", lambda n: Pool())
    specs = [
        RunSpec("numa02", "westmere-ex-4n48", "none", seed=0),
        RunSpec("numa01", "westmere-ex-4n48", "moron", seed=1),
        RunSpec("numa01_THREAD_ALLOC", "westmere-ex-4n48", "none", seed=2),
    ]
    done: list[int] = []
    out = runner.run_many(specs, jobs=2, on_done=lambda i, rec: done.append(i))
    assert started == [1, 2, 0]
    assert done == [1, 2, 0]
    assert out == [0, 1, 2]


def test_runs_estimated_long_load_the_kernels_before_the_workers_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent loads the compiled kernels ahead (its forked workers inherit them) only when the runs' costs add
    up to LOAD_AHEAD_COST; a cheaper comparison leaves the choice to each process's ``auto`` rule. They may be
    compiled (where numba's cache lacks them) only from LOAD_AHEAD_COLD_COST; below it, from the cache only.
    Before a fork every kernel loads; before a run in the process itself, each at its first call."""
    events: list[str] = []

    def load_ahead(every: bool = False, may_compile: bool = True) -> bool:
        events.append(f"load every={every}" + ("" if may_compile else " from the cache"))
        return True

    monkeypatch.setattr(runner.jit, "load_ahead", load_ahead)

    class Pool:
        def imap_unordered(self, fn, items):  # type: ignore[no-untyped-def]
            for i, spec in items:
                events.append(f"run {spec.seed}")
                yield i, spec.seed

        def close(self) -> None: ...
        def join(self) -> None: ...
        def terminate(self) -> None: ...

    def start_pool(n: int) -> Pool:
        events.append("fork")
        return Pool()

    monkeypatch.setattr(runner, "_start_pool", start_pool)
    cheap = [RunSpec("numa02", "westmere-ex-4n48", p, seed=i) for i, p in enumerate(("none", "mainline", "moron"))]
    assert NumaRunner.work(cheap) < runner.LOAD_AHEAD_COST
    runner.run_many(cheap, jobs=2)
    assert events[0] == "fork" and sorted(events[1:]) == ["run 0", "run 1", "run 2"]
    events.clear()
    long = [*cheap, RunSpec("numa01", "westmere-ex-4n48", "moron", seed=3)]
    assert NumaRunner.work(long) < runner.LOAD_AHEAD_COLD_COST
    runner.run_many(long, jobs=2)
    assert events[:2] == ["load every=True from the cache", "fork"]
    # work that earns back a compile (where numba's cache lacks the kernels) may compile them
    events.clear()
    longer = [RunSpec("numa01", "westmere-ex-4n48", "moron", seed=i) for i in range(7)]
    assert NumaRunner.work(longer) >= runner.LOAD_AHEAD_COLD_COST
    runner.run_many(longer, jobs=2)
    assert events[:2] == ["load every=True", "fork"]
    # one job: no fork, and the runs in this process load each kernel at its first call
    events.clear()
    with pytest.MonkeyPatch.context() as one_job:
        one_job.setattr(runner, "run_one", lambda spec: events.append(f"run {spec.seed}") or spec.seed)
        runner.run_many(long, jobs=1)
    assert events == ["load every=False from the cache", "run 0", "run 1", "run 2", "run 3"]
    # one node: nothing to balance, the same comparison stays short
    events.clear()
    runner.run_many([RunSpec(s.workload, "laptop-1n8", s.policy, seed=s.seed) for s in long], jobs=2)
    assert events[0] == "fork" and sorted(events[1:]) == ["run 0", "run 1", "run 2", "run 3"]
    # a single run alone: the same rule on its own work (``memsched run``, a sweep's cell)
    events.clear()
    monkeypatch.setattr(runner, "RUNNERS", {**runner.RUNNERS, "numa": _Quick(runner.runner_for("numa"))})
    for topo in ("laptop-1n8", "opteron-4n32"):
        runner.run_one(RunSpec("numa01", topo, "moron"))
    runner.run_one(RunSpec("numa02", "x86-8n64", "moron"))
    assert events == []
    runner.run_one(RunSpec("numa01", "westmere-ex-4n48", "moron"))
    runner.run_one(RunSpec("numa01", "x86-8n64", "moron"))
    assert events == ["load every=False from the cache", "load every=False from the cache"]


def test_a_process_that_has_decided_estimates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that inherited the kernels (or a process settled on the pure code) neither estimates the work
    (which loads the topologies again) nor loads anything."""

    def no_work(specs: object) -> float:
        raise AssertionError("work estimated")

    calls: list[str] = []
    monkeypatch.setattr(runner.jit, "undecided", lambda: False)
    monkeypatch.setattr(runner.jit, "load_ahead", lambda every=False, may_compile=True: calls.append("load") or True)
    monkeypatch.setattr(NumaRunner, "work", staticmethod(no_work))
    runner._load_ahead([RunSpec("numa01", "westmere-ex-4n48", "moron")])
    assert calls == []
    monkeypatch.setattr(runner.jit, "undecided", lambda: True)
    with pytest.raises(AssertionError, match="work estimated"):
        runner._load_ahead([RunSpec("numa01", "westmere-ex-4n48", "moron")])


def test_expected_work_follows_the_machine() -> None:
    from memsched.topology import load_topology
    from memsched.workloads.numa import expected_work

    spec = RunSpec("numa01", "x", "moron")
    work = {t: expected_work(spec, load_topology(t)) for t in ("laptop-1n8", "opteron-4n32", "westmere-ex-4n48")}
    assert work == {"laptop-1n8": 0.0, "opteron-4n32": 32.0 * 32 / 48, "westmere-ex-4n48": 32.0}


class _Quick:
    """The NUMA runner's check and cost, without the simulation."""

    family = "numa"

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def check(self, spec: RunSpec) -> None:
        self.inner.check(spec)  # type: ignore[attr-defined]

    def cost(self, spec: RunSpec) -> float:
        return float(self.inner.cost(spec))  # type: ignore[attr-defined]

    def work(self, specs: list[RunSpec]) -> float:
        return float(self.inner.work(specs))  # type: ignore[attr-defined]

    def run(self, spec: RunSpec, *, progress: object = None) -> object:
        return spec.seed
