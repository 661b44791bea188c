"""report/plain.py prints a FitTable off a terminal exactly as rich does, without rich (``memsched list``'s speed)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from memsched.cli import listing
from memsched.cli.settings import settings_table
from memsched.report import plain
from memsched.report.fit import ONE_CELL, Column, FitTable
from memsched.report.plain import plain_out_width, plain_text


def _rich(table: FitTable, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width).print(table)
    return buf.getvalue()


def _catalogue_tables() -> list[FitTable]:
    tables = [listing._rows_table(kind, listing.live_rows(kind)) for kind in listing.OVERVIEW]
    tables.append(settings_table(listing.live_settings(None, None, None)))
    tables.append(settings_table(listing.live_settings("mainline", None, None)))
    return tables


def test_every_catalogue_at_every_width_is_what_rich_prints() -> None:
    """`memsched list` and `list settings`, table and stacked layouts, 20 to 236 columns."""
    for table in _catalogue_tables():
        for width in (*range(20, 60, 3), *range(60, 241, 8)):
            text = plain_text(table, width)
            assert text is not None, (table.title, width)
            assert text == _rich(table, width), (table.title, width)


_CHARS = st.sampled_from("abcdefghij      XYZ-_.,/()0123456789\u00b5\u00e9~\u00ff")
_WORDS = st.text(_CHARS, max_size=30)


@st.composite
def _tables(draw: st.DrawFn) -> FitTable:
    n = draw(st.integers(1, 5))
    cols = [
        Column(
            draw(st.text(_CHARS, min_size=1, max_size=12)),
            draw(st.sampled_from(["", "what it is"])),
            right=draw(st.booleans()),
            wrap=draw(st.booleans()),
        )
        for _ in range(n)
    ]
    table = FitTable(draw(_WORDS), cols)
    for _ in range(draw(st.integers(1, 3))):
        rows = table.add_group(draw(st.none() | _WORDS))
        for _ in range(draw(st.integers(0, 4))):
            rows.append([" ".join(draw(st.lists(_WORDS, max_size=6))) for _ in range(n)])
    if draw(st.booleans()):
        table.footnotes.append(" ".join(draw(st.lists(_WORDS, max_size=20))))
    return table


@settings(max_examples=300, deadline=None)
@given(table=_tables(), width=st.integers(1, 200))
def test_generated_tables_are_what_rich_prints(table: FitTable, width: int) -> None:
    """Any table, any width: the same characters as rich, or None (rich renders)."""
    text = plain_text(table, width)
    if text is not None:
        assert text == _rich(table, width)


def test_one_cell_characters_are_one_cell_to_rich() -> None:
    """Every character the plain layout accepts is one cell wide, printable, and no space but ' '."""
    for code in range(0x3000):
        c = chr(code)
        if ONE_CELL.fullmatch(c):
            assert cell_len(c) == 1 and c.isprintable() and (c == " " or not c.isspace()), hex(code)


def test_what_only_rich_lays_out_is_left_to_rich() -> None:
    """Wide characters, tabs, a head rich would read as markup: None."""
    for cell, head in (("\u5bbd\u5ea6", "h"), ("a\tb", "h"), ("x", "time [s]"), ("x", ":smile:")):
        table = FitTable("t", [Column(head)])
        table.add_group(None).append([cell])
        assert plain_text(table, 80) is None


def test_the_width_is_rich_s_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain only where rich prints plain: not a terminal, no FORCE_COLOR / TTY_COMPATIBLE=1, UTF-8."""

    class Out(io.StringIO):
        def __init__(self, tty: bool, encoding: str = "utf-8") -> None:
            super().__init__()
            self._tty, self._encoding = tty, encoding

        def isatty(self) -> bool:
            return self._tty

        @property
        def encoding(self) -> str:  # type: ignore[override]
            return self._encoding

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdout", Out(False))
    assert plain_out_width(160) == 160
    assert plain_out_width(None) is None  # (rich would ask the terminal size of stdin/stderr)
    monkeypatch.setenv("COLUMNS", "90")
    assert plain_out_width(None) == 90
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain_out_width(160) is None
    monkeypatch.setenv("FORCE_COLOR", "")
    assert plain_out_width(160) == 160
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert plain_out_width(160) is None
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    monkeypatch.setattr(sys, "stdout", Out(True))
    assert plain_out_width(160) == 160
    monkeypatch.delenv("TTY_COMPATIBLE")
    monkeypatch.delenv("FORCE_COLOR")
    assert plain_out_width(160) is None
    monkeypatch.setattr(sys, "stdout", Out(False, "ascii"))
    assert plain_out_width(160) is None  # rich draws an ASCII box
    monkeypatch.setattr(sys, "stdout", Out(False))
    assert plain_out_width(plain._MIN_WIDTH - 1) is None


def test_memsched_list_off_a_terminal_does_not_import_rich() -> None:
    """The point of it: `memsched list` piped loads no rich, and FORCE_COLOR=1 still gets rich's colours."""
    code = (
        "import sys; sys.argv[0] = 'memsched'; from memsched.__main__ import run\n"
        "try:\n    run()\nfinally:\n    print('rich' in sys.modules, file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    proc = subprocess.run(
        [sys.executable, "-c", code, "list"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0 and proc.stderr.strip().splitlines()[-1] == "False"
    assert proc.stdout.startswith("topologies")
    env["FORCE_COLOR"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", code, "list"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0 and proc.stderr.strip().splitlines()[-1] == "True"
    assert "\x1b[" in proc.stdout
