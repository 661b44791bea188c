"""A :class:`~memsched.report.fit.FitTable` as the plain text rich prints off a terminal, without importing rich.

``memsched list`` must answer in well under 150 ms, and rich costs more than half of that on a slow machine:
about 60 ms to import ``rich.console`` and 50 ms to lay out and render the catalogue's tables. Off a terminal
(a pipe, a file, ``$(...)``) rich prints no escape codes, so the output is characters only, and this module
computes the same characters with rich's own layout rules, transcribed from rich 15
(``rich/table.py``: ``_calculate_column_widths``, ``_collapse_widths``, ``_measure_column``, ``_render``;
``rich/_ratio.py``: ``ratio_reduce``; ``rich/_wrap.py``: ``divide_line``; ``rich/text.py``: ``wrap``,
``rstrip_end``, ``truncate``; ``rich/containers.py``: ``Lines.justify``; ``rich/padding.py``; ``rich/measure.py``).

It answers only where that transcription is certain to hold, and returns ``None`` otherwise, so the caller
lets rich render: every character of every cell must be one whose width rich counts as one cell
(``report.fit.ONE_CELL``: printable ASCII and Latin letters, no spaces other than ' ', no combining marks), column
heads must hold no ``[`` or ``:`` (rich reads a head as markup and emoji codes) and the width must leave every
column at least one cell. ``tests/unit/report/test_plain.py`` holds it to rich, character for character, on
every catalogue at many widths and on generated tables, under the rich that is installed (``rich>=13.7``
is allowed; a rich whose rules changed would fail those tests, not print something else unnoticed).
"""

from __future__ import annotations

import builtins
import itertools
import os
import re
import sys
from collections.abc import Iterator

from memsched.report.fit import ONE_CELL, FitTable

__all__ = ["plain_out_width", "plain_text"]


_WORD = re.compile(r"\s*\S+\s*")  # rich/_wrap.py: re_word
_TRAILING_SPACE = re.compile(r"\s+$")  # rich/text.py: _re_whitespace

#: The narrowest width answered here (rich lays out narrower screens in ways not transcribed).
_MIN_WIDTH = 20


def plain_out_width(fixed: int | None) -> int | None:
    """The width rich's stdout console (``Console(width=fixed)``) lays out at when it prints plain characters, or
    None when it would print escape codes, another box, or could not be predicted here (rich's
    ``Console.is_terminal``, ``Console.size`` and ``ConsoleOptions.ascii_only``, rich 15)."""
    env = os.environ
    tty_compatible = env.get("TTY_COMPATIBLE", "")
    if tty_compatible == "1":
        return None
    if tty_compatible != "0":
        force_color = env.get("FORCE_COLOR")
        if force_color is not None:
            if force_color != "":
                return None
        else:
            try:
                if sys.stdout.isatty():
                    return None
            except ValueError:  # (a closed stdout: rich says "not a terminal", and printing fails either way)
                return None
    if hasattr(builtins, "get_ipython") or "IPython" in sys.modules or "idlelib" in sys.modules:
        return None  # (Jupyter and IDLE have rules of their own)
    encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower()
    if not encoding.startswith("utf"):
        return None  # rich draws an ASCII box instead
    width = fixed
    if width is None:
        columns = env.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and len(columns) < 6 else None
    return width if width is not None and width >= _MIN_WIDTH else None


def plain_text(table: FitTable, width: int) -> str | None:
    """What ``Console(width=width).print(table)`` prints off a terminal, or None where this module cannot be
    sure of it (see the module docstring)."""
    texts = [table.title, *table.legend()]
    for heading, rows in table.groups:
        if heading is not None:
            texts.append(heading)
        for row in rows:
            texts.extend(row)
    heads = [c.head for c in table.columns]
    if any("[" in h or ":" in h for h in heads):
        return None
    one_cell = ONE_CELL.fullmatch
    if not all(one_cell(t) for t in texts + heads):
        return None
    lines = _table_lines(table, width) if table.min_width() <= width else _stacked_lines(table, width)
    if lines is None:
        return None
    for line in table.legend():
        lines += _wrap(line, width, None)
    return "".join(line[:width] + "\n" for line in lines)  # (Console.print crops every line at its width)


