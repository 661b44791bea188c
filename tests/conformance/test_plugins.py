"""Third-party policies: registered or installed, each is checked the first time a process loads it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

from helpers import numa_plugins
from helpers.numa_plugins import chatty_registered
from memsched import conformance
from memsched.conformance import ConformanceReport, load_policy
from memsched.errors import PolicyError
from memsched.policies.numa import registry
from memsched.policies.numa.registry import ENTRY_POINT_GROUP, PolicySpec


@pytest.fixture
def plugin() -> Iterator[str]:
    """A well-behaved plug-in registered from code, removed afterwards."""
    registry.register(
        PolicySpec(id="test-greedy", entry_point=numa_plugins.Greedy, description="greedy", models="a test")
    )
    yield "test-greedy"
    registry.unregister("test-greedy")
    conformance._CHECKED.discard("test-greedy-v1")


@pytest.fixture
def broken_plugin() -> Iterator[str]:
    """A plug-in whose hook returns words instead of actions."""
    with chatty_registered() as name:
        yield name


def _counting_checker(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = conformance.check_numa_policy

    def counted(policy_id: str) -> ConformanceReport:
        calls.append(policy_id)
        return real(policy_id)

    monkeypatch.setattr(conformance, "check_numa_policy", counted)
    return calls


def test_good_plugin_loads_after_one_check(plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conforming plug-in is checked once per process, then made with the given settings and told its id."""
    calls = _counting_checker(monkeypatch)
    spec, policy = load_policy(plugin, {"scan_delay_ms": "250"})
    assert calls == ["test-greedy-v1"]
    assert spec.versioned_id == "test-greedy-v1" and policy.id == "test-greedy"
    assert isinstance(policy, numa_plugins.Greedy) and policy.config == numa_plugins.GreedyConfig(250)
    load_policy(plugin)
    assert calls == ["test-greedy-v1"], "a plug-in that passed is not checked again"


def test_builtin_policies_are_not_rechecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """memsched's own policies load without a run of the checker (the test suite checks them)."""
    calls = _counting_checker(monkeypatch)
    spec, policy = load_policy("mainline-v1")
    assert calls == [] and spec.id == policy.id == "mainline"


def test_broken_plugin_is_refused_naming_it(broken_plugin: str) -> None:
    """A plug-in that fails the checker raises PolicyError naming the policy and its first problem."""
    with pytest.raises(PolicyError) as info:
        load_policy(broken_plugin)
    assert info.value.policy == "test-chatty"
    assert str(info.value).startswith("policy test-chatty: fails the conformance check: ")
    assert "returned non-actions" in str(info.value)
    with pytest.raises(PolicyError):
        load_policy(broken_plugin)  # a failure is not cached as a pass


def test_plugin_whose_constructor_crashes_is_its_fault() -> None:
    """An exception from the plug-in's own code during the check becomes a PolicyError naming it."""

    def explode(config: object) -> numa_plugins.Greedy:
        raise ZeroDivisionError("plug-in arithmetic")

    registry.register(
        PolicySpec(
            id="test-explode",
            entry_point=explode,
            config_entry_point=numa_plugins.GreedyConfig,
            description="explodes",
            models="a test",
        )
    )
    try:
        with pytest.raises(PolicyError, match=r"policy test-explode: .*ZeroDivisionError: plug-in arithmetic"):
            load_policy("test-explode")
    finally:
        registry.unregister("test-explode")


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: importlib.metadata.EntryPoint) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**params: str) -> object:
        if params == {"group": ENTRY_POINT_GROUP}:
            return importlib.metadata.EntryPoints(eps)
        return real(**params)

    registry.names()  # the registry's first use (built-ins, real plug-ins) happens before the fake
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_point_plugins_are_found_versioned_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points of memsched.numa_policies register lazily; the name carries the version; both are checked."""
    _fake_entry_points(
        monkeypatch,
        importlib.metadata.EntryPoint("test-ep-greedy-v2", "helpers.numa_plugins:Greedy", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("test-ep-chatty", "helpers.numa_plugins:Chatty", ENTRY_POINT_GROUP),
    )
    found = registry.register_entry_points()
    try:
        assert [s.versioned_id for s in found] == ["test-ep-greedy-v2", "test-ep-chatty-v1"]
        spec = registry.get("test-ep-greedy")
        assert spec.version == 2 and spec.config_cls is numa_plugins.GreedyConfig
        assert "test-ep-greedy" in registry.names() and not registry.is_builtin(spec)
        _, policy = load_policy("test-ep-greedy-v2")
        assert policy.id == "test-ep-greedy"
        with pytest.raises(PolicyError, match="policy test-ep-chatty: fails the conformance check"):
            load_policy("test-ep-chatty")
    finally:
        for spec in found:
            registry.unregister(spec.versioned_id)
        conformance._CHECKED.discard("test-ep-greedy-v2")


def test_entry_point_that_does_not_load_is_a_policy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing module or a class without an annotated config is the plug-in's fault, never skipped."""
    _fake_entry_points(
        monkeypatch,
        importlib.metadata.EntryPoint("test-ep-missing", "helpers.no_such_module:Policy", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("test-ep-unannotated", "helpers.numa_plugins:Unannotated", ENTRY_POINT_GROUP),
    )
    found = registry.register_entry_points()
    try:
        with pytest.raises(PolicyError, match=r"policy test-ep-missing: entry point .* does not load: ModuleNotFound"):
            load_policy("test-ep-missing")
        with pytest.raises(PolicyError, match=r"policy test-ep-unannotated: .* no annotated 'config' parameter"):
            load_policy("test-ep-unannotated")
    finally:
        for spec in found:
            registry.unregister(spec.versioned_id)


def test_entry_point_may_not_take_a_builtin_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plug-in that reuses a built-in id is refused by name, not silently shadowed or dropped."""
    _fake_entry_points(
        monkeypatch, importlib.metadata.EntryPoint("mainline", "helpers.numa_plugins:Greedy", ENTRY_POINT_GROUP)
    )
    with pytest.raises(PolicyError, match=r"policy mainline: entry point 'helpers\.numa_plugins:Greedy'.*twice"):
        registry.register_entry_points()
    assert registry.get("mainline").entry_point == "memsched.policies.numa.mainline:Mainline"
