"""Memory-pressure ABI: the 2012 ``vmpressure_fd()`` proposal, the merged memcg levels, and PSI triggers.

Three interfaces, one module, because user space meets all three and they must not be confused:

``vmpressure_fd(2)`` (RFC v1-v3, Anton Vorontsov, Nov 2012; never merged)
    ``include/linux/vmpressure.h`` of the RFC 1/3 patch (linux-mm, 7 Nov 2012)::

        enum vmpressure_level {
            VMPRESSURE_LOW = 1 << 10, VMPRESSURE_MEDIUM = 1 << 20, VMPRESSURE_OOM = 1 << 30,
        };
        struct vmpressure_config { __u32 size; __u32 threshold; };  /* size = sizeof(this struct) */
        struct vmpressure_event  { __u32 pressure; };               /* a level constant, not 0..100 */

    The levels are spread out "reserving room for new levels"; ``threshold`` is compared with ``<`` against
    them, so a watcher with threshold MEDIUM also wakes for OOM. The RFC code never looked at ``size``; Mel
    Gorman's review asked for a real version check, which :class:`VmpressureConfig` does (``size`` must be 8).
    x86-64 syscall number 314 in that tree (313 was ``vmevent_fd``); mainline later gave 314 to
    ``sched_setattr`` (3.14), so :data:`NR_VMPRESSURE_FD_RFC` is kept only as history.

``memory.pressure_level`` (merged in 3.10, cgroup v1 only; mm/vmpressure.c)
    Levels ``VMPRESSURE_LOW = 0, MEDIUM, CRITICAL`` named ``"low"``, ``"medium"``, ``"critical"``; modes
    ``"default"``, ``"hierarchy"``, ``"local"`` (modern kernels; 3.10 had no modes). Registration writes
    ``"<eventfd> <fd of memory.pressure_level> <level[,mode]>"`` to ``cgroup.event_control``; the eventfd then
    counts signals (8-byte host-endian counter) and carries no level.

PSI triggers (4.20 files, triggers ~5.2; Documentation/accounting/psi.rst, kernel/sched/psi.c 6.x)
    ``"<some|full> <stall us> <window us>"`` written to ``/proc/pressure/memory`` (or a cgroup v2
    ``memory.pressure``) **including the terminating NUL**: ``psi_write()`` overwrites the last byte written
    with ``'\\0'`` before ``sscanf``. Rules of ``psi_trigger_create()`` (6.5+): window ``0`` or above 10 s is
    ``EINVAL``; an unprivileged opener (no ``CAP_SYS_RESOURCE``) must use a window that is a multiple of 2 s;
    ``threshold == 0 || threshold > window`` is ``EINVAL``. Older kernels (5.2-6.4) also refused windows
    under 500 ms and had no unprivileged triggers (files were root-only or ``EPERM`` for writers).
"""

from __future__ import annotations

import enum
import errno
import operator
import re
import struct
import sys
from dataclasses import dataclass

from memsched.errors import ConfigError, KernelError, UnknownNameError

__all__ = [
    "MAX_VMPRESSURE_ARGS_LEN",
    "NR_VMPRESSURE_FD_RFC",
    "PSI_WINDOW_MAX_US",
    "PSI_WINDOW_MIN_US_OLD",
    "PSI_WINDOW_UNPRIVILEGED_US",
    "VMPRESSURE_CONFIG_SIZE",
    "VMPRESSURE_EVENT_SIZE",
    "MemcgLevel",
    "MemcgMode",
    "PsiTrigger",
    "VmpressureConfig",
    "VmpressureEvent",
    "VmpressureLevel",
    "memcg_to_rfc_level",
    "rfc_to_memcg_level",
]

#: x86-64 syscall number of ``vmpressure_fd`` in the RFC tree (reused by ``sched_setattr`` since 3.14).
NR_VMPRESSURE_FD_RFC = 314

_ORDER = "<" if sys.byteorder == "little" else ">"
_CONFIG = struct.Struct(_ORDER + "II")
_EVENT = struct.Struct(_ORDER + "I")
#: ``sizeof(struct vmpressure_config)``: the only ABI version there ever was.
VMPRESSURE_CONFIG_SIZE = _CONFIG.size
#: ``sizeof(struct vmpressure_event)``: a read buffer smaller than this is ``EINVAL``.
VMPRESSURE_EVENT_SIZE = _EVENT.size
assert VMPRESSURE_CONFIG_SIZE == 8 and VMPRESSURE_EVENT_SIZE == 4

_U32_MAX = (1 << 32) - 1
#: The longest level name or number :meth:`VmpressureLevel.parse` reads (``VMPRESSURE_MEDIUM`` is 17).
_MAX_LEVEL_CHARS = 32


