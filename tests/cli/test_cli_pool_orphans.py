"""A simulation's worker processes die with memsched, also when memsched is SIGKILLed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_sigkill_of_compare_leaves_no_worker() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsched", "compare", "--workloads", "numa01", "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2:
            assert proc.poll() is None and time.monotonic() < give_up, "the pool never started"
            workers = _children(proc.pid)
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are past their initializer and running
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 3  # SIGKILL from the kernel is at once; a numa01 run takes longer
        alive = workers
        while alive and time.monotonic() < deadline:
            alive = {w for w in alive if Path(f"/proc/{w}").exists() and "Z" not in _state(w)}
            time.sleep(0.05)
        assert not alive, f"workers {sorted(alive)} outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"

