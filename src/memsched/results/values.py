"""How ``memsched results query`` writes a DuckDB value: as JSON (``--json``) and as text (the table, ``--csv``).

The values are DuckDB's own Python conversions (``fetchmany``), not a pandas frame's: a frame's float column
holds HUGEINT and DECIMAL as doubles (``12345678901234567890`` became ``1.2345678901234567e+19``) and NULL
and NaN as the same NaN, so a query's result could not say which it had.

JSON keeps every value and stays JSON (no ``NaN`` token, which ``json.loads`` accepts but most readers refuse):

- integers of any width (HUGEINT, UHUGEINT) are JSON integers, every digit;
- a DECIMAL is a JSON number when a double holds it as written (always for 15 significant digits or fewer),
  else an integer when it is whole, else a string of its exact digits (``"123456789012345678.123"``);
- a DOUBLE or FLOAT NaN or infinity is the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (NULL is ``null``);
- a BLOB is base64 (RFC 4648, with padding); a UUID its canonical string;
- DATE, TIME, TIMESTAMP are ISO 8601 (``isoformat``); an INTERVAL an ISO 8601 duration (``P32DT3H``);
- LIST and ARRAY are arrays, STRUCT and MAP objects, their members written by the same rules.

Text follows DuckDB's CSV writer (``COPY ... TO 'x.csv'``): NULL is empty, NaN and the infinities are ``nan``,
``inf``, ``-inf``, booleans ``true``/``false``, a DECIMAL its exact digits, a BLOB DuckDB's escaped form
(``x\\xFF``), a TIMESTAMP ``2024-01-02 03:04:05.5``, an INTERVAL ``32 days 03:00:00``, a LIST ``[1, NULL]``.

Deviations from DuckDB: its Python conversion counts an INTERVAL's month as 30 days, gives TIMESTAMP_NS to the
microsecond, and ``'infinity'::DATE`` as 9999-12-31; these are written as converted. A MAP is written as a
STRUCT is (``{'k': 1}``; DuckDB's CSV writes ``{k=1}``).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any

__all__ = ["json_value", "text_value"]


def json_value(value: Any) -> Any:
    """``value`` as something ``json.dumps(allow_nan=False)`` writes without losing it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite_json(value)
    if isinstance(value, Decimal):
        return _decimal_json(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.date, dt.time)):  # dt.datetime is a dt.date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _iso_duration(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else text_value(k): json_value(v) for k, v in value.items()}
    return str(value)  # uuid.UUID, and any type a later DuckDB adds: its text, never an object dump


def text_value(value: Any, *, nested: bool = False) -> str:
    """``value`` as DuckDB's CSV writer writes it (a NULL inside a LIST or STRUCT is ``NULL``)."""
    if value is None:
        return "NULL" if nested else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "".join(_blob_char(b) for b in bytes(value))
    if isinstance(value, dt.datetime):
        return _trim_fraction(value.isoformat(sep=" "))
    if isinstance(value, dt.time):
        return _trim_fraction(value.isoformat())
    if isinstance(value, dt.timedelta):
        return _interval_text(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(text_value(v, nested=True) for v in value) + "]"
    if isinstance(value, dict):
        members = (f"{_struct_key(k)}: {text_value(v, nested=True)}" for k, v in value.items())
        return "{" + ", ".join(members) + "}"
    return str(value)  # int, str, uuid.UUID, dt.date and the rest


def _non_finite_json(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal_json(value: Decimal) -> int | float | str:
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    if value == value.to_integral_value():
        return int(value)
    return format(value, "f")


def _iso_duration(value: dt.timedelta) -> str:
    if value < dt.timedelta(0):
        return "-" + _iso_duration(-value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds}.{value.microseconds:06d}".rstrip("0") if value.microseconds else str(seconds)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    time += f"{secs}S" if seconds or value.microseconds else ""
    if not time:
        return f"P{value.days}D"
    return f"P{value.days}DT{time}" if value.days else f"PT{time}"


def _interval_text(value: dt.timedelta) -> str:
    """DuckDB's INTERVAL text: ``2 days``, ``03:00:00``, ``-1 day -01:00:00`` (each part carries its sign)."""
    sign = "-" if value < dt.timedelta(0) else ""
    magnitude = abs(value)
    days = magnitude.days
    hours, rest = divmod(magnitude.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{sign}{days} day{'' if days == 1 else 's'}"] if days else []
    if magnitude.seconds or magnitude.microseconds or not days:
        fraction = f".{magnitude.microseconds:06d}".rstrip("0") if magnitude.microseconds else ""
        parts.append(f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}")
    return " ".join(parts)


def _trim_fraction(iso: str) -> str:
    """``03:04:05.500000+02:00`` as DuckDB writes it, ``03:04:05.5+02:00``."""
    head, dot, rest = iso.partition(".")
    if not dot:
        return iso
    digits = rest[:6].rstrip("0")
    return head + ("." + digits if digits else "") + rest[6:]


def _blob_char(byte: int) -> str:
    """DuckDB's escaping of a BLOB byte: printable ASCII as itself, except the backslash and quotes."""
    return chr(byte) if 32 <= byte <= 126 and chr(byte) not in "\\'\"" else f"\\x{byte:02X}"


def _struct_key(key: Any) -> str:
    return repr(key) if isinstance(key, str) else text_value(key, nested=True)
