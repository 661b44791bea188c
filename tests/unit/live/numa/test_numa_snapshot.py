"""take_snapshot and locality over the 2- and 4-node fixture trees: remote memory by process."""

from __future__ import annotations

import pytest

from helpers.live_fixtures import FIXTURES
from helpers.numa_live import numa2, numa4
from memsched.errors import KernelFileError
from memsched.live.numa.snapshot import NumaSnapshot, locality, node_pages_of, numa_counters, take_snapshot
from memsched.live.procfs import MissingFieldWarning, parse_flat_keyed, parse_numa_maps
from memsched.live.roots import LiveRoots
from memsched.topology.sysfs import topology_from_sysfs


def snap(roots: LiveRoots, **kw: object) -> NumaSnapshot:
    topo = topology_from_sysfs(roots.sys_root)
    return take_snapshot(roots, topo, page_size=4096, clk_tck=100, clock=lambda: 7, **kw)  # type: ignore[arg-type]


def test_four_node_remote_shares() -> None:
    """Processes whose memory sits on other nodes than their threads come first; a local one has 0 %."""
    s = snap(numa4())
    rows = {r.pid: r for r in locality(s)}
    assert [r.pid for r in locality(s)] == [4400, 4200, 4100, 4300]
    stream = rows[4100]
    assert stream.thread_nodes == (0,) and stream.node_pages[2] == 192512
    assert stream.remote_pages == 192512 and stream.remote_share == pytest.approx(192512 / stream.total_pages)
    assert rows[4200].thread_nodes == (2,) and rows[4200].remote_pages == rows[4200].node_pages[0]
    assert rows[4300].remote_pages == 0
    assert 2 not in s.processes  # kthreadd: a kernel thread has no address space
    assert s.time_ns == 7 and s.node_free_bytes[3] == 15 << 30


def test_runqueue_estimate_counts_running_threads_of_every_process() -> None:
    """cpu_nr_running counts state-R threads by last CPU, over all of /proc (sleepers and kthreads not)."""
    s = snap(numa4(), pids=[4100])
    assert list(s.processes) == [4100]
    running = {cpu: int(n) for cpu, n in enumerate(s.cpu_nr_running) if n}
    assert running == {1: 1, 4: 1, 12: 1, 3: 1}
    assert not s.cpu_nr_running.flags.writeable


def test_two_node_interleaved_threads_hugetlb_and_missing_counters() -> None:
    """Threads on both nodes make both local; hugetlb pages count in 2 MiB units; CONFIG_NUMA_BALANCING
    counters are unknown (None) with a warning."""
    with pytest.warns(MissingFieldWarning, match="numa_hint_faults"):
        s = snap(numa2())
    rows = {r.pid: r for r in locality(s)}
    assert rows[900].thread_nodes == (0, 1) and rows[900].remote_pages == 0
    cache = rows[950]
    assert cache.node_pages[0] == 64 * 512 + 30720 and cache.remote_pages == cache.node_pages[0]
    assert s.counters.values["numa_pte_updates"] is None
    assert s.processes[950].uids == (1000, 1000, 1000, 1000)


def test_named_pid_that_is_missing_is_reported() -> None:
    """--pid of a process that does not exist (or is a kernel thread) is listed as unreadable, not dropped."""
    s = snap(numa4(), pids=[4100, 2, 99999])
    assert list(s.processes) == [4100]
    assert set(s.unreadable) == {2, 99999} and "no such process" in s.unreadable[99999]


def test_locality_document() -> None:
    """to_dict carries pages, bytes and the share for --json."""
    s = snap(numa4())
    doc = next(r for r in locality(s) if r.pid == 4300).to_dict(s.page_size)
    assert doc["remote_share"] == 0.0 and doc["thread_nodes"] == [1] and doc["remote_bytes"] == 0


def test_vmstat_missing_counters_warn_and_are_none() -> None:
    """A kernel without CONFIG_NUMA_BALANCING lacks the hinting counters: None and one warning, never 0."""
    vmstat = parse_flat_keyed((FIXTURES / "numa-2node/proc/vmstat").read_text(), source="vmstat")
    with pytest.warns(MissingFieldWarning, match="numa_pte_updates.*CONFIG_NUMA_BALANCING") as rec:
        counters = numa_counters(vmstat)
    assert len(rec) == 1
    assert counters.values["numa_hit"] == 5555555 and counters.values["numa_hint_faults"] is None
    assert set(counters.missing) == {
        "numa_pte_updates",
        "numa_huge_pte_updates",
        "numa_hint_faults",
        "numa_hint_faults_local",
        "numa_pages_migrated",
    }
    with pytest.warns(MissingFieldWarning):
        after = numa_counters({**vmstat, "numa_hit": 5555600})
    delta = after.delta(counters)
    assert delta["numa_hit"] == 45 and delta["numa_hint_faults"] is None


def test_pages_on_a_node_the_machine_lacks_are_an_error_not_dropped() -> None:
    """N5= on a 2-node machine names the file and the node (the pages were silently left out before)."""
    vmas = parse_numa_maps("7f5000000000 default anon=3 N0=1 N5=2 kernelpagesize_kB=4\n")
    with pytest.raises(KernelFileError, match=r"T/numa_maps: VMA 0x7f5000000000 has pages on node 5 .*nodes 0\.\.1"):
        node_pages_of(vmas, 2, 4096, source="T/numa_maps")
    assert node_pages_of(vmas, 6, 4096).tolist() == [1, 0, 0, 0, 0, 2]
