"""The scenario schema of the kernel comparison: a reader kind, rates, start after another process exits, pure
listeners per level and mode, file-backed memory — each validated, and each doing what it says in a run."""

from __future__ import annotations

from typing import Any

import pytest

from memsched.cli import main
from memsched.errors import ConfigError
from memsched.workloads.pressure import run_design, scenario_from_dict

WRITER: dict[str, Any] = {"name": "w", "kind": "streamer", "size": "96MiB", "chunk": "1MiB", "memcg": "/box",
                          "limit": "64MiB"}
LISTENER: dict[str, Any] = {"name": "ear", "kind": "listener", "levels": ["low", "critical"], "memcg": "/box"}


def _doc(*services: dict[str, Any], duration: str = "3s") -> dict[str, Any]:
    return {"name": "t", "memory": "512MiB", "duration": duration, "designs": ["mainline"], "service": list(services)}


@pytest.mark.parametrize(
    ("services", "field", "allowed"),
    [
        ((WRITER, LISTENER | {"levels": []}), "levels", "at least one"),
        ((WRITER, LISTENER | {"levels": ["loud"]}), "levels", "must be one of"),
        ((WRITER, LISTENER | {"levels": ["low", "low"]}), "levels", "repeat"),
        ((WRITER, LISTENER | {"mode": "global"}), "mode", "must be one of"),
        ((WRITER, LISTENER | {"policy": "shed"}), "policy", "ignore"),
        ((WRITER, LISTENER | {"size": "8MiB"}), "size", "not for a listener"),
        ((WRITER | {"rate": "0MiB"}, LISTENER), "rate", "must be in 1B..64GiB"),
        (({"name": "c", "kind": "cache", "size": "8MiB", "rate": "1MiB"},), "rate", "streamer, reader or allocator"),
        ((WRITER | {"hold": "1s"},), "hold", "allocator"),
        ((WRITER | {"file": "x"},), "file", "reader"),
        ((WRITER | {"file_backed": "5KiB"},), "file_backed", "multiple of 4 KiB"),
        ((WRITER | {"start_after": "w"},), "start_after", "another service"),
        ((WRITER | {"start_after": "nobody"},), "service.start_after", "must name a service"),
        ((WRITER | {"start_after": "ear"}, LISTENER), "service.start_after", "not a listener"),
        (
            (WRITER | {"start_after": "r"}, {"name": "r", "kind": "reader", "file": "w", "start_after": "w"}),
            "service.start_after",
            "cycle",
        ),
        (({"name": "r", "kind": "reader", "file": "/etc/passwd"},), "service.size", "required for a reader"),
        (
            ({"name": "c", "kind": "cache", "size": "8MiB"}, {"name": "r", "kind": "reader", "file": "c"}),
            "service.file",
            "must name a streamer",
        ),
    ],
)
def test_bad_new_keys_name_the_key(services: tuple[dict[str, Any], ...], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        scenario_from_dict(_doc(*services), source="bad.toml")
    assert exc.value.field == (field if field.startswith("service.") else f"service.{field}")
    assert allowed in str(exc.value) and "bad.toml" in str(exc.value)


def test_cli_refuses_a_bad_listener_in_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``memsched pressure sim FILE`` with a bad key: exit 2, one line naming the file and the key."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\nduration = "1s"\n[[service]]\nname = "ear"\nkind = "listener"\nlevels = ["loud"]\n'
    )
    assert main(["pressure", "sim", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "levels" in err[0] and "bad.toml" in err[0]


def test_reader_after_writer_finds_its_cache_and_listener_only_counts() -> None:
    """A streamer writes 48 MiB into a 32 MiB memcg and exits; a reader of its file starts when it exits and
    finds the cache it left (not every page comes back from disk); the listener counts low/critical events in
    the memcg without doing anything; ``rate`` paces the reader."""
    reader = {"name": "r", "kind": "reader", "file": "w", "chunk": "1MiB", "memcg": "/box", "start_after": "w",
              "rate": "128MiB"}
    writer = WRITER | {"size": "48MiB", "limit": "32MiB"}
    fig = run_design(scenario_from_dict(_doc(writer, reader, LISTENER, duration="1200ms"), source="t"), "mainline")
    w, r, ear = fig["services"]["w"], fig["services"]["r"], fig["services"]["ear"]
    assert w["end_s"] is not None and not w["oom_killed"]
    assert r["start_s"] == pytest.approx(w["end_s"], abs=1e-3)  # started when the writer exited
    read_s = r["end_s"] - r["start_s"]
    assert 48 / 128 <= read_s <= 48 / 128 * 1.2  # paced: 128 MiB/s, a little slower when it stalls
    refaults = fig["vmstat"]["workingset_refault_file"]
    assert 0 < refaults < 48 * 256  # part of the file was still cached: not every page came back from disk
    assert r["end_s"] is not None  # both processes are gone, their file's cache is still charged to the memcg
    assert 16 * 256 <= fig["memcg"]["/box"]["usage_pages"] <= 32 * 256
    signals = {lv: len(t) for lv, t in ear["signal_times_s"].items()}
    # A critical snapshot would signal the low listener too; on EEVDF (6.18) the writer's first windows (all
    # dirty, priorities walked down) merge with the low ones after them until the tick lets the kworker in.
    assert signals["low"] > 0 and signals.get("critical", 0) <= signals["low"]
    assert 0 < sum(ear["events"].values()) <= sum(signals.values())  # one read may take several signals
    assert ear["sheds"] == 0 and ear["released_mib"] == 0
    assert set(ear["events"]) <= {"low", "critical"}


def test_file_backed_memory_is_read_from_disk_and_reclaimed_before_the_kill() -> None:
    """``file_backed`` maps a process's own files (its interpreter) and touches them as it works: read from
    disk on first touch (major faults), then reclaimed and refaulted under the memcg limit, which delays the
    OOM kill of the grower compared with the same grower without mapped files."""
    grower = {"name": "g", "kind": "allocator", "size": "256MiB", "chunk": "1MiB", "memcg": "/box", "limit": "64MiB",
              "rate": "256MiB", "file_backed": "8MiB"}
    fig = run_design(scenario_from_dict(_doc(grower, duration="2s"), source="t"), "mainline")
    plain = run_design(scenario_from_dict(_doc(grower | {"file_backed": "0KiB"}, duration="2s"), source="t"),
                       "mainline")
    assert [v["victim"] for v in fig["oom_victims"]] == [v["victim"] for v in plain["oom_victims"]] == ["g"]
    assert plain["vmstat"]["pgmajfault"] == 0
    assert fig["vmstat"]["pgmajfault"] >= 8 * 256  # every page of the files read at least once
    assert fig["oom_victims"][0]["t_s"] > plain["oom_victims"][0]["t_s"]
