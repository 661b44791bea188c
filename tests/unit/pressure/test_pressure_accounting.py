"""Window accounting, the work-item snapshot, memcg propagation modes and the registration strings."""

from __future__ import annotations

import errno

import pytest

from memsched.errors import KernelError
from memsched.pressure import (
    Listener,
    MainlineVmpressure,
    MainlineVmpressureConfig,
    Rfc2012VmpressureConfig,
    RfcVmpressure,
    parse_event_control,
    parse_pressure_level_args,
    propagate,
)
from memsched.uapi.pressure import MemcgLevel, MemcgMode, VmpressureLevel

L, M, C = MemcgLevel.LOW, MemcgLevel.MEDIUM, MemcgLevel.CRITICAL
D, H, LOC = MemcgMode.DEFAULT, MemcgMode.HIERARCHY, MemcgMode.LOCAL


def test_rfc_window_fills_then_schedules_work_once() -> None:
    """The RFC schedules its work when 256 pages are scanned, and not again while it is pending."""
    acc = RfcVmpressure()
    assert acc.vmpressure(200, 200) is False
    assert acc.vmpressure(100, 0) is True
    assert acc.vmpressure(1000, 0) is False  # work pending: counts accumulate into the same window
    sample = acc.work_fn()
    assert (sample.scanned, sample.reclaimed) == (1300, 200)
    assert sample.index == (256 - 200 * 256 // 1300) * 100 // 256
    assert acc.val == sample.level and acc.scanned == 0 and not acc.work_pending


def test_rfc_priority_path_fires_oom_with_nothing_scanned() -> None:
    """With zero pages scanned, priority <= 4 alone produces a full OOM window (and 5 does not)."""
    acc = RfcVmpressure()
    assert acc.vmpressure(0, 0) is False
    assert acc.vmpressure_prio(5) is False
    assert acc.vmpressure_prio(4) is True
    assert acc.work_fn().level == VmpressureLevel.OOM


def test_rfc_ignores_memcg_reclaim() -> None:
    """The RFC drops samples from reclaim on behalf of a memcg ("to be implemented")."""
    acc = RfcVmpressure(Rfc2012VmpressureConfig(vmevent_window=32))
    assert acc.vmpressure(1000, 0, memcg_reclaim=True) is False
    assert acc.vmpressure_prio(0, memcg_reclaim=True) is False
    assert acc.scanned == 0


def test_mainline_tree_window_is_a_minimum() -> None:
    """The tree path schedules at >= 512 scanned; later calls before the work runs join the same snapshot."""
    vp = MainlineVmpressure()
    assert vp.vmpressure(500, 400, tree=True) is False
    assert vp.vmpressure(100, 0, tree=True) is True
    assert vp.vmpressure(400, 0, tree=True) is False  # already pending
    sample = vp.work_fn()
    assert sample is not None and (sample.scanned, sample.reclaimed) == (1000, 400)
    assert sample.level == MainlineVmpressureConfig().level(MainlineVmpressureConfig().index(1000, 400))
    assert vp.tree_scanned == 0 and vp.work_fn() is None  # re-queued work with nothing to do returns early


def test_mainline_zero_scanned_and_gfp_filter_do_nothing() -> None:
    """scanned == 0 and GFP masks user space cannot help with are not accounted."""
    vp = MainlineVmpressure()
    assert vp.vmpressure(0, 5, tree=True) is False
    assert vp.vmpressure(4096, 0, tree=True, gfp_counts=False) is False
    assert vp.tree_scanned == 0


def test_mainline_priority_path() -> None:
    """vmpressure_prio at priority 3 forces a critical window; at 4 it does nothing."""
    vp = MainlineVmpressure()
    assert vp.vmpressure_prio(4) is False
    assert vp.vmpressure_prio(3) is True
    sample = vp.work_fn()
    assert sample is not None and sample.level == MemcgLevel.CRITICAL and sample.scanned == 512


def test_mainline_non_tree_path_is_synchronous_and_not_for_root() -> None:
    """tree=False computes the level when its own window fills (socket pressure); root is ignored."""
    child = MainlineVmpressure()
    assert child.vmpressure(300, 0, tree=False) is False
    assert child.vmpressure(300, 0, tree=False) is MemcgLevel.CRITICAL
    assert child.scanned == 0 and child.tree_scanned == 0
    root = MainlineVmpressure(is_root=True)
    assert root.vmpressure(10_000, 0, tree=False) is False


def _path(*memcgs: list[tuple[MemcgLevel, MemcgMode, str]]) -> list[list[Listener[str]]]:
    return [[Listener(lv, md, name) for lv, md, name in m] for m in memcgs]


def test_default_mode_goes_to_nearest_listener_that_fires() -> None:
    """Default listeners above a memcg whose listener fired stay silent."""
    path = _path([(L, D, "child")], [(L, D, "parent")], [(L, D, "root")])
    assert [ev.target for ev in propagate(M, path)] == ["child"]


def test_default_passes_through_when_lower_listener_level_too_high() -> None:
    """A lower listener that does not fire (level above the event) lets the event reach the parent."""
    path = _path([(C, D, "child")], [(L, D, "parent")])
    assert [ev.target for ev in propagate(M, path)] == ["parent"]


def test_hierarchy_mode_fires_for_descendants_regardless() -> None:
    """A hierarchy listener fires for a descendant's pressure even after a lower listener fired."""
    path = _path([(L, D, "child")], [(L, H, "parent")], [(L, D, "root")])
    assert [ev.target for ev in propagate(L, path)] == ["child", "parent"]


def test_local_mode_only_for_own_memcg() -> None:
    """A local listener fires only when its own memcg is the one under pressure."""
    assert [ev.target for ev in propagate(L, _path([(L, LOC, "own")]))] == ["own"]
    path = _path([], [(L, LOC, "parent-local")], [(L, D, "root")])
    assert [ev.target for ev in propagate(L, path)] == ["root"]


def test_any_mode_that_fires_silences_default_above() -> None:
    """A local listener that fires sets 'signalled', silencing default listeners further up."""
    path = _path([(L, LOC, "own")], [(L, D, "parent")], [(L, H, "root-h")])
    assert [ev.target for ev in propagate(C, path)] == ["own", "root-h"]


def test_listener_fires_for_its_level_or_higher() -> None:
    """A medium listener fires for medium and critical, not for low."""
    path = _path([(M, D, "m")])
    assert propagate(L, path) == []
    assert len(propagate(M, path)) == len(propagate(C, path)) == 1


def test_310_stops_at_first_memcg_that_signalled() -> None:
    """3.10 has no modes: every listener of the first memcg that can fire fires, then the walk stops."""
    path = _path([(C, D, "child")], [(L, H, "p1"), (L, LOC, "p2")], [(L, D, "root")])
    assert [ev.target for ev in propagate(M, path, modes=False)] == ["p1", "p2"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("low", (L, D)),
        ("medium,local", (M, LOC)),
        ("critical,hierarchy", (C, H)),
        ("low,default", (L, D)),
        ("low,hierarchy,ignored", (L, H)),
    ],
)
def test_pressure_level_args(args: str, expected: tuple[MemcgLevel, MemcgMode]) -> None:
    """'<level>[,<mode>]' parses like strsep + match_string (anything after a second comma is ignored)."""
    assert parse_pressure_level_args(args) == expected


