"""What the live tests read from the running kernel to check that nothing was left behind.

Other programs on the machine may run SCHED_DEADLINE tasks of their own (other test sessions, a realtime
service). The checks look only at **our own** processes: those in the test run's session (``/proc/<pid>/stat``
field 6), which every child, grandchild and orphaned descendant keeps unless it calls ``setsid()``.
"""

from __future__ import annotations

import os

from memsched.uapi.sched import SchedPolicy


def _stat_fields(path: str) -> list[str]:
    """Fields 3.. of a ``stat`` file (state first), split after the command name."""
    with open(path) as f:
        return f.read().rpartition(")")[2].split()


def deadline_tids(*, session: int | None = None) -> set[int]:
    """Every thread whose /proc stat says SCHED_DEADLINE (policy, field 41), optionally of one session."""
    tids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if session is not None and int(_stat_fields(f"/proc/{pid}/stat")[3]) != session:
                continue
            for tid in filter(str.isdigit, os.listdir(f"/proc/{pid}/task")):
                fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
                if int(fields[38]) == SchedPolicy.DEADLINE and fields[0] not in ("Z", "X"):
                    tids.add(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return tids


def own_deadline_tids() -> set[int]:
    """SCHED_DEADLINE threads of this test run (its session)."""
    return deadline_tids(session=os.getsid(0))


def foreign_deadline_tids() -> set[int]:
    """SCHED_DEADLINE threads of other programs on the machine."""
    return deadline_tids() - own_deadline_tids()


def child_pids() -> set[int]:
    """This process's children, living or zombie (ppid is field 4 of /proc/<pid>/stat)."""
    me, out = os.getpid(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(_stat_fields(f"/proc/{pid}/stat")[1]) == me:
                out.add(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def session_pids(session: int) -> set[int]:
    """Processes of ``session`` that are not zombies."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = _stat_fields(f"/proc/{pid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            out.add(int(pid))
    return out
