"""Tables that fit the screen without cutting a name or a digit.

A :class:`FitTable` holds its cells as plain strings (a cell may be a figure, a name, or a median with its
range: the layout does not look inside), grouped under optional headings (one per workload). When it is
printed it measures the width it is given:

* wide enough for every name and number whole (a column marked ``wrap`` may wrap at spaces): a table with
  short column heads and a legend under it that spells each head out, units included;
* narrower still: the *stacked* layout, one block per row, ``head value`` pairs wrapped at the width.

Rich never has to shorten a cell, so nothing ends in ``…``. The same object renders as an HTML ``<table>``
(:meth:`FitTable.to_html`), so the terminal and the report show the same rows from the same code.

:func:`count` and :func:`size` give the compact forms of numbers (``315.8M``, ``1.2 TiB``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (rich is imported when a table is rendered: ``memsched list`` prints without it)
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.table import Table

__all__ = ["ONE_CELL", "Column", "FitTable", "cell_len", "count", "mapping_lines", "size"]


#: Characters rich counts as one cell each, that ``str.split()`` and rich's ``\s`` treat alike, and that no
#: rule of rich's text handling (tabs, new lines, markup) touches: ' ' to '~', and U+00A1..U+024F without the
#: soft hyphen (U+00AD). Text of these alone is measured without rich, and laid out by ``report/plain.py``.
ONE_CELL = re.compile(r"[ -~\u00a1-\u00ac\u00ae-\u024f]*")


def cell_len(text: str) -> int:
    """The cells ``text`` takes on a terminal (rich's ``cell_len``), without importing rich for the usual text:
    characters of :data:`ONE_CELL` take one cell each."""
    if ONE_CELL.fullmatch(text):
        return len(text)
    from rich.cells import cell_len as rich_cell_len

    return rich_cell_len(text)

#: Narrowest a wrapping column may become before the stacked layout is used instead.
_MIN_WRAP = 16
#: What a column costs besides its cells: one space of padding and a blank divider (adjacent padding collapsed).
_GAP = 2


def count(n: int | float | None) -> str:
    """An event or page count: whole below a million, else four significant digits (``315.8M``, ``1.161G``)."""
    if n is None:
        return "-"
    if abs(n) < 1_000_000:
        return str(int(n)) if float(n).is_integer() else f"{n:.4g}"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{suffix}"
    raise AssertionError("unreachable")  # pragma: no cover


def size(n: int | float | None) -> str:
    """A byte count in binary units with one decimal: ``1.2 TiB``, ``301.1 MiB``, ``512 B``."""
    if n is None:
        return "-"
    v = float(n)
    for suffix, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if abs(v) >= 1 << shift:
            return f"{v / (1 << shift):.1f} {suffix}"
    return f"{v:.0f} B"


def mapping_lines(name: str, value: object, indent: str = "") -> list[str]:
    """A nested document as indented lines of words, not JSON: ``name: key value, key value``, then one line per
    nested mapping (``  latency_us: max 3.5, mean 3.5``); lists of scalars are joined with commas."""

    def scalar(v: object) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, list):
            return ", ".join(scalar(x) for x in v) if v else "none"
        return "-" if v is None else str(v)

    if not isinstance(value, dict):
        return [f"{indent}{name}: {scalar(value)}"]
    flat = [f"{k} {scalar(v)}" for k, v in value.items() if not isinstance(v, dict)]
    out = [f"{indent}{name}: {', '.join(flat)}" if flat else f"{indent}{name}:"]
    for k, v in value.items():
        if isinstance(v, dict):
            out += mapping_lines(str(k), v, indent + "  ")
    return out


@dataclass(frozen=True)
class Column:
    """A column: its short ``head`` (units included), what the legend says it is, and how it is laid out."""

    head: str
    legend: str = ""
    right: bool = False
    #: A text column (notes, figures) that may wrap at spaces; names and numbers never wrap.
    wrap: bool = False


@dataclass
class FitTable:
    """Rows of string cells under column heads, grouped under optional headings; see the module docstring."""

    title: str
    columns: Sequence[Column]
    #: ``(heading or None, rows)``; a heading (a workload's name) is a row of its own above its rows.
    groups: list[tuple[str | None, list[list[str]]]] = field(default_factory=list)
    #: Lines printed under the table (besides the legend of the heads).
    footnotes: list[str] = field(default_factory=list)

    def add_group(self, heading: str | None) -> list[list[str]]:
        rows: list[list[str]] = []
        self.groups.append((heading, rows))
        return rows

    def rows(self) -> Iterator[tuple[str | None, list[str]]]:
        for heading, rows in self.groups:
            for row in rows:
                yield heading, row

    # ---- layout ------------------------------------------------------------------------------------------

    def _indent(self) -> str:
        return "  " if any(h is not None for h, _ in self.groups) else ""

    def natural_widths(self) -> list[int]:
        """Each column's width with every cell on one line (the first column includes the headings)."""
        widths = [cell_len(c.head) for c in self.columns]
        indent = len(self._indent())
        for heading, rows in self.groups:
            if heading is not None:
                widths[0] = max(widths[0], cell_len(heading))
            for row in rows:
                for i, cell in enumerate(row):
                    widths[i] = max(widths[i], cell_len(cell) + (indent if i == 0 else 0))
        return widths

    def min_width(self) -> int:
        """The narrowest table that keeps every name and number whole."""
        need = 0
        for i, (col, w) in enumerate(zip(self.columns, self.natural_widths(), strict=True)):
            need += min(w, max(_MIN_WRAP, self._longest_word(i))) if col.wrap else w
        return need + _GAP * (len(self.columns) - 1)

    def _longest_word(self, i: int) -> int:
        return max((cell_len(word) for _, row in self.rows() for word in row[i].split()), default=0)

    def legend(self) -> list[str]:
        return [f"{c.head}: {c.legend}" for c in self.columns if c.legend] + list(self.footnotes)

    def _table(self) -> Table:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        t = Table(
            title=Text(self.title),  # plain text: a title such as "median [min–max]" is not markup
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
            title_justify="left",
            title_style="bold",
        )
        for c in self.columns:
            t.add_column(c.head, justify="right" if c.right else "left", no_wrap=not c.wrap, overflow="fold")
        indent = self._indent()
        for heading, rows in self.groups:
            if heading is not None:
                t.add_row(Text(heading, style="bold"), *([""] * (len(self.columns) - 1)))
            for row in rows:
                t.add_row(*(Text(cell) for cell in (indent + row[0], *row[1:])))
        return t

    def stacked_parts(self, width: int) -> list[tuple[str, str]]:
        """The stacked layout at ``width`` as (kind, text) lines: the title (``"title"``), each heading
        (``"heading"``), each row's first cell (``"first"``), then its ``head value`` pairs packed into lines
        (``"pairs"``: printed indented by ``len(indent) + 2`` and wrapped inside that indent, so a pair longer than
        a line wraps at its spaces)."""
        out: list[tuple[str, str]] = [("title", self.title)]
        indent = self._indent()
        limit = max(8, width - len(indent) - 2)
        for heading, rows in self.groups:
            if heading is not None:
                out.append(("heading", heading))
            for row in rows:
                out.append(("first", indent + row[0]))
                line = ""
                for c, v in zip(self.columns[1:], row[1:], strict=True):
                    pair = f"{c.head} {v}"
                    if line and cell_len(line) + 2 + cell_len(pair) > limit:
                        out.append(("pairs", line))
                        line = ""
                    line = f"{line}  {pair}" if line else pair
                out.append(("pairs", line))
        return out

    def _stacked(self, width: int) -> list[RenderableType]:
        """One block per row: its first cell, then ``head value`` pairs packed into lines under it (indented;
        a pair longer than a line wraps at its spaces, still indented)."""
        from rich.padding import Padding
        from rich.text import Text

        pad = len(self._indent()) + 2
        out: list[RenderableType] = []
        for kind, text in self.stacked_parts(width):
            if kind == "pairs":
                out.append(Padding(Text(text), (0, 0, 0, pad)))
            else:
                out.append(Text(text, style="bold" if kind in ("title", "heading") else ""))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        width = options.max_width
        if self.min_width() <= width:
            yield self._table()
        else:
            yield from self._stacked(width)
        for line in self.legend():
            yield Text(line, style="dim")

    # ---- HTML ---------------------------------------------------------------------------------------------

    def to_html(self) -> str:
        """The same rows as an HTML table (heads with their legend as a tooltip and under the table)."""
        esc = html.escape
        head = "".join(
            f'<th title="{esc(c.legend)}" class="{"num" if c.right else "txt"}">{esc(c.head)}</th>'
            for c in self.columns
        )
        body = []
        for heading, rows in self.groups:
            if heading is not None:
                body.append(f'<tr class="group"><th colspan="{len(self.columns)}">{esc(heading)}</th></tr>')
            for row in rows:
                cells = "".join(
                    f'<td class="{"num" if c.right else "txt"}">{esc(v)}</td>'
                    for c, v in zip(self.columns, row, strict=True)
                )
                body.append(f"<tr>{cells}</tr>")
        legend = "".join(f"<li>{esc(line)}</li>" for line in self.legend())
        return (
            f'<table class="fit"><caption>{esc(self.title)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>" + (f'<ul class="legend">{legend}</ul>' if legend else "")
        )
