"""The results database: one DuckDB file, one row per simulated run, written as each result arrives.

Tables
``runs``
    One row per cell, keyed by the cell's hash (``key``: its full spec plus the model version). Fixed columns:
    ``status`` (``ok`` or ``failed``), ``error``, ``attempts``, the identity (``family``, ``workload``,
    ``policy``, ``policy_version``, ``label``, ``role``, ``base``, ``topology``, ``topology_family``, ``seed``,
    ``model_version``), the cell as JSON (``cell``, ``sets``, ``topology_params``), where and how long it ran
    (``wall_s``, ``host``, ``pid``, ``executor``, ``finished_at``), the record's ``--json`` document without
    its timeline (``record``) and the SHA-256 of the whole document, timeline included (``record_sha256``).
    Then one column per swept value (``set_<key>``, ``topo_<param>``) and one per scalar figure of the record,
    nested names joined by ``_`` (``elapsed_s``, ``vmstat_numa_hint_faults``, ``config_policy_scan_size_mb``,
    ``score_value``); those columns are added as new names appear, typed by their values (BIGINT, widened to
    DOUBLE, or VARCHAR when values disagree). Lists and maps keyed by task or node ids stay in ``record``.
``sweeps`` / ``sweep_cells``
    Each sweep or tuning run (``kind``), its spec, and the keys of its cells, so a database can hold many.
``trials``
    Each tuning trial: its parameters, objective value and state, and the keys of the cells it ran.

A cell already ``ok`` is never written again (``ON CONFLICT DO NOTHING``); a ``failed`` row is replaced when the
cell is rerun. Timelines, when asked for, go to ``<db>.timelines/<key>.parquet``, written before the row that
says the run finished. Every open of the file goes through :class:`~memsched.results.lock.DbLock`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memsched.errors import ConfigError, MemschedError
from memsched.record import RunRecord
from memsched.results.lock import DbLock

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = ["FIXED_COLUMNS", "Outcome", "ResultStore", "record_digest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, error VARCHAR, attempts INTEGER,
    family VARCHAR, workload VARCHAR, policy VARCHAR, policy_version INTEGER, label VARCHAR, role VARCHAR,
    base VARCHAR, topology VARCHAR, topology_family VARCHAR, seed BIGINT, model_version VARCHAR,
    cell JSON, sets JSON, topology_params JSON,
    wall_s DOUBLE, host VARCHAR, pid INTEGER, executor VARCHAR, finished_at TIMESTAMP,
    record JSON, record_sha256 VARCHAR
);
CREATE TABLE IF NOT EXISTS sweeps (
    id VARCHAR PRIMARY KEY, name VARCHAR, kind VARCHAR, spec JSON, model_version VARCHAR,
    created_at TIMESTAMP, cells INTEGER
);
CREATE TABLE IF NOT EXISTS sweep_cells (sweep VARCHAR, key VARCHAR, PRIMARY KEY (sweep, key));
CREATE TABLE IF NOT EXISTS trials (
    study VARCHAR, number INTEGER, params JSON, value DOUBLE, state VARCHAR, keys JSON,
    PRIMARY KEY (study, number)
);
"""

FIXED_COLUMNS = (
    "key", "status", "error", "attempts", "family", "workload", "policy", "policy_version", "label", "role",
    "base", "topology", "topology_family", "seed", "model_version", "cell", "sets", "topology_params",
    "wall_s", "host", "pid", "executor", "finished_at", "record", "record_sha256",
)  # fmt: skip
_IDENTITY = ("family", "workload", "policy", "policy_version", "label", "role", "base", "topology",
             "topology_family", "seed", "model_version")  # fmt: skip
_WIDER = {("BIGINT", "DOUBLE"): "DOUBLE", ("DOUBLE", "BIGINT"): "DOUBLE"}
_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Outcome:
    """One finished cell as the store writes it: the cell's identity (``cell``: a JSON-able document with the
    keys of :data:`_IDENTITY`, ``sets`` and ``topology_params``), its record or its error, and where it ran."""

    key: str
    cell: Mapping[str, Any]
    record: RunRecord | None
    error: str | None
    wall_s: float
    host: str
    pid: int
    attempts: int = 1
    executor: str = "local"

    @property
    def ok(self) -> bool:
        return self.record is not None


