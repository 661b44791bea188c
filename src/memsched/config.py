"""Typed, validated configuration objects and the ``--set key=value`` path into them.

Every configurable thing (a workload, a NUMA policy, a pressure flavour) declares its knobs as a frozen
dataclass whose fields are made with :func:`knob`: a default that cites its source, a help line, and bounds.
:func:`validate` checks the bounds (call it from ``__post_init__``) with attrs-style messages, and
:func:`from_sets` builds an instance from the strings a user typed, so the command line, TOML files and
Python callers all go through the same checks.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     scan_delay_ms: int = knob(1000, "first scan after this delay", min=0)
...     def __post_init__(self) -> None:
...         validate(self)
>>> from_sets(Demo, {"scan_delay_ms": "250"}, owner="demo").scan_delay_ms
250
>>> Demo(scan_delay_ms=-5)
Traceback (most recent call last):
...
memsched.errors.ConfigError: 'scan_delay_ms' must be >= 0 (got -5)
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
import re
import stat
import tomllib
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from memsched.errors import ConfigError, printable

__all__ = [
    "LIMIT_BYTES",
    "LIMIT_EVENT_COST_NS",
    "LIMIT_INTERVAL_NS",
    "LIMIT_LATENCY_NS",
    "MAX_INPUT_BYTES",
    "MAX_SEED",
    "KnobInfo",
    "LongNumber",
    "check_name",
    "check_order",
    "check_seed",
    "cost_knob",
    "describe",
    "finite_number",
    "format_bound",
    "from_sets",
    "knob",
    "parse_json",
    "parse_set_args",
    "parse_toml",
    "read_input_file",
    "split_sets",
    "validate",
]

T = TypeVar("T")

#: Every numeric knob fits a signed 64-bit integer, as the sysctl or struct field it mirrors; tighter bounds
#: are the knob's own ``min``/``max``. NaN and infinity are never a setting.
KNOB_LIMIT = (1 << 63) - 1
#: The largest seed anything accepts (``--seed``, sweep and tune seeds, a scenario's ``set_seed``): 32 bits, what
#: numpy's legacy ``RandomState`` (under Optuna's TPE sampler) takes, so one range holds everywhere.
MAX_SEED = 2**32 - 1
# ---- product limits: the maximum of a knob that mirrors no kernel or tool setting with a limit of its own --------
#: A cost charged per event (a page scanned, a lock held, an IPI, one noise interruption): 1 ms, hundreds of times
#: every default and measured one; a larger cost only stalls every run.
LIMIT_EVENT_COST_NS = 1_000_000
#: A latency or device time per event (a page read back from swap, a kthread's wakeup, a slow page allocation): 1 s,
#: a hundred times a rotating disk's seek.
LIMIT_LATENCY_NS = 1_000_000_000
#: A period, delay or timeout: one hour, longer than any simulated run (a pressure scenario ends by 600 s, a NUMA
#: workload by 3,600 s), so a longer one would never fire.
LIMIT_INTERVAL_NS = 3_600_000_000_000
#: An amount of memory, or a bandwidth per second: 1 TiB.
LIMIT_BYTES = 1 << 40
#: The longest number ``--set`` parses (``int()`` itself stops at 4,300 digits).
_MAX_NUMBER_CHARS = 64


def knob(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[str] | None = None,
    limit: bool = False,
    at_most: str | None = None,
    why: str = "",
) -> Any:
    """A config field: default, one-line help (cite the source of the default), and optional bounds.

    ``limit=True`` says that ``max`` is the largest value the machine can honour (a kernel's own limit, or a
    product limit that keeps a run finishable), not the end of a natural range: it is validated the same way,
    but ``memsched tune`` searches around the default and only clips its window there.

    ``at_most`` names another knob of the same config this one may not exceed (a minimum and its maximum, the
    two ends of a hysteresis): each is in range on its own, together they would contradict each other.
    :func:`validate` refuses the pair turned around (``why``, if given, ends its message: what the two would do
    together), and ``memsched tune`` draws this knob no higher than the other."""
    meta: dict[str, Any] = {"help": help, "min": min, "max": max, "choices": tuple(choices) if choices else None}
    if limit:
        meta["limit"] = True
    if at_most is not None:
        meta["at_most"] = at_most
        meta["at_most_why"] = why
    return dataclasses.field(default=default, metadata=meta)


def cost_knob(default: int, help: str) -> Any:
    """A :func:`knob` for a cost charged per event (ns): from 0 to :data:`LIMIT_EVENT_COST_NS`, a limit."""
    return knob(default, help, min=0, max=LIMIT_EVENT_COST_NS, limit=True)


@dataclasses.dataclass(frozen=True, slots=True)
class KnobInfo:
    name: str
    type: str
    default: Any
    help: str


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def validate(obj: Any) -> None:
    """Check every knob's bounds and choices; raise :class:`ConfigError` naming the first bad field."""
    types = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        expected = types.get(f.name)
        if expected in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f.name, value, f"must be a number ({expected.__name__})")
        if expected is int and isinstance(value, float):
            raise ConfigError(f.name, value, "must be an integer")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f.name, value, "must be a finite number (not NaN or infinity)")
        lo, hi = meta.get("min"), meta.get("max")
        if expected in (int, float) and not -KNOB_LIMIT <= value <= KNOB_LIMIT:
            low = -KNOB_LIMIT if lo is None else lo
            high = KNOB_LIMIT if hi is None else hi
            raise ConfigError(f.name, value, f"must be between {low} and {high}")
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f.name, value, "must be true or false")
        if lo is not None and value < lo:
            raise ConfigError(f.name, value, f"must be >= {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f.name, value, f"must be <= {hi}")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f.name, value, "must be one of: " + ", ".join(choices))
    for f in dataclasses.fields(obj):  # every knob in its range first: then the pairs that must be in order
        if "at_most" in f.metadata:
            check_order(obj, f.name, f.metadata["at_most"], f.metadata["at_most_why"])


def check_name(value: object, field: str, *, source: str | None = None, what: str = "name") -> str:
    """``value`` if it is a non-empty string of printable characters, else a :class:`ConfigError` naming ``field``.
    Names from a user's files (a topology, a scenario, a sweep, an rt-app thread) are printed raw in reports,
    tables and HTML: a newline, a tab, an escape sequence or a bidi control (anything ``str.isprintable()``
    refuses) would break the line or reach the terminal."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ConfigError(
            field, value, f"must be a non-empty {what} of printable characters (no control characters)", source=source
        )
    return value


def check_order(obj: Any, low: str, high: str, why: str = "") -> None:
    """Refuse ``obj`` whose knob ``low`` is above its knob ``high`` (a minimum above its maximum, a hysteresis
    turned around), naming both: each knob is in range on its own, together they contradict each other.
    ``why`` (if given) ends the message: what the two would do together."""
    lo, hi = getattr(obj, low), getattr(obj, high)
    if lo > hi:
        reason = f": {why}" if why else ""
        raise ConfigError(low, lo, f"must be <= {high} ({format_bound(hi)}){reason}")


#: An integer ``--set`` value: optional sign, then ASCII digits.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_value(name: str, text: str, kind: Any) -> Any:
    if kind is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, text, "must be true or false")
    if kind in (int, float) and len(text) > _MAX_NUMBER_CHARS:
        short = text[:_MAX_NUMBER_CHARS] + "..."
        raise ConfigError(name, short, f"must be a number of at most {_MAX_NUMBER_CHARS} characters")
    if kind is int:
        # Digits only, as every integer option (cli.common.whole_number): int(text, 0) also took 0x10, 0o7,
        # 1_000 and fullwidth digits, which --seed refuses.
        if not _INTEGER.fullmatch(text.strip()):
            raise ConfigError(name, text, "must be an integer written in digits (an optional sign, then 0-9)")
        return int(text)
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(name, text, "must be a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, text, "must be a finite number (not NaN or infinity)")
        return value
    return text


def from_sets(cls: type[T], sets: Mapping[str, str], *, owner: str, base: T | None = None) -> T:
    """Build ``cls`` from ``key -> string`` pairs (over ``base`` or the defaults); unknown keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    types = _field_types(cls)
    values: dict[str, Any] = {}
    for key, text in sets.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) if fields else "(none)"
            raise ConfigError(key, text, f"is not a setting of {owner}; valid settings: {valid}")
        values[key] = _parse_value(key, text, types[key])
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    return cls(**values)