# ---- rich's text wrapping, for strings of one-cell characters ----------------------------------------------


def _words(text: str) -> Iterator[re.Match[str]]:
    """rich/_wrap.py ``words``: consecutive matches from the start (``re.match`` at each end, not a search)."""
    pos = 0
    while (m := _WORD.match(text, pos)) is not None:
        yield m
        pos = m.end()


def _wrap(text: str, width: int, justify: str | None, *, no_wrap: bool = False) -> list[str]:
    """rich/text.py ``Text.wrap`` of one line of text (overflow "fold"), then ``truncate``; ``justify`` None is
    rich's "default" (no padding)."""
    if no_wrap:
        lines = [text]
    else:
        offsets = _divide_line(text, width)
        bounds = [0, *offsets, len(text)]
        lines = [text[a:b] for a, b in itertools.pairwise(bounds)] if offsets else [text]
        lines = [_rstrip_end(line, width) for line in lines]
    out = []
    for line in lines:
        if justify == "left":
            justified = _truncate(line, width, pad=True)
        elif justify == "right":
            cut = _truncate(line.rstrip(), width)
            justified = " " * (width - len(cut)) + cut
        else:
            justified = line
        out.append(_truncate(justified, width))
    return out


def _divide_line(text: str, width: int) -> list[int]:
    """rich/_wrap.py ``divide_line(text, width, fold=True)``: the offsets to break ``text`` at."""
    breaks: list[int] = []
    offset = 0
    for m in _words(text):
        start, word = m.start(), m.group(0)
        word_length = len(word.rstrip())
        if width - offset >= word_length:
            offset += len(word)
        elif word_length > width:
            folded = [word[i : i + width] for i in range(0, len(word), width)]  # chop_cells
            for k, part in enumerate(folded):
                if start:
                    breaks.append(start)
                if k == len(folded) - 1:
                    offset = len(part)
                else:
                    start += len(part)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _rstrip_end(line: str, size: int) -> str:
    """rich/text.py ``Text.rstrip_end``: drop trailing whitespace beyond ``size``."""
    excess = len(line) - size
    if excess > 0:
        m = _TRAILING_SPACE.search(line)
        if m is not None:
            return line[: len(line) - min(len(m.group(0)), excess)]
    return line


def _truncate(line: str, width: int, *, pad: bool = False) -> str:
    """rich/text.py ``Text.truncate`` (overflow "fold", which crops here)."""
    length = len(line)
    if length > width:
        line = line[:width]
    if pad and length < width:
        line += " " * (width - length)
    return line


def _shape(lines: list[str], width: int) -> list[str]:
    """``Segment.split_and_crop_lines(..., pad=True)``: every line cropped or padded to ``width``."""
    return [line[:width] + " " * (width - len(line)) for line in lines]


# ---- rich's table layout ---------------------------------------------------------------------------------


def _measure_column(cells: list[str], pad: int, max_width: int) -> int:
    """``Table._measure_column``'s maximum (no fixed, minimum or maximum width on the column): the widest of
    ``Measurement.get`` of each cell's ``Padding`` (``pad`` cells on the right) of its ``Text``. A ``Text``
    measures its length at most (``Text.__rich_measure__``), capped at the width; only maxima are used."""
    if max_width < 1:
        return 0
    if max_width - pad < 1:
        return max_width  # (Padding.__rich_measure__ with no room inside)
    widest = 0
    for text in cells:
        inner = min(len(text), max_width)  # Measurement.get(Text): normalised, capped, 0 below one cell
        widest = max(widest, min(inner + pad, max_width))
    return widest


