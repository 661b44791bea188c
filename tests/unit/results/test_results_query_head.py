"""``results query`` prints the first ``--limit`` rows and fetches no more, and a signal stops a long query."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memsched import results

MEMSCHED = [sys.executable, "-m", "memsched"]

#: A statement DuckDB computes for minutes (8e10 rows) and whose result is one row.
LONG_QUERY = "SELECT count(*) FROM range(80000000000) t(i) WHERE i % 7 = 3"


def test_query_rows_returns_the_first_rows_and_says_whether_there_were_more(db: Path) -> None:
    """The head of a result, flagged as cut only when the result has more rows than asked for (across DuckDB's
    2048-row vectors)."""
    head = results.query_rows(db, "SELECT i, [i] AS l FROM range(5000) t(i)", 4097)
    assert (len(head.rows), head.truncated, head.rows[-1]) == (4097, True, (4096, [4096]))
    head = results.query_rows(db, "SELECT i FROM range(5000) t(i)", 5000)
    assert (len(head.rows), head.truncated) == (5000, False)
    head = results.query_rows(db, "SELECT 1 AS a WHERE false", 10)
    assert (head.columns, len(head.rows), head.truncated) == (("a",), 0, False)


def test_results_query_limit_cuts_rows_and_says_so(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json and --csv print the first --limit rows; stderr says rows were left out (and nothing when none were)."""
    from memsched.cli import main

    sql = "SELECT i FROM range(25) t(i)"
    assert main(["results", "query", sql, "--db", str(db), "--json", "--limit", "10"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [{"i": i} for i in range(10)]
    assert "printed the first 10 rows; the result has more" in err and len(err.strip().splitlines()) == 1
    assert main(["results", "query", sql, "--db", str(db), "--csv", "--limit", "25"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["i", *map(str, range(25))] and err == ""
    for bad in ("0", "1000001"):
        assert main(["results", "query", sql, "--db", str(db), "--limit", bad]) == 2
        assert "'--limit' must be from 1 to 1000000" in capsys.readouterr().err


def _address_space_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_a_huge_result_is_not_fetched(db: Path) -> None:
    """300 million rows --json under a 4 GiB address space: the default limit's rows, quickly (the whole result
    grew to 14 GB before there was a limit)."""
    argv = [*MEMSCHED, "results", "query", "SELECT * FROM range(300000000)", "--db", str(db), "--json"]
    done = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=120, preexec_fn=_address_space_limit
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 10_000 and "printed the first 10000 rows" in done.stderr


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize(("sig", "status", "line"), [
    (signal.SIGTERM, 128 + signal.SIGTERM, "memsched: terminated by SIGTERM"),
    (signal.SIGINT, 130, "memsched: interrupted"),
])  # fmt: skip
def test_a_signal_stops_a_long_query(db: Path, sig: signal.Signals, status: int, line: str) -> None:
    """SIGTERM or SIGINT while DuckDB computes ends the command within seconds with the signal's status and one
    line (the signal waited until the statement finished, minutes later)."""
    argv = [*MEMSCHED, "results", "query", LONG_QUERY, "--db", str(db)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _threads(proc.pid) < 2 and proc.poll() is None and time.monotonic() < deadline:  # DuckDB's threads
            time.sleep(0.05)
        time.sleep(1.0)  # into the statement
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, out, err.strip().splitlines()) == (status, "", [line])
    assert took < 20
