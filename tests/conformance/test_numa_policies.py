"""Every registered NUMA policy passes the public conformance checker."""

from __future__ import annotations

import pytest

from memsched.conformance import check_numa_policy
from memsched.policies.numa import names
from memsched.policies.numa.actions import MigrateTask
from memsched.policies.numa.base import NumaPolicy
from memsched.policies.numa.registry import PolicySpec, register, unregister


@pytest.mark.parametrize("policy", names())
def test_policy_conforms(policy: str) -> None:
    """Config round-trips, hooks are well-formed, views are not mutated, runs are deterministic."""
    report = check_numa_policy(policy)
    assert report.ok, report.problems
    if policy != "none":
        assert report.hook_calls, "a balancing policy must be called by the mechanism"


class _Mutator(NumaPolicy):
    id = "test-mutator"

    def __init__(self, config: object) -> None:
        from memsched.policies.numa.base import TaskWorkScan

        self.scan = TaskWorkScan(scan_delay_ms=100)

    def on_faults(self, ctx, batch):  # type: ignore[no-untyped-def]
        batch.page_node[:] = 0  # a policy must not write through a view
        return [MigrateTask(0, 0)]


class _BadReturn(NumaPolicy):
    id = "test-badreturn"

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
def test_checker_catches_broken_policies(cls: type, needle: str) -> None:
    """The checker is not a rubber stamp: writing through views, returning non-actions, unknown hooks fail."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Empty:
        pass

    register(PolicySpec(id=cls.id, description="broken", models="test", config_cls=Empty, factory=cls))
    try:
        report = check_numa_policy(cls.id)
    finally:
        unregister(cls.id)
    assert not report.ok
    assert any(needle in p for p in report.problems), report.problems
