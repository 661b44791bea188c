"""Parsers of the files of one process: ``stat``, ``status``, ``limits``, ``sched``, ``cgroup``, ``mountinfo``.

Formats are described in :mod:`memsched.live.procfs`; each parser is a pure function of the file's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from memsched.errors import ConfigError, KernelFileError, excerpt
from memsched.live.procfs.system import parse_counter
from memsched.uapi.cpumask import parse_cpulist
from memsched.uapi.sched import SchedPolicy

__all__ = [
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "PF_KTHREAD",
    "CgroupMembership",
    "Mount",
    "ProcSched",
    "ProcStatus",
    "TaskStat",
    "comm_text",
    "parse_limits",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "parse_proc_sched",
    "parse_status",
    "parse_task_stat",
]

#: ``PF_KTHREAD`` in ``stat`` field 9 (include/linux/sched.h).
PF_KTHREAD = 0x00200000
#: Capability bits in ``CapEff`` (include/uapi/linux/capability.h).
CAP_SYS_NICE = 23
CAP_SYS_RESOURCE = 24


def _malformed(source: str, what: str) -> KernelFileError:
    return KernelFileError(source, what)


# --------------------------------------------------------------------------------------------- stat


def comm_text(raw: str) -> str:
    """A process name as read (``surrogateescape``, :func:`memsched.kfile.decode_kernel_text`) as text to show
    and to put in JSON: a byte that is not UTF-8 becomes ``\\xNN`` (``bytes.decode("utf-8", "backslashreplace")``).
    ``comm`` is any 15 bytes a process chose (``PR_SET_NAME``); left as lone surrogates it reached the terminal
    as raw bytes and ``--json`` as ``"db\\udcff"``, which strict JSON consumers refuse."""
    try:
        data = raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no decoding produced (text from elsewhere): keep it visible
        data = raw.encode("utf-8", "backslashreplace")
    return data.decode("utf-8", "backslashreplace")



@dataclass(frozen=True, slots=True)
class TaskStat:
    """The fields of ``/proc/<pid>[/task/<tid>]/stat`` memsched uses (proc(5) field numbers)."""

    tid: int  # 1
    comm: str  # 2
    state: str  # 3
    flags: int  # 9
    utime_ticks: int  # 14
    stime_ticks: int  # 15
    num_threads: int  # 20
    processor: int  # 39: the CPU it last ran on
    rt_priority: int  # 40
    policy: int  # 41

    @property
    def is_kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def runtime_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks


def parse_task_stat(text: str, *, source: str = "/proc/<pid>/stat") -> TaskStat:
    """One ``stat`` line; split at the last ``)`` because ``comm`` may hold spaces and parentheses. A line
    with too few fields or a field that is not a number raises :class:`KernelFileError` naming ``source``."""
    head, sep, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    # fields[0] is field 3 (state): field N is fields[N - 3]. policy (41) exists since 2.5.19.
    if not sep or len(fields) < 39:
        raise _malformed(source, f"malformed stat line (need 41 fields): {excerpt(text)}")
    return TaskStat(
        tid=_field(source, "pid", pid_text),
        comm=comm_text(comm),
        state=fields[0],
        flags=_field(source, "flags", fields[6]),
        utime_ticks=_field(source, "utime", fields[11]),
        stime_ticks=_field(source, "stime", fields[12]),
        num_threads=_field(source, "num_threads", fields[17]),
        processor=_field(source, "processor", fields[36]),
        rt_priority=_field(source, "rt_priority", fields[37]),
        policy=_field(source, "policy", fields[38]),
    )


#: A ``stat`` field is printed from an ``unsigned long long`` at most.
_MAX_STAT_FIELD = (1 << 64) - 1


def _field(source: str, name: str, text: str) -> int:
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else -1
    if not 0 <= value <= _MAX_STAT_FIELD:
        raise _malformed(source, f"field {name} must be a number in 0..{_MAX_STAT_FIELD} (got {excerpt(text)})")
    return value


# --------------------------------------------------------------------------------------------- status, limits


@dataclass(frozen=True, slots=True)
class ProcStatus:
    """The lines of ``/proc/<pid>/status`` memsched uses; optional ones are ``None`` when not printed."""

    source: str
    uids: tuple[int, ...]  # Uid: real, effective, saved set, fs
    cap_eff: int  # CapEff: the effective capability set
    cpus_allowed: frozenset[int] | None  # Cpus_allowed_list: 2.6.26+
    nonvoluntary_ctxt_switches: int | None  # 2.6.23+

    def has_capability(self, cap: int) -> bool:
        """Whether ``CapEff`` holds capability ``cap``."""
        return bool(self.cap_eff >> cap & 1)


def parse_status(text: str, *, source: str = "/proc/<pid>/status") -> ProcStatus:
    """``/proc/<pid>/status`` -> :class:`ProcStatus`: ``Uid`` and ``CapEff`` (printed by every kernel) must be
    there; a line that does not parse raises."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    for key in ("Uid", "CapEff"):
        if key not in values:
            raise _malformed(source, f"has no {key} line")
    try:
        uids = tuple(int(x) for x in values["Uid"].split())
        cap_eff = int(values["CapEff"], 16)
        switches = values.get("nonvoluntary_ctxt_switches")
        nonvoluntary = int(switches) if switches is not None else None
    except ValueError:
        raise _malformed(source, "malformed Uid, CapEff or nonvoluntary_ctxt_switches") from None
    allowed_text = values.get("Cpus_allowed_list")
    try:
        allowed = parse_cpulist(allowed_text, field="Cpus_allowed_list") if allowed_text is not None else None
    except ConfigError:
        raise _malformed(source, f"malformed Cpus_allowed_list {excerpt(allowed_text or '')}") from None
    return ProcStatus(source, uids, cap_eff, allowed, nonvoluntary)


