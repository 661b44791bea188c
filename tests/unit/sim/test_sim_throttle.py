"""Writeback throttling in memcg reclaim per kernel version, and socket pressure only on a v2 memcg.

A page-cache writer in a small v1 memcg fills it with dirty pages. Its memcg reclaim then isolates pages that
are all dirty and not yet queued for writeback: from 5.16 on, ``shrink_inactive_list()`` wakes the flusher and
sleeps in ``reclaim_throttle(VMSCAN_THROTTLE_WRITEBACK)`` (``!writeback_throttling_sane()`` on v1); before,
it only wakes the flusher. ``vmpressure(tree=false)`` computes per-memcg socket pressure only on the v2
hierarchy (``cgroup_subsys_on_dfl(memory_cgrp_subsys)``).
"""

from __future__ import annotations

import pytest

from helpers.pressure_programs import writer
from memsched.units import MIB, s


def _run(pressure_machine, kernel: str, cgroup_v2: bool):  # type: ignore[no-untyped-def]
    m, r = pressure_machine(256, kernel=kernel, cgroup_v2=cgroup_v2, disk_write_bytes_per_s=64 * MIB)
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    task = writer(m, r, 48, chunk_kib=1024)
    r.memcgs.attach(task.tgid, "/box")
    m.run(until=s(2))
    box = r.memcgs.memcgs[r.memcgs.get("/box").id]
    return m, r, task, box


@pytest.mark.parametrize(("kernel", "throttles"), [("3.10", False), ("5.10", False), ("6.18", True)])
def test_v1_memcg_reclaim_over_dirty_pages_throttles_from_5_16(pressure_machine, kernel: str, throttles: bool) -> None:  # type: ignore[no-untyped-def]
    _m, r, task, box = _run(pressure_machine, kernel, cgroup_v2=False)
    assert not task.killed and box.stat["pgscan"] > 0
    assert (r.writeback.throttled_reclaim > 0) is throttles
    assert box.socket_pressure_events == 0  # v1: never


def test_socket_pressure_only_on_a_v2_memcg(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """The same writer on the v2 hierarchy: its memcg's own windows above LOW raise socket pressure."""
    _, r1, _, v1 = _run(pressure_machine, "6.18", cgroup_v2=False)
    _, r2, _, v2 = _run(pressure_machine, "6.18", cgroup_v2=True)
    assert v1.socket_pressure_events == 0
    assert v2.socket_pressure_events > 0
    # v2 memcg reclaim is throttled like global reclaim (writeback_throttling_sane()), not by the v1 rule
    assert r2.writeback.throttled_reclaim == 0 < r1.writeback.throttled_reclaim
