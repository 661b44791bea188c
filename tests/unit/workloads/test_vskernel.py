"""memsched.workloads.pressure.vskernel without a running kernel: the v2 cgroup and the mode choice on fixture
trees (temporary directories laid out like /proc and /sys/fs/cgroup), the watcher's samples, the per-phase
figures, the simulated side's samples, and the paced load programs."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from memsched.errors import ConfigError, KernelError
from memsched.live.pressure.load import anon_allocator, file_rereader, page_cache_writer
from memsched.live.roots import LiveRoots
from memsched.uapi.pressure import PsiTrigger
from memsched.workloads.pressure.vskernel import (
    Proc,
    Trace,
    V2Cgroup,
    Watcher,
    Workload,
    cgroup_modes,
    measure_disk_mib_s,
    phase_stats,
    pick_mode,
    read_counters,
    run_sim,
    scenario_doc,
)

V2_LINE = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID = (
    "35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    "36 24 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
)


def fake_tree(tmp: Path, mountinfo: str, *, memory: bool) -> LiveRoots:
    """A /proc + /sys tree: the mounts of ``mountinfo``; the v2 root's controllers, memory enabled or not."""
    (tmp / "proc" / "self").mkdir(parents=True)
    (tmp / "proc" / "self" / "mountinfo").write_text(mountinfo)
    v2 = tmp / "sys" / "fs" / "cgroup" / ("unified" if "unified" in mountinfo else "")
    v2.mkdir(parents=True, exist_ok=True)
    (v2 / "cgroup.controllers").write_text("cpu io memory pids\n" if memory else "hugetlb\n")
    (v2 / "cgroup.subtree_control").write_text("cpu io memory pids\n" if memory else "\n")
    if "memory rw" in mountinfo or "rw,memory" in mountinfo:
        (tmp / "sys" / "fs" / "cgroup" / "memory").mkdir(parents=True, exist_ok=True)
    return LiveRoots(proc_root=tmp / "proc", sys_root=tmp / "sys")


@pytest.fixture
def cgroupfs_rmdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """``rmdir`` as on cgroupfs for directories under ``tmp_path``: a cgroup's files go with it (an empty
    ``cgroup.procs`` is fine, a listed task is ``EBUSY``). Returns the directories removed, in order."""
    removed: list[Path] = []
    real_rmdir = Path.rmdir

    def rmdir(self: Path) -> None:
        if tmp_path in self.parents:
            procs = self / "cgroup.procs"
            if procs.exists() and procs.read_text().split():
                raise OSError(errno.EBUSY, "Device or resource busy")
            for f in self.iterdir():
                if f.is_file():
                    f.unlink()
            removed.append(self)
        real_rmdir(self)

    monkeypatch.setattr(Path, "rmdir", rmdir)
    return removed


def test_v2_cgroup_sets_its_limit_and_its_children_and_removes_them(tmp_path: Path, cgroupfs_rmdir: list[Path]) -> None:
    roots = fake_tree(tmp_path, V2_LINE, memory=True)
    root = tmp_path / "sys" / "fs" / "cgroup"
    (root / "cgroup.kill").touch()  # only the root's; a fresh cgroup's own file appears on the real fs
    with V2Cgroup("w", limit_bytes=64 << 20, roots=roots) as cg:
        assert cg.path == root / "w" and cg.memory
        assert (cg.path / "memory.max").read_text() == str(64 << 20)
        a = cg.child("a", limit_bytes=16 << 20)
        b = cg.child("b")
        assert (cg.path / "cgroup.subtree_control").read_text() == "+memory"
        assert (a / "memory.max").read_text() == str(16 << 20) and not (b / "memory.max").exists()
        (cg.path / "cgroup.kill").touch()
    assert (root / "w").exists() is False
    assert cgroupfs_rmdir == [root / "w" / "b", root / "w" / "a", root / "w"]  # children first


def test_v2_cgroup_is_removed_when_the_body_fails(tmp_path: Path, cgroupfs_rmdir: list[Path]) -> None:
    roots = fake_tree(tmp_path, V2_LINE, memory=True)
    with pytest.raises(RuntimeError, match="boom"), V2Cgroup("w", limit_bytes=1 << 20, roots=roots) as cg:
        cg.child("a")
        raise RuntimeError("boom")
    assert not (tmp_path / "sys" / "fs" / "cgroup" / "w").exists()


