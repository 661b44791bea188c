"""The results database: one row per cell, failures replaced by later successes, columns that follow the figures,
timelines to Parquet, and the read side (open, query, export)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import time
from pathlib import Path

import duckdb
import pytest

from memsched import results
from memsched.errors import ConfigError
from memsched.record import RunRecord
from memsched.results.lock import DbLock
from memsched.results.store import Outcome, ResultStore, flatten, record_digest


def record(elapsed: float | int | str, *, extra: dict[str, object] | None = None) -> RunRecord:
    figures: dict[str, object] = {
        "workload": "numa02", "policy": "none", "elapsed_s": elapsed, "vmstat": {"numa_hint_faults": 7},
        "numastat": [{"numa_hit": 1}], "metrics": {"preferred_nodes": {"0": 1}, "numa_groups": 2},
        "score": {"name": "elapsed s", "value": 1.5, "higher_is_better": False},
        "timeline": {"t_s": [0.0, 1.0], "local_fraction": [None, 0.5], "node_pages": [[1, 2], [3, 4]]},
    }  # fmt: skip
    return RunRecord("numa", "numa02", "none", "none", 0, figures | (extra or {}), policy_version=1)


def outcome(key: str, rec: RunRecord | None, *, sets: dict[str, object] | None = None) -> Outcome:
    cell = {"family": "numa", "workload": "numa02", "policy": "none", "seed": 0, "topology": "laptop-1n8",
            "topology_family": "laptop-1n8", "sets": sets or {}, "topology_params": {}, "model_version": "m"}
    return Outcome(key, cell, rec, None if rec else "SimulationError: boom", 0.25, "h", 1)


def test_a_row_per_cell_with_figures_as_columns(tmp_path: Path) -> None:
    """Scalar figures become columns (nested names joined by _); lists and id-keyed maps stay in the record."""
    db = tmp_path / "r.duckdb"
    rec = record(12.5)
    with ResultStore(db) as store:
        store.commit([outcome("k1", rec, sets={"scan_size_mb": 64})])
    df = results.open(db)
    row = df.iloc[0]
    assert row["status"] == "ok" and row["elapsed_s"] == 12.5 and row["vmstat_numa_hint_faults"] == 7
    assert row["metrics_numa_groups"] == 2 and row["score_value"] == 1.5 and row["set_scan_size_mb"] == 64
    assert "metrics_preferred_nodes_0" not in df.columns and "numastat" not in df.columns
    doc = json.loads(row["record"])
    assert "timeline" not in doc and doc["numastat"] == [{"numa_hit": 1}]
    assert row["record_sha256"] == record_digest(rec.to_json())


def test_a_failure_is_replaced_by_a_later_success_but_never_the_reverse(tmp_path: Path) -> None:
    """A failed cell is rerun and overwritten; an ok cell is never written again, and the commit says it was
    already there (the sweep learns another process ran it too)."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        assert store.commit([outcome("k1", None)]) == set()
        assert store.finished_keys() == set()
        assert store.failures(["k1"]) == {"k1": "SimulationError: boom"}
        assert store.commit([outcome("k1", record(3.0))]) == set()
        assert store.commit([outcome("k1", None), outcome("k1b", record(4.0))]) == {"k1"}
        assert store.finished_keys() == {"k1", "k1b"}
    df = results.open(db)
    assert list(df["status"]) == ["ok", "ok"] and list(df["elapsed_s"]) == [3.0, 4.0]


def test_columns_widen_when_values_disagree(tmp_path: Path) -> None:
    """An integer column becomes DOUBLE for a float and VARCHAR for a string; no value is lost."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("a", record(3))])
        store.commit([outcome("b", record(3.5))])
        kinds = dict(store.connection().execute("SELECT column_name, data_type FROM information_schema.columns "
                                                "WHERE table_name = 'runs'").fetchall())
        assert kinds["elapsed_s"] == "DOUBLE"
        store.commit([outcome("c", record("n/a"))])
        kinds = dict(store.connection().execute("SELECT column_name, data_type FROM information_schema.columns "
                                                "WHERE table_name = 'runs'").fetchall())
    assert kinds["elapsed_s"] == "VARCHAR"
    assert sorted(results.open(db)["elapsed_s"]) == ["3.0", "3.5", "n/a"]


def test_flatten_keeps_scalars_and_named_maps() -> None:
    """Maps keyed by names recurse; maps keyed by ids and lists are skipped; identity keys are not repeated."""
    flat = flatten({"workload": "w", "a": {"b": 1, "c": {"d": True}}, "ids": {"3": 1}, "l": [1], "x y": "z"})
    assert flat == {"a_b": 1, "a_c_d": True, "x_y": "z"}


def test_timelines_go_to_parquet_beside_the_database(tmp_path: Path) -> None:
    """With a timelines folder, each finished run's timeline is a Parquet file named by its key."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0)), outcome("k2", None)], timelines=tmp_path / "tl")
    assert sorted(p.name for p in (tmp_path / "tl").iterdir()) == ["k1.parquet"]
    rows = duckdb.sql(f"SELECT t_s, local_fraction, node_pages FROM '{tmp_path / 'tl' / 'k1.parquet'}'").fetchall()
    assert rows == [(0.0, None, [1, 2]), (1.0, 0.5, [3, 4])]


