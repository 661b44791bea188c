"""Pure parsers and injectable-root readers for NUMA placement of real processes.

Formats, checked against the kernel sources (Linux 6.x unless said otherwise):

``/proc/<pid>/numa_maps`` (``show_numa_map``, fs/proc/task_mmu.c; proc(5))
    One line per VMA: the start address in hex, the memory policy (``mpol_to_str``: ``default``,
    ``prefer:1``, ``bind=static:0-1``, ``interleave:0-3``, ``local``, and the two-word ``prefer (many):0-1``
    and ``weighted interleave:0-3``), then ``file=<path>`` (spaces, tabs, newlines and ``=`` escaped as
    ``\\ooo`` by ``seq_file_path``) or ``heap`` or ``stack``, ``huge`` for hugetlb VMAs, and, only when the
    VMA has resident pages, ``anon=``, ``dirty=``, ``mapped=``, ``mapmax=``, ``swapcache=``, ``active=``,
    ``writeback=``, one ``N<node>=<pages>`` per node with pages, and ``kernelpagesize_kB=`` (since 4.0).
    The ``N`` counts are in units of the VMA's kernel page: base pages for ordinary VMAs (a THP counts its
    512 base pages, ``gather_pte_stats`` passes ``HPAGE_PMD_NR``), huge pages for hugetlb VMAs (2048 or
    1048576 kB each). Bytes are therefore ``N * kernelpagesize_kB * 1024``.
``/proc/<pid>/maps`` (``show_map_vma``; proc(5))
    ``start-end perms offset dev inode [path]``: the VMA ranges that ``numa_maps`` lacks.
``/proc/<pid>/task/<tid>/stat`` (``do_task_stat``, fs/proc/array.c; proc(5))
    ``comm`` in parentheses may hold spaces and parentheses; the fields used are 3 (state), 9 (flags),
    14/15 (utime/stime in clock ticks), 20 (num_threads) and 39 (``processor``, the CPU it last ran on).
``/proc/<pid>/task/<tid>/status``
    ``Cpus_allowed_list`` (the thread's affinity) and ``Uid`` (real, effective, saved, fs).
``/proc/vmstat`` (mm/vmstat.c ``vmstat_text``)
    ``name value`` lines. The NUMA counters exist only with ``CONFIG_NUMA`` (``numa_hit`` ... ``numa_other``),
    ``CONFIG_NUMA_BALANCING`` (``numa_pte_updates`` ... ``numa_pages_migrated``; ``numa_huge_pte_updates``
    since about 3.13) and ``CONFIG_MIGRATION`` (``pgmigrate_*``). A missing counter is ``None`` and raises a
    :class:`MissingFieldWarning` naming it and the likely reason, never a silent 0.
``/sys/devices/system/node/nodeN/meminfo``
    :func:`memsched.topology.parse_node_meminfo` (``MemTotal``, ``MemFree``).

Every reader takes a :class:`~memsched.live.roots.LiveRoots`; files of processes that exit while being read
raise :class:`ProcessGoneError` so a scan over ``/proc`` can skip them and say so.
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from memsched.errors import ConfigError, KernelError
from memsched.live.capabilities import parse_status
from memsched.live.roots import LiveRoots, read_text
from memsched.topology import parse_node_meminfo
from memsched.uapi.cpumask import parse_cpulist
from memsched.units import KIB

__all__ = [
    "NUMA_COUNTERS",
    "PF_KTHREAD",
    "MapsRange",
    "MissingFieldWarning",
    "NumaCounters",
    "NumaMapsVma",
    "ProcessGoneError",
    "ThreadStat",
    "ThreadStatus",
    "list_pids",
    "numa_counters",
    "parse_maps",
    "parse_numa_maps",
    "parse_thread_stat",
    "parse_vmstat",
    "read_maps",
    "read_node_memory",
    "read_numa_maps",
    "read_thread_stat",
    "read_thread_status",
    "read_vmstat",
    "thread_ids",
]

#: ``PF_KTHREAD`` in ``stat`` field 9 (include/linux/sched.h).
PF_KTHREAD = 0x00200000

#: The ``/proc/vmstat`` counters ``numa top`` shows, with the kernel option that provides them.
NUMA_COUNTERS: Mapping[str, str] = {
    "numa_hit": "CONFIG_NUMA",
    "numa_miss": "CONFIG_NUMA",
    "numa_foreign": "CONFIG_NUMA",
    "numa_interleave": "CONFIG_NUMA",
    "numa_local": "CONFIG_NUMA",
    "numa_other": "CONFIG_NUMA",
    "numa_pte_updates": "CONFIG_NUMA_BALANCING",
    "numa_huge_pte_updates": "CONFIG_NUMA_BALANCING (3.13+)",
    "numa_hint_faults": "CONFIG_NUMA_BALANCING",
    "numa_hint_faults_local": "CONFIG_NUMA_BALANCING",
    "numa_pages_migrated": "CONFIG_NUMA_BALANCING",
    "pgmigrate_success": "CONFIG_MIGRATION",
    "pgmigrate_fail": "CONFIG_MIGRATION",
}


class MissingFieldWarning(UserWarning):
    """A field the kernel normally prints was not there; the value is reported as unknown (``None``)."""


class ProcessGoneError(KernelError):
    """The process or thread exited (or was never there) while its files were read."""


# --------------------------------------------------------------------------------------------- numa_maps

_KNOWN_KEYS = ("file", "anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback", "kernelpagesize_kB")
_NODE_FIELD = re.compile(r"N(\d+)=(\d+)\Z")
_NODE_KEY = re.compile(r"N\d+\Z")


@dataclass(frozen=True, slots=True)
class NumaMapsVma:
    """One line of ``numa_maps``. ``node_pages`` are in units of the VMA's kernel page (see the module doc)."""

    start: int
    policy: str
    file: str | None = None
    heap: bool = False
    stack: bool = False
    huge: bool = False
    anon: int = 0
    dirty: int = 0
    node_pages: Mapping[int, int] = field(default_factory=dict)
    kernelpagesize_kb: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def resident_pages(self) -> int:
        """Resident pages (``N`` totals) in kernel-page units."""
        return sum(self.node_pages.values())

    def node_bytes(self) -> dict[int, int]:
        """Resident bytes per node. A line with pages but no ``kernelpagesize_kB`` (kernels before 4.0) is
        read as base pages of 4 KiB unless the VMA is hugetlb, whose page size is then unknown: it warns and
        counts the VMA as 0 bytes rather than guess."""
        if not self.node_pages:
            return {}
        kb = self.kernelpagesize_kb
        if kb is None:
            if self.huge:
                warnings.warn(
                    f"numa_maps line at {self.start:#x} is hugetlb but has no kernelpagesize_kB: its "
                    "pages are left out of the totals",
                    MissingFieldWarning,
                    stacklevel=2,
                )
                return {}
            kb = 4
        return {n: pages * kb * KIB for n, pages in self.node_pages.items()}


