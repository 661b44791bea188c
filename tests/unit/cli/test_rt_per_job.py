"""``memsched rt sim --per-job`` and ``--ideal``: every job in the JSON, agreeing with the task totals."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from memsched.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["rt", "sim", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_per_job_records_agree_with_the_task_totals(capsys: pytest.CaptureFixture[str]) -> None:
    """An overloaded set with bare runtimes (margin 0) so that jobs miss, are preempted and migrate: the jobs
    listed per task give back its job count, misses, response mean/p99/max and maximum tardiness."""
    doc = _run(
        capsys,
        "dl-periodic",
        "--json",
        "--per-job",
        *("--set", "duration_ms=400", "--set", "tasks=8", "--set", "utilisation=3.6"),
        *("--set", "runtime_margin_pct=0"),
    )
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in doc["per_job"]:
        jobs[j["task"]].append(j)
    assert doc["deadline_misses"] > 0 and any(j["preemptions"] for j in doc["per_job"])
    assert any(j["migrations"] for j in doc["per_job"])
    assert sum(j["missed"] for j in doc["per_job"]) == doc["deadline_misses"]
    for t in doc["tasks"]:
        mine = jobs[t["name"]]
        assert len(mine) == t["jobs"]
        assert [j["job"] for j in mine] == list(range(len(mine)))
        assert sum(j["missed"] for j in mine) == t["deadline_misses"]
        resp = [j["response_ns"] for j in mine]
        assert np.mean(resp) / 1000 == pytest.approx(t["response_us"]["mean"], rel=1e-12)
        assert max(resp) / 1000 == t["response_us"]["max"]
        assert np.percentile(resp, 99) / 1000 == pytest.approx(t["response_us"]["p99"], rel=1e-12)
        tard = [j["finish_ns"] - j["deadline_ns"] for j in mine if j["missed"]]
        assert (max(tard) if tard else 0) / 1000 == t["max_tardiness_us"]
        assert sum(j["preemptions"] for j in mine) <= t["nivcsw"]
        assert sum(j["migrations"] for j in mine) <= t["migrations"]
        for j in mine:
            assert j["release_ns"] <= j["start_ns"] <= j["finish_ns"]
            assert j["deadline_ns"] == j["release_ns"] + t["dl_deadline_us"] * 1000
            assert j["response_ns"] == j["finish_ns"] - j["release_ns"]
            assert j["missed"] == (j["finish_ns"] > j["deadline_ns"])


def test_default_json_keeps_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """Without the flags the document has no per_job or ideal key (the existing contract)."""
    doc = _run(capsys, "grub", "--json")
    assert "per_job" not in doc and "ideal" not in doc


def test_ideal_turns_off_every_overhead_in_one_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """--ideal = zero switch and cache costs, no fair_server, no admission limit, no noise; --set still wins."""
    doc = _run(capsys, "isolation", "--json", "--ideal", "--set", "duration_ms=100")
    s = doc["sched"]
    assert doc["ideal"] is True
    assert (s["ctx_switch_ns"], s["cache_refill_ns"], s["migration_refill_ns"]) == (0, 0, 0)
    assert s["rt_bandwidth"] == "none" and s["sched_rt_runtime_us"] == -1
    assert all(n["events"] == 0 for n in doc["noise"])
    doc = _run(capsys, "grub", "--json", "--ideal", "--set", "ctx_switch_ns=500")
    assert doc["sched"]["ctx_switch_ns"] == 500 and doc["sched"]["cache_refill_ns"] == 0


def test_dl_periodic_default_margin_meets_deadlines(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's reservations leave a margin over the execution time: no job overruns and none misses, while
    the same set reserved at its bare execution time overruns (throttled) and misses."""
    short = ("--set", "duration_ms=500")
    doc = _run(capsys, "dl-periodic", "--json", *short)
    assert doc["deadline_misses"] == 0 and doc["dl"]["throttled"] == 0
    bare = _run(capsys, "dl-periodic", "--json", *short, "--set", "runtime_margin_pct=0")
    assert bare["dl"]["throttled"] > 0


@pytest.mark.parametrize(
    "argv",
    [["dl-periodic", "--per-job"], ["--compare-preempt", "--per-job", "--json"]],
)
def test_per_job_refusals(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rt", "sim", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--per-job" in err[0]
