"""Parsers of a process's address space: ``/proc/<pid>/numa_maps`` and ``/proc/<pid>/maps``.

``numa_maps`` (``show_numa_map``, fs/proc/task_mmu.c; proc(5))
    One line per VMA: the start address in hex, the memory policy (``mpol_to_str``: ``default``,
    ``prefer:1``, ``bind=static:0-1``, ``interleave:0-3``, ``local``, and the two-word ``prefer (many):0-1``
    and ``weighted interleave:0-3``), then ``file=<path>`` (spaces, tabs, newlines and ``=`` escaped as
    ``\\ooo`` by ``seq_file_path``) or ``heap`` or ``stack``, ``huge`` for hugetlb VMAs, and, only when the
    VMA has resident pages, ``anon=``, ``dirty=``, ``mapped=``, ``mapmax=``, ``swapcache=``, ``active=``,
    ``writeback=``, one ``N<node>=<pages>`` per node with pages, and ``kernelpagesize_kB=`` (since 4.0).
    The ``N`` counts are in units of the VMA's kernel page: base pages for ordinary VMAs (a THP counts its
    512 base pages, ``gather_pte_stats`` passes ``HPAGE_PMD_NR``), huge pages for hugetlb VMAs (2048 or
    1048576 kB each). Bytes are therefore ``N * kernelpagesize_kB * 1024``.
``maps`` (``show_map_vma``; proc(5))
    ``start-end perms offset dev inode [path]``: the VMA ranges that ``numa_maps`` lacks.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from memsched.errors import KernelFileError, excerpt
from memsched.kfile import decode_kernel_text
from memsched.units import KIB

__all__ = ["MapsRange", "MissingFieldWarning", "NumaMapsVma", "parse_maps", "parse_numa_maps"]


class MissingFieldWarning(UserWarning):
    """A field the kernel normally prints was not there; the value is reported as unknown (``None``)."""


# --------------------------------------------------------------------------------------------- numa_maps

_KNOWN_KEYS = ("file", "anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback", "kernelpagesize_kB")
_NODE_FIELD = re.compile(r"N(\d+)=(\d+)\Z")
_NODE_KEY = re.compile(r"N\d+\Z")

#: Node numbers the kernel can print: ``MAX_NUMNODES`` is ``1 << CONFIG_NODES_SHIFT``, at most 10 bits.
MAX_NUMNODES = 1 << 10
#: The largest page count a line can hold: 2^64 bytes of 4 KiB pages (more cannot be mapped).
MAX_PAGES = 1 << 52
#: ``kernelpagesize_kB``: from 4 (base pages) to 16 GiB (powerpc's largest hugetlb page), a power of two.
MAX_KERNELPAGESIZE_KB = 1 << 24
#: The most bytes one VMA can hold: the 57-bit virtual address space of 5-level paging (128 PiB).
MAX_VMA_BYTES = 1 << 57


@dataclass(frozen=True, slots=True)
class NumaMapsVma:
    """One line of ``numa_maps``. ``node_pages`` are in units of the VMA's kernel page (see the module doc)."""

    start: int
    policy: str
    file: str | None = None
    heap: bool = False
    stack: bool = False
    huge: bool = False
    anon: int = 0
    dirty: int = 0
    node_pages: Mapping[int, int] = field(default_factory=dict)
    kernelpagesize_kb: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def resident_pages(self) -> int:
        """Resident pages (``N`` totals) in kernel-page units."""
        return sum(self.node_pages.values())

    def node_bytes(self) -> dict[int, int]:
        """Resident bytes per node. A line with pages but no ``kernelpagesize_kB`` (kernels before 4.0) is
        read as base pages of 4 KiB unless the VMA is hugetlb, whose page size is then unknown: it warns and
        counts the VMA as 0 bytes rather than guess."""
        if not self.node_pages:
            return {}
        kb = self.kernelpagesize_kb
        if kb is None:
            if self.huge:
                warnings.warn(
                    f"numa_maps line at {self.start:#x} is hugetlb but has no kernelpagesize_kB: its "
                    "pages are left out of the totals",
                    MissingFieldWarning,
                    stacklevel=2,
                )
                return {}
            kb = 4
        return {n: pages * kb * KIB for n, pages in self.node_pages.items()}


def _is_body_token(token: str) -> bool:
    if token in ("heap", "stack", "huge") or token.startswith("stack:"):
        return True
    key, sep, _ = token.partition("=")
    return bool(sep) and (key in _KNOWN_KEYS or _NODE_KEY.match(key) is not None)


