"""The reclaim-index backend: counter extraction, deltas, OOM evidence and the shared window accounting,
driven by injected /proc and cgroup files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers.hang import no_hang
from helpers.live_fixtures import FIXTURES
from memsched.errors import KernelError, KernelFileError
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.options import PressureOptions
from memsched.live.pressure.reclaim_index import (
    CounterSample,
    DeltaTracker,
    ReclaimIndexSource,
    memory_stat_sample,
    vmstat_sample,
)
from memsched.live.roots import LiveRoots
from memsched.uapi.pressure import VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM

BASE = {
    "pgscan_anon": 100,
    "pgscan_file": 1000,
    "pgsteal_anon": 50,
    "pgsteal_file": 900,
    "pgscan_proactive": 100,
    "pgsteal_proactive": 40,
    "pgscan_direct_throttle": 0,
    "oom_kill": 0,
    "allocstall_normal": 3,
    "allocstall_movable": 4,
}


def test_vmstat_sample_counts_every_reclaimer_minus_proactive() -> None:
    """S = pgscan_anon + pgscan_file - pgscan_proactive (likewise R); stalls add every allocstall_* zone."""
    s = vmstat_sample(BASE)
    assert (s.scanned, s.reclaimed, s.stalls, s.ooms) == (1000, 910, 7, 0)


def test_vmstat_without_the_anon_file_split_is_an_error_not_zero() -> None:
    """A kernel without pgscan_anon/file is refused with the missing names."""
    with pytest.raises(KernelError, match="pgscan_anon, pgscan_file"):
        vmstat_sample({"pgscan_kswapd": 5, "pgsteal_kswapd": 4, "oom_kill": 0, "pgsteal_anon": 0, "pgsteal_file": 0})


def test_memory_stat_uses_the_split_and_excludes_proactive() -> None:
    """With the split, S sums kswapd+direct+khugepaged; without it, pgscan - pgscan_proactive."""
    stat = {"pgscan_kswapd": 10, "pgscan_direct": 5, "pgscan_khugepaged": 1, "pgscan_proactive": 99}
    stat |= {"pgsteal_kswapd": 8, "pgsteal_direct": 2, "pgsteal_proactive": 50}
    s = memory_stat_sample(stat, {"max": 3, "oom": 1, "oom_kill": 2}, source="m")
    assert (s.scanned, s.reclaimed, s.stalls, s.ooms) == (16, 10, 3, 2)
    s2 = memory_stat_sample({"pgscan": 100, "pgsteal": 60, "pgscan_proactive": 30}, {"max": 0, "oom": 0}, source="m")
    assert (s2.scanned, s2.reclaimed) == (70, 60)
    with pytest.raises(KernelError, match=r"memory\.events"):
        memory_stat_sample({"pgscan": 1, "pgsteal": 1}, {"low": 0}, source="m")


def test_reclaimed_beyond_scanned_is_carried_to_the_next_sample() -> None:
    """pgsteal landing one sample late never makes reclaimed exceed scanned (no u32 wrap to OOM)."""
    t = DeltaTracker(CounterSample(0, 0))
    d1 = t.update(CounterSample(512, 100))
    assert (d1.scanned, d1.reclaimed, t.carry) == (512, 100, 0)
    d2 = t.update(CounterSample(512, 700))  # the steal of the first scan arrived late
    assert (d2.scanned, d2.reclaimed, t.carry) == (0, 0, 600)
    d3 = t.update(CounterSample(1024, 800))
    assert (d3.scanned, d3.reclaimed, t.carry) == (512, 512, 188)


def test_oom_evidence_rules() -> None:
    """OOM kills and throttling always count; stalls count only when nothing was scanned."""
    t = DeltaTracker(CounterSample(0, 0, 0, 0, 0), stall_name="memory.failcnt")
    assert t.update(CounterSample(100, 50, 5, 0, 0)).evidence == ()  # stalled but reclaim scanned
    assert t.update(CounterSample(100, 50, 9, 0, 0)).evidence == ("memory.failcnt +4 with nothing scanned",)
    assert t.update(CounterSample(100, 50, 9, 1, 0)).evidence == ("oom +1",)
    assert t.update(CounterSample(200, 50, 9, 1, 2)).evidence == ("pgscan_direct_throttle +2",)


def _proc_tree(tmp_path: Path, values: dict[str, int]) -> LiveRoots:
    (tmp_path / "proc").mkdir(exist_ok=True)
    (tmp_path / "proc" / "vmstat").write_text("".join(f"{k} {v}\n" for k, v in values.items()))
    return LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys")


def _step(src: ReclaimIndexSource, roots: LiveRoots, values: dict[str, int]) -> list[tuple[VmpressureLevel, int]]:
    roots.proc("vmstat").write_text("".join(f"{k} {v}\n" for k, v in values.items()))
    return [(r.level, int(str(r.details["index"]))) for r in src.on_timer(src.next_wakeup_ns() or 0)]


def test_system_wide_monitor_levels_follow_the_rfc2012_flavour(tmp_path: Path) -> None:
    """Window 256: efficient reclaim is LOW, 60..98 MEDIUM, >= 99 OOM; sub-window scans accumulate."""
    v = dict(BASE)
    roots = _proc_tree(tmp_path, v)
    src = ReclaimIndexSource(BackendContext(roots=roots))
    assert src.scope.kind == "system" and src.window == 256
    v["pgscan_file"] += 100
    v["pgsteal_file"] += 100
    assert _step(src, roots, v) == []  # 100 < 256 pages: no window yet
    v["pgscan_file"] += 412
    v["pgsteal_file"] += 106  # window: scanned 512, reclaimed 206: 256 - 206*256/512 = 153 -> 153*100/256 = 59
    assert _step(src, roots, v) == [(LOW, 59)]
    v["pgscan_anon"] += 512
    v["pgsteal_anon"] += 204  # 256 - 102 = 154 -> 60: MEDIUM (the window, not s, is the RFC's scale)
    assert _step(src, roots, v) == [(MEDIUM, 60)]
    v["pgscan_anon"] += 512
    v["pgsteal_anon"] += 4  # 256 - 2 = 254 -> 99: OOM
    assert _step(src, roots, v) == [(OOM, 99)]
    src.close()


def test_oom_evidence_forces_a_full_window_of_nothing_reclaimed(tmp_path: Path) -> None:
    """Allocation stalls with no scan (anonymous memory, no swap) are reported as OOM, with the evidence."""
    v = dict(BASE)
    roots = _proc_tree(tmp_path, v)
    src = ReclaimIndexSource(BackendContext(roots=roots))
    v["allocstall_normal"] += 2
    roots.proc("vmstat").write_text("".join(f"{k} {n}\n" for k, n in v.items()))
    recs = src.on_timer(src.next_wakeup_ns() or 0)
    assert [r.level for r in recs] == [OOM]
    assert recs[0].details["evidence"] == ["allocstall +2 with nothing scanned"]
    assert recs[0].details["scanned"] == 256 and recs[0].details["reclaimed"] == 0
    src.close()


def test_mainline_flavour_uses_window_512_and_critical_at_95(tmp_path: Path) -> None:
    """reclaim_flavour=mainline: the kernel's constants, critical reported as OOM."""
    v = dict(BASE)
    roots = _proc_tree(tmp_path, v)
    src = ReclaimIndexSource(BackendContext(roots=roots, options=PressureOptions(reclaim_flavour="mainline")))
    assert src.window == 512
    v["pgscan_file"] += 512
    v["pgsteal_file"] += 25  # mainline index 95: critical
    assert _step(src, roots, v) == [(OOM, 95)]
    src.close()


