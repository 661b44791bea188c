"""rt-app files are validated whole before the first thread exists, every error names the file and the key,
and every accepted file can finish: no zero-time loop, no recursion through yields, bounded threads, events and
run length (the audit's rt-app crash and hang classes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memsched.errors import ConfigError
from memsched.sim.sched.machine import RtMachine
from memsched.workloads.rt.rtapp import MAX_EVENTS, MAX_THREADS, load_rt_app


def load(tmp_path: Path, doc: Any, *, raw: str | None = None, cpus: int = 4) -> RtMachine:
    path = tmp_path / "app.json"
    path.write_text(raw if raw is not None else json.dumps(doc))
    m = RtMachine(cpus)
    built = load_rt_app(path, m)
    m.run(min(built.duration_ns, 5_000_000))
    return m


@pytest.mark.parametrize(
    ("thread", "key"),
    [
        ({"loop": "x", "run": 10}, "tasks.a.loop"),
        ({"policy": "SCHED_FIFO", "priority": "high", "run": 10}, "tasks.a.priority"),
        ({"policy": "SCHED_FIFO", "priority": 0, "run": 10}, "tasks.a.priority"),
        ({"priority": 40, "run": 10}, "tasks.a.priority"),
        ({"phases": [{"run": 10}]}, "tasks.a.phases"),
        ({"phases": {"p": [1]}}, "tasks.a.phases.p"),
        ({"phases": {"p": {"loop": 10**9, "run": 1}}}, "tasks.a.phases.p.loop"),
        ({"cpus": 0, "run": 10}, "tasks.a.cpus"),
        ({"cpus": [7], "run": 10}, "tasks.a.cpus"),
        ({"instance": -3, "run": 10}, "tasks.a.instance"),
        ({"instance": 10**7, "run": 10}, "tasks.a.instance"),
        ({"run": -1}, "tasks.a.run"),
        ({"run": 1e300}, "tasks.a.run"),
        ({"lock": {"m": 1}, "run": 10}, "tasks.a.lock"),
        ({"policy": "SCHED_DEADLINE", "dl-runtime": 3000, "dl-period": 1000, "run": 10}, "tasks.a.dl-runtime"),
        ({"policy": "NOPE", "run": 10}, "tasks.a.policy"),
        ({"run": 10, "mem": 10}, "tasks.a.mem"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, thread: dict[str, Any], key: str) -> None:
    """Wrong types, out-of-range values and unsupported events: ConfigError with the key and the file."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"global": {"duration": 1}, "tasks": {"a": thread}})
    assert info.value.field.startswith(key) and info.value.source == str(tmp_path / "app.json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(tmp_path: Path, literal: str) -> None:
    """Python's parser accepts them; rt-app's times may not be one."""
    with pytest.raises(ConfigError, match="valid JSON"):
        load(tmp_path, None, raw=f'{{"tasks": {{"a": {{"run": {literal}}}}}}}')


@pytest.mark.parametrize(
    "thread",
    [{"sleep": 0}, {"run": 0}, {"run": 0, "sleep": 0}, {"lock": "m", "unlock": "m"}, {"yield": 0}],
)
def test_a_loop_that_takes_no_time_is_refused(tmp_path: Path, thread: dict[str, Any]) -> None:
    """These spun at 100 % CPU forever (or recursed until Python's stack ran out)."""
    with pytest.raises(ConfigError, match="must take time in every loop"):
        load(tmp_path, {"tasks": {"a": thread}})


def test_long_runs_of_zero_time_events_are_refused(tmp_path: Path) -> None:
    """5,000 yields in a row recursed through the scheduler (RecursionError); 64 are allowed."""
    doc = {"tasks": {"a": {"phases": {"p": {"loop": 5000, "yield": 0}, "q": {"run": 100}}}}}
    with pytest.raises(ConfigError, match="in a row"):
        load(tmp_path, doc)
    doc["tasks"]["a"]["phases"]["p"]["loop"] = 64
    load(tmp_path, {"global": {"duration": 0.01}, **doc})


def test_locks_are_released_by_their_holder(tmp_path: Path) -> None:
    """An unlock of a mutex not held, a second lock of the same mutex, or a lock kept across the loop."""
    for thread, why in (
        ({"unlock": "m", "run": 10}, "does not hold"),
        ({"lock": "m", "lock1": "m", "run": 10, "unlock": "m"}, "already holds"),
        ({"lock": "m", "run": 10}, "unlock every mutex"),
    ):
        with pytest.raises(ConfigError, match=why):
            load(tmp_path, {"tasks": {"a": thread}})


def test_threads_and_work_are_bounded(tmp_path: Path) -> None:
    """instance = 10^7 and duration = 1e9 ran away; a file that would need more than MAX_EVENTS is refused."""
    with pytest.raises(ConfigError, match=f"above {MAX_THREADS} threads"):
        load(tmp_path, {"tasks": {"a": {"instance": 1000, "run": 100}, "b": {"instance": 100, "run": 100}}})
    with pytest.raises(ConfigError, match=r"global\.duration"):
        load(tmp_path, {"global": {"duration": 1e9}, "tasks": {"a": {"run": 10}}})
    with pytest.raises(ConfigError, match=r"global\.duration"):  # found by the fuzzer: an OverflowError in isfinite
        load(tmp_path, None, raw='{"global": {"duration": ' + "9" * 400 + '}, "tasks": {"a": {"run": 10}}}')
    with pytest.raises(ConfigError, match=f"at most {MAX_EVENTS:,}"):
        load(tmp_path, {"global": {"duration": 100}, "tasks": {"a": {"run": 1}}})


def test_refusals_by_the_simulated_kernel_are_the_files_fault(tmp_path: Path) -> None:
    """Admission control refusing a deadline thread names the thread and the file (exit 2, not 1)."""
    doc = {
        "tasks": {
            "a": {"policy": "SCHED_DEADLINE", "dl-runtime": 9000, "dl-period": 10000, "run": 10, "instance": 5},
        }
    }
    with pytest.raises(ConfigError, match="cannot be created: sched_setattr: deadline bandwidth") as info:
        load(tmp_path, doc)
    assert info.value.field == "tasks.a"


def test_the_fixture_file_still_loads_unchanged(tmp_path: Path) -> None:
    """The committed example (the golden runs' input) is accepted with its threads in the same order."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "rt-app" / "periodic.json"
    m = RtMachine(2)
    built = load_rt_app(fixture, m)
    assert [t.name for t in built.groups["rt-app"]] == ["dl", "fifo-0", "fifo-1", "other"]