def test_query_export_and_sweeps(tmp_path: Path) -> None:
    """SQL runs read-only; export writes CSV or Parquet atomically; a sweep's members select its runs."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0)), outcome("k2", record(2.0))])
        store.register_sweep("s1", "one", "sweep", {"model_version": "m"}, ["k1", "k3"])
    assert list(results.query(db, "SELECT sum(elapsed_s) AS t FROM runs")["t"]) == [3.0]
    with pytest.raises(ConfigError, match="'query'"):
        results.query(db, "DELETE FROM runs")
    with pytest.raises(ConfigError, match="'query'"):
        results.query(db, "SELEKT 1")
    assert list(results.open(db, sweep="one")["key"]) == ["k1"]
    with pytest.raises(ConfigError, match="'--sweep'"):
        results.open(db, sweep="two")
    summary = results.sweeps(db).iloc[0]
    assert (summary["cells"], summary["ok"], summary["failed"], summary["missing"]) == (2, 1, 0, 1)
    assert results.export(db, tmp_path / "o.csv", "csv") == 2
    assert (tmp_path / "o.csv").read_text().splitlines()[0].startswith("key,status")
    assert results.export(db, tmp_path / "o.parquet", "parquet", sweep="s1") == 1
    assert duckdb.sql(f"SELECT key FROM '{tmp_path / 'o.parquet'}'").fetchall() == [("k1",)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_query_touches_no_file_but_the_database(tmp_path: Path) -> None:
    """query() can neither write a file (COPY ... TO) nor read one (read_csv, ATTACH), nor switch that back on."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0))])
    (tmp_path / "other.csv").write_text("a\n1\n")
    escapes = (
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        f"COPY runs TO '{tmp_path / 'out.parquet'}' (FORMAT PARQUET)",
        f"EXPORT DATABASE '{tmp_path / 'dump'}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM '{tmp_path / 'other.csv'}'",
        f"ATTACH '{tmp_path / 'new.duckdb'}' AS x",
        "SET enable_external_access = true",
    )
    for sql in escapes:
        with pytest.raises(ConfigError, match="'query' must be valid read-only SQL"):
            results.query(db, sql)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv", "r.duckdb", "r.duckdb.lock"]
    assert list(results.query(db, "SELECT count(*) AS n FROM runs")["n"]) == [1]


@pytest.mark.parametrize("sql, count", [("SELECT 1; SELECT 2", 2), ("SELECT 1;;SELECT 2;", 2), ("", 0), (";", 0)])
def test_query_is_one_statement(sql: str, count: int, tmp_path: Path) -> None:
    """More (or fewer) than one statement is refused, not run with only the last result shown."""
    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0))])
    with pytest.raises(ConfigError, match=f"'query' must be exactly one SQL statement, not {count}"):
        results.query(db, sql)
    assert list(results.query(db, "SELECT 1 AS one;")["one"]) == [1]


def test_an_export_that_cannot_be_written_names_the_file(tmp_path: Path) -> None:
    """A destination where DuckDB cannot make its file is a KernelError naming it, not DuckDB's IOException."""
    from memsched.errors import KernelError

    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0))])
    for dest in (Path("/proc/x.csv"), tmp_path / "gone" / "x.parquet"):
        with pytest.raises(KernelError, match=re.escape(f"cannot write {dest}: IO Error")):
            results.export(db, dest, "parquet" if dest.suffix == ".parquet" else "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.duckdb", "r.duckdb.lock"]


def test_reading_a_missing_or_foreign_file_is_bad_input(tmp_path: Path) -> None:
    """A database that does not exist, or a file that is not one, is a ConfigError naming the API's ``path``
    (the command line's --db, below), and no lock file is left beside a file that was refused."""
    with pytest.raises(ConfigError, match="'path'"):
        results.open(tmp_path / "none.duckdb")
    (tmp_path / "x.duckdb").write_text("not a database")
    with pytest.raises(ConfigError, match="'path'"):
        results.open(tmp_path / "x.duckdb")
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE runs (key VARCHAR)")
    for read in (results.open, results.sweeps):
        with pytest.raises(ConfigError, match=r"'path'.*must be a memsched results database"):
            read(foreign)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.duckdb", "x.duckdb"]


