"""A validator of the Chrome / Perfetto trace-event JSON format, for the traces memsched writes.

The rules are those of the "Trace Event Format" document (Google, the format ``chrome://tracing`` and
Perfetto's JSON importer read), narrowed to what a trace memsched writes must satisfy:

* the document is an object with a ``traceEvents`` list (``displayTimeUnit``, if present, ``ms`` or ``ns``);
* every event has a string ``name``, a known ``ph`` and integer ``pid`` and ``tid``; every event but metadata
  ("M") has a finite, non-negative numeric ``ts`` (microseconds);
* complete events ("X") have a non-negative numeric ``dur``; duration events ("B"/"E") nest per thread: an
  "E" closes the last open "B" of its ``(pid, tid)``, not before it, and none is left open;
* async events ("b"/"e") carry ``cat`` and ``id``; an "e" closes an open "b" of the same ``(cat, id, name)``,
  not before it, and none is left open;
* instant events ("i"/"I") have a scope ``s`` of ``g``, ``p`` or ``t`` when they give one;
* counter events ("C") have a non-empty ``args`` whose values are numbers (not booleans);
* metadata events ("M") are ``process_name``/``thread_name`` (with ``args.name`` a string) or
  ``process_sort_index``/``thread_sort_index``/``process_labels``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["PHASES", "TraceFormatError", "check", "validate"]

#: Event types memsched's traces may use (a subset of the format's).
PHASES = frozenset("XBEbeiICM")
_METADATA = frozenset({"process_name", "thread_name", "process_sort_index", "thread_sort_index", "process_labels"})


class TraceFormatError(ValueError):
    """A document that is not valid trace-event JSON; ``problems`` lists every violation found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} trace-format problem(s): " + "; ".join(problems[:5]))
        self.problems = problems


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _time(v: Any) -> float | None:
    """``v`` as a timestamp or duration: a finite number >= 0, else ``None``."""
    return float(v) if _number(v) and v >= 0 else None


def validate(doc: Any) -> list[str]:
    """Every violation of the format in ``doc`` (an empty list: valid)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["the document must be an object with a traceEvents list"]
    problems: list[str] = []
    unit = doc.get("displayTimeUnit")
    if unit is not None and unit not in ("ms", "ns"):
        problems.append(f"displayTimeUnit must be 'ms' or 'ns', not {unit!r}")
    stacks: dict[tuple[Any, Any], list[tuple[str, float]]] = {}
    open_async: dict[tuple[str, Any, str], float] = {}
    for i, ev in enumerate(doc["traceEvents"]):
        where = f"event {i}"
        if not isinstance(ev, dict):
            problems.append(f"{where}: not an object")
            continue
        ph = ev.get("ph")
        name = ev.get("name")
        where = f"event {i} ({ph} {name!r})"
        if ph not in PHASES:
            problems.append(f"{where}: unknown ph")
            continue
        if not isinstance(name, str):
            problems.append(f"{where}: name must be a string")
        for key in ("pid", "tid"):
            if not isinstance(ev.get(key), int) or isinstance(ev.get(key), bool):
                problems.append(f"{where}: {key} must be an integer")
        if ph == "M":
            if name not in _METADATA:
                problems.append(f"{where}: unknown metadata event")
            elif name.endswith("_name") and not isinstance((ev.get("args") or {}).get("name"), str):
                problems.append(f"{where}: args.name must be a string")
            continue
        ts = _time(ev.get("ts"))
        if ts is None:
            problems.append(f"{where}: ts must be a finite number >= 0")
            continue
        tkey = (ev.get("pid"), ev.get("tid"))
        if ph == "X":
            if _time(ev.get("dur")) is None:
                problems.append(f"{where}: dur must be a finite number >= 0")
        elif ph == "B":
            stacks.setdefault(tkey, []).append((str(name), ts))
        elif ph == "E":
            stack = stacks.get(tkey)
            if not stack:
                problems.append(f"{where}: E without an open B on pid/tid {tkey}")
            else:
                _, start = stack.pop()
                if ts < start:
                    problems.append(f"{where}: E before its B ({ts} < {start})")
        elif ph in ("b", "e"):
            if not isinstance(ev.get("cat"), str) or "id" not in ev:
                problems.append(f"{where}: async events need cat and id")
                continue
            akey = (ev["cat"], ev["id"], str(name))
            if ph == "b":
                if akey in open_async:
                    problems.append(f"{where}: b of an async slice already open")
                open_async[akey] = ts
            else:
                began = open_async.pop(akey, None)
                if began is None:
                    problems.append(f"{where}: e without an open b of the same cat/id/name")
                elif ts < began:
                    problems.append(f"{where}: e before its b ({ts} < {began})")
        elif ph in ("i", "I"):
            if "s" in ev and ev["s"] not in ("g", "p", "t"):
                problems.append(f"{where}: instant scope s must be g, p or t")
        elif ph == "C":
            args = ev.get("args")
            if not isinstance(args, dict) or not args:
                problems.append(f"{where}: a counter needs a non-empty args object")
            elif not all(_number(v) for v in args.values()):
                problems.append(f"{where}: counter values must be numbers")
    for tkey, stack in stacks.items():
        for bname, _ in stack:
            problems.append(f"B {bname!r} on pid/tid {tkey} is never closed")
    for (cat, id_, name), _ in open_async.items():
        problems.append(f"async b {name!r} ({cat}, id {id_}) is never closed")
    return problems


def check(doc: Any) -> None:
    """Raise :class:`TraceFormatError` listing every problem unless ``doc`` is valid."""
    problems = validate(doc)
    if problems:
        raise TraceFormatError(problems)