def test_cgroup_v2_scope_reads_memory_stat_and_events(tmp_path: Path) -> None:
    """With the caller in a v2 cgroup that has memory.stat, the monitor is per-cgroup."""
    shutil.copytree(FIXTURES / "cgroup2-user-6.12", tmp_path / "t")
    roots = LiveRoots(proc_root=tmp_path / "t" / "proc", sys_root=tmp_path / "t" / "sys")
    src = ReclaimIndexSource(BackendContext(roots=roots))
    assert src.scope.kind == "cgroup-v2"
    d = roots.sys("fs", "cgroup", "user.slice", "user-1000.slice", "app.scope")
    stat = (d / "memory.stat").read_text().replace("pgscan_direct 30000", "pgscan_direct 30512")
    (d / "memory.stat").write_text(stat)  # 512 scanned, nothing reclaimed
    recs = src.on_timer(src.next_wakeup_ns() or 0)
    assert [r.level for r in recs] == [OOM] and recs[0].details["index"] == 100
    events = (d / "memory.events").read_text().replace("oom_kill 1", "oom_kill 2")
    (d / "memory.events").write_text(events)
    recs = src.on_timer(src.next_wakeup_ns() or 0)
    assert [r.level for r in recs] == [OOM] and recs[0].details["evidence"] == ["oom +1"]
    src.close()


def test_named_cgroup_without_counters_is_refused(tmp_path: Path) -> None:
    """A cgroup that has neither memory.stat (v2) nor memory.failcnt (v1) cannot be watched."""
    shutil.copytree(FIXTURES / "cgroup2-user-6.12", tmp_path / "t")
    roots = LiveRoots(proc_root=tmp_path / "t" / "proc", sys_root=tmp_path / "t" / "sys")
    with pytest.raises(KernelError, match=r"neither a v2 memory\.stat"):
        ReclaimIndexSource(BackendContext(roots=roots, cgroup="/nope"))


def test_v1_scope_takes_oom_evidence_from_the_memcg(tmp_path: Path) -> None:
    """A v1 memcg: scan counters system-wide, failcnt with nothing scanned means OOM."""
    shutil.copytree(FIXTURES / "pressure-v1-6.18", tmp_path / "t")
    roots = LiveRoots(proc_root=tmp_path / "t" / "proc", sys_root=tmp_path / "t" / "sys")
    src = ReclaimIndexSource(BackendContext(roots=roots, cgroup="/process_api/job1"))
    assert src.scope.kind == "cgroup-v1"
    memcg = roots.sys("fs", "cgroup", "memory", "process_api", "job1")
    (memcg / "memory.failcnt").write_text("17\n")
    recs = src.on_timer(src.next_wakeup_ns() or 0)
    assert [r.level for r in recs] == [OOM]
    assert recs[0].details["evidence"] == ["memory.failcnt +17 with nothing scanned"]
    src.close()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse"])
def test_a_vmstat_that_is_no_kernel_file_is_refused_naming_it(kind: str, tmp_path: Path) -> None:
    """The counters are read through the bounded reader: a FIFO never blocks the open, /dev/zero and a 4 GiB
    sparse file are not read whole; each is one KernelFileError naming the file."""
    (tmp_path / "proc").mkdir()
    vmstat = tmp_path / "proc" / "vmstat"
    if kind == "fifo":
        os.mkfifo(vmstat)
    elif kind == "dev-zero":
        vmstat.symlink_to("/dev/zero")
    else:
        with vmstat.open("wb") as f:
            f.truncate(4 << 30)
    roots = LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys")
    with no_hang(), pytest.raises(KernelFileError, match="vmstat: "):
        ReclaimIndexSource(BackendContext(roots=roots))