def _is_body_token(token: str) -> bool:
    if token in ("heap", "stack", "huge") or token.startswith("stack:"):
        return True
    key, sep, _ = token.partition("=")
    return bool(sep) and (key in _KNOWN_KEYS or _NODE_KEY.match(key) is not None)


def parse_numa_maps(data: bytes | str) -> tuple[NumaMapsVma, ...]:
    """``/proc/<pid>/numa_maps`` -> one record per VMA (pure; raises ``KernelError(EINVAL)`` on a bad line)."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        tokens = line.split(" ")
        try:
            start = int(tokens[0], 16)
        except ValueError:
            raise KernelError(errno.EINVAL, f"numa_maps: line does not start with an address: {line[:80]!r}") from None
        i = 1
        policy_words = []
        while i < len(tokens) and not _is_body_token(tokens[i]):
            policy_words.append(tokens[i])
            i += 1
        rec: dict[str, object] = {"start": start, "policy": " ".join(policy_words)}
        nodes: dict[int, int] = {}
        extra: dict[str, str] = {}
        for token in tokens[i:]:
            if not token:
                continue
            m = _NODE_FIELD.match(token)
            try:
                if m:
                    nodes[int(m.group(1))] = int(m.group(2))
                elif token in ("heap", "huge"):
                    rec[token] = True
                elif token == "stack" or token.startswith("stack:"):
                    rec["stack"] = True
                else:
                    key, sep, value = token.partition("=")
                    if _NODE_KEY.match(key):
                        raise ValueError(token)
                    if key == "file":
                        rec["file"] = value
                    elif key in ("anon", "dirty"):
                        rec[key] = int(value)
                    elif key == "kernelpagesize_kB":
                        rec["kernelpagesize_kb"] = int(value)
                    else:
                        extra[key] = value if sep else ""
            except ValueError:
                raise KernelError(errno.EINVAL, f"numa_maps: bad field {token!r} in {line[:80]!r}") from None
        out.append(NumaMapsVma(node_pages=nodes, extra=extra, **rec))  # type: ignore[arg-type]
    return tuple(out)


# --------------------------------------------------------------------------------------------- maps


@dataclass(frozen=True, slots=True)
class MapsRange:
    """One line of ``/proc/<pid>/maps``."""

    start: int
    end: int
    perms: str
    path: str

    @property
    def private(self) -> bool:
        return self.perms.endswith("p")


def parse_maps(data: bytes | str) -> tuple[MapsRange, ...]:
    """``/proc/<pid>/maps`` -> ranges (pure)."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    out = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if not parts:
            continue
        lo, sep, hi = parts[0].partition("-")
        try:
            if not sep or len(parts) < 5:
                raise ValueError
            out.append(MapsRange(int(lo, 16), int(hi, 16), parts[1], parts[5].strip() if len(parts) > 5 else ""))
        except ValueError:
            raise KernelError(errno.EINVAL, f"maps: malformed line {line[:80]!r}") from None
    return tuple(out)


