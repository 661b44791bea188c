"""``results query`` writes every DuckDB type so that it keeps its value: JSON, CSV and the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsched.cli import main

#: Values a pandas frame lost: a BLOB (``{}``), a HUGEINT past 2**64 and a DECIMAL of 21 digits (doubles), NaN
#: and infinity (both ``null``, as NULL is), a UUID (an object dump).
LOSSY = (
    "SELECT 'x\\xFF'::BLOB b, 12345678901234567890::HUGEINT h, "
    "340282366920938463463374607431768211455::UHUGEINT uh, 123456789012345678.123::DECIMAL(38,3) d, "
    "1.50::DECIMAL(4,2) d2, 'NaN'::DOUBLE n, 'inf'::DOUBLE i, '-inf'::FLOAT fi, NULL::DOUBLE z, "
    "'b0d7381e-da0e-470a-ba4c-3bf780f7834d'::UUID u"
)

#: The other types, each of which must print as a value rather than an error or an object dump.
OTHER = (
    "SELECT DATE '2024-02-03' dt, TIMESTAMP '2024-01-02 03:04:05.5' ts, INTERVAL '2 days 3 hours' iv, "
    "[1, NULL] l, {'a': 1, 'b': 'x y'} s, MAP {'k': 1} m, 'a'::ENUM('a', 'b') e, '0101'::BIT bit, "
    "TIME '12:34:56' tm, true t, [['nan'::DOUBLE]] ln"
)


def query(capsys: pytest.CaptureFixture[str], db: Path, sql: str, *options: str) -> str:
    assert main(["results", "query", sql, "--db", str(db), *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_json_keeps_every_value(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BLOB is base64, big integers every digit, a long DECIMAL a string, NaN and infinity strings apart from
    null, a UUID its canonical form."""
    out = query(capsys, db, LOSSY, "--json")
    assert json.loads(out) == [{
        "b": "eP8=", "h": 12345678901234567890, "uh": 2**128 - 1, "d": "123456789012345678.123", "d2": 1.5,
        "n": "NaN", "i": "Infinity", "fi": "-Infinity", "z": None, "u": "b0d7381e-da0e-470a-ba4c-3bf780f7834d",
    }]  # fmt: skip
    assert "NaN," not in out.replace('"NaN"', "")  # no bare NaN token: strict JSON


def test_csv_writes_values_as_duckdb_does(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV as DuckDB's COPY writes it: nan/inf apart from the empty NULL, BLOB escaped, exact digits."""
    lines = query(capsys, db, LOSSY, "--csv").splitlines()
    assert lines == [
        "b,h,uh,d,d2,n,i,fi,z,u",
        "x\\xFF,12345678901234567890,340282366920938463463374607431768211455,123456789012345678.123,1.50,"
        "nan,inf,-inf,,b0d7381e-da0e-470a-ba4c-3bf780f7834d",
    ]
    lines = query(capsys, db, OTHER, "--csv").splitlines()
    assert lines[1] == (
        "2024-02-03,2024-01-02 03:04:05.5,2 days 03:00:00,\"[1, NULL]\",\"{'a': 1, 'b': x y}\",{'k': 1},a,0101,"
        "12:34:56,true,[[nan]]"
    )


def test_table_tells_nan_from_null(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table printed NaN as an empty cell, as NULL, while infinity was "inf"; a list was read as markup."""
    out = query(capsys, db, "SELECT 'NaN'::DOUBLE n, NULL::DOUBLE z, [['nan'::DOUBLE]] l, 'x'::BLOB b", "--csv")
    assert out.splitlines()[1] == "nan,,[[nan]],x"
    sql = "SELECT 'NaN'::DOUBLE n, NULL::DOUBLE z, [['nan'::DOUBLE]] l, 12345678901234567890::HUGEINT h"
    out = query(capsys, db, sql)
    row = next(line for line in out.splitlines() if "nan" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells == ["nan", "", "[[nan]]", "12345678901234567890"]


def test_other_types_are_values(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DATE, TIMESTAMP, INTERVAL, LIST, STRUCT, MAP, ENUM, BIT, TIME: ISO 8601 text and JSON structures."""
    assert json.loads(query(capsys, db, OTHER, "--json")) == [{
        "dt": "2024-02-03", "ts": "2024-01-02T03:04:05.500000", "iv": "P2DT3H", "l": [1, None],
        "s": {"a": 1, "b": "x y"}, "m": {"k": 1}, "e": "a", "bit": "0101", "tm": "12:34:56", "t": True,
        "ln": [["NaN"]],
    }]  # fmt: skip


def test_repeated_column_names_keep_every_value(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Names given twice are made unique as DuckDB's df() does; a JSON row kept only the last value."""
    assert json.loads(query(capsys, db, "SELECT 1 a, 2 a, 3 a_1", "--json")) == [{"a": 1, "a_1": 2, "a_1_1": 3}]
