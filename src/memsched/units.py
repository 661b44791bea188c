"""Units: integer nanoseconds and pages inside, human strings only at the edges.

Inside memsched, time is an ``int`` of nanoseconds and memory an ``int`` of pages (of the topology's page
size) or of bytes where a name says so (``*_bytes``). A raw value in another unit carries the unit in its
name (``scan_delay_ms``). Human strings such as ``"2ms"`` or ``"3GiB"`` are parsed here and nowhere else.

Sizes follow two conventions side by side, because both appear in kernel documentation:

- ``KiB``/``MiB``/``GiB``/``TiB`` and the bare ``K``/``M``/``G``/``T`` of the kernel's ``memparse()`` are
  binary (powers of 1024);
- ``kB``/``KB``/``MB``/``GB``/``TB`` are decimal (powers of 1000), as disk and bandwidth figures are quoted.
"""

from __future__ import annotations

import re
from fractions import Fraction

from memsched.errors import ConfigError

__all__ = [
    "GIB",
    "KIB",
    "KTIME_MAX",
    "MIB",
    "NSEC_PER_MSEC",
    "NSEC_PER_SEC",
    "NSEC_PER_USEC",
    "PAGE_SIZE_4K",
    "PAGE_SIZE_THP",
    "SIZE_MAX",
    "TIB",
    "bytes_to_pages",
    "format_bytes",
    "format_ns",
    "ms",
    "ns_to_s",
    "pages_to_bytes",
    "parse_duration",
    "parse_size",
    "s",
    "unit_of_key",
    "us",
]

NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_SEC = 1_000_000_000

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40

PAGE_SIZE_4K = 4 * KIB
#: A transparent huge page on x86-64 (PMD_SIZE): 512 base pages.
PAGE_SIZE_THP = 2 * MIB

_DURATION_UNITS = {"ns": 1, "us": NSEC_PER_USEC, "µs": NSEC_PER_USEC, "ms": NSEC_PER_MSEC, "s": NSEC_PER_SEC}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kib": KIB,
    "m": MIB,
    "mib": MIB,
    "g": GIB,
    "gib": GIB,
    "t": TIB,
    "tib": TIB,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
#: A number and its unit. The sign is matched so that ``"-1s"`` is refused for being negative, not malformed.
_NUMBER_UNIT = re.compile(r"^\s*(?P<num>-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*(?P<unit>[a-zA-Zµ]*)\s*$")


def us(value: float) -> int:
    """Microseconds to nanoseconds."""
    return round(value * NSEC_PER_USEC)


def ms(value: float) -> int:
    """Milliseconds to nanoseconds."""
    return round(value * NSEC_PER_MSEC)


def s(value: float) -> int:
    """Seconds to nanoseconds."""
    return round(value * NSEC_PER_SEC)


def ns_to_s(value: int | float) -> float:
    """Nanoseconds to (float) seconds, for reports only."""
    return value / NSEC_PER_SEC


#: The longest duration or size string parsed (anything longer is refused before it is looked at).
MAX_TEXT_CHARS = 64
#: The largest duration: ``KTIME_MAX`` (an s64 of nanoseconds, include/linux/ktime.h), about 292 years.
KTIME_MAX = (1 << 63) - 1
#: The largest size: a signed 64-bit byte count (8 EiB), the kernel's ``loff_t``.
SIZE_MAX = (1 << 63) - 1


def _short(text: str) -> str:
    """What a message shows of a (possibly huge) value."""
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "..."


