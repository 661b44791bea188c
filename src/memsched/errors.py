"""One exception hierarchy for memsched.

Every error a user can cause carries a message that names what was wrong, the value given and what is
allowed, in the style of attrs validators: ``'scan_delay_ms' must be >= 0 (got -5)``. The command line turns
any :class:`MemschedError` into exactly that one line on stderr and exit status 2 (see ``memsched.cli``).

``ConfigError`` and its subclasses are also ``ValueError`` so that library users who catch the builtin
keep working; ``KernelError`` is also ``OSError`` and keeps the ``errno`` of the failing system call.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "KernelError",
    "KernelFileError",
    "MemschedError",
    "PolicyError",
    "ProcessGoneError",
    "SimulationError",
    "Terminated",
    "UnknownNameError",
    "UnsupportedError",
    "excerpt",
    "is_interrupt",
    "printable",
]


#: The most characters of a bad value an error message shows.
_MAX_SHOWN = 120
#: The most characters of a file's contents an error message shows (:func:`excerpt`).
_MAX_EXCERPT = 60


def excerpt(text: str | bytes) -> str:
    """A short, escaped excerpt of a file's contents for an error message: its ``repr``, cut to at most 60
    characters. A message never carries more of a file than this: the file may be large, binary, or someone
    else's (a symlink to ``/etc/shadow`` in a copied tree)."""
    shown = repr(text[: _MAX_EXCERPT + 1])
    if len(shown) > _MAX_EXCERPT:
        shown = shown[: _MAX_EXCERPT - 3] + "..."
    return shown


#: Control characters (C0, DEL, C1) as a terminal must never receive them from someone else's text.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
#: Lone surrogates are not text: ``surrogateescape``'s (U+DC80..U+DCFF, an undecodable byte) as that byte,
#: ``\\xNN``, any other as ``\\udNNN``. Printed raw they reach the terminal as invalid bytes.
_SURROGATES = {c: f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}" for c in range(0xD800, 0xE000)}
#: The bidirectional embedding, override and isolate controls (LRE..RLO, LRI..PDI): they reorder the rest of the
#: line on a terminal that implements bidi (the "Trojan Source" characters, CVE-2021-42574).
_BIDI = {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_UNPRINTABLE = {**_CONTROL, **_SURROGATES, **_BIDI}


def printable(text: str) -> str:
    """``text`` from the system (a process's ``comm``, a cgroup path) safe to print on a terminal: every control
    character written as ``\\xNN``, a lone surrogate as ``\\xNN`` (the byte ``surrogateescape`` kept) or
    ``\\udNNN``, and a bidi control (U+202A..U+202E, U+2066..U+2069) as ``\\uNNNN``. Any process may name
    itself with escape sequences or a right-to-left override (``PR_SET_NAME``), which would otherwise reach the
    terminal of whoever runs ``numa top`` or ``rt admit``, or reorder the line it is printed on."""
    return text.translate(_UNPRINTABLE)


class MemschedError(Exception):
    """Base class of every error memsched raises on purpose."""


class ConfigError(MemschedError, ValueError):
    """A value given by the user (argument, config field, file) is out of range or malformed.

    ``field`` is the user-visible name (a CLI option, a TOML key, a sysctl-style config field),
    ``value`` what was given, ``allowed`` a short description of what would have been accepted.
    """

    def __init__(self, field: str, value: object, allowed: str, *, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f"{source}: " if source else ""
        shown = repr(value)
        if len(shown) > _MAX_SHOWN:  # a message is one line: a huge value is shown by its start
            shown = shown[: _MAX_SHOWN - 3] + "..."
        super().__init__(f"{where}'{field}' {allowed} (got {shown})")


class UnknownNameError(ConfigError):
    """A name (topology, workload, policy, level, ...) that is not in its registry."""

    def __init__(self, field: str, value: object, valid: Iterable[str], *, source: str | None = None) -> None:
        self.valid = tuple(valid)
        super().__init__(field, value, "must be one of: " + ", ".join(self.valid), source=source)


class PolicyError(MemschedError):
    """A policy plug-in broke its contract (returned something that is not an action, an action naming a
    task or page it was never shown, ...): a bug in the policy, not in what the user asked for.

    ``policy`` is the policy's id; the command line exits with status 1 and names it.
    """

    def __init__(self, policy: str, message: str) -> None:
        self.policy = policy
        super().__init__(f"policy {policy}: {message}")


class SimulationError(MemschedError):
    """The simulated kernel reached a state the model does not allow (a bug, or an impossible input)."""


class KernelError(MemschedError, OSError):
    """A system call or kernel interface failed; ``errno`` is kept and the message says why in words."""

    def __init__(self, errno_: int, message: str) -> None:
        OSError.__init__(self, errno_, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class KernelFileError(ConfigError, KernelError):
    """A file read as a kernel file (``/proc``, ``/sys``, or their copies under ``--proc-root``/``--sys-root``)
    is not what the kernel writes there: not a regular file, larger than the kernel writes it, reached through a
    symlink that leaves its tree, or malformed (bad bytes, a missing field, a number out of range).

    The input's fault, so a :class:`ConfigError` (the command line exits 2 with the one line) and, for code that
    catches the errors of the kernel's interfaces, a :class:`KernelError` with ``errno`` ``EINVAL``. The message
    starts with the file's path; it shows the file's contents only through :func:`excerpt`.
    """

    def __init__(self, path: object, problem: str) -> None:
        KernelError.__init__(self, errno.EINVAL, f"{path}: {problem}")
        self.field = str(path)
        self.value = None
        self.allowed = problem
        self.source = str(path)


class ProcessGoneError(KernelError):
    """The process or thread exited (or never existed) while it was read or acted on: ``ESRCH`` from a
    system call, ``ENOENT``/``ESRCH`` from its ``/proc`` files (psutil's ``NoSuchProcess``). A scan over
    ``/proc`` skips it; an action on it is skipped, not failed."""


class AccessDeniedError(KernelError):
    """The kernel refused this caller (``EACCES``/``EPERM``): credentials, capabilities or a ptrace access
    check (psutil's ``AccessDenied``). The message says which rule, where it is known."""


class UnsupportedError(MemschedError):
    """The running kernel (or the permissions we have) does not offer a mechanism; ``reason`` says why."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} is not available: {reason}")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a command ran (the command line raises it from its handler).

    A ``KeyboardInterrupt``, so that every ``finally`` and every handler written for Ctrl-C also runs for a
    ``kill`` or a closed terminal: children are reaped, registrations released, temporary files removed.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def is_interrupt(error: BaseException | None) -> bool:
    """Whether ``error`` is a KeyboardInterrupt or was caused by one."""
    seen = 0
    while error is not None and seen < 32:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False