# --------------------------------------------------------------------------------------------- stat


@dataclass(frozen=True, slots=True)
class ThreadStat:
    """The fields of ``/proc/<pid>/task/<tid>/stat`` the NUMA tools use (proc(5) numbering in comments)."""

    tid: int
    comm: str
    state: str  # 3
    flags: int  # 9
    utime_ticks: int  # 14
    stime_ticks: int  # 15
    num_threads: int  # 20
    processor: int  # 39: CPU the thread last ran on

    @property
    def is_kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def runtime_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks


def parse_thread_stat(text: str) -> ThreadStat:
    """One ``stat`` line; split at the last ``)`` because ``comm`` may hold spaces and parentheses."""
    head, sep, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    # fields[0] is field 3 (state): field N is fields[N - 3]. processor (39) exists since 2.2.8.
    if not sep or len(fields) < 37:
        raise KernelError(errno.EINVAL, f"malformed /proc stat line (need 39 fields): {text[:80]!r}")
    try:
        return ThreadStat(
            tid=int(pid_text),
            comm=comm,
            state=fields[0],
            flags=int(fields[6]),
            utime_ticks=int(fields[11]),
            stime_ticks=int(fields[12]),
            num_threads=int(fields[17]),
            processor=int(fields[36]),
        )
    except ValueError:
        raise KernelError(errno.EINVAL, f"malformed /proc stat line: {text[:80]!r}") from None


# --------------------------------------------------------------------------------------------- vmstat


