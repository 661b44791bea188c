"""Both traces (``memsched run --trace``, ``memsched rt sim --trace``) against the trace-event format, and what
a Perfetto user looks for in them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from memsched.cli import main
from memsched.report.numa_trace import MACHINE_PID
from memsched.report.trace_format import TraceFormatError, check, validate


def _write_and_load(argv: list[str], path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    assert main([*argv, "--trace", str(path)]) == 0
    out = capsys.readouterr().out
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc, out


# ---- the validator ---------------------------------------------------------------------------------------------
def _doc(*events: dict[str, Any]) -> dict[str, Any]:
    return {"traceEvents": list(events)}


OK_X = {"name": "a", "ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1}


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ([{**OK_X, "ph": "Q"}], "unknown ph"),
        ([{k: v for k, v in OK_X.items() if k != "tid"}], "tid must be an integer"),
        ([{**OK_X, "pid": "1"}], "pid must be an integer"),
        ([{**OK_X, "ts": -1}], "ts must be"),
        ([{**OK_X, "ts": float("nan")}], "ts must be"),
        ([{**OK_X, "dur": None}], "dur must be"),
        ([{**OK_X, "ph": "E"}], "E without an open B"),
        ([{**OK_X, "ph": "B"}], "never closed"),
        ([{**OK_X, "ph": "B", "ts": 5}, {**OK_X, "ph": "E", "ts": 4}], "E before its B"),
        ([{**OK_X, "ph": "B"}, {**OK_X, "ph": "E", "tid": 2}], "E without an open B"),
        ([{**OK_X, "ph": "b", "cat": "c"}], "need cat and id"),
        ([{**OK_X, "ph": "b", "cat": "c", "id": 1}], "never closed"),
        ([{**OK_X, "ph": "e", "cat": "c", "id": 1}], "e without an open b"),
        ([{**OK_X, "ph": "b", "cat": "c", "id": 1}, {**OK_X, "ph": "e", "cat": "c", "id": 2}], "e without an open b"),
        ([{**OK_X, "ph": "i", "s": "x"}], "scope"),
        ([{**OK_X, "ph": "C", "args": {"v": "1"}}], "must be numbers"),
        ([{**OK_X, "ph": "C", "args": {"v": True}}], "must be numbers"),
        ([{**OK_X, "ph": "C"}], "non-empty args"),
        ([{"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {}}], "args.name"),
        ([{"name": "x", "ph": "M", "pid": 1, "tid": 1}], "unknown metadata"),
    ],
)
def test_validator_finds_each_violation(events: list[dict[str, Any]], problem: str) -> None:
    problems = validate(_doc(*events))
    assert any(problem in p for p in problems), problems
    with pytest.raises(TraceFormatError):
        check(_doc(*events))


def test_validator_accepts_nesting_and_pairing() -> None:
    doc = _doc(
        {**OK_X, "ph": "B", "ts": 0},
        {**OK_X, "ph": "B", "ts": 1, "name": "inner"},
        {**OK_X, "ph": "E", "ts": 2, "name": "inner"},
        {**OK_X, "ph": "E", "ts": 3},
        {**OK_X, "ph": "b", "cat": "c", "id": 7, "ts": 0},
        {**OK_X, "ph": "e", "cat": "c", "id": 7, "ts": 9},
        {**OK_X, "ph": "C", "args": {"n0": 1, "n1": 2.5}},
        {**OK_X, "ph": "i", "s": "t"},
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "p"}},
    )
    assert validate(doc) == []
    assert validate([]) and validate({"traceEvents": [], "displayTimeUnit": "s"})


# ---- the NUMA trace --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["mainline", "moron"])
def test_numa_trace_has_task_tracks_moves_and_node_counters(
    policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """numa02 under mainline, and under moron (whose fault rule the mechanism carries out itself unless a trace
    watches the hooks): a placement track per thread (node and CPU), the load balancer's cross-node moves
    and the policy's page-migration batches as instants, pages / hint faults / bandwidth per node; all valid.
    Tracing changes none of the run's figures."""
    argv = ["run", "numa02", "--topology", "westmere-ex-4n48", "--policy", policy, "--json"]
    doc, out = _write_and_load(argv, tmp_path / "n.json", capsys)
    check(doc)
    assert main(argv) == 0
    assert capsys.readouterr().out == out  # the same figures without --trace
    record = json.loads(out)
    ev = doc["traceEvents"]
    threads = {(e["pid"], e["tid"]) for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    processes = {e["pid"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    assert len(threads) == record["tasks"] and len({tid for _, tid in threads}) == record["tasks"]
    assert MACHINE_PID in processes and MACHINE_PID not in {pid for pid, _ in threads}
    assert {pid for pid, _ in threads} | {MACHINE_PID} == processes  # every pid is named, none is shared
    assert all(e["pid"] in processes for e in ev)
    slices = [e for e in ev if e["ph"] == "X"]
    assert {(e["pid"], e["tid"]) for e in slices} == threads  # every task has a placement track
    assert all(e["name"] == f"node {e['args']['node']}" and "cpu" in e["args"] for e in slices)
    names = Counter(e["name"] for e in ev if e["ph"] == "i")
    assert names["load-balance move"] > 0 and names["migrate_pages (sync)"] > 0
    counters = {e["name"]: e for e in ev if e["ph"] == "C"}
    nodes = {f"node{n}" for n in range(4)}
    for name in ("pages", "hint faults", "bandwidth GB/s"):
        assert set(counters[name]["args"]) == nodes
    last_faults = [e for e in ev if e["ph"] == "C" and e["name"] == "hint faults"][-1]
    assert sum(last_faults["args"].values()) == record["vmstat"]["numa_hint_faults"]
    assert max(e["args"]["node0"] for e in ev if e["name"] == "bandwidth GB/s") > 0


# ---- the realtime trace ----------------------------------------------------------------------------------------
def test_rt_trace_keeps_the_running_slice_and_marks_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An rt-app set with a CFS hog that never sleeps: its slice runs until the end (2 s) and is in the trace;
    each deadline job has a release, a deadline and an async slice; the document is valid."""
    app = tmp_path / "hog.json"
    app.write_text(
        json.dumps(
            {
                "global": {"duration": 2, "default_policy": "SCHED_OTHER"},
                "tasks": {
                    "hog": {"cpus": [1], "run": 1000000},
                    "dl": {"policy": "SCHED_DEADLINE", "dl-runtime": 3000, "dl-period": 10000,
                           "run": 2000, "timer": {"ref": "unique", "period": 10000}},
                },
            }
        )
    )
    doc, out = _write_and_load(["rt", "sim", "--rt-app", str(app), "--cpus", "2", "--json"], tmp_path / "r.json",
                               capsys)
    check(doc)
    record = json.loads(out)
    ev = doc["traceEvents"]
    hog = [e for e in ev if e["ph"] == "X" and e["name"] == "hog"]
    assert hog and max(e["ts"] + e["dur"] for e in hog) == pytest.approx(record["elapsed_s"] * 1e6)
    dl = next(t for t in record["tasks"] if t["name"] == "dl")
    jobs = [e for e in ev if e["ph"] == "b"]
    assert len(jobs) == dl["jobs"] and len([e for e in ev if e["ph"] == "e"]) == dl["jobs"]
    marks = Counter(e["name"] for e in ev if e["ph"] == "i")
    assert marks["release"] == dl["jobs"] and marks["deadline"] == dl["jobs"]