@pytest.mark.parametrize(
    "args", ["", "Low", "warning", "low,", "low,Hierarchy", "low ,local", "medium,global"]
)
def test_pressure_level_args_unknown_is_einval(args: str) -> None:
    """Unknown levels or modes (case-sensitive, no blanks) are EINVAL."""
    with pytest.raises(KernelError) as exc:
        parse_pressure_level_args(args)
    assert exc.value.errno == errno.EINVAL


def test_pressure_level_args_310_has_no_modes() -> None:
    """3.10 compares the whole string: 'low,hierarchy' is EINVAL there."""
    assert parse_pressure_level_args("critical", modes=False) == (C, D)
    with pytest.raises(KernelError):
        parse_pressure_level_args("low,hierarchy", modes=False)


def test_pressure_level_args_are_truncated_like_kstrndup() -> None:
    """Only MAX_VMPRESSURE_ARGS_LEN (19) characters are copied: a long tail after a valid mode is cut off,
    but a mode token with extra letters is still unknown."""
    assert parse_pressure_level_args("critical,hierarchy,and-a-long-tail") == (C, H)
    with pytest.raises(KernelError):
        parse_pressure_level_args("critical,hierarchyXYZ")


def test_event_control_string() -> None:
    """'<efd> <cfd> <args>' splits like memcg_write_event_control (blanks around it stripped)."""
    assert parse_event_control("5 6 low,hierarchy\n") == (5, 6, "low,hierarchy")
    assert parse_event_control("  12 3 critical") == (12, 3, "critical")


@pytest.mark.parametrize("text", ["5", "5,6 low", "x 6 low", "5 6x low"])
def test_event_control_malformed_is_einval(text: str) -> None:
    """Missing or malformed numbers are EINVAL."""
    with pytest.raises(KernelError) as exc:
        parse_event_control(text)
    assert exc.value.errno == errno.EINVAL
