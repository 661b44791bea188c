"""Every action-policy knob is bounded above (the tool's own limit, else a product limit), so a ``--set`` value or a
scenario's ``[policy.<id>]`` value past it is one line naming the key, the value and the bound; the defaults pass."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from memsched.errors import ConfigError
from memsched.policies.act import registry
from memsched.workloads.act.scenario import act_scenario_from_dict

BUILTIN = [s.id for s in registry.BUILTIN]


@pytest.mark.parametrize("policy", BUILTIN)
def test_every_numeric_knob_has_a_maximum(policy: str) -> None:
    """Each int and float knob of every built-in action policy is bounded above, and its default is accepted."""
    cls = registry.get(policy).config_cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] in (int, float):
            assert f.metadata.get("max") is not None, f"{policy}.{f.name} has no maximum"
    cls()


@pytest.mark.parametrize(("policy", "key", "value", "bound"), [
    ("earlyoom", "kill_wait_timeout_s", "99999999999999", "3600"),  # earlyoom hard-codes 10 s; a product limit
    ("kernel-oom", "interval_ms", "3600001", "3600000"),
    ("vmpressure-shed", "cooldown_ms", "99999999999999", "3600000"),
    ("systemd-oomd", "mem_pressure_duration_s", "1e18", "3600"),
    ("systemd-oomd", "swap_interval_ms", "3600001", "3600000"),
    ("lmkd", "psi_window_ms", "10001", "10000"),  # WINDOW_MAX_US, kernel/sched/psi.c
    ("lmkd", "thrashing_limit_pct", str(1 << 31), str((1 << 31) - 1)),  # property_get_int32()
    ("lmkd", "idle_interval_ms", "3600001", "3600000"),
    ("nohang", "max_sleep", "3600.5", "3600"),
    ("nohang", "min_badness", "2001", "2000"),  # the largest /proc/<pid>/oom_score
    ("nohang", "fill_rate_mem", "2e6", str(1 << 20)),  # 1 TiB/s
])  # fmt: skip
def test_knobs_past_their_maximum_are_refused(policy: str, key: str, value: str, bound: str) -> None:
    """A value above the knob's maximum is a ConfigError naming the key, the bound and the value."""
    with pytest.raises(ConfigError, match=rf"^'{key}' must be <= {bound} \(got "):
        registry.get(policy).make_config({key: value})


def test_lmkd_stall_thresholds_fit_the_psi_window() -> None:
    """psi_trigger_create() refuses a threshold above the window, so lmkd's stalls must fit psi_window_ms."""
    with pytest.raises(ConfigError, match=r"'psi_complete_stall_ms' must be <= psi_window_ms \(1000\)"):
        registry.get("lmkd").make_config({"psi_complete_stall_ms": "1500"})
    config = registry.get("lmkd").make_config({"psi_complete_stall_ms": "1500", "psi_window_ms": "2000"})
    assert config.psi_complete_stall_ms == 1500


def test_a_scenario_policy_table_past_a_maximum_names_the_file_and_key() -> None:
    """act-sim's [policy.<id>] values go through the same bounds, and the message names the file."""
    doc = {"name": "t", "memory": "128MiB", "duration": "1s", "policy": {"earlyoom": {"kill_wait_timeout_s": 10**14}},
           "service": [{"name": "a", "kind": "allocator", "size": "8MiB", "chunk": "4MiB"}]}
    with pytest.raises(ConfigError, match=r"'policy\.earlyoom\.kill_wait_timeout_s' must be <= 3600") as info:
        act_scenario_from_dict(doc, source="big.toml")
    assert "big.toml" in str(info.value)