def _number_and_unit(text: object, field: str, what: str, example: str) -> tuple[Fraction, str] | int:
    """The exact number and the unit of a ``"<number><unit>"`` string, or an ``int`` as it is.

    Exact (a :class:`~fractions.Fraction`), so ``"1.0000000001s"`` and 400-digit numbers are judged, not
    rounded or overflowed; ``bool``, ``float`` and other types are refused (a float has no unit and may be
    NaN or infinite).
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ConfigError(field, text, f"must be {what} with a unit such as {example}")
    if isinstance(text, int):
        return text
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(field, _short(text), f"must be {what} of at most {MAX_TEXT_CHARS} characters")
    m = _NUMBER_UNIT.match(text)
    if m is None:
        raise ConfigError(field, text, f"must be {what} with a unit such as {example}")
    return Fraction(m.group("num")), m.group("unit")


def parse_duration(
    text: str | int, *, field: str = "duration", max_ns: int | None = KTIME_MAX, unit_required: bool = False
) -> int:
    """Parse ``"2ms"``, ``"10us"``, ``"1.5s"``, ``"100ns"`` into integer nanoseconds.

    A unit is required for strings (a bare ``"10"`` is ambiguous between the kernel's ns and rt-app's µs);
    an ``int`` is taken as nanoseconds unless ``unit_required`` (a file format whose durations carry units).
    Zero may always be bare (``0`` or ``"0"``: it is the same in every unit). Negative values, fractions of a
    nanosecond and values above ``max_ns`` (default :data:`KTIME_MAX`; ``None``: the caller checks the field's
    own range, the value is exact) are refused.

    >>> parse_duration("2ms")
    2000000
    >>> parse_duration("1.5s")
    1500000000
    """
    parsed = _number_and_unit(text, field, "a duration", "2ms")
    if isinstance(parsed, int):
        if unit_required and parsed != 0:
            raise ConfigError(field, text, "must be a duration with a unit: ns, us, ms or s (e.g. \"2ms\")")
        value = Fraction(parsed)
    else:
        number, unit = parsed
        if unit not in _DURATION_UNITS and not (number == 0 and not unit):
            raise ConfigError(field, text, "must be a duration with a unit: ns, us, ms or s (e.g. 2ms)")
        value = number * _DURATION_UNITS.get(unit, 1)
    if value < 0:
        raise ConfigError(field, text, "must be >= 0")
    if value.denominator != 1:
        raise ConfigError(field, text, "must be a whole number of nanoseconds")
    if max_ns is not None and value > max_ns:
        raise ConfigError(field, text, f"must be at most {format_ns(max_ns)} ({max_ns} ns)")
    return int(value)


def parse_size(
    text: str | int, *, field: str = "size", max_bytes: int | None = SIZE_MAX, unit_required: bool = False
) -> int:
    """Parse ``"3GiB"``, ``"256M"``, ``"64 MB"``, ``"4096"`` into bytes.

    A bare number (``4096`` or ``"4096"``) is bytes, unless ``unit_required`` (a file format whose sizes
    carry units: then ``"4096B"``); zero may always be bare (``0`` or ``"0"``: it is the same in every unit).
    Negative values, fractions of a byte and values above ``max_bytes`` (default :data:`SIZE_MAX`; ``None``: the
    caller checks the field's own range, the value is exact) are refused.

    >>> parse_size("3GiB") == 3 * GIB
    True
    >>> parse_size("1MB")
    1000000
    """
    parsed = _number_and_unit(text, field, "a size", "3GiB")
    allowed = "must be a size: a number with B, KiB, MiB, GiB, TiB (or K/M/G/T, or kB/MB/GB)"
    if isinstance(parsed, int):
        if unit_required and parsed != 0:
            raise ConfigError(field, text, allowed + " (a bare number has no unit)")
        value = Fraction(parsed)
    else:
        number, unit = parsed
        if unit.lower() not in _SIZE_UNITS or (unit_required and not unit and number != 0):
            raise ConfigError(field, text, allowed)
        value = number * _SIZE_UNITS[unit.lower()]
    if value < 0:
        raise ConfigError(field, text, "must be >= 0")
    if value.denominator != 1:
        raise ConfigError(field, text, "must be a whole number of bytes")
    if max_bytes is not None and value > max_bytes:
        raise ConfigError(field, text, f"must be at most {format_bytes(max_bytes)} ({max_bytes} bytes)")
    return int(value)


def bytes_to_pages(nbytes: int, page_size: int) -> int:
    """Number of pages needed to hold ``nbytes`` (rounded up)."""
    return -(-nbytes // page_size)


def pages_to_bytes(pages: int, page_size: int) -> int:
    return pages * page_size


def format_ns(value: int | float) -> str:
    """Short human form of a duration in ns: ``"1.50 s"``, ``"2.00 ms"``."""
    v = float(value)
    for unit, scale in (("s", NSEC_PER_SEC), ("ms", NSEC_PER_MSEC), ("us", NSEC_PER_USEC)):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.0f} ns"


def format_bytes(value: int | float) -> str:
    """Short binary form of a byte count: ``"3.00 GiB"``."""
    v = float(value)
    for unit, scale in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.0f} B"


#: The unit a knob's name ends with (the kernel's own naming: ``scan_delay_ms``, ``dl_runtime_us``).
_KEY_UNITS = (
    ("_ns", "ns"),
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_mb", "MiB"),
    ("_kb", "KiB"),
    ("_gb", "GiB"),
    ("_kib", "KiB"),
    ("_mib", "MiB"),
    ("_gib", "GiB"),
    ("_bytes", "bytes"),
    ("_pages", "pages"),
    ("_pct", "%"),
    ("_percent", "%"),
    ("_hz", "Hz"),
)


def unit_of_key(name: str) -> str:
    """The unit a setting's name says it is in (``scan_size_mb`` -> ``MiB``), or ``""``."""
    return next((unit for suffix, unit in _KEY_UNITS if name.endswith(suffix)), "")
