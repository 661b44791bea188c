"""specjbb, perf-bench-numa and mixed: their shapes, figures and what the comparison must show."""

from __future__ import annotations

import pytest

from memsched.errors import ConfigError
from memsched.workloads import get
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

WSM = "westmere-ex-4n48"


def run(workload: str, policy: str = "none", topology: str = WSM, **sets: str) -> dict:  # type: ignore[type-arg]
    return run_one(RunSpec(workload, topology, policy, seed=0, sets=sets))


def test_specjbb_defaults_follow_mels_setup() -> None:
    """One JVM per node, CPUs/JVMs warehouses each, 30 s ramp-up then 240 s measured."""
    r = run("specjbb_HARD_BIND")
    m = r["metrics"]
    assert (m["jvms"], m["warehouses"]) == (4, 12)
    assert r["elapsed_s"] == 270.0
    assert len(m["bops_per_jvm"]) == 4 and m["bops"] == pytest.approx(sum(m["bops_per_jvm"]), rel=1e-6)
    assert r["local_fraction"] == 1.0


def test_specjbb_manual_placement_beats_vanilla_and_mainline_approaches_it() -> None:
    """Manual placement beats no balancing (heaps start on one node each, threads spread); mainline gets
    within 10 % of it by gathering each JVM's threads and memory."""
    hard = run("specjbb_HARD_BIND")["metrics"]["bops"]
    none = run("specjbb")["metrics"]["bops"]
    main = run("specjbb", "mainline")["metrics"]["bops"]
    assert none < 0.92 * hard
    assert main > 0.9 * hard and main > none


def test_perf_bench_layouts_and_errors() -> None:
    """layout=PxT sets processes and threads; malformed layouts and oversized memory are refused."""
    r = run("perf-bench-numa", layout="2x4", size_mb="256", duration_s="5")
    assert r["metrics"]["layout"] == "2x4" and r["tasks"] == 2 + 8
    with pytest.raises(ConfigError, match="layout"):
        get("perf-bench-numa").make_config({"layout": "4by8"})
    with pytest.raises(ConfigError, match="size_mb"):
        run("perf-bench-numa", mem="thread", size_mb="4096")


def test_perf_bench_convergence() -> None:
    """Hard-bound processes are converged from the first sample; no balancing never converges 4x8; mainline
    converges (threads and memory of each process on one node) within the run."""
    assert run("perf-bench-numa_HARD_BIND", duration_s="10")["metrics"]["convergence_s"] == 1.0
    assert run("perf-bench-numa")["metrics"]["convergence_s"] is None
    conv = run("perf-bench-numa", "mainline")["metrics"]["convergence_s"]
    assert conv is not None and conv < 120


def test_perf_bench_global_memory_is_one_mm() -> None:
    """mem=global: every process maps the same memory."""
    r = run("perf-bench-numa", layout="2x2", mem="global", size_mb="128", duration_s="3")
    assert r["memory_bytes"] == 64 * 2 * 1024 * 1024 + 2 * 1024 * 1024  # 128 MB + header page, one mapping


def test_mixed_is_the_adverse_case() -> None:
    """The interleaved service already uses every controller: no balancing is best; mainline loses to it."""
    none = run("mixed")["metrics"]
    main = run("mixed", "mainline")["metrics"]
    assert none["batch_jobs"] > 0
    assert none["service_gb_per_s"] > main["service_gb_per_s"]


def test_numa01_note_on_many_nodes() -> None:
    """numa01's spec explains the adverse case on machines with more than two nodes, and not on two."""
    from memsched.topology import load_topology

    spec = get("numa01")
    assert "interleaves" in (spec.note(load_topology("x86-8n64")) or "")
    assert spec.note(load_topology("sandybridge-2n32")) is None


@pytest.mark.parametrize(
    "interval", [float("nan"), float("inf"), 1e-6, 0.0, -1.0, 1e300, pytest.param(10**400, id="int-1e400")]
)
def test_numa_options_bound_the_sample_interval(interval: float) -> None:
    """A timeline interval the simulator cannot honour (NaN, 1 µs, an int past float) is a ConfigError."""
    from memsched.workloads.numa import NumaOptions

    with pytest.raises(ConfigError, match="'sample_interval_s'"):
        NumaOptions(sample_interval_s=interval)
    assert NumaOptions(sample_interval_s=1).sample_interval_s == 1.0
