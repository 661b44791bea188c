"""``memsched results {show,export,query}``: read the results database of sweeps and tuning runs."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memsched.cli.app import app
from memsched.cli.common import (
    check_writable,
    emit_json,
    whole_number,
)
from memsched.errors import ConfigError
from memsched.results import DEFAULT_DB

if TYPE_CHECKING:
    import pandas as pd

    from memsched.results import QueryRows

results_app = typer.Typer(help="The results database of sweeps and tuning runs (DuckDB).", no_args_is_help=True)
app.add_typer(results_app, name="results")

DbOpt = Annotated[Path, typer.Option("--db", help="the results database (DuckDB file)")]
SweepOpt = Annotated[str | None, typer.Option("--sweep", help="only the runs of this sweep (name or id)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]



@contextmanager
def _db_option() -> Iterator[None]:
    """The Python API's errors about its ``path`` argument, as the command line's ``--db`` option."""
    try:
        yield
    except ConfigError as e:
        if e.field != "path":
            raise
        raise ConfigError("--db", e.value, e.allowed, source=e.source) from None


#: Columns ``show --sweep`` groups runs by, when the sweep has them.
_SHOW_KEYS = ("topology", "workload", "policy")


@results_app.command("show")
def show(db: DbOpt = Path(DEFAULT_DB), sweep: SweepOpt = None, json_out: JsonOpt = False) -> None:
    """The sweeps and tuning runs in the database, or one sweep's runs grouped by cell (seeds together)."""
    from memsched import results
    from memsched.cli.common import out_console

    with _db_option():
        if sweep is None:
            frame = results.sweeps(db)
            title = f"{db}: sweeps and tuning runs"
        else:
            frame = _grouped(results.open(db, sweep=sweep))
            title = f"{db}: sweep {sweep}"
    if json_out:
        emit_json(_records(frame))
    else:
        out_console.print(frame_table(frame, title))


@results_app.command("export")
def export(
    db: DbOpt = Path(DEFAULT_DB),
    csv: Annotated[Path | None, typer.Option("--csv", help="write the runs as CSV")] = None,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="write the runs as Parquet")] = None,
    sweep: SweepOpt = None,
) -> None:
    """Write every run (or one sweep's) to a CSV or Parquet file, one row per run."""
    from memsched import results

    if (csv is None) == (parquet is None):
        given = "neither" if csv is None else f"--csv {csv} and --parquet {parquet}"
        raise ConfigError("--csv/--parquet", given, "exactly one of them must be given")
    dest, fmt = (csv, "csv") if csv is not None else (parquet, "parquet")
    assert dest is not None
    if os.path.realpath(dest) in {os.path.realpath(p) for p in (db, f"{db}.wal", f"{db}.lock")}:
        raise ConfigError(f"--{fmt}", str(dest), f"must not be the database it exports (--db {db}) or its files")
    check_writable(dest, f"--{fmt}")
    with _db_option():
        n = results.export(db, dest, "csv" if fmt == "csv" else "parquet", sweep=sweep)
    print(f"wrote {n} runs to {dest}", file=sys.stderr)


#: Rows ``results query`` prints unless ``--limit`` says otherwise, and the most it prints: a million rows
#: of ``runs`` (each with its ``record`` document, a few KiB) is already gigabytes of JSON; every run goes to a
#: file with ``results export``.
QUERY_LIMIT_DEFAULT = 10_000
QUERY_LIMIT_MAX = 1_000_000


