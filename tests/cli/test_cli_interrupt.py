"""Ctrl-C on compare: the pool is terminated, the command says so, exits 130 and writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.mark.slow
def test_ctrl_c_on_compare_terminates_the_workers(tmp_path: Path) -> None:
    """SIGINT to the process group while two workers simulate: exit 130, 'interrupted', no report, no workers left.

    (benchmarks/compare_interrupt.py measures how soon it stops.)"""
    report = tmp_path / "r.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsched", "compare", "--workloads", "numa01", "--jobs", "2", "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers: set[int] = set()
    give_up = time.monotonic() + 120
    while len(workers) < 2:
        assert proc.poll() is None and time.monotonic() < give_up, "the workers never started"
        workers |= _children(proc.pid)
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "memsched: interrupted" and "Traceback" not in err
    assert out == "" and not report.exists() and list(tmp_path.iterdir()) == []
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
