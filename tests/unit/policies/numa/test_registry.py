"""The NUMA policy registry: one table, versioned ids, entry points loaded when a policy is made."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from helpers import numa_plugins
from memsched.errors import PolicyError, UnknownNameError
from memsched.policies.numa import get, names, register, specs, unregister
from memsched.policies.numa.builtin import BUILTIN
from memsched.policies.numa.registry import PolicySpec

STABLE_IDS = ["none", "moron", "balancenuma", "homenode", "autonuma", "numacore", "mainline", "numad"]


def test_builtin_table_holds_the_stable_ids_at_version_1() -> None:
    """The eight policies of the debate are in one table, in report order, each at version 1."""
    assert [s.id for s in BUILTIN] == STABLE_IDS
    assert [s.versioned_id for s in BUILTIN] == [f"{i}-v1" for i in STABLE_IDS]
    assert names()[: len(STABLE_IDS)] == STABLE_IDS


@pytest.mark.parametrize("spec", BUILTIN, ids=[s.id for s in BUILTIN])
def test_policy_learns_its_id_from_the_spec(spec: PolicySpec) -> None:
    """make() tells the policy its id; the class does not write one of its own."""
    policy = spec.make()
    assert policy.id == spec.id
    assert "id" not in vars(type(policy))
    assert isinstance(spec.entry_point, str) and spec.entry_point.startswith(f"memsched.policies.numa.{spec.id}:")


def test_the_table_imports_no_policy_module() -> None:
    """Listing and looking up policies imports none of their modules; making one imports only its own."""
    code = (
        "import sys\n"
        "from memsched.policies.numa import registry\n"
        "registry.names(); registry.get('mainline-v1')\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('memsched.policies.numa.') and "
        "m.rsplit('.', 1)[1] in {s.id for s in registry.BUILTIN})\n"
        "print(loaded())\n"
        "registry.get('moron').make()\n"
        "print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "['memsched.policies.numa.moron']"]


class _V1(numa_plugins.Greedy):
    pass


class _V2(numa_plugins.Greedy):
    pass


@pytest.fixture
def two_versions() -> Iterator[str]:
    """One plug-in id registered at versions 1 and 2."""
    for version, cls in ((2, _V2), (1, _V1)):
        register(
            PolicySpec(id="test-versions", version=version, entry_point=cls, description=f"v{version}", models="test")
        )
    yield "test-versions"
    unregister("test-versions")


def test_bare_id_is_the_latest_version(two_versions: str) -> None:
    """'name' resolves to the highest version, 'name-vN' to exactly that one; names() lists the id once."""
    assert get(two_versions).version == 2
    assert get("test-versions-v1").version == 1 and get("test-versions-v2").version == 2
    assert isinstance(get("test-versions-v1").make(), _V1)
    assert names().count("test-versions") == 1
    assert [s.versioned_id for s in specs() if s.id == "test-versions"] == ["test-versions-v1", "test-versions-v2"]


def test_unknown_version_lists_the_versions_that_exist(two_versions: str) -> None:
    """An unknown version of a known id is an UnknownNameError listing that id's versions."""
    with pytest.raises(UnknownNameError) as info:
        get("test-versions-v3")
    assert info.value.valid == ("test-versions", "test-versions-v1", "test-versions-v2")
    with pytest.raises(UnknownNameError) as info:
        get("mainline-v7")
    assert info.value.valid == ("mainline", "mainline-v1")
    with pytest.raises(UnknownNameError) as info:
        get("greedy-v1")
    assert info.value.valid[: len(STABLE_IDS)] == tuple(STABLE_IDS)


def test_unregister_one_version_keeps_the_other(two_versions: str) -> None:
    """Removing 'name-v2' leaves version 1 as the latest."""
    unregister("test-versions-v2")
    assert get("test-versions").version == 1
    register(PolicySpec(id="test-versions", version=2, entry_point=_V2, description="v2", models="test"))


@pytest.mark.parametrize(
    ("id_", "version", "message"),
    [("test-x-v2", 1, "must not end in a version"), ("test-x", 0, "version must be >= 1"), ("mainline", 1, "twice")],
)
def test_bad_registrations_are_refused(id_: str, version: int, message: str) -> None:
    """An id that carries its own version, a version below 1, or a taken id cannot be registered."""
    with pytest.raises(ValueError, match=message):
        register(PolicySpec(id=id_, version=version, entry_point=_V1, description="x", models="test"))


def test_config_class_comes_from_the_annotation_when_not_given() -> None:
    """Without a config entry point, the config class is the annotated type of the class's config parameter."""
    spec = PolicySpec(id="test-annotated", entry_point="helpers.numa_plugins:Greedy", description="x", models="t")
    assert spec.config_cls is numa_plugins.GreedyConfig
    assert spec.make_config({"scan_delay_ms": "7"}) == numa_plugins.GreedyConfig(7)


@pytest.mark.parametrize(
    ("entry_point", "config", "message"),
    [
        ("helpers.numa_plugins", None, "not of the form 'module:Class'"),
        ("helpers.numa_plugins:Nothing", None, "does not load: AttributeError"),
        ("helpers.numa_plugins:Greedy", "helpers.numa_plugins:Greedy", "is not a dataclass"),
    ],
)
def test_bad_entry_points_name_the_policy(entry_point: str, config: str | None, message: str) -> None:
    """An entry point that does not give a class and a config dataclass is a PolicyError naming the policy."""
    spec = PolicySpec(
        id="test-bad", entry_point=entry_point, config_entry_point=config, description="x", models="test"
    )
    with pytest.raises(PolicyError, match=f"^policy test-bad: .*{message}"):
        spec.make()


@pytest.mark.parametrize("spec", BUILTIN, ids=[s.id for s in BUILTIN])
def test_every_numeric_knob_has_a_maximum(spec: PolicySpec) -> None:
    """Each int and float knob of every policy is bounded above, so no --set value asks for unbounded work."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(spec.config_cls)
    for f in dataclasses.fields(spec.config_cls):
        if hints[f.name] in (int, float):
            assert f.metadata.get("max") is not None, f"{spec.id}.{f.name} has no maximum"


@pytest.mark.parametrize(
    ("policy", "key", "value"),
    [
        ("mainline", "scan_size_mb", 1 << 31),  # past INT_MAX: proc_dointvec refuses it
        ("mainline", "scan_delay_ms", 99_999_999_999_999),
        ("mainline", "imbalance_pct", 999_999_999),
        ("moron", "scan_period_ms", 1 << 31),
        ("autonuma", "pages_to_scan_mb", (1 << 20) + 1),
    ],
)
def test_knobs_past_their_maximum_are_refused(policy: str, key: str, value: int) -> None:
    """A value above the kernel's own limit (or the product limit) is a ConfigError naming the key and the bound."""
    from memsched.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"'{key}' must be <= \d+ \(got {value}\)"):
        get(policy).make_config({key: str(value)})
