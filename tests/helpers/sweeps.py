"""Small sweeps for the tests: specs of fast cells, and the database content that must not depend on how or where
the cells ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

import memsched.results

#: Columns that say how, where and when a cell ran, not what it computed.
EXECUTION = ("wall_s", "host", "pid", "executor", "finished_at", "attempts")

#: Twelve fast cells: numa02 and numa01 on the laptop preset and a tiny generated 2-node ring, under none and
#: mainline at two scan sizes, seeds 0 and 1 (mainline's cells at each size, none's as the baseline).
FAST_SPEC = """
name = "fast"
seeds = 2
workloads = ["numa02"]
policies = ["mainline"]
topologies = ["laptop-1n8"]
[sets]
scan_size_mb = [64, 512]
[families.tiny]
nodes = 2
cores_per_node = 2
wiring = "ring"
"""


def write_spec(folder: Path, text: str = FAST_SPEC, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def content(db: Path) -> pd.DataFrame:
    """What a database says about its runs, without the execution columns, in key order."""
    frame = memsched.results.open(db)
    return frame.drop(columns=[c for c in EXECUTION if c in frame.columns]).sort_values("key").reset_index(drop=True)


def same_content(a: Path, b: Path) -> None:
    """Assert two databases hold the same runs, figure for figure."""
    left, right = content(a), content(b)
    assert list(left["key"]) == list(right["key"])
    assert sorted(left.columns) == sorted(right.columns)
    pd.testing.assert_frame_equal(left, right[left.columns], check_dtype=True)


def cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """``python -m memsched ARGS`` in a child process (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "memsched", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )
