"""The parsers of memsched.live.procfs on committed fixture files, its readers over fixture trees, and the
errno mapping of memsched.live.oserrors (process gone, access denied, anything else unchanged)."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.live_fixtures import FIXTURES, tree
from memsched.errors import AccessDeniedError, ConfigError, KernelError, KernelFileError, ProcessGoneError
from memsched.live.oserrors import kill_and_reap, process_error, send_signal
from memsched.live.pressure.reclaim_index import VMSTAT_KEYS
from memsched.live.procfs import (
    CAP_SYS_NICE,
    MissingFieldWarning,
    comm_text,
    kernel_version,
    parse_flat_keyed,
    parse_int,
    parse_interrupts,
    parse_limits,
    parse_maps,
    parse_mountinfo,
    parse_numa_maps,
    parse_proc_cgroup,
    parse_proc_sched,
    parse_psi,
    parse_softirqs,
    parse_status,
    parse_task_stat,
    read_process_file,
    read_status,
    read_task_stat,
    thread_ids,
)
from memsched.live.roots import LiveRoots
from memsched.topology.sysfs import parse_node_meminfo
from memsched.units import KIB, MIB

VM = FIXTURES / "vm-2cpu-6.18"

INTERRUPTS = """\
           CPU0       CPU1
  0:         10          1   IO-APIC   2-edge      timer
LOC:       1000       2000   Local timer interrupts
NMI:          3          4   Non-maskable interrupts
ERR:          7
MIS:          0
"""


# --------------------------------------------------------------------------------------------- parsers


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
    st = parse_task_stat((FIXTURES / "numa-2node/proc/950/task/950/stat").read_text())
    assert (st.tid, st.comm, st.state) == (950, "cache (v2)", "R")
    assert (st.utime_ticks, st.stime_ticks, st.runtime_ticks) == (2500, 40, 2540)
    assert (st.num_threads, st.processor, st.is_kthread) == (1, 6, False)
    kthread = parse_task_stat((FIXTURES / "numa-4node/proc/2/task/2/stat").read_text())
    assert kthread.is_kthread


def test_thread_stat_too_short() -> None:
    """A stat line without field 39 is malformed, not read as CPU 0."""
    with pytest.raises(KernelError, match="need 41 fields"):
        parse_task_stat("1 (init) S 0 1 1")


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


def test_parse_task_stat_of_a_real_deadline_task() -> None:
    """Field 41 (policy), 39 (processor) and 9 (flags) are read from a stat line captured on 6.18."""
    stat = parse_task_stat((VM / "proc/4242/task/4242/stat").read_text())
    assert (stat.tid, stat.comm, stat.state, stat.policy, stat.processor) == (4242, "cat", "R", 6, 1)
    assert stat.flags == 4194560 and not stat.is_kthread


def test_parse_task_stat_with_parentheses_in_comm() -> None:
    """A comm holding spaces and parentheses does not shift the fields."""
    stat = parse_task_stat((VM / "proc/4300/task/4301/stat").read_text())
    assert stat.comm == "my (odd) thr" and stat.policy == 0 and stat.tid == 4301


def test_a_comm_that_is_not_utf8_is_text_with_escaped_bytes() -> None:
    """A name of raw bytes (surrogateescape-decoded) becomes \\xNN text in stat and sched, never lone
    surrogates: it is printed and put in JSON. Valid UTF-8 is kept."""
    line = (VM / "proc/4242/task/4242/stat").read_bytes().replace(b"(cat)", b"(db\xff\xfe)", 1)
    stat = parse_task_stat(line.decode("utf-8", "surrogateescape"))
    assert stat.comm == "db\\xff\\xfe" and stat.policy == 6
    head = (VM / "proc/4242/task/4242/sched").read_bytes().replace(b"cat (", "cät\xff (".encode("latin-1"), 1)
    sched = parse_proc_sched(head.decode("utf-8", "surrogateescape"))
    assert sched.comm == "c\\xe4t\\xff" and sched.pid == 4242
    assert comm_text("café") == "café" and comm_text("a\ud800") == "a\\ud800"


def test_parse_task_stat_refuses_truncated_line() -> None:
    """A stat line without field 41 raises instead of yielding policy 0."""
    with pytest.raises(KernelError, match="41 fields"):
        parse_task_stat("12 (x) S 1 1 1 0")


def test_parse_proc_sched_of_a_deadline_task() -> None:
    """/proc/<pid>/sched shows dl.runtime (remaining) and dl.deadline (absolute) for a deadline task."""
    sched = parse_proc_sched((VM / "proc/4242/task/4242/sched").read_text())
    assert (sched.comm, sched.pid, sched.threads, sched.policy, sched.prio) == ("cat", 4242, 1, 6, -1)
    assert sched.dl_runtime_left_ns == 2_000_000
    assert sched.dl_abs_deadline_ns == 2388819362586
    assert sched.values["se.nr_migrations"] == "1"


def test_parse_proc_sched_of_a_normal_task_has_no_dl_fields() -> None:
    """A SCHED_NORMAL task's file has no dl.* lines; they parse as None, not 0."""
    sched = parse_proc_sched((VM / "proc/4300/task/4300/sched").read_text())
    assert sched.policy == 0 and sched.dl_runtime_left_ns is None and sched.dl_abs_deadline_ns is None


