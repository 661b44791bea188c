"""Parsers of numa_maps, maps, task stat, vmstat and node meminfo: the kernel's formats, read by name."""

from __future__ import annotations

import errno

import pytest

from helpers.live_fixtures import FIXTURES
from memsched.errors import KernelError
from memsched.live.numa.readers import (
    MissingFieldWarning,
    numa_counters,
    parse_maps,
    parse_numa_maps,
    parse_thread_stat,
    parse_vmstat,
)
from memsched.topology import parse_node_meminfo
from memsched.units import KIB, MIB


def test_numa_maps_fields_of_the_2node_cache_process() -> None:
    """Two-word policies, escaped hugetlb paths, huge pages in 2 MiB units, empty VMAs and stacks."""
    vmas = parse_numa_maps((FIXTURES / "numa-2node/proc/950/numa_maps").read_bytes())
    assert [v.start for v in vmas] == [0x55F000000000, 0x7F6000000000, 0x7F6010000000, 0x7F6020000000, 0x7FF110000000]
    huge = vmas[1]
    assert huge.file == "/anon_hugepage\\040(deleted)" and huge.huge and huge.anon == 64
    assert huge.kernelpagesize_kb == 2048 and huge.node_bytes() == {0: 128 * MIB}
    many = vmas[2]
    assert many.policy == "prefer (many):0-1"
    assert many.node_pages == {0: 30720, 1: 2048} and many.node_bytes() == {0: 120 * MIB, 1: 8 * MIB}
    empty = vmas[3]
    assert empty.policy == "default" and empty.node_pages == {} and empty.kernelpagesize_kb is None
    assert empty.node_bytes() == {}
    assert vmas[4].stack and vmas[4].node_pages == {1: 5}


def test_numa_maps_policy_flags_thread_stacks_and_unknown_fields() -> None:
    """``bind=static:0-1`` and ``weighted interleave:0-3`` are policies; ``stack:<tid>`` is a stack; unknown
    key=value fields are kept rather than dropped."""
    text = (
        "7f00 bind=static:0-1 anon=3 dirty=3 N0=1 N1=2 kernelpagesize_kB=4\n"
        "7f10 weighted interleave:0-3 heap anon=8 N3=8 kernelpagesize_kB=4 future=7\n"
        "7f20 default stack:4201 anon=2 N2=2 mapmax=3 kernelpagesize_kB=4\n"
    )
    a, b, c = parse_numa_maps(text)
    assert a.policy == "bind=static:0-1" and a.node_pages == {0: 1, 1: 2}
    assert b.policy == "weighted interleave:0-3" and b.heap and b.extra == {"future": "7"}
    assert c.stack and c.extra == {"mapmax": "3"} and c.resident_pages == 2


def test_numa_maps_bad_line_is_a_kernel_error() -> None:
    """A line that is not an address, or a non-numeric N field, raises EINVAL naming the line."""
    with pytest.raises(KernelError, match="does not start with an address") as e:
        parse_numa_maps("zzz default\n")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError, match="bad field 'N0=x'"):
        parse_numa_maps("7f00 default N0=x kernelpagesize_kB=4\n")


def test_numa_maps_before_kernelpagesize() -> None:
    """Kernels before 4.0 print no kernelpagesize_kB: base pages are 4 KiB; hugetlb sizes are unknown and
    warn instead of being guessed."""
    plain, huge = parse_numa_maps("7f00 default anon=2 N1=2\n7f10 default huge anon=1 N0=1\n")
    assert plain.node_bytes() == {1: 8 * KIB}
    with pytest.warns(MissingFieldWarning, match="hugetlb but has no kernelpagesize_kB"):
        assert huge.node_bytes() == {}


def test_thread_stat_with_parentheses_in_comm() -> None:
    """comm ``cache (v2)`` does not shift the fields: state, flags, utime/stime, threads and CPU by number."""
    st = parse_thread_stat((FIXTURES / "numa-2node/proc/950/task/950/stat").read_text())
    assert (st.tid, st.comm, st.state) == (950, "cache (v2)", "R")
    assert (st.utime_ticks, st.stime_ticks, st.runtime_ticks) == (2500, 40, 2540)
    assert (st.num_threads, st.processor, st.is_kthread) == (1, 6, False)
    kthread = parse_thread_stat((FIXTURES / "numa-4node/proc/2/task/2/stat").read_text())
    assert kthread.is_kthread


def test_thread_stat_too_short() -> None:
    """A stat line without field 39 is malformed, not read as CPU 0."""
    with pytest.raises(KernelError, match="need 39 fields"):
        parse_thread_stat("1 (init) S 0 1 1")


def test_vmstat_missing_counters_warn_and_are_none() -> None:
    """A kernel without CONFIG_NUMA_BALANCING lacks the hinting counters: None and one warning, never 0."""
    vmstat = parse_vmstat((FIXTURES / "numa-2node/proc/vmstat").read_text())
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


def test_maps_ranges() -> None:
    """maps gives the VMA ends numa_maps lacks; anonymous VMAs have no path."""
    ranges = parse_maps((FIXTURES / "numa-4node/proc/4100/maps").read_text())
    anon = next(r for r in ranges if r.start == 0x7F3A00000000)
    assert anon.end == 0x7F3A30000000 and anon.perms == "rw-p" and anon.private and anon.path == ""
    assert ranges[0].path == "/usr/bin/stream"
    with pytest.raises(KernelError, match="malformed"):
        parse_maps("nonsense\n")


def test_node_meminfo_in_bytes_and_hugepage_counts() -> None:
    """``Node 0 MemTotal: N kB`` is bytes; HugePages_* are counts without a unit."""
    info = parse_node_meminfo(
        "Node 0 MemTotal:        8480544 kB\nNode 0 MemFree:  6067288 kB\nNode 0 HugePages_Total:     4\n"
    )
    assert info == {"MemTotal": 8480544 * KIB, "MemFree": 6067288 * KIB, "HugePages_Total": 4}
    with pytest.raises(KernelError, match="malformed"):
        parse_node_meminfo("Node 0 MemTotal: lots kB\n")