def _ratio_reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]) -> list[int]:
    """rich/_ratio.py ``ratio_reduce``."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining = total
    out = []
    for ratio, maximum, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            distributed = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - distributed)
            remaining -= distributed
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _collapse_widths(widths: list[int], wrapable: list[bool], max_width: int) -> list[int]:
    """rich/table.py ``Table._collapse_widths``."""
    total = sum(widths)
    excess = total - max_width
    if any(wrapable):
        while total and excess > 0:
            max_column = max(w for w, ok in zip(widths, wrapable, strict=True) if ok)
            second = max(w if ok and w != max_column else 0 for w, ok in zip(widths, wrapable, strict=True))
            difference = max_column - second
            ratios = [1 if (w == max_column and ok) else 0 for w, ok in zip(widths, wrapable, strict=True)]
            if not any(ratios) or not difference:
                break
            widths = _ratio_reduce(excess, ratios, [min(excess, difference)] * len(widths), widths)
            total = sum(widths)
            excess = total - max_width
    return widths


def _table_lines(table: FitTable, width: int) -> list[str] | None:
    """``FitTable._table()`` printed at ``width``: rich's ``Table`` with ``box.SIMPLE_HEAD``, no edge, no edge
    padding, padding collapsed (each column but the last has one cell of padding on its right)."""
    cols = table.columns
    n = len(cols)
    indent = table._indent()
    # every column's cells as rich sees them, header first: (text, is_heading_row)
    body: list[tuple[list[str], bool]] = []
    for heading, rows in table.groups:
        if heading is not None:
            body.append(([heading, *([""] * (n - 1))], True))
        for row in rows:
            body.append(([indent + row[0], *row[1:]], False))
    pads = [0 if i == n - 1 else 1 for i in range(n)]
    column_cells = [[cols[i].head] + [cells[i] for cells, _ in body] for i in range(n)]
    extra = n - 1  # the dividers between columns
    max_width = width - extra
    widths = [_measure_column(column_cells[i], pads[i], max_width) or 1 for i in range(n)]
    if sum(widths) > max_width:
        widths = _collapse_widths(widths, [c.wrap for c in cols], max_width)
        if sum(widths) > max_width:
            widths = _ratio_reduce(sum(widths) - max_width, [1] * n, widths, widths)
        widths = [_measure_column(column_cells[i], pads[i], widths[i]) for i in range(n)]
    if any(w - p < 1 for w, p in zip(widths, pads, strict=True)):
        return None  # (a column with no room for a character: left to rich)
    table_width = sum(widths) + extra

    def cell_lines(i: int, text: str) -> list[str]:
        inner = widths[i] - pads[i]
        justify = "right" if cols[i].right else "left"
        lines = _shape(_wrap(text, inner, justify, no_wrap=not cols[i].wrap), inner)
        return [line + " " * pads[i] for line in lines]

    def row_lines(texts: list[str], header: bool) -> list[str]:
        cells = [cell_lines(i, t) for i, t in enumerate(texts)]
        height = max(len(c) for c in cells)
        shaped = []
        for i, c in enumerate(cells):
            blank = [" " * widths[i]] * (height - len(c))
            shaped.append(blank + c if header else c + blank)  # (the header aligns at the bottom)
        return [" ".join(c[k] for c in shaped) for k in range(height)]

    lines = _wrap(table.title, table_width, "left") if table.title else []  # (rich: ``if self.title``)
    lines += row_lines([c.head for c in cols], True)
    lines.append("\u2500" * table_width)
    for texts, _heading in body:
        lines += row_lines(texts, False)
    return lines


def _stacked_lines(table: FitTable, width: int) -> list[str] | None:
    """``FitTable._stacked(width)`` printed at ``width``: titles and first cells as text, the ``head value``
    lines of each row inside a left ``Padding``."""
    indent = table._indent()
    pad = len(indent) + 2
    if width - pad < 1:
        return None
    lines: list[str] = []
    for kind, text in table.stacked_parts(width):
        if kind == "pairs":
            lines += [" " * pad + line for line in _shape(_wrap(text, width - pad, None), width - pad)]
        else:
            lines += _wrap(text, width, None)
    return lines
