"""benchmarks/pressure_vs_kernel.py's real side against the running kernel: one description run for real in a
fresh v1 memcg or v2 cgroup and in the simulator, and its cgroups removed even when a run fails.

Expectations are ranges (an OOM kill, at least one critical event before it), with generous timeouts: CI runs
this as root on a loaded 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from memsched.live.cgroups import cgroup_mounts
from memsched.workloads.pressure.vskernel import cgroup_modes, phase_stats

pytestmark = pytest.mark.live

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pressure_vs_kernel.py"


@pytest.fixture
def bench() -> ModuleType:
    if os.geteuid() != 0:
        pytest.skip("creating memory cgroups needs root")
    if not cgroup_modes():
        pytest.skip("neither a v1 memory controller nor a v2 hierarchy with one is mounted")
    spec = importlib.util.spec_from_file_location("pressure_vs_kernel", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    return mod


def _left_behind() -> list[Path]:
    mounts = cgroup_mounts()
    roots = [r for r in (mounts.v1_memory, mounts.v2) if r is not None]
    return sorted(p for r in roots for p in r.glob(f"memsched-vs-kernel-{os.getpid()}-*"))


def test_one_description_real_and_simulated(bench: ModuleType) -> None:
    """An anonymous grower (64 MiB/s) in a 32 MiB memcg: the kernel kills it once, after at least one critical
    event; the simulator, from the same description, kills it once too; nothing is left in the hierarchy."""
    if "v1" not in cgroup_modes():
        pytest.skip("the cgroup v1 memory controller is not mounted (CONFIG_MEMCG_V1=n or a v2-only system)")
    w = bench.Workload("t", "32 MiB memcg, a grower at 64 MiB/s", 32, (bench.Proc("grower", "grower", rate_mib_s=64),))
    try:
        real = bench.run_real(w, 0, 120.0)
    finally:
        assert not _left_behind()
    assert real.oom_kills == 1
    start, end, killed = real.procs["grower"]
    assert killed and 0 <= start < end
    assert any(level == "critical" for _, level, _ in real.signals)
    sim = bench.run_sim(w, {}, (500.0, 500.0), 2.0, bench.kernel_config())
    assert sim.oom_kills == 1 and sim.procs["grower"][2]
    assert any(level == "critical" for _, level, _ in sim.signals)
    stats = phase_stats(real)
    assert list(stats) == ["grower"] and stats["grower"]["events"]["critical"] >= 1


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_cgroups_are_removed_when_a_run_fails(bench: ModuleType, mode: str) -> None:
    """A run that overruns its timeout raises, kills what it started and removes its cgroups (v1 memcg, v2
    cgroup with its children, and on a hybrid system the v2 cgroup's v1 twin)."""
    if mode not in cgroup_modes():
        pytest.skip(f"this machine cannot run --cgroup {mode}")
    w = bench.Workload(
        "slow",
        "a grower far too slow for its timeout",
        32,
        (bench.Proc("grower", "grower", memcg="a", size_mib=8, rate_mib_s=1),),
        children=(("a", 16),),
    )
    with pytest.raises(TimeoutError):
        bench.run_real(w, 1, 0.5, mode)
    assert not _left_behind()


def test_v2_side_psi_and_counters(bench: ModuleType) -> None:
    """The v2 path on the running kernel (on a hybrid machine: PSI of a v2 cgroup, limit and counters from its
    v1 twin): the grower stalls in reclaim (PSI some total grows), its charges fail (failcnt or max) and it is
    killed once (oom_kill); the samples are in time order; nothing is left in either hierarchy."""
    if "v2" not in cgroup_modes():
        pytest.skip("no usable cgroup v2 hierarchy")
    # A writer's 16 MiB of page cache, charged to the cgroup, is what reclaim has to do before the OOM kill. An
    # anonymous grower alone (no swap) gives reclaim nothing: each attempt fails at once, and its stall rounded to
    # 0 us of PSI total in all three runs of a CI run (2026-12-07), as it often did before.
    w = bench.Workload(
        "t",
        "32 MiB memcg, 16 MiB of page cache, then a grower at 64 MiB/s",
        32,
        (bench.Proc("writer", "writer", size_mib=16), bench.Proc("grower", "grower", rate_mib_s=64, after="writer")),
    )
    try:
        real = bench.run_real(w, 2, 120.0, "v2")
    finally:
        assert not _left_behind()
    assert real.mode in ("v2", "v2-hybrid") and real.oom_kills == 1 and real.procs["grower"][2]
    assert not real.procs["writer"][2]
    somes = [s for _, s, _ in real.psi]
    assert somes == sorted(somes)
    assert somes[-1] > somes[0]
    last = real.counters[-1][1]
    assert last["oom_kill"] == 1 and last.get("failcnt", last.get("max", 0)) > 0
    assert [t for t, _ in real.counters] == sorted(t for t, _ in real.counters)