_ADDRESS = re.compile(r"[0-9a-f]{1,16}\Z")


def _is_address(text: str) -> bool:
    """A user-space address as ``%08lx`` prints it: at most 16 hex digits (64 bits)."""
    return _ADDRESS.match(text) is not None


def _number(source: str, token: str, what: str, text: str, limit: int) -> int:
    """``text`` (part of ``token``) as a decimal number in ``0..limit``, else :class:`KernelFileError` naming
    ``source``, the field and what it must be."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else -1
    if not 0 <= value <= limit:
        shown = f"2^{limit.bit_length() - 1}" if limit & (limit - 1) == 0 else str(limit)
        raise KernelFileError(source, f"bad field {excerpt(token)}: {what} must be a number in 0..{shown}")
    return value


def parse_numa_maps(data: bytes | str, *, source: str = "numa_maps") -> tuple[NumaMapsVma, ...]:
    """``/proc/<pid>/numa_maps`` -> one record per VMA (pure; raises :class:`KernelFileError` naming ``source``
    on a bad line: a bad address, a count that is not a number or larger than an address space holds, a node
    number the kernel cannot print)."""
    text = decode_kernel_text(data) if isinstance(data, bytes) else data
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        tokens = line.split(" ")
        if not _is_address(tokens[0]):
            raise KernelFileError(where, f"line does not start with an address: {excerpt(line)}")
        start = int(tokens[0], 16)
        i = 1
        policy_words = []
        while i < len(tokens) and not _is_body_token(tokens[i]):
            policy_words.append(tokens[i])
            i += 1
        rec: dict[str, object] = {"start": start, "policy": " ".join(policy_words)}
        nodes: dict[int, int] = {}
        extra: dict[str, str] = {}
        for token in tokens[i:]:
            if not token:
                continue
            m = _NODE_FIELD.match(token)
            key, sep, value = token.partition("=")
            if m:
                node = _number(where, token, "the node", m.group(1), MAX_NUMNODES - 1)
                nodes[node] = _number(where, token, "the page count", m.group(2), MAX_PAGES)
            elif token in ("heap", "huge"):
                rec[token] = True
            elif token == "stack" or token.startswith("stack:"):
                rec["stack"] = True
            elif _NODE_KEY.match(key):
                raise KernelFileError(where, f"bad field {excerpt(token)}: must be {key}=<pages>")
            elif key == "file":
                rec["file"] = value
            elif key in ("anon", "dirty"):
                rec[key] = _number(where, token, "the page count", value, MAX_PAGES)
            elif key == "kernelpagesize_kB":
                kb = _number(where, token, "the page size", value, MAX_KERNELPAGESIZE_KB)
                if kb < 4 or kb & (kb - 1):
                    problem = "the page size must be a power of two >= 4"
                    raise KernelFileError(where, f"bad field {excerpt(token)}: {problem}")
                rec["kernelpagesize_kb"] = kb
            else:
                extra[key] = value if sep else ""
        vma = NumaMapsVma(node_pages=nodes, extra=extra, **rec)  # type: ignore[arg-type]
        if sum(vma.node_pages.values()) * (vma.kernelpagesize_kb or 4) * KIB > MAX_VMA_BYTES:
            raise KernelFileError(where, "N<node>= pages add up to more than a 128 PiB address space holds")
        out.append(vma)
    return tuple(out)


# --------------------------------------------------------------------------------------------- maps


@dataclass(frozen=True, slots=True)
class MapsRange:
    """One line of ``/proc/<pid>/maps``."""

    start: int
    end: int
    perms: str
    path: str

    @property
    def private(self) -> bool:
        return self.perms.endswith("p")


def parse_maps(data: bytes | str, *, source: str = "maps") -> tuple[MapsRange, ...]:
    """``/proc/<pid>/maps`` -> ranges (pure; a malformed line raises :class:`KernelFileError` naming ``source``)."""
    text = decode_kernel_text(data) if isinstance(data, bytes) else data
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(maxsplit=5)
        if not parts:
            continue
        lo, sep, hi = parts[0].partition("-")
        if not sep or len(parts) < 5 or not _is_address(lo) or not _is_address(hi):
            raise KernelFileError(f"{source} line {number}", f"malformed line {excerpt(line)}")
        out.append(MapsRange(int(lo, 16), int(hi, 16), parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return tuple(out)
