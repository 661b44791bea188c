"""CPU lists as the kernel prints them (``%*pbl``): ``"0-3,8,10-11"``.

The format of ``/sys/devices/system/cpu/{online,isolated,nohz_full}``,
``/sys/devices/system/node/nodeN/cpulist`` and ``Cpus_allowed_list`` in ``/proc/<pid>/status``
(``lib/bitmap-str.c`` ``bitmap_print_list_to_buf`` / ``bitmap_parselist``, Linux 6.x;
Documentation/admin-guide/cputopology.rst). An empty mask prints as an
empty line. ``nohz_full`` prints ``(null)`` when the kernel has ``CONFIG_NO_HZ_FULL`` but no ``nohz_full=``
on its command line (``print_cpus_nohz_full`` formats a NULL cpumask pointer), which also means "none".
Group syntax (``0-7:2/4``) is accepted by ``bitmap_parselist`` but the kernel never prints it; it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from memsched.errors import ConfigError

__all__ = ["NR_CPUS_MAX", "format_cpulist", "parse_cpulist"]


#: The largest ``CONFIG_NR_CPUS`` (x86-64 with ``MAXSMP``): a CPU id at or above it exists on no kernel.
NR_CPUS_MAX = 8192


def parse_cpulist(text: str, *, field: str = "cpulist", nr_cpus: int = NR_CPUS_MAX) -> frozenset[int]:
    """``"0-2,5"`` -> ``frozenset({0, 1, 2, 5})``; ``""``, ``"\\n"`` and ``"(null)"`` -> empty.

    CPU ids must be below ``nr_cpus`` (``bitmap_parselist()`` refuses bits beyond the mask with ``ERANGE``),
    so ``0-99999999999`` is refused instead of expanded."""
    body = text.strip()
    if body in ("", "(null)"):
        return frozenset()
    cpus: set[int] = set()
    for part in body.split(","):
        lo_text, sep, hi_text = part.strip().partition("-")
        if not all(t.isascii() and t.isdigit() and len(t) <= 9 for t in ((lo_text, hi_text) if sep else (lo_text,))):
            raise ConfigError(field, text, "must be a CPU list such as 0-3,8 (of CPU ids below 10^9)")
        lo = int(lo_text, 10)
        hi = int(hi_text, 10) if sep else lo
        if hi < lo:
            raise ConfigError(field, text, "must be a CPU list of ascending ranges such as 0-3,8")
        if hi >= nr_cpus:
            raise ConfigError(field, text, f"must name CPUs below {nr_cpus}")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """The kernel's list form of a set of CPUs: ``{0, 1, 2, 5}`` -> ``"0-2,5"``."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