def parse_vmstat(text: str) -> dict[str, int]:
    """``/proc/vmstat`` -> ``{name: value}``."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                raise KernelError(errno.EINVAL, f"/proc/vmstat: bad value in {line!r}") from None
    return out


@dataclass(frozen=True, slots=True)
class NumaCounters:
    """The NUMA counters of ``/proc/vmstat``; a counter the kernel did not print is ``None``."""

    values: Mapping[str, int | None]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.values.items() if v is None)

    def delta(self, before: NumaCounters) -> dict[str, int | None]:
        """Per-counter increase since ``before`` (``None`` where either side is unknown)."""
        out: dict[str, int | None] = {}
        for k, v in self.values.items():
            b = before.values.get(k)
            out[k] = None if v is None or b is None else v - b
        return out


def numa_counters(vmstat: Mapping[str, int], *, source: str = "/proc/vmstat") -> NumaCounters:
    """Pick :data:`NUMA_COUNTERS` out of a parsed vmstat; warn once per call naming every missing one."""
    values = {name: vmstat.get(name) for name in NUMA_COUNTERS}
    missing = [name for name, v in values.items() if v is None]
    if missing:
        reasons = sorted({NUMA_COUNTERS[m].split(" (")[0] for m in missing})
        warnings.warn(
            f"{source} lacks {', '.join(missing)} (kernel built without {' / '.join(reasons)}?): reported as unknown",
            MissingFieldWarning,
            stacklevel=2,
        )
    return NumaCounters(values)


# --------------------------------------------------------------------------------------------- readers


def list_pids(roots: LiveRoots) -> list[int]:
    """Numeric entries of ``/proc``, sorted."""
    return _numeric_dirs(roots.proc_root)


def thread_ids(pid: int, roots: LiveRoots) -> list[int]:
    """Thread ids of ``pid`` (``/proc/<pid>/task``); empty when the process is gone."""
    return _numeric_dirs(roots.proc(pid, "task"))


def _numeric_dirs(path: os.PathLike[str] | str) -> list[int]:
    try:
        return sorted(int(e.name) for e in os.scandir(path) if e.name.isdigit())
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
        return []


def _read_process_file(roots: LiveRoots, *parts: str | int) -> str:
    path = roots.proc(*parts)
    try:
        return read_text(path)
    except KernelError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH):
            raise ProcessGoneError(e.errno, f"{path}: process gone") from None
        raise


def read_numa_maps(pid: int, roots: LiveRoots) -> tuple[NumaMapsVma, ...]:
    return parse_numa_maps(_read_process_file(roots, pid, "numa_maps"))


def read_maps(pid: int, roots: LiveRoots) -> tuple[MapsRange, ...]:
    return parse_maps(_read_process_file(roots, pid, "maps"))


def read_thread_stat(pid: int, tid: int, roots: LiveRoots) -> ThreadStat:
    return parse_thread_stat(_read_process_file(roots, pid, "task", tid, "stat"))


@dataclass(frozen=True, slots=True)
class ThreadStatus:
    """Affinity and credentials of a thread (``status``)."""

    allowed: frozenset[int]
    uids: tuple[int, ...]


def read_thread_status(pid: int, tid: int, roots: LiveRoots) -> ThreadStatus:
    path = roots.proc(pid, "task", tid, "status")
    fields = parse_status(_read_process_file(roots, pid, "task", tid, "status"))
    try:
        allowed = parse_cpulist(fields["Cpus_allowed_list"], field=f"{path} Cpus_allowed_list")
        uids = tuple(int(x) for x in fields["Uid"].split())
    except KeyError as e:
        raise KernelError(errno.EINVAL, f"{path} has no {e.args[0]} line") from None
    except (ValueError, ConfigError):
        raise KernelError(errno.EINVAL, f"{path}: malformed Uid or Cpus_allowed_list") from None
    return ThreadStatus(allowed, uids)


def read_vmstat(roots: LiveRoots) -> NumaCounters:
    path = roots.proc("vmstat")
    return numa_counters(parse_vmstat(read_text(path)), source=str(path))


def read_node_memory(roots: LiveRoots, nodes: Iterable[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(MemTotal, MemFree)`` in bytes for each node, from ``nodeN/meminfo``."""
    total, free = [], []
    for n in nodes:
        path = roots.sys("devices", "system", "node", f"node{n}", "meminfo")
        info = parse_node_meminfo(read_text(path), source=str(path))
        for key in ("MemTotal", "MemFree"):
            if key not in info:
                raise KernelError(errno.EINVAL, f"{path} has no {key} line")
        total.append(info["MemTotal"])
        free.append(info["MemFree"])
    return tuple(total), tuple(free)
