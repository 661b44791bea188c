"""A comparison starts its costliest runs first, and still returns its records in input order."""

from __future__ import annotations

import pytest

from memsched.policies.numa import names as policy_names
from memsched.workloads import runner
from memsched.workloads.numa import compare_specs, relative_cost
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
