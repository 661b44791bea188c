"""Parsers of machine-wide files: ``name value`` counters, one-integer files, PSI, interrupts, softirqs,
the kernel release.

Formats are described in :mod:`memsched.live.procfs`; each parser is a pure function of the file's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.errors import KernelFileError, excerpt
from memsched.kfile import decode_kernel_text

__all__ = [
    "PsiLine",
    "PsiStats",
    "kernel_version",
    "parse_counter",
    "parse_flat_keyed",
    "parse_int",
    "parse_interrupts",
    "parse_psi",
    "parse_softirqs",
]


# --------------------------------------------------------------------------------------------- counters


def parse_flat_keyed(data: str | bytes, *, source: str, keys: Sequence[str] | None = None) -> dict[str, int]:
    """``name value`` lines -> ``{name: value}``; a value that is not an integer raises naming ``source``.

    ``keys`` picks only those names (absent ones are absent from the result) by searching for each instead of
    splitting every line: the reclaim-index backend reads ``/proc/vmstat`` (about 200 lines) 100 times a second.
    """
    text = decode_kernel_text(data) if isinstance(data, bytes) else data
    out: dict[str, int] = {}
    if keys is not None:
        view = "\n" + text
        for key in keys:
            i = view.find(f"\n{key} ")
            if i < 0:
                continue
            start = i + len(key) + 2
            end = view.find("\n", start)
            value = view[start : end if end >= 0 else None]
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = parse_counter(key, value, source)  # raises, naming the file and the key
        return out
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise KernelFileError(source, f"expected 'key value' lines (got {excerpt(line)})")
        out[parts[0]] = parse_counter(parts[0], parts[1], source)
    return out


#: The range of a kernel counter: printed from a ``long`` or an ``unsigned long`` (64 bits).
COUNTER_MIN = -(1 << 63)
COUNTER_MAX = (1 << 64) - 1


def _integer(text: str) -> int | None:
    """``text`` (one decimal integer, surrounding blanks allowed) in the counter range, or ``None``."""
    digits = text.strip()
    body = digits[1:] if digits[:1] in ("-", "+") else digits
    if not (body.isascii() and body.isdigit() and len(body) <= 20):
        return None
    value = int(digits, 10)
    return value if COUNTER_MIN <= value <= COUNTER_MAX else None


def parse_counter(key: str, value: str, source: str) -> int:
    """The value of counter ``key`` read from ``source``; not an integer of 64 bits raises naming both."""
    number = _integer(value)
    if number is None:
        raise KernelFileError(source, f"{key} is not an integer of 64 bits ({excerpt(value.strip())})")
    return number


def parse_int(text: str, *, source: str) -> int:
    """A file (or field) holding one decimal integer of 64 bits: sysctls, sysfs attributes, ``memory.failcnt``."""
    number = _integer(text)
    if number is None:
        raise KernelFileError(source, f"does not hold an integer of 64 bits (got {excerpt(text.strip())})")
    return number


@dataclass(frozen=True, slots=True)
class PsiLine:
    """One line of a PSI file: averages in percent (as printed, two decimals) and ``total`` stall in µs."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True, slots=True)
class PsiStats:
    """A PSI file: ``some`` and ``full`` (``None`` in system-wide ``cpu`` before 5.13)."""

    some: PsiLine
    full: PsiLine | None


def parse_psi(text: str, *, source: str = "pressure file") -> PsiStats:
    """``some avg10=0.00 avg60=0.00 avg300=0.00 total=0`` (+ ``full ...``) -> :class:`PsiStats`."""
    lines: dict[str, PsiLine] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] not in ("some", "full"):
            raise KernelFileError(source, f"is not a PSI file: a line starts {excerpt(parts[0])}, not some or full")
        fields: dict[str, str] = {}
        for item in parts[1:]:
            key, eq, value = item.partition("=")
            if not eq:
                raise KernelFileError(source, f"malformed field {excerpt(item)} in line {excerpt(line)}")
            fields[key] = value
        missing = [key for key in ("avg10", "avg60", "avg300", "total") if key not in fields]
        if missing:
            raise KernelFileError(source, f"{parts[0]} line lacks {missing[0]}= (line {excerpt(line)})")
        avg10, avg60, avg300 = (_average(fields[key]) for key in ("avg10", "avg60", "avg300"))
        total = _integer(fields["total"])
        if avg10 is None or avg60 is None or avg300 is None or total is None or total < 0:
            raise KernelFileError(source, f"non-numeric or out-of-range value in line {excerpt(line)}")
        lines[parts[0]] = PsiLine(avg10, avg60, avg300, total)
    if "some" not in lines:
        raise KernelFileError(source, "has no 'some' line")
    return PsiStats(lines["some"], lines.get("full"))


#: A PSI average as ``psi_show`` prints it (``LOAD_INT.LOAD_FRAC``, a percentage with two decimals).
_AVERAGE = re.compile(r"\d{1,6}(\.\d{1,6})?\Z")


def _average(text: str) -> float | None:
    return float(text) if text.isascii() and _AVERAGE.match(text) else None


def _per_cpu_table(text: str, source: str) -> tuple[list[int], dict[str, list[int]]]:
    lines = text.splitlines()
    if not lines:
        raise KernelFileError(source, "is empty")
    cpus = []
    for name in lines[0].split():
        if not name.startswith("CPU") or not name[3:].isdigit():
            raise KernelFileError(source, f"unexpected header word {excerpt(name)}")
        cpus.append(int(name[3:]))
    rows: dict[str, list[int]] = {}
    for line in lines[1:]:
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        counts = []
        for word in rest.split()[: len(cpus)]:
            if not (word.isascii() and word.isdigit() and len(word) <= 20):
                break
            counts.append(int(word))
        if len(counts) == len(cpus):  # ERR/MIS carry one global count; they are not per CPU
            rows[key.strip()] = counts
    return cpus, rows


def parse_interrupts(text: str) -> dict[int, tuple[int, int]]:
    """``/proc/interrupts`` -> ``{cpu: (interrupts other than NMI, NMIs)}``."""
    cpus, rows = _per_cpu_table(text, "/proc/interrupts")
    nmi = rows.pop("NMI", [0] * len(cpus))
    totals = [sum(col) for col in zip(*rows.values(), strict=True)] if rows else [0] * len(cpus)
    return {cpu: (totals[i], nmi[i]) for i, cpu in enumerate(cpus)}


def parse_softirqs(text: str) -> dict[int, int]:
    """``/proc/softirqs`` -> ``{cpu: softirqs handled}``."""
    cpus, rows = _per_cpu_table(text, "/proc/softirqs")
    totals = [sum(col) for col in zip(*rows.values(), strict=True)] if rows else [0] * len(cpus)
    return dict(zip(cpus, totals, strict=True))


def kernel_version(release: str) -> tuple[int, int]:
    """``/proc/sys/kernel/osrelease``: ``"6.18.44-fc-v769"`` -> ``(6, 18)``."""
    m = re.match(r"(\d{1,4})\.(\d{1,4})", release.strip())
    if m is None:
        raise KernelFileError("osrelease", f"cannot parse kernel release {excerpt(release)}")
    return int(m[1]), int(m[2])