@results_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="one SQL statement over runs, sweeps, sweep_cells, trials")],
    db: DbOpt = Path(DEFAULT_DB),
    json_out: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV on stdout")] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            parser=whole_number,
            help=f"print at most this many rows (1 to {QUERY_LIMIT_MAX}); stderr says when rows were left out",
        ),
    ] = QUERY_LIMIT_DEFAULT,
) -> None:
    """Run SQL over the database, read-only, and print the result as a table, JSON or CSV (the first
    ``--limit`` rows)."""
    from memsched import results
    from memsched.cli.common import out_console
    from memsched.results.values import json_value

    if json_out and csv:
        raise ConfigError("--json/--csv", "both", "choose one of them (the result goes to stdout once)")
    if not 1 <= limit <= QUERY_LIMIT_MAX:
        raise ConfigError("--limit", str(limit), f"must be from 1 to {QUERY_LIMIT_MAX} (results export writes "
                          "every run to a file)")  # fmt: skip
    with _db_option():
        head = results.query_rows(db, sql, limit)
    if json_out:
        emit_json([dict(zip(head.columns, map(json_value, row), strict=True)) for row in head.rows])
    elif csv:
        _write_csv(head)
    else:
        out_console.print(_rows_table(head))
    if head.truncated:
        more = f"--limit N prints up to {QUERY_LIMIT_MAX}" if limit < QUERY_LIMIT_MAX else "results export writes all"
        print(f"memsched: printed the first {limit} rows; the result has more ({more})", file=sys.stderr)


def _write_csv(head: QueryRows) -> None:
    """The rows as DuckDB's CSV writer writes them (``values.text_value``), quoted where CSV needs it."""
    import csv

    from memsched.results.values import text_value

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(head.columns)
    writer.writerows([text_value(v) for v in row] for row in head.rows)


def _rows_table(head: QueryRows, max_rows: int = 200) -> Any:
    """A query's rows as a rich table: each value as its CSV text (NULL empty, NaN ``nan``), floats shortened
    as :func:`_cell` does; never read as rich markup (``[[nan]]`` printed ``[]``)."""
    from rich.table import Table
    from rich.text import Text

    from memsched.results.values import text_value

    table = Table()
    for col in head.columns:
        table.add_column(col, overflow="fold")
    for row in head.rows[:max_rows]:
        table.add_row(*(Text(_cell(v) if isinstance(v, float) and math.isfinite(v) else text_value(v)) for v in row))
    if len(head.rows) > max_rows:
        table.caption = f"{len(head.rows) - max_rows} more rows (use --json, or results export)"
    return table


def _grouped(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell over seeds: the cell's keys, runs, failures and the median of the ranking figure."""
    if frame.empty:
        return frame
    knobs = [c for c in frame.columns if c.startswith(("set_", "topo_"))]
    keys = [k for k in _SHOW_KEYS if k in frame.columns] + knobs
    frame = frame.assign(ok=frame["status"] == "ok", failed=frame["status"] == "failed")
    agg: dict[str, Any] = {"runs": ("key", "count"), "ok": ("ok", "sum"), "failed": ("failed", "sum")}
    if "score_value" in frame.columns:
        agg["median_score"] = ("score_value", "median")
    if "score_name" in frame.columns:
        agg["score"] = ("score_name", "first")
    grouped: pd.DataFrame = frame.groupby(keys, dropna=False).agg(**agg).reset_index()
    return grouped


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as JSON objects. Float columns keep every digit (pandas' ``to_json`` writes 10 decimal places,
    so ``1e-12`` became ``0.0``); a NaN or an infinity is ``null``."""
    doc: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    for col in frame.columns:
        if frame[col].dtype.kind == "f":
            for row, value in zip(doc, frame[col].tolist(), strict=True):
                row[str(col)] = value if math.isfinite(value) else None
    return doc


def frame_table(frame: pd.DataFrame, title: str | None, max_rows: int = 200) -> Any:
    """A DataFrame as a rich table (first ``max_rows`` rows; the caption says how many were left out)."""
    from rich.table import Table

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame.head(max_rows).itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    if len(frame) > max_rows:
        table.caption = f"{len(frame) - max_rows} more rows (use --json, or results export)"
    return table


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if hasattr(value, "tolist") and not pd.api.types.is_scalar(value):  # a LIST column's numpy array
        return str(value.tolist())
    if isinstance(value, float):  # every digit where that is short (1255019.7, 123456789012.5), else ten
        shortest = repr(value)
        return shortest if len(shortest) <= 16 else f"{value:.10g}"
    return str(value)