def split_sets(sets: Mapping[str, str], owners: Sequence[tuple[str, type]]) -> list[dict[str, str]]:
    """Hand each ``--set`` key to the owners whose config class has a field of that name (a workload and a
    policy; a scenario and the scheduler). ``owners`` are ``(name, config class)`` pairs, named in the error
    a key no owner has raises, which lists every valid setting."""
    names = [{f.name for f in dataclasses.fields(cls)} for _, cls in owners]
    out: list[dict[str, str]] = [{} for _ in owners]
    for key, value in sets.items():
        hit = [i for i, fields in enumerate(names) if key in fields]
        if not hit:
            valid = sorted(set().union(*names))
            whom = " or ".join(name for name, _ in owners)
            raise ConfigError(
                key, value, f"is not a setting of {whom}; valid settings: " + (", ".join(valid) if valid else "(none)")
            )
        for i in hit:
            out[i][key] = value
    return out


def describe(cls: type) -> list[KnobInfo]:
    """The knobs of a config class, for ``memsched list`` and the docs."""
    types = _field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = types.get(f.name)
        out.append(KnobInfo(f.name, getattr(kind, "__name__", str(kind)), f.default, f.metadata.get("help", "")))
    return out


def parse_set_args(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item is a :class:`ConfigError`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").replace("-", "").isalnum():
            raise ConfigError("--set", item, "must be key=value (e.g. --set scan_delay_ms=1000)")
        key = key.replace("-", "_")
        if key in out:
            raise ConfigError("--set", item, f"sets '{key}' twice")
        out[key] = value.strip()
    return out


# ---- input files ---------------------------------------------------------------------------------------------

#: The largest input file read (topology, scenario, rt-app): the biggest real one is a few KiB.
MAX_INPUT_BYTES = 1 << 20


def read_input_file(path: Path, field: str, what: str) -> bytes:
    """The bytes of a user's input file, or a :class:`ConfigError` naming ``field``: unreadable, not a regular
    file (a FIFO would block, a directory cannot be read), or larger than :data:`MAX_INPUT_BYTES`."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat could refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(field, str(path), f"must be a regular {what}")
            os.set_blocking(fd, True)
            raw = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise ConfigError(field, str(path), f"must be a readable {what} ({e.strerror})") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise ConfigError(field, str(path), f"must be a {what} of at most {MAX_INPUT_BYTES >> 20} MiB")
    return raw


def parse_toml(raw: bytes, field: str, source: str) -> dict[str, Any]:
    """A TOML document, or one :class:`ConfigError`: bad syntax, bad UTF-8, an integer literal longer than
    Python converts (4,300 digits), nesting deeper than the parser recurses."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # TOMLDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ConfigError(field, source, f"must be valid TOML ({reason})") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice: Python's parser keeps the last one silently, so the
    first value (an rt-app ``"run"`` of a thread, say) would vanish without a word."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {printable(key)!r} appears twice in one object")
        out[key] = value
    return out


