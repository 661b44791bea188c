"""memsched rt admit's text report (cli.rt_admit) for a --pid target, from fixture trees."""

from __future__ import annotations

import re

import pytest

from helpers.live_fixtures import VM_TASK, fake_getattr, tree
from memsched.cli.rt_admit import _print_prediction
from memsched.live.deadline import predict_admission
from memsched.live.roots import LiveRoots
from memsched.uapi.sched import SchedAttr


@pytest.fixture
def vm() -> LiveRoots:
    """The project's 2-CPU 6.18 VM tree (tests/fixtures/live/README.md)."""
    return tree("vm-2cpu-6.18")


def _report(vm: LiveRoots, pid: int, attr: SchedAttr) -> list[str]:
    lines: list[str] = []
    p = predict_admission(attr, roots=vm, pid=pid, getattr_fn=fake_getattr({4242: VM_TASK}))
    _print_prediction(p, lines.append)
    return lines


def _cpus(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+\.\d{3}) CPUs", text)]


def test_held_line_of_a_deadline_target_adds_up(vm: LiveRoots) -> None:
    """held = fair_servers + other deadline tasks + the target's own reservation, and the request may use what
    is free plus that reservation (released by sched_dl_overflow before the request is added)."""
    text = "\n".join(_report(vm, 4242, SchedAttr.deadline(9_000_000, 10_000_000)))
    held = text[text.index("held ") : text.index("available ")]
    total, *parts = _cpus(held)
    assert parts == [0.100, 0.000, 0.200] and abs(total - sum(parts)) < 0.0015
    available = text[text.index("available ") : text.index("verdict ")]
    free, for_request, released = _cpus(available)
    assert (free, released) == (1.600, 0.200) and abs(for_request - (free + released)) < 0.0015
    assert "target     pid 4242 cat: SCHED_DEADLINE runtime 2.00 ms" in text


def test_pinned_target_is_named_with_its_affinity(vm: LiveRoots) -> None:
    """The target line shows the task asked about (not memsched), and the verdict names its affinity."""
    text = " ".join(_report(vm, 4500, VM_TASK))
    assert "target     pid 4500 sleep: SCHED_NORMAL; on CPU 0, affinity 0" in text
    assert "REFUSED (narrow-affinity)" in text and "affinity 0 does not cover its root domain 0-1" in text