def record_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of a record's ``--json`` document in canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(doc).encode()).hexdigest()


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class ResultStore:
    """A results database file, opened under its lock only while it is used (see ``results/lock.py``)."""

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        sandboxed: bool = False,
        timeout_s: float = 600.0,
        field: str = "--db",
    ) -> None:
        """``sandboxed`` (read-only stores only): the connection may touch no file but the database, for SQL a
        user wrote (no ``COPY ... TO``, ``read_csv``, ``ATTACH``, ``INSTALL``), and no statement can lift that.
        ``field``: what errors call the path (the command line's ``--db``, the Python API's ``path``)."""
        if sandboxed and not read_only:
            raise ValueError("a sandboxed results store must be read-only")
        self.path = Path(path)
        self.field = field
        self.read_only = read_only
        self.sandboxed = sandboxed
        self.timeout_s = timeout_s
        self.lock = DbLock(self.path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._columns: dict[str, str] = {}
        self._vetted = False  # an existing file was found to be ours (or empty) before it was opened for writing
        self._con_ever = False  # the file was opened once (its lock file is then the database's, and stays)
        if read_only and not self.path.is_file():
            raise ConfigError(self.field, str(self.path), "must be an existing results database")

    # ---- opening and letting go -----------------------------------------------------------------------------
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open connection, opening the file (and waiting for the lock) if this store let it go."""
        if self._con is not None:
            return self._con
        made_lock = not self.lock.path.exists()
        self.lock.acquire(self.timeout_s)
        try:
            if not self.read_only and not self._vetted and self.path.exists():
                self._vet_existing()
            con = self._open(read_only=self.read_only)
            try:
                self._columns = self._schema(con, create=not self.read_only)
            except BaseException:
                con.close()
                raise
        except BaseException:
            if made_lock and not self._con_ever:  # a file refused (not ours, not DuckDB): leave nothing beside it
                self.lock.path.unlink(missing_ok=True)
            self.lock.release()
            raise
        self._con = con
        self._con_ever = True
        return con

    def _vet_existing(self) -> None:
        """Refuse an existing DuckDB file that holds tables but not ours, before anything is written to it: it is
        looked at through a read-only connection, so a foreign database is left as it was. An empty one is fine."""
        import duckdb

        with contextlib.closing(self._open(read_only=True)) as con:
            try:
                (tables,) = con.execute("SELECT count(*) FROM information_schema.tables").fetchone() or (0,)
            except duckdb.Error as e:
                raise self._not_ours(e) from None
            if tables:
                self._schema(con, create=False)
        self._vetted = True

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        import duckdb

        try:
            return duckdb.connect(str(self.path), read_only=read_only, config=self._config())
        except duckdb.Error as e:
            raise ConfigError(
                self.field, str(self.path), f"must be a DuckDB results database ({_first_line(e)})"
            ) from None

    def _schema(self, con: duckdb.DuckDBPyConnection, *, create: bool) -> dict[str, str]:
        """The columns of ``runs`` by type, after making the tables if ``create``; a ConfigError if the file holds
        other tables than memsched's."""
        import duckdb

        try:
            if create:
                con.execute(_SCHEMA)
            con.execute("SELECT 1 FROM sweeps, sweep_cells, trials LIMIT 0")  # a DuckDB file, but is it ours?
            return {name: kind for name, kind, *_ in con.execute("DESCRIBE runs").fetchall()}
        except duckdb.Error as e:
            raise self._not_ours(e) from None

    def _not_ours(self, error: BaseException) -> ConfigError:
        return ConfigError(self.field, str(self.path), f"must be a memsched results database ({_first_line(error)})")

    def _config(self) -> dict[str, str | bool | int | float | list[str]]:
        if not self.sandboxed:
            return {}
        # enable_external_access=false refuses every file but this one (COPY, table functions over files,
        # ATTACH, extensions); lock_configuration=true makes SET and PRAGMA unable to turn it back on.
        return {"enable_external_access": False, "lock_configuration": True}

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        self.lock.release()

    def yield_if_contended(self) -> bool:
        """Close the file if another process waits for it (it reopens on the next use); True if it did."""
        if self._con is not None and self.lock.contended():
            self.close()
            return True
        return False

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        with interruptible():
            con = self.connection()
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with interruptible():
            return self.connection().execute(sql, list(params)).fetchall()

    # ---- reading ----------------------------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        """Keys of every cell that finished ``ok`` (by any sweep)."""
        return {k for (k,) in self._fetch("SELECT key FROM runs WHERE status = 'ok'")}

    def records(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The ``record`` documents of those ``keys`` that finished ``ok``."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self._fetch("SELECT key, record FROM runs WHERE status = 'ok' AND key IN (SELECT unnest(?))", [wanted])
        return {k: json.loads(doc) for k, doc in rows}

    def failures(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        sql = "SELECT key, error FROM runs WHERE status = 'failed' AND key IN (SELECT unnest(?))"
        rows = self._fetch(sql, [wanted])
        return dict(rows)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The result of ``sql`` as a pandas DataFrame."""
        with interruptible():
            return self.connection().execute(sql, list(params)).df()

    # ---- writing ----------------------------------------------------------------------------------------------
    def register_sweep(
        self, sweep_id: str, name: str, kind: str, spec: Mapping[str, Any], keys: Sequence[str]
    ) -> None:
        """Record a sweep (or tuning run) and the keys of its cells; registering again adds cells to it."""
        import pandas as pd

        with self._transaction() as con:
            con.execute(
                "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
                [sweep_id, name, kind, _canonical(spec), spec.get("model_version"), _now()],
            )
            con.register("_members", pd.DataFrame({"sweep": [sweep_id] * len(keys), "key": list(keys)}))
            try:
                con.execute("INSERT INTO sweep_cells SELECT DISTINCT * FROM _members ON CONFLICT DO NOTHING")
            finally:
                con.unregister("_members")
            con.execute(
                "UPDATE sweeps SET cells = (SELECT count(*) FROM sweep_cells WHERE sweep = ?) WHERE id = ?",
                [sweep_id, sweep_id],
            )

    def put_trials(self, study: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                [
                    [study, r["number"], _canonical(r["params"]), r["value"], r["state"], _canonical(r["keys"])]
                    for r in rows
                ],
            )

    def commit(self, outcomes: Sequence[Outcome], *, timelines: Path | None = None) -> set[str]:
        """Write finished cells in one transaction (their timelines first, when ``timelines`` is a folder). Returns
        the keys among them that were already finished (by another process: those rows are left as they were)."""
        if not outcomes:
            return set()
        import pandas as pd

        if timelines is not None:
            timelines.mkdir(parents=True, exist_ok=True)
            for o in outcomes:
                if o.record is not None and isinstance(o.record.get("timeline"), Mapping):
                    write_timeline(timelines / f"{o.key}.parquet", o.record["timeline"])
        rows = [self._row(o) for o in outcomes]
        with interruptible():
            self._fit_columns(self.connection(), rows)
        names = sorted(set().union(*rows))
        # One vectorised INSERT of a DataFrame: executemany binds row by row (about 10 ms a row here).
        batch = pd.DataFrame([[self._value(n, r.get(n)) for n in names] for r in rows], columns=names, dtype=object)
        keys = [o.key for o in outcomes]
        with self._transaction() as con:
            con.execute("DELETE FROM runs WHERE status = 'failed' AND key IN (SELECT unnest(?))", [keys])
            found = con.execute("SELECT key FROM runs WHERE key IN (SELECT unnest(?))", [keys]).fetchall()
            before = {k for (k,) in found}
            con.register("_batch", batch)
            try:
                con.execute("INSERT INTO runs BY NAME SELECT * FROM _batch ON CONFLICT DO NOTHING")
            finally:
                con.unregister("_batch")
        return before

    def _row(self, o: Outcome) -> dict[str, Any]:
        row: dict[str, Any] = {k: o.cell.get(k) for k in _IDENTITY}
        sets = dict(o.cell.get("sets", {}))
        params = dict(o.cell.get("topology_params", {}))
        row |= {
            "key": o.key,
            "status": "ok" if o.ok else "failed",
            "error": o.error,
            "attempts": o.attempts,
            "cell": _canonical(o.cell),
            "sets": _canonical(sets),
            "topology_params": _canonical(params),
            "wall_s": round(o.wall_s, 6),
            "host": o.host,
            "pid": o.pid,
            "executor": o.executor,
            "finished_at": _now(),
        }
        row |= {column_name("set_" + k): v for k, v in sets.items()}
        row |= {column_name("topo_" + k): v for k, v in params.items()}
        if o.record is not None:
            doc = o.record.to_json()
            row["record_sha256"] = record_digest(doc)
            doc.pop("timeline", None)
            row["record"] = _canonical(doc)
            for name, value in flatten(doc).items():
                row.setdefault(name, value)
        return row

    def _fit_columns(self, con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add the columns these rows bring and widen those whose values no longer fit."""
        for row in rows:
            for name, value in row.items():
                if name in FIXED_COLUMNS or value is None:
                    continue
                kind = _duck_type(value)
                have = self._columns.get(name)
                if have is None:
                    con.execute(f'ALTER TABLE runs ADD COLUMN IF NOT EXISTS "{name}" {kind}')
                    self._columns[name] = kind
                elif have not in (kind, "VARCHAR") and _WIDER.get((have, kind)) != have:
                    wider = _WIDER.get((have, kind), "VARCHAR")
                    con.execute(f'ALTER TABLE runs ALTER COLUMN "{name}" TYPE {wider}')
                    self._columns[name] = wider

    def _value(self, name: str, value: Any) -> Any:
        if value is None or name in FIXED_COLUMNS:
            return value
        kind = self._columns.get(name)
        if kind == "VARCHAR" and not isinstance(value, str):
            return _canonical(value)
        if kind == "DOUBLE":
            return float(value)
        return value


def column_name(name: str) -> str:
    """A figure or setting name as a column name: letters, digits and ``_``."""
    return _NAME.sub("_", name)


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar figures of a record document, nested names joined by ``_``; lists, and maps keyed by ids (task or
    node numbers), are left to the ``record`` column."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = column_name(prefix + key)
        if not prefix and key in FIXED_COLUMNS:
            continue
        if isinstance(value, Mapping):
            if value and all(isinstance(k, str) and k[:1].isalpha() for k in value):
                out |= flatten(value, name + "_")
        elif isinstance(value, bool | int | float | str):
            out[name] = value
    return out


def write_timeline(path: Path, timeline: Mapping[str, Any]) -> None:
    """One Parquet file of a run's timeline samples (one row per sample), written atomically."""
    import duckdb
    import pandas as pd

    columns = {k: v for k, v in timeline.items() if isinstance(v, list)}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise MemschedError(f"timeline of {path.stem} has columns of different lengths: {sorted(lengths)}")
    frame = pd.DataFrame(
        {k: [_canonical(x) if isinstance(x, Mapping) else x for x in v] for k, v in columns.items()}
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    con = duckdb.connect()
    try:
        con.from_df(frame).write_parquet(str(tmp))
    finally:
        con.close()
    os.replace(tmp, path)


@contextmanager
def interruptible() -> Iterator[None]:
    """DuckDB turns Ctrl-C during a statement into its own error; make it the KeyboardInterrupt it was (the
    statement's transaction is rolled back, so nothing is half-written)."""
    import duckdb

    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except RuntimeError as e:
        if "interrupted" in str(e).lower():
            raise KeyboardInterrupt from None
        raise


def _duck_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
