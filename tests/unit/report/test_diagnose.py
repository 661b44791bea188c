"""The "why" notes name the mechanism behind a loss from the run's own counters; seeds give median, min, max."""

from __future__ import annotations

from typing import Any

from memsched.record import RunRecord
from memsched.report.diagnose import diagnose, diagnose_runs
from memsched.report.tables import compare_summary, spread

GIB = 1 << 30


def rec(label: str, seed: int, elapsed: float, *, role: str = "policy", **over: Any) -> RunRecord:
    figures: dict[str, Any] = {
        "topology": "t",
        "elapsed_s": elapsed,
        "user_s": 1000.0,
        "system_s": 10.0,
        "local_fraction": 0.9,
        "vmstat": {},
        "metrics": {},
        "memory_bytes": 4 * GIB,
        "tasks": 8,
        "task_node_moves": 0,
        "timeline": {},
        "score": {"name": "elapsed s", "value": elapsed, "higher_is_better": False},
    }
    figures.update(over)
    return RunRecord("numa", "w", "none" if role == "reference" else label, label, seed, figures, role=role, base="w")  # type: ignore[arg-type]


def test_spread_median_min_max() -> None:
    assert spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert spread([4.0, 1.0, None, 2.0, 3.0]) == (2.5, 1.0, 4.0)
    assert spread([None]) is None


def test_lock_contention_copy_traffic_and_filtering_notes() -> None:
    """Each mechanism's note comes from its own counters and starts with its name."""
    none = rec("none", 0, 100.0, local_fraction=0.5)
    contended = rec(
        "a",
        0,
        150.0,
        system_s=60.0,
        system_by_cause={"lock_spin": 40.0, "copy": 12.0, "hint_faults": 8.0},
        metrics={"lock_spin_s": 40.0, "lock_sleep_s": 5.0, "lock_blocks": 30, "tlb_shootdowns": 900,
                 "tlb_ipi_s": 2.0, "tlb_send_s": 1.0, "migrate_copy_bytes": 12 * GIB},
    )
    filtered = rec(
        "b",
        0,
        120.0,
        local_fraction=0.4,
        vmstat={"numa_hint_faults": 1000, "numa_hint_faults_local": 200},
        metrics={"hint_faults_remote_kept": 700, "migrate_ratelimited_pages": 262144},
    )
    notes = diagnose([none, contended, filtered])
    a = notes[("w", "a")]
    assert a[0].startswith("loses to no balancing")
    lock = next(n for n in a if n.startswith("lock contention:"))
    assert "40.0 s spinning" in lock and "5.0 s asleep" in lock and "900 TLB shootdowns" in lock
    copy = next(n for n in a if n.startswith("copy traffic:"))
    assert "12.0 GiB" in copy and "3.0x" in copy
    assert any(n.startswith("system time mostly spinning on locks") for n in a)
    assert not any(n.startswith("filtering:") for n in a)  # locality 0.9: nothing was held back that mattered
    b = notes[("w", "b")]
    filt = next(n for n in b if n.startswith("filtering:"))
    assert "700 of 800 remote hinting faults" in filt and "rate limit 1.0 GiB" in filt
    assert not any(n.startswith(("lock contention:", "copy traffic:")) for n in b)


def test_bouncing_note() -> None:
    none = rec("none", 0, 100.0)
    bouncy = rec("c", 0, 130.0, vmstat={"numa_pages_migrated": 5 * 1024 * 1024},
                 metrics={"numa_task_swaps": 100})
    notes = diagnose([none, bouncy])[("w", "c")]
    assert sum(n.startswith("bouncing:") for n in notes) == 2


def test_seeds_median_run_notes_and_counts() -> None:
    """With several seeds, a cell shows its median run's notes and how many seeds show each mechanism; each
    run is judged against the no-balancing run of its own seed."""
    runs = []
    for seed, (base, mine, spin) in enumerate([(100.0, 120.0, 30.0), (100.0, 95.0, 0.0), (100.0, 130.0, 40.0)]):
        runs.append(rec("none", seed, base))
        runs.append(rec("a", seed, mine, metrics={"lock_spin_s": spin}))
        runs.append(rec("HARD_BIND", seed, 50.0, role="reference"))
    per_run = diagnose_runs(runs)
    assert any(n.startswith("lock contention:") for n in per_run[("w", "a", 0)])
    assert not any(n.startswith("lock contention:") for n in per_run[("w", "a", 1)])
    notes = diagnose(runs)[("w", "a")]
    assert notes[-1] == (
        "(notes of seed 0, the median of 3; over the seeds: lock contention 2/3, loses to no balancing 2/3)"
    )
    summary = {c["label"]: c for c in compare_summary(runs)}
    assert summary["a"]["elapsed_s"] == {"median": 120.0, "min": 95.0, "max": 130.0}
    assert summary["a"]["vs_HARD_BIND"] == {"median": 2.4, "min": 1.9, "max": 2.6}
    assert summary["HARD_BIND"]["seeds"] == [0, 1, 2]