def test_v2_cgroup_without_the_memory_controller(tmp_path: Path, cgroupfs_rmdir: list[Path]) -> None:
    """A limit needs memory.max: refused before anything is created; without a limit (hybrid: PSI only) fine."""
    roots = fake_tree(tmp_path, HYBRID, memory=False)
    with pytest.raises(KernelError, match="memory controller is not enabled") as e:
        V2Cgroup("w", limit_bytes=1 << 20, roots=roots)
    assert e.value.errno == errno.EOPNOTSUPP
    unified = tmp_path / "sys" / "fs" / "cgroup" / "unified"
    assert not (unified / "w").exists()
    with V2Cgroup("w", limit_bytes=None, roots=roots) as cg:
        cg.child("a")
        assert not (cg.path / "cgroup.subtree_control").exists() and not (cg.path / "memory.max").exists()
        with pytest.raises(KernelError, match=r"no memory\.max"):
            cg.child("b", limit_bytes=1 << 20)
    assert not (unified / "w").exists()


def test_v2_cgroup_leftovers(tmp_path: Path, cgroupfs_rmdir: list[Path]) -> None:
    """An empty leftover of a killed run is replaced; one with tasks is refused (and left alone)."""
    roots = fake_tree(tmp_path, V2_LINE, memory=True)
    left = tmp_path / "sys" / "fs" / "cgroup" / "w"
    left.mkdir()
    (left / "cgroup.procs").write_text("")
    with V2Cgroup("w", limit_bytes=None, roots=roots):
        assert left.is_dir()
    left.mkdir()
    (left / "cgroup.procs").write_text("4242\n")
    with pytest.raises(KernelError, match="has tasks") as e, V2Cgroup("w", limit_bytes=None, roots=roots):
        pass
    assert e.value.errno == errno.EEXIST and (left / "cgroup.procs").read_text() == "4242\n"


def test_modes_on_fixture_trees(tmp_path: Path) -> None:
    v2only = fake_tree(tmp_path / "a", V2_LINE, memory=True)
    assert pick_mode("auto", v2only) == "v2" and pick_mode("v2", v2only) == "v2"
    with pytest.raises(ConfigError, match="no v1 memory controller"):
        pick_mode("v1", v2only)
    hybrid = fake_tree(tmp_path / "b", HYBRID, memory=False)
    assert set(cgroup_modes(hybrid)) == {"v1", "v2"} and "hybrid" in cgroup_modes(hybrid)["v2"]
    assert pick_mode("auto", hybrid) == "v1" and pick_mode("v2", hybrid) == "v2"
    bare = fake_tree(tmp_path / "c", V2_LINE, memory=False)  # v2 without memory and no v1: nothing to limit with
    assert cgroup_modes(bare) == {}
    for mode in ("auto", "v1", "v2"):
        with pytest.raises(ConfigError, match="cannot run here"):
            pick_mode(mode, bare)
    with pytest.raises(ConfigError, match="must be one of"):
        pick_mode("v3", v2only)


