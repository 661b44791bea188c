"""The results database of sweeps and tuning runs (DuckDB), and how to read it.

>>> import memsched.results
>>> df = memsched.results.open("results.duckdb")                    # doctest: +SKIP
>>> df.groupby("policy")["elapsed_s"].median()                      # doctest: +SKIP

:func:`open` gives every run (or one sweep's) as a pandas DataFrame, :func:`query` runs SQL over the database
read-only (:func:`query_rows` gives its first rows as DuckDB's own Python values),
:func:`export` writes CSV or Parquet. The schema is in
``results/store.py``; how concurrent writers share a file in ``results/lock.py``.
"""

from __future__ import annotations

import errno
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from memsched.errors import ConfigError, KernelError, UnknownNameError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from memsched.results.store import FIXED_COLUMNS, Outcome, ResultStore, record_digest

__all__ = ["FIXED_COLUMNS", "Outcome", "QueryRows", "ResultStore", "export", "open", "query", "query_rows",
           "record_digest", "sweeps"]  # fmt: skip

_T = TypeVar("_T")

#: Where sweeps, tuning runs and ``memsched results`` keep their results unless told otherwise.
DEFAULT_DB = "results.duckdb"

_SWEEPS_SQL = """
SELECT s.name, s.kind, s.id, s.cells,
       count(r.key) FILTER (WHERE r.status = 'ok') AS ok,
       count(r.key) FILTER (WHERE r.status = 'failed') AS failed,
       s.cells - count(r.key) AS missing,
       round(sum(r.wall_s), 1) AS wall_s, s.model_version, s.created_at
FROM sweeps s LEFT JOIN sweep_cells c ON c.sweep = s.id LEFT JOIN runs r ON r.key = c.key
GROUP BY s.name, s.kind, s.id, s.cells, s.model_version, s.created_at ORDER BY s.created_at
"""


def open(path: Path | str, *, sweep: str | None = None) -> pd.DataFrame:
    """Every run in the database at ``path`` (or of one sweep, by name or id) as a DataFrame, one row per run."""
    from memsched.results.store import ResultStore

    with ResultStore(path, read_only=True, field="path") as store:
        return store.frame(*_select_runs(store, sweep))


def query(path: Path | str, sql: str) -> pd.DataFrame:
    """The result of one SQL statement over the database, opened read-only (tables ``runs``, ``sweeps``,
    ``sweep_cells``, ``trials``). The statement can read no other file and write none (``COPY ... TO``,
    ``read_csv`` and ``ATTACH`` are refused). SIGINT or SIGTERM stops the statement at once."""
    return _query(path, sql, lambda result: result.df())


@dataclass(frozen=True, slots=True)
class QueryRows:
    """The head of a query's result as DuckDB's own Python values: HUGEINT an ``int``, DECIMAL a ``Decimal``,
    BLOB ``bytes``, UUID a ``uuid.UUID``, NULL ``None`` and NaN a float NaN (a pandas frame holds the first two
    as doubles and the last two as the same NaN)."""

    columns: tuple[str, ...]
    #: Each column's DuckDB type as DuckDB spells it (``HUGEINT``, ``DECIMAL(38,3)``, ``INTEGER[]``).
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    #: Whether the result had more rows than were asked for.
    truncated: bool


