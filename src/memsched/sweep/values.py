"""The values a swept dimension takes: one value, a list, or a range ``{min, max, steps, log}``.

In a grid a list gives each of its values and a range ``steps`` values from ``min`` to ``max`` (evenly, or
geometrically with ``log = true``); with random samples a list gives one of its values and a range a uniform
draw (log-uniform with ``log``; one of the grid points when ``steps`` is given). A range whose ends are both
integers gives integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from memsched.config import KNOB_LIMIT
from memsched.errors import ConfigError

__all__ = ["Range", "Values", "draw", "grid", "parse_values", "varies"]

Scalar = bool | int | float | str


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    steps: int | None
    log: bool
    integer: bool


Values = tuple[Scalar, ...] | Range


#: Values one dimension may take (a list, or a range's steps): a sweep is bounded by its cells anyway.
MAX_VALUES = 10_000

def parse_values(raw: Any, field: str, source: str, *, kinds: tuple[type, ...] = (bool, int, float, str)) -> Values:
    """A TOML value (scalar, array or ``{min, max, steps, log}`` table) as :data:`Values`."""
    if isinstance(raw, dict):
        if int not in kinds and float not in kinds:
            raise ConfigError(field, raw, "must be a value or a list of values (not a range)", source=source)
        r = _parse_range(raw, field, source)
        if float not in kinds and not r.integer:
            raise ConfigError(field, raw, "must be a range with integer min and max", source=source)
        return r
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ConfigError(field, raw, "must not be an empty list", source=source)
    if len(items) > MAX_VALUES:
        raise ConfigError(field, f"{len(items)} values", f"must list at most {MAX_VALUES:,}", source=source)
    for item in items:
        if not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(field, item, f"must be a {names}, a list of them or a {{min, max}} range", source=source)
    if len(set(map(repr, items))) != len(items):
        raise ConfigError(field, raw, "must not list a value twice", source=source)
    return tuple(items)


def _parse_range(raw: dict[str, Any], field: str, source: str) -> Range:
    unknown = sorted(set(raw) - {"min", "max", "steps", "log"})
    if unknown:
        raise ConfigError(f"{field}.{unknown[0]}", raw[unknown[0]], "is not a range key (min, max, steps, log)",
                          source=source)
    for end in ("min", "max"):
        if end not in raw:
            raise ConfigError(f"{field}.{end}", None, "is required in a range", source=source)
        if isinstance(raw[end], bool) or not isinstance(raw[end], int | float):
            raise ConfigError(f"{field}.{end}", raw[end], "must be a number", source=source)
        # A range's ends become floats: inf would make every point NaN (and the error say "got nan"), an integer
        # beyond 2**63 overflow the conversion; no setting takes either.
        if not -KNOB_LIMIT <= raw[end] <= KNOB_LIMIT:  # NaN fails this too
            raise ConfigError(
                f"{field}.{end}", raw[end], f"must be a finite number in {-KNOB_LIMIT}..{KNOB_LIMIT}", source=source
            )
    lo, hi = raw["min"], raw["max"]
    if hi < lo:
        raise ConfigError(f"{field}.max", hi, f"must be >= min ({lo})", source=source)
    steps = raw.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_VALUES):
        raise ConfigError(f"{field}.steps", steps, f"must be an integer in 1..{MAX_VALUES:,}", source=source)
    if steps == 1 and hi != lo:
        raise ConfigError(f"{field}.steps", steps, "must be >= 2 when min != max", source=source)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{field}.log", log, "must be true or false", source=source)
    if log and lo <= 0:
        raise ConfigError(f"{field}.min", lo, "must be > 0 for a log range", source=source)
    integer = isinstance(lo, int) and isinstance(hi, int)
    return Range(float(lo), float(hi), steps, log, integer)


def grid(values: Values, field: str = "", source: str = "") -> list[Scalar]:
    """Every value of a dimension in a grid (a range needs ``steps``)."""
    if not isinstance(values, Range):
        return list(values)
    r = values
    if r.steps is None:
        raise ConfigError(f"{field}.steps", None, "is required for a range in a grid sweep", source=source)
    n = r.steps
    if n == 1:
        points = [r.lo]
    elif r.log:
        points = [r.lo * (r.hi / r.lo) ** (i / (n - 1)) for i in range(n)]
    else:
        points = [r.lo + (r.hi - r.lo) * i / (n - 1) for i in range(n)]
    return list(dict.fromkeys(_tidy(p, r.integer) for p in points))


def draw(values: Values, rng: np.random.Generator) -> Scalar:
    """One random value of a dimension."""
    if not isinstance(values, Range):
        return values[int(rng.integers(len(values)))]
    r = values
    if r.steps is not None:
        points = grid(r)
        return points[int(rng.integers(len(points)))]
    if r.log:
        x = math.exp(rng.uniform(math.log(r.lo), math.log(r.hi)))
    elif r.integer:
        return int(rng.integers(int(r.lo), int(r.hi) + 1))
    else:
        x = rng.uniform(r.lo, r.hi)
    return _tidy(min(max(x, r.lo), r.hi), r.integer)


def varies(values: Values) -> bool:
    """Whether a dimension takes more than one value."""
    return (values.hi != values.lo) if isinstance(values, Range) else len(values) > 1


def _tidy(x: float, integer: bool) -> int | float:
    """Integers rounded; floats to 6 significant digits, so a value prints (and hashes) the same everywhere."""
    return round(x) if integer else float(f"{x:.6g}")
