"""Every registered NUMA policy passes the public conformance checker."""

from __future__ import annotations

import pytest

from memsched.conformance import check_numa_policy
from memsched.policies.numa import specs
from memsched.policies.numa.actions import MigrateTask
from memsched.policies.numa.base import NumaPolicy
from memsched.policies.numa.registry import PolicySpec, register, unregister


@pytest.mark.parametrize("policy", [s.versioned_id for s in specs()])
def test_policy_conforms(policy: str) -> None:
    """Every version of every policy: config round-trips, hooks well-formed, views not mutated, deterministic."""
    report = check_numa_policy(policy)
    assert report.ok, report.problems
    if policy != "none-v1":
        assert report.hook_calls, "a balancing policy must be called by the mechanism"


class _Mutator(NumaPolicy):
    def __init__(self, config: object) -> None:
        from memsched.policies.numa.base import TaskWorkScan

        self.scan = TaskWorkScan(scan_delay_ms=100)

    def on_faults(self, ctx, batch):  # type: ignore[no-untyped-def]
        batch.page_node[:] = 0  # a policy must not write through a view
        return [MigrateTask(0, 0)]


class _BadReturn(NumaPolicy):
    def __init__(self, config: object) -> None:
        from memsched.policies.numa.base import TaskWorkScan

        self.scan = TaskWorkScan(scan_delay_ms=100)

    def on_placement(self, ctx, task):  # type: ignore[no-untyped-def]
        return ["migrate please"]

    def on_bogus(self) -> None:
        pass


@pytest.mark.parametrize(
    ("cls", "needle"),
    [(_Mutator, "read-only"), (_BadReturn, "returned non-actions"), (_BadReturn, "unknown hook 'on_bogus'")],
)
def test_checker_catches_broken_policies(cls: type[NumaPolicy], needle: str) -> None:
    """The checker is not a rubber stamp: writing through views, returning non-actions, unknown hooks fail."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Empty:
        pass

    name = f"test-{cls.__name__.strip('_').lower()}"
    register(PolicySpec(id=name, description="broken", models="test", config_entry_point=Empty, entry_point=cls))
    try:
        report = check_numa_policy(name)
    finally:
        unregister(name)
    assert not report.ok
    assert any(needle in p for p in report.problems), report.problems