class VmpressureLevel(enum.IntEnum):
    """``enum vmpressure_level`` of the RFC: the values a ``vmpressure_fd`` read returns."""

    LOW = 1 << 10
    MEDIUM = 1 << 20
    OOM = 1 << 30

    @classmethod
    def parse(cls, text: str | int, *, field: str = "threshold") -> VmpressureLevel:
        """``"medium"``, ``"VMPRESSURE_MEDIUM"``, ``1048576`` or ``"1<<20"`` -> :attr:`MEDIUM`.

        Only ASCII text is read: ``"²"`` passes ``str.isdigit()`` but is no number. A name or number longer
        than 32 characters is refused unread, and ``1<<N`` is computed only for a shift below 64 (a 400-digit
        shift would be a 10^400-bit integer). Anything else (a bool, a float, None) is refused."""
        if not isinstance(text, bool | str) and hasattr(text, "__index__"):  # an int, or numpy's
            if operator.index(text) in cls._value2member_map_:
                return cls(operator.index(text))
            raise UnknownNameError(field, text, [f"{m.name.lower()} ({m.value})" for m in cls])
        key = text.strip() if isinstance(text, str) else ""
        if key.isascii() and len(key) <= _MAX_LEVEL_CHARS:
            shift = re.fullmatch(r"1\s*<<\s*([0-9]{1,2})", key)
            if shift and int(shift.group(1)) < 64:
                return cls.parse(1 << int(shift.group(1)), field=field)
            if key.isdigit():
                return cls.parse(int(key), field=field)
            member = cls.__members__.get(key.upper().removeprefix("VMPRESSURE_"))
            if member is not None:
                return member
        raise UnknownNameError(field, text, [m.name.lower() for m in cls])


class MemcgLevel(enum.IntEnum):
    """``enum vmpressure_levels`` of mainline mm/vmpressure.c (3.10+), for ``memory.pressure_level``."""

    LOW = 0
    MEDIUM = 1
    CRITICAL = 2

    @property
    def text(self) -> str:
        """``vmpressure_str_levels[]``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str, *, field: str = "level") -> MemcgLevel:
        for m in cls:
            if text == m.text:
                return m
        raise UnknownNameError(field, text, [m.text for m in cls])


class MemcgMode(enum.IntEnum):
    """``enum vmpressure_modes`` (modern kernels): event propagation up the memcg tree."""

    DEFAULT = 0  # VMPRESSURE_NO_PASSTHROUGH, printed "default"
    HIERARCHY = 1
    LOCAL = 2

    @property
    def text(self) -> str:
        """``vmpressure_str_modes[]``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str, *, field: str = "mode") -> MemcgMode:
        for m in cls:
            if text == m.text:
                return m
        raise UnknownNameError(field, text, [m.text for m in cls])


#: ``strlen("critical") + strlen("hierarchy") + 2``: ``vmpressure_register_event()`` copies at most this much.
MAX_VMPRESSURE_ARGS_LEN = len("critical") + len("hierarchy") + 2


def memcg_to_rfc_level(level: MemcgLevel) -> VmpressureLevel:
    """The RFC constant with the same meaning (critical is the RFC's OOM)."""
    return (VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM)[int(level)]


def rfc_to_memcg_level(level: VmpressureLevel) -> MemcgLevel:
    return {VmpressureLevel.LOW: MemcgLevel.LOW, VmpressureLevel.MEDIUM: MemcgLevel.MEDIUM}.get(
        level, MemcgLevel.CRITICAL
    )


@dataclass(frozen=True, slots=True)
class VmpressureConfig:
    """``struct vmpressure_config``: the argument of ``vmpressure_fd()``.

    ``threshold`` is the lowest level the file reports (one of :class:`VmpressureLevel`; names are accepted
    through :meth:`VmpressureLevel.parse`). ``size`` versions the ABI and must be 8.

    >>> VmpressureConfig(threshold=VmpressureLevel.MEDIUM).pack().hex()
    '0800000000001000'
    """

    threshold: int = VmpressureLevel.LOW
    size: int = VMPRESSURE_CONFIG_SIZE

    def __post_init__(self) -> None:
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or self.size != VMPRESSURE_CONFIG_SIZE
        ):
            raise ConfigError(
                "size",
                self.size,
                f"must be {VMPRESSURE_CONFIG_SIZE} (sizeof(struct vmpressure_config), the only ABI version)",
            )
        object.__setattr__(self, "threshold", VmpressureLevel.parse(self.threshold))

    @property
    def level(self) -> VmpressureLevel:
        return VmpressureLevel(self.threshold)

    def pack(self) -> bytes:
        return _CONFIG.pack(self.size, self.threshold)

    @classmethod
    def unpack(cls, data: bytes) -> VmpressureConfig:
        """Decode the 8-byte struct a caller passed; a short buffer or bad field is ``EINVAL`` (like the
        ``copy_from_user`` + version check a merged syscall would have done)."""
        if len(data) < VMPRESSURE_CONFIG_SIZE:
            raise KernelError(
                errno.EINVAL, f"vmpressure_config: need {VMPRESSURE_CONFIG_SIZE} bytes, got {len(data)}"
            )
        size, threshold = _CONFIG.unpack_from(data)
        try:
            return cls(threshold=threshold, size=size)
        except ConfigError as e:
            raise KernelError(errno.EINVAL, f"vmpressure_config: {e}") from None


