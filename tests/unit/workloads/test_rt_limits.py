"""Built-in realtime scenarios are bounded like rt-app files: every knob has a maximum, and a scenario whose
estimated scheduler events exceed rt-app's 10 million is refused before anything runs; the defaults pass."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from memsched.errors import ConfigError
from memsched.sim.sched.sched import SchedConfig
from memsched.workloads.rt.base import get, names
from memsched.workloads.rt.rtapp import MAX_EVENTS
from memsched.workloads.rt.run import run_rt_scenario


@pytest.mark.parametrize("cls", [SchedConfig, *(get(n).config_cls for n in names())], ids=lambda c: c.__name__)
def test_every_numeric_knob_has_a_maximum(cls: type) -> None:
    """The scheduler's knobs and every scenario's: ints and floats are bounded above."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] in (int, float):
            assert f.metadata.get("max") is not None, f"{cls.__name__}.{f.name} has no maximum"


@pytest.mark.parametrize(("key", "value", "bound"), [
    ("ctx_switch_ns", 99_999_999_999_999, 1_000_000),
    ("fair_server_period_ns", 5_000_000_000, 4_194_304_000),  # fair_server_period_max, kernel/sched/debug.c
    ("sched_rt_period_us", 1 << 31, (1 << 31) - 1),
])  # fmt: skip
def test_scheduler_knobs_past_their_limit_are_refused(key: str, value: int, bound: int) -> None:
    """A value above the kernel's own limit or the product limit: one ConfigError naming the key and the bound."""
    with pytest.raises(ConfigError, match=rf"'{key}' must be <= {bound} \(got {value}\)"):
        run_rt_scenario("dl-periodic", sets={key: str(value)})


@pytest.mark.parametrize(("scenario", "sets", "key"), [
    ("dl-periodic", {"tasks": "256", "duration_ms": "60000", "period_min_ms": "1", "period_max_ms": "1",
                     "utilisation": "3"}, "duration_ms"),
    ("dl-sporadic", {"tasks": "256", "duration_ms": "60000", "period_min_ms": "1", "period_max_ms": "2"},
     "duration_ms"),
    ("cyclictest", {"interval_us": "10", "duration_ms": "60000"}, "duration_ms"),
    ("hackbench", {"groups": "64", "fds": "64", "loops": "1000"}, "duration_ms"),
    ("hackbench+cyclictest", {"interval_us": "10"}, "duration_ms"),
    ("isolation", {"chunk_us": "1", "duration_ms": "60000"}, "duration_ms"),
])  # fmt: skip
def test_a_scenario_asking_for_too_many_events_is_refused(scenario: str, sets: dict[str, str], key: str) -> None:
    """The reviewer's 256 one-millisecond DL tasks for 60 s (~31 million events) and its kin: refused up front."""
    expected = rf"'{key}' with these settings of scenario {re.escape(scenario)} on \d+ CPUs asks for about [\d,]+ "
    with pytest.raises(ConfigError, match=expected + "scheduler events; at most 10,000,000 are simulated"):
        run_rt_scenario(scenario, sets=sets)


@pytest.mark.parametrize("scenario", [n for n in names() if get(n).events is not None])
def test_the_estimate_covers_what_a_default_run_takes(scenario: str) -> None:
    """Each scenario's default is accepted, and its estimate is at least the events its run takes."""
    spec = get(scenario)
    config = spec.config_cls()
    ncpu = spec.machine_kwargs(config).get("cpus", spec.cpus)
    assert spec.events is not None
    estimate = spec.events(config, ncpu)
    rec, _ = run_rt_scenario(scenario, sets={"duration_ms": "1000"} if scenario != "hackbench" else {})
    short = spec.events(dataclasses.replace(config, duration_ms=1000), ncpu) if scenario != "hackbench" else estimate
    assert rec["events"] <= short <= estimate < MAX_EVENTS


@pytest.mark.parametrize("who", ["vcpu", "guest"])
def test_kvm_runtime_above_its_period_is_refused_before_the_run(who: str) -> None:
    """sched_setattr() refuses runtime > deadline: a kvm scenario asking for it is refused naming the knob, not
    failed by the simulated syscall mid-run; runtime == period is allowed."""
    spec = get("kvm")
    with pytest.raises(ConfigError, match=rf"'{who}_runtime_us' must be <= {who}_period_us \(100\)"):
        spec.make_config({f"{who}_period_us": "100", f"{who}_runtime_us": "200"})
    spec.make_config({f"{who}_period_us": "200", f"{who}_runtime_us": "200"})