#: The most digits an integer literal of a JSON input keeps exactly; a longer one is a :class:`LongNumber`.
_MAX_JSON_INT_DIGITS = 64


class LongNumber(int):
    """An integer literal of an input file too long to be any setting (more than 64 digits; Python's ``int()``
    gives up at 4,300 with a message about ``sys.set_int_max_str_digits()``). It compares as ``±10**64``, beyond
    every range, so the check of the field it was given for refuses it with that field's own range; its ``repr``
    says how long it was, for that message."""

    digits: int

    def __new__(cls, text: str) -> LongNumber:
        self = super().__new__(cls, -(10**64) if text.startswith("-") else 10**64)
        self.digits = len(text.lstrip("-"))
        return self

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"

    __str__ = __repr__


def _json_int(text: str) -> int:
    return LongNumber(text) if len(text.lstrip("-")) > _MAX_JSON_INT_DIGITS else int(text)


def parse_json(raw: bytes, field: str, source: str) -> Any:
    """A JSON document, or one :class:`ConfigError`. ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's
    parser accepts) are refused: they are not JSON, and no quantity may be one. So is a key given twice in one
    object (the parser would keep the last). An integer longer than 64 digits is read as a :class:`LongNumber`,
    which the field's own range check refuses."""
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_no_constant, parse_int=_json_int, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as e:
        raise ConfigError(field, source, f"must be valid JSON ({e.msg} at line {e.lineno})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ConfigError(field, source, f"must be valid JSON ({reason})") from None


def check_seed(value: object, field: str) -> int:
    """``value`` as an ``int`` if it is a seed (an integer in 0..MAX_SEED: numpy's integers too), else a
    :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise ConfigError(field, value, f"must be a whole number in 0..{MAX_SEED}")
    seed = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(field, value, f"must be in 0..{MAX_SEED}")
    return seed


def format_bound(x: float) -> str:
    """A limit as a user should read it: a whole number in full (``1048576``, not ``1.04858e+06``), any
    other float by its shortest exact form (``0.001``, ``18.4``)."""
    if isinstance(x, int):
        return str(x)
    if math.isfinite(x) and x.is_integer() and abs(x) <= 2**53:  # beyond, a float's digits are not all real
        return str(int(x))
    return repr(x)


def finite_number(
    value: object, field: str, *, lo: float, hi: float, source: str | None = None, unit: str = ""
) -> float:
    """``value`` as a float if it is a number (not a bool) in ``lo..hi``; NaN and infinity are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, value, "must be a number", source=source)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(field, value, "must be a finite number (not NaN or infinity)", source=source)
    if not lo <= value <= hi:
        raise ConfigError(field, value, f"must be in {format_bound(lo)}..{format_bound(hi)}{unit}", source=source)
    try:
        return float(value)
    except OverflowError:  # an int beyond the largest float (10**400)
        raise ConfigError(field, value, "must be a number a float can hold", source=source) from None