@dataclass(frozen=True, slots=True)
class VmpressureEvent:
    """``struct vmpressure_event { __u32 pressure; }``: what one read of a ``vmpressure_fd`` returns."""

    pressure: int

    def __post_init__(self) -> None:
        if not 0 <= self.pressure <= _U32_MAX:
            raise ConfigError("pressure", self.pressure, "must fit in a u32")

    @property
    def level(self) -> VmpressureLevel:
        return VmpressureLevel(self.pressure)

    def pack(self) -> bytes:
        return _EVENT.pack(self.pressure)

    @classmethod
    def unpack(cls, data: bytes) -> VmpressureEvent:
        if len(data) < VMPRESSURE_EVENT_SIZE:
            raise KernelError(
                errno.EINVAL, f"vmpressure_event: need {VMPRESSURE_EVENT_SIZE} bytes, got {len(data)}"
            )
        return cls(_EVENT.unpack_from(data)[0])


# ---- PSI triggers ------------------------------------------------------------------------------------------

#: ``WINDOW_MAX_US`` in kernel/sched/psi.c.
PSI_WINDOW_MAX_US = 10_000_000
#: ``WINDOW_MIN_US`` of 5.2-6.4 (the 500 ms floor; current code only refuses 0).
PSI_WINDOW_MIN_US_OLD = 500_000
#: Unprivileged triggers (6.5+, Domenico Cerasuolo) must use windows that are multiples of this.
PSI_WINDOW_UNPRIVILEGED_US = 2_000_000

_SSCANF_U32 = re.compile(rb"\s*([0-9]+)")


@dataclass(frozen=True, slots=True)
class PsiTrigger:
    """A PSI trigger: ``kind`` ``"some"`` or ``"full"``, ``threshold_us`` of stall within ``window_us``.

    The constructor applies the rules every kernel shares (window 1 us .. 10 s, 0 < threshold <= window);
    :meth:`check_privilege` adds the 2 s-multiple rule for unprivileged openers.

    >>> PsiTrigger("some", 150_000, 2_000_000).encode()
    b'some 150000 2000000\\x00'
    """

    kind: str
    threshold_us: int
    window_us: int

    def __post_init__(self) -> None:
        if self.kind not in ("some", "full"):
            raise UnknownNameError("kind", self.kind, ["some", "full"])
        for name in ("threshold_us", "window_us"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _U32_MAX:
                raise ConfigError(name, v, "must be an integer number of microseconds that fits in a u32")
        if self.window_us == 0 or self.window_us > PSI_WINDOW_MAX_US:
            raise ConfigError(
                "window_us", self.window_us, f"must be in 1..{PSI_WINDOW_MAX_US} (at most 10 s)"
            )
        if self.threshold_us == 0 or self.threshold_us > self.window_us:
            raise ConfigError(
                "threshold_us", self.threshold_us, f"must be in 1..window_us ({self.window_us})"
            )

    def check_privilege(self, privileged: bool) -> None:
        """Unprivileged triggers must use a window that is a multiple of 2 s (6.5+)."""
        if not privileged and self.window_us % PSI_WINDOW_UNPRIVILEGED_US:
            raise ConfigError(
                "window_us",
                self.window_us,
                "must be a multiple of 2000000 (2 s) without CAP_SYS_RESOURCE",
            )

    def format(self) -> str:
        return f"{self.kind} {self.threshold_us} {self.window_us}"

    def encode(self) -> bytes:
        """The bytes to ``write(2)``: the text **with** its terminating NUL (``strlen + 1``)."""
        return self.format().encode() + b"\0"

    @classmethod
    def parse_write(cls, buf: bytes, *, privileged: bool) -> PsiTrigger:
        """What ``psi_write()`` + ``psi_trigger_create()`` make of ``buf``; bad input is ``EINVAL``.

        Mirrors the kernel byte for byte: at most 32 bytes are copied, the **last byte copied is replaced by
        NUL** (so a write without the NUL loses its last digit), then ``sscanf("some %u %u")`` — which
        ignores anything after the second number.
        """
        if not buf:
            raise KernelError(errno.EINVAL, "psi trigger: empty write")
        text = bytearray(buf[:32])
        text[-1] = 0
        text = text.split(b"\0", 1)[0]
        for kind in ("some", "full"):
            prefix = kind.encode()
            if not text.startswith(prefix):
                continue
            # The format's space matches zero or more blanks and %u skips blanks; a value wider than 32 bits
            # is truncated by the store into an unsigned int, as in lib/vsprintf.c's vsscanf().
            rest = bytes(text[len(prefix) :])
            m1 = _SSCANF_U32.match(rest)
            m2 = _SSCANF_U32.match(rest, m1.end()) if m1 else None
            if m1 is None or m2 is None:
                break
            threshold_us, window_us = int(m1.group(1)) & _U32_MAX, int(m2.group(1)) & _U32_MAX
            try:
                trig = cls(kind, threshold_us, window_us)
                trig.check_privilege(privileged)
            except ConfigError as e:
                raise KernelError(errno.EINVAL, f"psi trigger {bytes(buf)!r}: {e}") from None
            return trig
        raise KernelError(
            errno.EINVAL, f"psi trigger {bytes(buf)!r}: must be '<some|full> <stall us> <window us>'"
        )
