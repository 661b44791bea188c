"""Real memory pressure for the live tests and benchmarks: short-lived child programs (``python -c``) that
run inside a :class:`~memsched.live.cgroups.MemcgV1Child`.

Observed on 6.18 in a 64 MiB memcg v1 (the kernel's vmpressure levels, mm/vmpressure.c): a streaming
**page-cache writer** gives a mix of low, medium and critical windows (dirty and writeback pages are scanned
but not freed); an **anonymous allocator** without swap gives no scan at all, only priority-driven critical
events from ``vmpressure_prio()``, then an OOM kill; a **re-reader** of a file larger than the limit gives
clean page cache to reclaim (mostly low); a **syncing writer** (``fsync`` after every 64 MiB) stalls long
enough to move PSI. The page-cache programs need a file on a disk-backed file system: on tmpfs the "cache" is
shmem, which without swap behaves like anonymous memory.

``rate_bytes_s`` paces a program: it sleeps after each step until the step's due time (a step that runs late
is not made up for by skipping sleeps later: the schedule is absolute, so a late program catches up).
"""

from __future__ import annotations

import os
import sys

__all__ = ["anon_allocator", "file_rereader", "page_cache_writer", "syncing_writer"]

_MIB = 1 << 20


def _argv(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _pace(rate_bytes_s: float | None, step_bytes: int, indent: str) -> str:
    """Code that sleeps until the next step is due (``t`` is the schedule's clock), or nothing."""
    if rate_bytes_s is None:
        return ""
    if not rate_bytes_s > 0:
        raise ValueError(f"rate_bytes_s must be > 0, not {rate_bytes_s!r}")
    return (
        f"{indent}t += {step_bytes / rate_bytes_s!r}\n"
        f"{indent}d = t - time.monotonic()\n"
        f"{indent}if d > 0:\n"
        f"{indent}    time.sleep(d)\n"
    )


def page_cache_writer(
    path: str | os.PathLike[str], size_bytes: int, *, rate_bytes_s: float | None = None
) -> list[str]:
    """Write ``size_bytes`` of page cache to ``path`` in 1 MiB writes, without syncing (at ``rate_bytes_s``)."""
    return _argv(
        "import time\n"
        f"f = open({os.fspath(path)!r}, 'wb')\n"
        f"b = b'x' * {_MIB}\n"
        "t = time.monotonic()\n"
        f"for _ in range({max(1, size_bytes // _MIB)}):\n"
        "    f.write(b)\n"
        + _pace(rate_bytes_s, _MIB, "    ")
        + "f.close()\n"
    )


def syncing_writer(path: str | os.PathLike[str], duration_s: float, chunk_bytes: int = 64 * _MIB) -> list[str]:
    """Rewrite ``chunk_bytes`` to ``path`` and ``fsync`` it, over and over, for ``duration_s``."""
    return _argv(
        "import os, time\n"
        f"end = time.monotonic() + {duration_s!r}\n"
        f"b = b'x' * {_MIB}\n"
        "while time.monotonic() < end:\n"
        f"    with open({os.fspath(path)!r}, 'wb') as f:\n"
        f"        for _ in range({max(1, chunk_bytes // _MIB)}):\n"
        "            f.write(b)\n"
        "        f.flush()\n"
        "        os.fsync(f.fileno())\n"
    )


def file_rereader(path: str | os.PathLike[str], passes: int, *, rate_bytes_s: float | None = None) -> list[str]:
    """Read ``path`` from start to end ``passes`` times (clean page cache, cheap to reclaim), 1 MiB per read
    (at ``rate_bytes_s``)."""
    return _argv(
        "import time\n"
        "t = time.monotonic()\n"
        f"for _ in range({passes}):\n"
        f"    with open({os.fspath(path)!r}, 'rb') as f:\n"
        f"        while f.read({_MIB}):\n"
        + (_pace(rate_bytes_s, _MIB, "            ") or "            pass\n")
    )


def anon_allocator(
    size_bytes: int | None,
    *,
    step_bytes: int = _MIB,
    hold_s: float = 0.0,
    rate_bytes_s: float | None = None,
) -> list[str]:
    """Allocate and touch ``size_bytes`` of anonymous memory in ``step_bytes`` pieces (then hold it), at
    ``rate_bytes_s``; ``size_bytes=None`` grows until the program is killed (the memcg's OOM killer)."""
    steps = "itertools.count()" if size_bytes is None else f"range({max(1, size_bytes // step_bytes)})"
    return _argv(
        "import itertools, time\n"
        "keep = []\n"
        "t = time.monotonic()\n"
        f"for _ in {steps}:\n"
        f"    keep.append(bytearray({step_bytes}))\n"
        + _pace(rate_bytes_s, step_bytes, "    ")
        + f"time.sleep({hold_s!r})\n"
    )
