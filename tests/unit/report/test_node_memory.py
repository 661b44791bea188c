"""A NUMA run's timeline says how long its pages are, and the report draws memory per node in GiB (review 2: the
axis said "pages on node" for 2 MiB pages with THP and 256 KiB runs without, next to vmstat's kernel pages)."""

from __future__ import annotations

import pytest

from memsched.report.html import node_memory_axis
from memsched.workloads.numa import NumaOptions
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec


@pytest.mark.parametrize("thp", [True, False])
def test_node_pages_times_page_bytes_is_the_workloads_memory(thp: bool) -> None:
    """numa02 on laptop-1n8 writes 1 GiB: the last sample's pages, times page_bytes, hold it (and no more than a
    page per node besides)."""
    rec = run_one(RunSpec("numa02", "laptop-1n8", "none", 0, options=NumaOptions(thp=thp)))
    tl = rec["timeline"]
    assert tl["page_bytes"] == (2 << 20 if thp else NumaOptions().run_kib * 1024)
    held = sum(tl["node_pages"][-1]) * tl["page_bytes"]
    assert 1 << 30 <= held <= (1 << 30) + len(tl["node_pages"][-1]) * tl["page_bytes"]
    scale, label = node_memory_axis(tl)
    assert label == "GiB on node" and scale * sum(tl["node_pages"][-1]) == pytest.approx(held / 2**30)


def test_a_record_without_page_bytes_draws_model_pages() -> None:
    assert node_memory_axis({"node_pages": [[1, 2]]}) == (1.0, "pages on node (model units)")