def test_parse_proc_sched_missing_dl_field_raises() -> None:
    """A deadline task's file without dl.runtime is an error, never a silent 0."""
    text = (VM / "proc/4242/task/4242/sched").read_text()
    broken = "\n".join(line for line in text.splitlines() if not line.startswith("dl.runtime"))
    with pytest.raises(KernelError, match=r"dl\.runtime"):
        parse_proc_sched(broken)


def test_kernel_version() -> None:
    """Release strings with local suffixes give (major, minor)."""
    assert kernel_version("6.18.44-fc-v769\n") == (6, 18)
    assert kernel_version("5.4.0") == (5, 4)


def test_proc_cgroup_lines_are_parsed_with_controllers_and_the_v2_line() -> None:
    """Each line gives hierarchy id, controllers and path; the v2 line has none."""
    rows = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n0::/user.slice/x.scope\n")
    assert rows[0].controllers == ("memory",) and rows[0].path == "/a/b" and not rows[0].is_v2
    assert rows[1].controllers == ("cpu", "cpuacct")
    assert rows[2].is_v2 and rows[2].path == "/user.slice/x.scope"


def test_malformed_proc_cgroup_line_raises() -> None:
    """A line without three fields is an error, not a skipped line."""
    with pytest.raises(KernelError, match="malformed"):
        parse_proc_cgroup("memory/a\n")


def test_mountinfo_fields_and_octal_escapes() -> None:
    """Mount point, root, fstype and super options are read; \\040 becomes a space."""
    mounts = parse_mountinfo((FIXTURES / "x86-5.4-nopsi/proc/self/mountinfo").read_text())
    bind = next(m for m in mounts if m.root != "/")
    assert bind.mount_point == "/srv/bind mount" and bind.fstype == "cgroup" and "memory" in bind.super_options
    with pytest.raises(KernelError, match="separator"):
        parse_mountinfo("1 2 3:4 / /x rw\n")


def test_flat_keyed_parser_refuses_non_integers() -> None:
    """A value that is not an integer names the file and the key."""
    assert parse_flat_keyed("a 1\n\nb 22\n", source="f") == {"a": 1, "b": 22}
    with pytest.raises(KernelError, match=r"memory\.events: oom is not an integer of 64 bits"):
        parse_flat_keyed("oom x\n", source="memory.events")
    with pytest.raises(KernelError, match="expected 'key value'"):
        parse_flat_keyed("a 1 2\n", source="f")


def test_psi_file_parses_and_missing_fields_raise() -> None:
    """Averages are percent floats, total is µs; a missing total= is an error."""
    s = parse_psi((FIXTURES / "cgroup2-user-6.12/proc/pressure/memory").read_text())
    assert s.some.avg10 == 1.25 and s.some.total_us == 81234567
    assert s.full is not None and s.full.total_us == 30123456
    assert parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").full is None
    with pytest.raises(KernelError, match="lacks total"):
        parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00\n")
    with pytest.raises(KernelError, match="no 'some' line"):
        parse_psi("")


def test_parse_interrupts() -> None:
    """Per-CPU sums of every row except NMI (counted apart) and the global ERR/MIS counters."""
    assert parse_interrupts(INTERRUPTS) == {0: (1010, 3), 1: (2001, 4)}


def test_parse_interrupts_and_softirqs_of_real_files() -> None:
    """The VM's real files parse to one entry per CPU with the right softirq sums."""
    irqs = parse_interrupts((FIXTURES / "vm-2cpu-6.18/proc/interrupts").read_text())
    assert set(irqs) == {0, 1} and all(total > 0 for total, _ in irqs.values())
    soft = parse_softirqs((FIXTURES / "vm-2cpu-6.18/proc/softirqs").read_text())
    assert soft == {0: 16683 + 4 + 4026 + 2 + 46911 + 25216, 1: 29693 + 5143 + 21085 + 37273 + 30515}


def test_parse_limits_and_status_of_real_files() -> None:
    """Real /proc/self/limits and status from the VM: RLIMIT_RTPRIO 0, CapEff with CAP_SYS_NICE."""
    limits = parse_limits((FIXTURES / "vm-2cpu-6.18/proc/self/limits").read_text())
    assert limits["Max realtime priority"] == ("0", "0")
    assert limits["Max cpu time"] == ("unlimited", "unlimited")
    status = parse_status((FIXTURES / "vm-2cpu-6.18/proc/self/status").read_text())
    assert status.cap_eff == 0x000001FFFEFFFFFF and status.cpus_allowed == frozenset({0, 1})
    assert status.has_capability(CAP_SYS_NICE) and status.uids == (0, 0, 0, 0)
    assert status.nonvoluntary_ctxt_switches == 1


def test_fast_extraction_matches_the_full_parser() -> None:
    """Picking named keys returns exactly what the line parser returns, first line included."""
    buf = (FIXTURES / "pressure-v1-6.18" / "proc" / "vmstat").read_bytes()
    full = parse_flat_keyed(buf.decode(), source="vmstat")
    got = parse_flat_keyed(buf, source="vmstat", keys=VMSTAT_KEYS)
    assert got and all(full[k] == v for k, v in got.items())
    assert set(got) == {k for k in VMSTAT_KEYS if k in full}
    text = b"pgscan_anon 5\npgscan_anon_x 7\noom_kill 9"
    picked = parse_flat_keyed(text, source="f", keys=("pgscan_anon", "oom_kill"))
    assert picked == {"pgscan_anon": 5, "oom_kill": 9}


def test_stat_without_policy_is_malformed() -> None:
    """A stat line that stops at field 40 has no policy (41): it raises instead of reading policy 0."""
    head, _, tail = (VM / "proc/4242/task/4242/stat").read_text().rpartition(")")
    fields = tail.split()
    with pytest.raises(KernelError, match="need 41 fields") as e:
        parse_task_stat(head + ") " + " ".join(fields[:38]))
    assert e.value.errno == errno.EINVAL
    assert parse_task_stat(head + ") " + " ".join(fields[:39])).policy == 6


def test_status_requires_uid_and_capeff_and_leaves_newer_lines_unknown() -> None:
    """Uid and CapEff (every kernel prints them) missing raise naming the file; Cpus_allowed_list (2.6.26+) and
    nonvoluntary_ctxt_switches (2.6.23+) missing are None, never an empty set or 0."""
    status = parse_status("Name:\tx\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000800000\n", source="st")
    assert status.uids == (1000, 1000, 1000, 1000) and status.has_capability(CAP_SYS_NICE)
    assert status.cpus_allowed is None and status.nonvoluntary_ctxt_switches is None
    with pytest.raises(KernelError, match="st: has no Uid line") as e:
        parse_status("CapEff:\t0\n", source="st")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError, match="st: has no CapEff line"):
        parse_status("Uid:\t0\t0\t0\t0\n", source="st")
    with pytest.raises(KernelError, match="malformed Cpus_allowed_list"):
        parse_status("Uid:\t0\t0\t0\t0\nCapEff:\t0\nCpus_allowed_list:\tlots\n", source="st")


def test_one_integer_files() -> None:
    """A sysctl or sysfs attribute holds one integer; anything else raises naming the file."""
    assert parse_int(" -1\n", source="f") == -1
    with pytest.raises(KernelError, match="f: does not hold an integer"):
        parse_int("1 2\n", source="f")


def test_picked_counter_that_is_not_an_integer_raises() -> None:
    """The key-picking path refuses a malformed value as the line parser does, naming file and key."""
    with pytest.raises(KernelError, match=r"vmstat: oom_kill is not an integer of 64 bits \('x'\)"):
        parse_flat_keyed(b"pgscan_anon 5\noom_kill x\n", source="vmstat", keys=("oom_kill",))


def test_interrupts_with_a_bad_header_raise() -> None:
    """A /proc/interrupts whose header is not CPUn columns is an error (EINVAL), not an empty table."""
    with pytest.raises(KernelError, match="unexpected header word") as e:
        parse_interrupts("IRQ CPU0\n")
    assert e.value.errno == errno.EINVAL


# --------------------------------------------------------------------------------------------- readers


def test_readers_over_a_fixture_tree() -> None:
    """Thread stat and status through the roots; a process with no directory has no threads."""
    roots = tree("vm-2cpu-6.18")
    assert read_task_stat(roots, 4242, 4242).policy == 6
    assert read_task_stat(roots, 4242).comm == "cat"
    assert read_status(roots, "self").cpus_allowed == frozenset({0, 1})
    assert thread_ids(roots, 4300) == [4300, 4301] and thread_ids(roots, 99999) == []


