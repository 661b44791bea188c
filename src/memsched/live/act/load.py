"""Child programs for the live action tests and ``benchmarks/act_latency.py``: a slow leak that also keeps a
file's pages as its working set (so that, as anonymous memory grows inside a memory cgroup, its page cache is
squeezed out and refaults: reclaim, PSI stall and refaults before the OOM killer), and an idle sibling.
"""

from __future__ import annotations

import os
import sys

__all__ = ["idle_sibling", "slow_leaker"]

_MIB = 1 << 20


def slow_leaker(
    *, step_bytes: int = _MIB, interval_s: float = 0.05, reread: str | os.PathLike[str] | None = None,
    oom_score_adj: int = 0,
) -> list[str]:
    """Leak ``step_bytes`` of touched anonymous memory every ``interval_s`` (re-reading ``reread`` between
    steps, if given) until killed; sets its own ``oom_score_adj`` first (raising it needs no privilege)."""
    return [sys.executable, "-c", (
        "import time\n"
        f"open('/proc/self/oom_score_adj', 'w').write('{oom_score_adj}')\n"
        "keep = []\n"
        "while True:\n"
        f"    keep.append(bytearray(b'\\x01') * {step_bytes})\n"
        + (f"    with open({os.fspath(reread)!r}, 'rb') as f:\n"
           f"        while f.read({_MIB}):\n"
           "            pass\n" if reread is not None else "")
        + f"    time.sleep({interval_s!r})\n"
    )]


def idle_sibling(size_bytes: int = 4 * _MIB, *, oom_score_adj: int = 0) -> list[str]:
    """Hold ``size_bytes`` of touched memory and sleep (a service that must survive)."""
    return [sys.executable, "-c", (
        "import time\n"
        f"open('/proc/self/oom_score_adj', 'w').write('{oom_score_adj}')\n"
        f"keep = bytearray(b'\\x01') * {size_bytes}\n"
        "while True:\n"
        "    time.sleep(1)\n"
    )]
