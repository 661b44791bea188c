"""The table layout: nothing cut at any width, compact numbers, plain words for nested documents."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from memsched.report.fit import Column, FitTable, count, mapping_lines, size
from memsched.report.tables import metric_text


def _render(table: FitTable, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _table() -> FitTable:
    t = FitTable("a title", [Column("run"), Column("elapsed s", "seconds", right=True), Column("note", wrap=True)])
    rows = t.add_group("numa01_THREAD_ALLOC")
    rows.append(["INVERSE_BIND", "1500.3", "a long note that may wrap at spaces"])
    rows.append(["balancenuma", "44.6", "short"])
    return t


@pytest.mark.parametrize("width", [80, 50, 36, 24])
def test_every_cell_whole_at_any_width(width: int) -> None:
    """Wide or stacked, every name and number appears whole and no line is wider than the screen."""
    out = _render(_table(), width)
    assert all(len(line.rstrip()) <= width for line in out.splitlines())
    assert "…" not in out
    for word in ("numa01_THREAD_ALLOC", "INVERSE_BIND", "balancenuma", "1500.3", "44.6"):
        assert word in out.split(), (word, out)
    assert "elapsed s: seconds" in out  # the legend spells the short head out


def test_stacked_when_narrow() -> None:
    """Too narrow for the table: one block per row with head-value pairs."""
    assert "elapsed s 1500.3" in _render(_table(), 36)
    assert "elapsed s 1500.3" not in _render(_table(), 80)


def test_html_has_the_same_rows() -> None:
    """to_html shows the same cells, the group heading and the legend."""
    doc = _table().to_html()
    for word in ("numa01_THREAD_ALLOC", "INVERSE_BIND", "1500.3", "elapsed s: seconds"):
        assert word in doc


def test_compact_numbers() -> None:
    """Counts below a million whole; above, four significant digits; sizes in binary units."""
    assert count(999_999) == "999999"
    assert count(315_760_640) == "315.8M"
    assert count(1_160_704) == "1.161M"
    assert count(None) == "-"
    assert size(1.2 * (1 << 40)) == "1.2 TiB"
    assert size(301.1 * (1 << 20)) == "301.1 MiB"
    assert size(512) == "512 B"


def test_nested_documents_in_words() -> None:
    """A nested document reads as indented key-value words; task maps as ranges."""
    lines = mapping_lines("kvm", {"halts": 3, "guest": {"name": "g", "lat_us": {"max": 3.5}}, "cpus": [0, 1]})
    assert lines == ["kvm: halts 3, cpus 0, 1", "  guest: name g", "    lat_us: max 3.5"]
    assert metric_text("preferred_nodes", {"0": -1, "1": 2, "2": 2, "3": 0}) == (
        "no node: tasks 0; node 0: tasks 3; node 2: tasks 1-2"
    )
    assert metric_text("numa_groups", {"2": [1, 2, 3], "7": [7]}) == "2 groups: group 2 tasks 1-3; group 7 tasks 7"