def test_counters_v2_and_v1(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert read_counters(tmp_path) == {"low": 0, "high": 0, "max": 31, "oom": 1, "oom_kill": 1, "oom_group_kill": 0}
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.failcnt").write_text("3\n")
    (v1 / "memory.memsw.failcnt").write_text("40\n")
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert read_counters(v1) == {"failcnt": 43, "oom_kill": 2}
    assert read_counters(tmp_path / "nothing") == {}


def _replace(path: Path, text: str) -> None:
    """Write a file the way the kernel presents it: whole, never seen empty or half-written by a reader."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_watcher_samples_stall_and_counters(tmp_path: Path) -> None:
    """Samples follow the files (a fake clock stamps them); closing takes a last sample and is idempotent."""
    psi = tmp_path / "memory.pressure"
    line = "{} avg10=0.00 avg60=0.00 avg300=0.00 total={}\n"
    psi.write_text(line.format("some", 100) + line.format("full", 40))
    (tmp_path / "memory.events").write_text("max 0\noom_kill 0\n")
    ticks = iter(range(0, 10**12, 1_000_000))
    w = Watcher(0, psi=tmp_path, triggers={}, counters=tmp_path, sample_ms=1.0, clock=lambda: next(ticks))
    deadline = time.monotonic() + 30
    while len(w.psi) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    _replace(psi, line.format("some", 900) + line.format("full", 500))  # the watcher thread reads meanwhile
    _replace(tmp_path / "memory.events", "max 7\noom_kill 1\n")
    w.close()
    w.close()
    assert w.psi[0][1:] == (100, 40) and w.psi[-1][1:] == (900, 500)
    assert w.counters[0][1] == {"max": 0, "oom_kill": 0} and w.counters[-1][1] == {"max": 7, "oom_kill": 1}
    assert [t for t, _, _ in w.psi] == sorted(t for t, _, _ in w.psi) and not w.signals


def test_watcher_checks_every_trigger_before_writing_any(tmp_path: Path) -> None:
    psi = tmp_path / "memory.pressure"
    psi.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    bad = {"medium": PsiTrigger("some", 100_000, 2_000_000), "critical": PsiTrigger("full", 50_000, 500_000)}
    with pytest.raises(ConfigError, match="multiple of 2000000"):
        Watcher(0, psi=tmp_path, triggers=bad, privileged=False)
    assert psi.read_text() == "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"  # nothing written


def test_phase_figures_from_samples() -> None:
    """Stall and counters per phase are growth between the phase's edges (linear between samples); v2 trigger
    events are counted as they fire, and the last phase keeps them for a PSI window after it ends."""
    t = Trace(mode="v2")
    t.procs = {"a": (0, 100, False), "b": (100, 300, True)}
    t.psi = [(0, 0, 0), (50, 1000, 500), (200, 4000, 2000), (400, 4000, 2000)]
    t.counters = [(0, {"max": 0, "oom_kill": 0}), (200, {"max": 20, "oom_kill": 0}), (300, {"max": 20, "oom_kill": 1})]
    t.signals = [(150, "medium", 1), (2_000_000_000, "critical", 1)]
    st = phase_stats(t)
    assert list(st) == ["a", "b"]
    assert st["a"]["some_ms"] == pytest.approx(2.0) and st["a"]["full_ms"] == pytest.approx(1.0)
    assert st["b"]["some_ms"] == pytest.approx(2.0) and st["a"]["counters"] == {"max": 10, "oom_kill": 0}
    assert st["b"]["counters"] == {"max": 10, "oom_kill": 1}
    assert st["a"]["events"] == {"low": 0, "medium": 0, "critical": 0}
    assert st["b"]["events"] == {"low": 0, "medium": 1, "critical": 1} and st["b"]["first_ms"] == pytest.approx(5e-5)
    v1 = Trace(procs=t.procs, signals=[(150, "low", 2), (150, "medium", 1), (150, "critical", 1)])
    assert phase_stats(v1)["b"]["events"] == {"low": 1, "medium": 0, "critical": 1}
    assert phase_stats(v1)["b"]["some_ms"] is None and phase_stats(v1)["b"]["counters"] == {}
    back = Trace.from_json(asdict(t))
    assert back == t


def test_simulated_side_samples_like_the_real_one() -> None:
    """Under the psi design the simulated run has the same samples: monotone stall totals from reading
    memory.pressure, the memcg's counters with the OOM kill, and the scenario carries the v2 triggers."""
    w = Workload("t", "32 MiB memcg, a grower at 64 MiB/s", 32, (Proc("grower", "grower", rate_mib_s=64),))
    doc = scenario_doc(w, {}, (500.0, 500.0), 1.5, {"sim_kernel": "6.18", "tick_ns": 0, "psi_privileged": False})
    assert doc["psi"] == {"medium": "some 100000 2000000", "critical": "full 100000 2000000", "privileged": False}
    sim = run_sim(w, {}, (500.0, 500.0), 1.5, {"sim_kernel": "6.18", "tick_ns": 0}, design="psi", sample_ms=20)
    assert sim.mode == "v2" and sim.oom_kills == 1 and sim.procs["grower"][2]
    somes = [s for _, s, _ in sim.psi]
    assert somes == sorted(somes) and somes[-1] > 0 and len(sim.psi) >= 70
    last = sim.counters[-1][1]
    assert last["oom_kill"] == 1 and last["failcnt"] > 0 and last["max"] == last["failcnt"]


def test_paced_load_programs(tmp_path: Path) -> None:
    """load.py's programs with a rate: they run, write and read what they are asked to; a bad rate is refused."""
    f = tmp_path / "f"
    subprocess.run(page_cache_writer(f, 3 << 20, rate_bytes_s=1e9), check=True, timeout=60)
    assert f.stat().st_size == 3 << 20
    subprocess.run(file_rereader(f, 2, rate_bytes_s=1e9), check=True, timeout=60)
    subprocess.run(anon_allocator(2 << 20, rate_bytes_s=1e9), check=True, timeout=60)
    grower = subprocess.Popen(anon_allocator(None, rate_bytes_s=64 << 20))  # until killed
    try:
        time.sleep(0.2)
        assert grower.poll() is None
    finally:
        grower.kill()
        grower.wait()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="rate_bytes_s"):
            anon_allocator(1 << 20, rate_bytes_s=bad)
    assert os.path.exists(f)


def test_disk_bandwidths_through_the_page_cache(tmp_path: Path) -> None:
    """Writeback of dirty page cache (fdatasync) and a readahead-fed re-read: positive figures, no file left."""
    write, read = measure_disk_mib_s(str(tmp_path), trials=1, size_mib=4)
    assert write > 0 and read > 0
    assert list(tmp_path.iterdir()) == []
