"""Parsers of machine-wide files: ``name value`` counters, one-integer files, PSI, interrupts, softirqs,
the kernel release.

Formats are described in :mod:`memsched.live.procfs`; each parser is a pure function of the file's text.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.errors import KernelError

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
    text = data.decode() if isinstance(data, bytes) else data
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
            raise KernelError(errno.EINVAL, f"{source}: expected 'key value', got {line!r}")
        out[parts[0]] = parse_counter(parts[0], parts[1], source)
    return out


def parse_counter(key: str, value: str, source: str) -> int:
    """The value of counter ``key`` read from ``source``; not an integer raises naming both."""
    try:
        return int(value)
    except ValueError:
        raise KernelError(errno.EINVAL, f"{source}: {key} is not an integer ({value.strip()!r})") from None


def parse_int(text: str, *, source: str) -> int:
    """A file (or field) holding one decimal integer: sysctls, sysfs attributes, ``memory.failcnt``."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise KernelError(errno.EINVAL, f"{source} does not hold an integer (got {text.strip()!r})") from None


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
        fields: dict[str, str] = {}
        for item in parts[1:]:
            key, eq, value = item.partition("=")
            if not eq:
                raise KernelError(errno.EINVAL, f"{source}: malformed field {item!r} in {line!r}")
            fields[key] = value
        try:
            lines[parts[0]] = PsiLine(
                float(fields["avg10"]), float(fields["avg60"]), float(fields["avg300"]), int(fields["total"])
            )
        except KeyError as e:
            raise KernelError(errno.EINVAL, f"{source}: {parts[0]} line lacks {e.args[0]}= ({line!r})") from None
        except ValueError:
            raise KernelError(errno.EINVAL, f"{source}: non-numeric value in {line!r}") from None
    if "some" not in lines:
        raise KernelError(errno.EINVAL, f"{source}: no 'some' line")
    return PsiStats(lines["some"], lines.get("full"))


def _per_cpu_table(text: str, source: str) -> tuple[list[int], dict[str, list[int]]]:
    lines = text.splitlines()
    if not lines:
        raise KernelError(errno.EINVAL, f"{source} is empty")
    cpus = []
    for name in lines[0].split():
        if not name.startswith("CPU") or not name[3:].isdigit():
            raise KernelError(errno.EINVAL, f"{source}: unexpected header word {name!r}")
        cpus.append(int(name[3:]))
    rows: dict[str, list[int]] = {}
    for line in lines[1:]:
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        counts = []
        for word in rest.split()[: len(cpus)]:
            if not word.isdigit():
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
    m = re.match(r"(\d+)\.(\d+)", release.strip())
    if m is None:
        raise KernelError(errno.EINVAL, f"cannot parse kernel release {release!r}")
    return int(m[1]), int(m[2])


