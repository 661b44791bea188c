"""What the live tests read from the running kernel to check that nothing was left behind."""

from __future__ import annotations

import os

from memsched.uapi.sched import SchedPolicy


def deadline_tids() -> set[int]:
    """Every thread on the machine whose /proc stat says SCHED_DEADLINE (policy, field 41)."""
    tids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for tid in filter(str.isdigit, os.listdir(f"/proc/{pid}/task")):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                if int(fields[38]) == SchedPolicy.DEADLINE and fields[0] not in ("Z", "X"):
                    tids.add(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return tids


def child_pids() -> set[int]:
    """This process's children, living or zombie (ppid is field 4 of /proc/<pid>/stat)."""
    me, out = os.getpid(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rpartition(")")[2].split()[1]) == me:
                    out.add(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out