def test_a_process_file_that_vanished_is_process_gone(tmp_path: Path) -> None:
    """ENOENT under /proc/<pid> is ProcessGoneError naming the path; other read errors keep their errno and class."""
    with pytest.raises(ProcessGoneError, match=r"/proc/99999/stat: process gone") as e:
        read_task_stat(tree("vm-2cpu-6.18"), 99999)
    assert e.value.errno == errno.ENOENT
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "status").symlink_to("status")  # a symlink loop: ELOOP
    with pytest.raises(KernelError, match="cannot read") as other:
        read_process_file(LiveRoots(proc_root=tmp_path), 5, "status")
    assert type(other.value) is KernelError and other.value.errno == errno.ELOOP


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errno.ENOENT, ProcessGoneError),
        (errno.ESRCH, ProcessGoneError),
        (errno.EACCES, AccessDeniedError),
        (errno.EPERM, AccessDeniedError),
    ],
)
def test_errno_means_gone_or_denied(err: int, kind: type[KernelError]) -> None:
    """ENOENT/ESRCH mean the process is gone, EACCES/EPERM that this caller is refused; errno and message kept."""
    mapped = process_error(err, "what happened")
    assert type(mapped) is kind and mapped.errno == err and str(mapped) == "what happened"
    from_os = process_error(OSError(err, os.strerror(err)), "m")
    assert type(from_os) is kind and from_os.errno == err


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EIO, errno.EBUSY, errno.E2BIG, errno.ENOSYS])
def test_other_errnos_stay_kernel_errors(err: int) -> None:
    """Every other errno is a plain KernelError, neither gone nor denied; an OSError without errno is EIO."""
    mapped = process_error(err, "m")
    assert type(mapped) is KernelError and mapped.errno == err
    assert process_error(OSError("no errno"), "m").errno == errno.EIO


def test_signalling_a_process_that_is_gone_is_not_an_error() -> None:
    """kill_and_reap kills and reaps a child; a signal to it afterwards answers False instead of raising."""
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    kill_and_reap(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)
    assert send_signal(pid, signal.SIGTERM) is False
    kill_and_reap(pid)  # already gone and reaped: nothing to do, nothing raised


# --------------------------------------------------------------------------------------------- bad contents


PARSERS: dict[str, Callable[[bytes], object]] = {
    "numa_maps": lambda d: parse_numa_maps(d, source="T/numa_maps"),
    "maps": lambda d: parse_maps(d, source="T/maps"),
    "vmstat": lambda d: parse_flat_keyed(d, source="T/vmstat"),
    "stat": lambda d: parse_task_stat(d.decode(), source="T/stat"),
    "psi": lambda d: parse_psi(d.decode(), source="T/memory.pressure"),
}


@pytest.mark.parametrize(
    ("file", "data", "needle"),
    [
        ("numa_maps", b"\x00\xff garbage\n", "does not start with an address"),
        ("numa_maps", b"1000 default N0=99999999999999999999\n", "0..2^52"),
        ("numa_maps", b"1000 default N1000000=1\n", "the node must be"),
        ("numa_maps", b"1000 default N0=1 kernelpagesize_kB=3\n", "power of two"),
        ("numa_maps", b"1000 default N0=4503599627370496 kernelpagesize_kB=2048\n", "128 PiB"),
        ("maps", b"zz-10 r-xp 0 0:0 0\n", "malformed line"),
        ("vmstat", b"\x00" * 20_000 + b"\n", "expected 'key value'"),
        ("vmstat", b"numa_hit 99999999999999999999999\n", "64 bits"),
        ("stat", b"901 (db) S 1\n", "need 41 fields"),
        ("psi", b"root:x:0:0:root:/root:/bin/bash\n", "is not a PSI file"),
        ("psi", b"\x00" * 20_000, "is not a PSI file"),
        ("psi", b"some avg60=0.00 avg300=0.00 total=0\n", "some line lacks avg10="),
    ],
)
def test_bad_contents_name_the_file_with_a_short_excerpt(file: str, data: bytes, needle: str) -> None:
    """Bad bytes, numbers too large, malformed or short lines: one KernelFileError (exit 2) naming the file, with
    at most a short escaped excerpt of the contents, never a UnicodeDecodeError or OverflowError."""
    with pytest.raises(KernelFileError) as e:
        PARSERS[file](data)
    message = str(e.value)
    assert message.startswith("T/") and needle in message and len(message) < 200, message
    assert isinstance(e.value, ConfigError) and "\x00\x00\x00" not in message