def query_rows(path: Path | str, sql: str, limit: int) -> QueryRows:
    """The first ``limit`` rows of :func:`query`'s result as Python values (what ``memsched results query``
    prints). Only ``limit + 1`` rows are fetched: DuckDB streams the result, so ``SELECT * FROM
    range(300000000)`` costs what its head does."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0 (got {limit})")
    return _query(path, sql, lambda result: _rows(result, limit))


def _query(path: Path | str, sql: str, fetch: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
    import duckdb

    from memsched.results.interrupt import interrupt_on_signals
    from memsched.results.store import ResultStore, interruptible

    with ResultStore(path, read_only=True, sandboxed=True, field="path") as store:
        con = store.connection()
        try:
            count = len(con.extract_statements(sql))
            if count != 1:
                raise ConfigError("query", sql, f"must be exactly one SQL statement, not {count}")
            with interrupt_on_signals(con), interruptible():
                return fetch(con.execute(sql))
        except duckdb.Error as e:
            raise ConfigError("query", sql, f"must be valid read-only SQL over runs, sweeps, sweep_cells, trials "
                              f"({str(e).strip().splitlines()[0]})") from None


def _rows(result: duckdb.DuckDBPyConnection, limit: int) -> QueryRows:
    """The first ``limit`` rows of a pending ``result`` as Python values, fetching ``limit + 1``."""
    described = result.description or []  # None for a statement without a result
    rows: list[tuple[Any, ...]] = []
    while len(rows) <= limit:  # fetchmany may stop at a vector's end
        part = result.fetchmany(limit + 1 - len(rows))
        if not part:
            break
        rows.extend(part)
    return QueryRows(
        columns=_unique_names([str(d[0]) for d in described]),
        types=tuple(str(d[1]) for d in described),
        rows=rows[:limit],
        truncated=len(rows) > limit,
    )


def _unique_names(names: list[str]) -> tuple[str, ...]:
    """Column names made unique as DuckDB's ``df()`` does (``a, a`` is ``a, a_1``): a JSON row is an object,
    and a name given twice kept only its last value."""
    seen: set[str] = set()
    repeats: dict[str, int] = {}
    out = []
    for name in names:
        unique = name
        while unique in seen:
            repeats[name] = repeats.get(name, 0) + 1
            unique = f"{name}_{repeats[name]}"
        seen.add(unique)
        out.append(unique)
    return tuple(out)


def sweeps(path: Path | str) -> pd.DataFrame:
    """One row per sweep or tuning run: its cells, how many finished ok, failed or are missing, and wall time."""
    from memsched.results.store import ResultStore

    with ResultStore(path, read_only=True, field="path") as store:
        return store.frame(_SWEEPS_SQL)


def export(path: Path | str, dest: Path, fmt: Literal["csv", "parquet"], *, sweep: str | None = None) -> int:
    """Write the runs (or one sweep's) to ``dest`` as CSV or Parquet, atomically; returns the number of rows.
    A file that cannot be written is a ``KernelError`` naming ``dest``."""
    import duckdb

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    from memsched.results.store import ResultStore

    with ResultStore(path, read_only=True, field="path") as store:
        sql, params = _select_runs(store, sweep)
        con = store.connection()
        try:
            con.execute(f"COPY ({sql}) TO '{_quote(tmp)}' (FORMAT {fmt.upper()})", params)
            os.replace(tmp, dest)
        except OSError as e:  # os.replace
            raise KernelError(e.errno or errno.EIO, f"cannot write {dest}: {e.strerror or e}") from e
        except duckdb.IOException as e:  # COPY: DuckDB keeps no errno
            raise KernelError(errno.EIO, f"cannot write {dest}: {str(e).strip().splitlines()[0]}") from e
        finally:
            if tmp.exists():
                tmp.unlink()
        (count,) = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone() or (0,)
    return int(count)


def _select_runs(store: ResultStore, sweep: str | None) -> tuple[str, list[object]]:
    if sweep is None:
        return "SELECT * FROM runs ORDER BY key", []
    sql = (
        "SELECT * FROM runs WHERE key IN (SELECT key FROM sweep_cells WHERE sweep IN (SELECT unnest(?))) "
        "ORDER BY key"
    )
    return sql, [_sweep_ids(store, sweep)]


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _sweep_ids(store: ResultStore, sweep: str) -> list[str]:
    rows = store.connection().execute("SELECT id FROM sweeps WHERE id = ? OR name = ?", [sweep, sweep]).fetchall()
    if not rows:
        names = [n for (n,) in store.connection().execute("SELECT DISTINCT name FROM sweeps ORDER BY 1").fetchall()]
        raise UnknownNameError("--sweep", sweep, names or ["(no sweeps in this database)"])
    return [i for (i,) in rows]


def __getattr__(name: str) -> Any:
    """The store's names, imported on first use (PEP 562): the command line reads :data:`DEFAULT_DB` for its
    option defaults without loading the store."""
    if name not in ("FIXED_COLUMNS", "Outcome", "ResultStore", "record_digest"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("memsched.results.store"), name)
    globals()[name] = value
    return value
