"""rt noise on the running kernel: every allowed CPU measured, figures consistent, state restored."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from memsched.live.isolation import cpu_isolation
from memsched.live.noise import measure_noise

pytestmark = pytest.mark.live


@pytest.mark.parametrize("sequential", [False, True])
def test_noise_measures_every_allowed_cpu(sequential: bool) -> None:
    """One consistent osnoise-style line per allowed CPU; affinity and GC are restored afterwards."""
    affinity, gc_enabled = os.sched_getaffinity(0), gc.isenabled()
    report = measure_noise(duration_ns=100_000_000, sequential=sequential)
    assert os.sched_getaffinity(0) == affinity and gc.isenabled() == gc_enabled
    assert [c.cpu for c in report.cpus] == sorted(affinity)
    for c in report.cpus:
        assert c.runtime_ns >= 100_000_000
        assert 0 <= c.noise_ns <= c.runtime_ns and 0 <= c.max_single_ns <= c.noise_ns
        assert c.count <= c.loops and c.loops > 0 and c.floor_ns > 0
        assert (c.count == 0) == (c.noise_ns == 0)
        assert c.irq is not None and c.irq >= 0 and c.softirq is not None and c.thread is not None
        assert 0.0 <= c.cpu_available_pct <= 100.0
    assert report.isolation == cpu_isolation()


def test_noise_cli_json() -> None:
    """rt noise --json prints one JSON document with a line per CPU and the isolation state."""
    proc = subprocess.run(
        [sys.executable, "-m", "memsched", "rt", "noise", "--duration", "50ms", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["cpus"]) == len(os.sched_getaffinity(0))
    assert doc["threshold_ns"] == 5000 and set(doc["isolation"]) == {
        "online",
        "isolated",
        "nohz_full",
        "boot_params",
    }
    assert all(
        {"noise_ns", "max_single_ns", "count", "cpu_available_pct", "resolution_ns"} <= set(c)
        for c in doc["cpus"]
    )