def test_the_results_commands_name_db_and_leave_nothing_beside_a_refused_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from memsched.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    for args in (["show"], ["query", "SELECT 1"], ["export", "--csv", str(tmp_path / "o.csv")]):
        assert main(["results", *args, "--db", str(notes)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("memsched: error: '--db' must be a DuckDB results database"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_writing_into_a_foreign_database_is_refused_and_leaves_it_untouched(tmp_path: Path) -> None:
    """sweep and tune (a writable store) refuse a DuckDB file with other tables, as results does, and add none."""
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("CREATE TABLE runs (key VARCHAR)")
    before = foreign.read_bytes()
    with pytest.raises(ConfigError, match=r"'--db' must be a memsched results database"), ResultStore(foreign) as store:
        store.register_sweep("s1", "one", "sweep", {"model_version": "m"}, ["k1"])
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.duckdb"]  # (no lock file left beside it)
    with duckdb.connect(str(foreign), read_only=True) as con:
        assert con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall() == [
            ("runs",), ("t",)
        ]


def test_a_new_an_empty_and_an_own_database_are_written(tmp_path: Path) -> None:
    """A missing file, a DuckDB file with no tables and an existing results database all take a sweep."""
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    for db in (tmp_path / "new.duckdb", empty, tmp_path / "new.duckdb"):
        with ResultStore(db) as store:
            store.commit([outcome(db.stem, record(1.0))])
    assert sorted(results.open(tmp_path / "new.duckdb")["key"]) == ["new"]
    assert list(results.open(empty)["key"]) == ["empty"]


def _hold(db: str, ready: object, release: object) -> None:
    lock = DbLock(Path(db))
    lock.acquire()
    ready.set()  # type: ignore[attr-defined]
    release.wait(30)  # type: ignore[attr-defined]
    lock.release()


def _wait_for(db: str, timeout_s: float) -> None:
    DbLock(Path(db)).acquire(timeout_s)  # exits 0 once it has the lock, 1 (LockTimeoutError) if never


def test_a_waiter_is_seen_and_gets_the_lock_when_it_is_let_go(tmp_path: Path) -> None:
    """A process that wants the database while another holds it waits (or gives up after its timeout); the
    holder sees it waiting (contended), and once the holder lets go the waiter has it."""
    db = tmp_path / "r.duckdb"
    mine = DbLock(db)
    mine.acquire(timeout_s=0)
    assert not mine.contended()  # nobody waits yet
    ctx = multiprocessing.get_context("forkserver")
    impatient = ctx.Process(target=_wait_for, args=(str(db), 0.0))
    impatient.start()
    impatient.join(30)
    assert impatient.exitcode == 1  # "still in use by another process"
    waiter = ctx.Process(target=_wait_for, args=(str(db), 60.0))
    waiter.start()
    try:
        for _ in range(3000):  # until the waiter has declared itself (or it died)
            if mine.contended() or not waiter.is_alive():
                break
            time.sleep(0.01)
        assert mine.contended() and waiter.is_alive()
        mine.release()
        waiter.join(60)
        assert waiter.exitcode == 0
        assert not mine.contended()
    finally:
        if waiter.is_alive():
            waiter.kill()


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    """flock dies with its process: after SIGKILL of the holder the database can be taken at once."""
    db = tmp_path / "r.duckdb"
    ctx = multiprocessing.get_context("forkserver")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(db), ready, release))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(OSError, match="still in use"):
        DbLock(db).acquire(timeout_s=0)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    lock = DbLock(db)
    lock.acquire(timeout_s=0)  # no waiting: the lock went with the process
    assert lock.held
    lock.release()


def test_the_lock_files_stay_beside_the_database_as_documented(tmp_path: Path) -> None:
    """Neither lock file is unlinked (a waiter may have one open, not yet locked): docs/sweeps.md says they stay."""
    db = tmp_path / "r.duckdb"
    mine = DbLock(db)
    mine.acquire(timeout_s=0)
    with pytest.raises(OSError, match="still in use"):
        DbLock(db).acquire(timeout_s=0)  # another open file description: it waits, declared on .lock.want
    mine.release()
    assert [p.stat().st_size for p in (mine.path, mine.want_path)] == [0, 0]
    doc = " ".join((Path(__file__).parents[3] / "docs" / "sweeps.md").read_text().split())
    assert "Both lock files stay beside the database, empty, after the processes are gone (`<db>.lock.want`" in doc


def test_result_tables_print_floats_to_ten_digits() -> None:
    """Two scores that differ in their seventh digit (1255019.7 and 1255024.4) look different in the table."""
    from memsched.cli.results import _cell

    assert (_cell(1255019.7), _cell(1255024.4)) == ("1255019.7", "1255024.4")
    assert (_cell(0.1 + 0.2), _cell(1e20), _cell(float("nan")), _cell(None)) == ("0.3", "1e+20", "", "")
    assert (_cell(123456789012.5), _cell(2 / 3)) == ("123456789012.5", "0.6666666667")  # (byte counts stay whole)


def test_result_json_keeps_every_digit_of_a_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json is for scripts: 1e-12 was 0.0 and 1/3 lost its last digits (pandas' 10 decimal places)."""
    from memsched.cli import main

    db = tmp_path / "r.duckdb"
    with ResultStore(db) as store:
        store.commit([outcome("k1", record(1.0))])
    sql = "SELECT 1.0/3 AS a, 1e-12 AS b, 123456789012.5 AS c, 'x' AS d, 7 AS e, NULL::DOUBLE AS f"
    assert main(["results", "query", sql, "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"a": 1 / 3, "b": 1e-12, "c": 123456789012.5, "d": "x", "e": 7, "f": None}
    ]
