"""The act-sim table: readable at 80 columns, and no policy or scenario id cut at any width."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from memsched.report.act import act_html, act_table


def _run(scenario: str, policy: str, *, kills: list[str], first: float | None) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "policy": policy,
        "actions": [],
        "score": {
            "thrashing_s": 56,
            "trouble_s": 4.1,
            "first_action_s": first,
            "time_to_action_s": None if first is None else round(first - 4.1, 3),
            "user_kills": kills,
            "user_kill_count": 46 if kills else 0,
            "kernel_oom_kills": 57,
            "kernel_victims": ["bomb"],
            "sheds": 2,
            "verdict": "right",
            "work_lost_cpu_s": 22.914,
            "protected": {"name": "web", "killed": False, "throughput": 216.717, "unit": "steps/s",
                          "mean_request_ms": 20.906},
        },
    }


_RUNS = [
    _run("forkbomb", "vmpressure-shed-v1", kills=[], first=None),
    _run("forkbomb", "systemd-oomd-v1", kills=["bomb"], first=9.6),
    _run("thrash", "earlyoom-v1", kills=["analytics"], first=3.897),
]


def _render(width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(act_table(_RUNS))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


@pytest.mark.parametrize("width", [80, 160])
def test_every_id_and_figure_whole(width: int) -> None:
    """At 80 and 160 columns no cell is cut: policy and scenario ids and every figure appear whole."""
    out = _render(width)
    assert "…" not in out
    assert all(len(line.rstrip()) <= width for line in out.splitlines())
    words = out.split()
    for word in ("forkbomb", "thrash", "vmpressure-shed", "systemd-oomd", "earlyoom", "analytics", "22.914",
                 "216.717", "20.906", "-0.203"):
        assert word in words, (word, out)


def test_stacked_at_80_and_a_table_at_160() -> None:
    """80 columns get the stacked layout (head-value pairs); 160 columns one line per policy."""
    assert "thrash s 56" in _render(80)
    wide = _render(160)
    assert "thrash s 56" not in wide
    assert any(line.split()[:3] == ["earlyoom", "56", "4.1"] for line in wide.splitlines() if line.strip())


def test_html_has_the_same_rows() -> None:
    """The report shows the same cells as the terminal, and the legend of the heads."""
    doc = act_html(_RUNS)
    for word in ("forkbomb", "vmpressure-shed", "bomb ×46", "web 216.717 steps/s", "thrash s: seconds"):
        assert word in doc, word