def parse_limits(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/<pid>/limits`` -> ``{"Max realtime priority": ("0", "0"), ...}`` (soft, hard; either may be
    ``unlimited``). The limit names are padded to 26 columns."""
    out = {}
    for line in text.splitlines()[1:]:
        if len(line) < 26:
            continue
        parts = line[26:].split()
        if len(parts) >= 2:
            out[line[:26].strip()] = (parts[0], parts[1])
    return out


# --------------------------------------------------------------------------------------------- sched


@dataclass(frozen=True, slots=True)
class ProcSched:
    """``/proc/<pid>/sched``: header and the values memsched uses.

    ``dl_runtime_left_ns`` (``dl.runtime``) and ``dl_abs_deadline_ns`` (``dl.deadline``, on the rq clock) are
    printed only for deadline tasks; ``values`` keeps every ``key: value`` line as text.
    """

    comm: str
    pid: int
    threads: int
    policy: int
    prio: int
    dl_runtime_left_ns: int | None
    dl_abs_deadline_ns: int | None
    values: Mapping[str, str] = field(default_factory=dict)


_SCHED_HEADER = re.compile(r"^(?P<comm>.*) \((?P<pid>\d+), #threads: (?P<threads>\d+)\)$")


def parse_proc_sched(text: str, *, source: str | None = None) -> ProcSched:
    """Parse ``/proc/<pid>/sched``; a missing ``policy``/``prio``, or a missing ``dl.*`` on a deadline task,
    raises rather than reading as 0."""
    lines = text.splitlines()
    m = _SCHED_HEADER.match(lines[0]) if lines else None
    if m is None:
        raise _malformed(source or "/proc/<pid>/sched", f"unexpected header {excerpt(lines[0] if lines else '')}")
    values: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and not key.startswith("-"):
            values[key.strip()] = value.strip()
    where = source or f"/proc/{m['pid']}/sched"

    def integer(key: str) -> int:
        if key not in values:
            raise _malformed(where, f"has no {key!r} line")
        return parse_counter(key, values[key], where)

    policy = integer("policy")
    is_dl = policy == SchedPolicy.DEADLINE
    return ProcSched(
        comm=comm_text(m["comm"]),
        pid=int(m["pid"]),
        threads=int(m["threads"]),
        policy=policy,
        prio=integer("prio"),
        dl_runtime_left_ns=integer("dl.runtime") if is_dl else None,
        dl_abs_deadline_ns=integer("dl.deadline") if is_dl else None,
        values=values,
    )


# --------------------------------------------------------------------------------------------- cgroup, mountinfo


@dataclass(frozen=True, slots=True)
class CgroupMembership:
    """One line of ``/proc/<pid>/cgroup``."""

    hierarchy_id: int
    controllers: tuple[str, ...]
    path: str

    @property
    def is_v2(self) -> bool:
        return self.hierarchy_id == 0 and not self.controllers


def parse_proc_cgroup(text: str, *, source: str = "/proc/<pid>/cgroup") -> list[CgroupMembership]:
    """``/proc/<pid>/cgroup`` -> memberships (``4:memory:/a/b`` and the v2 ``0::/a``)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() or len(parts[0]) > 9:
            raise _malformed(source, f"malformed line {excerpt(line)}")
        out.append(CgroupMembership(int(parts[0]), tuple(c for c in parts[1].split(",") if c), parts[2]))
    return out


@dataclass(frozen=True, slots=True)
class Mount:
    """The fields of one ``mountinfo`` line the cgroup code needs."""

    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def _unescape(text: str) -> str:
    """``mountinfo`` escapes space, tab, newline and backslash as octal (``\\040``)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str, *, source: str = "mountinfo") -> list[Mount]:
    """``/proc/<pid>/mountinfo`` -> mounts. Fields: id, parent, dev, root, mount point, options, optional
    fields up to ``-``, fstype, source, super options."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            raise _malformed(source, f"no '-' separator in {excerpt(line)}") from None
        if len(fields) < sep + 3:
            raise _malformed(source, f"truncated line {excerpt(line)}")
        super_opts = tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()
        out.append(Mount(_unescape(fields[3]), _unescape(fields[4]), fields[sep + 1], super_opts))
    return out


