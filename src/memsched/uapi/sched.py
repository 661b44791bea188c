"""Scheduling policies, ``struct sched_attr`` and ``SCHED_FLAG_*``.

From ``include/uapi/linux/sched.h`` and ``include/uapi/linux/sched/types.h`` (Linux 6.x).
``sched_setattr(2)`` / ``sched_getattr(2)`` pass a ``struct sched_attr`` whose first field is its own size:
``SCHED_ATTR_SIZE_VER0`` = 48 bytes (3.14) and ``SCHED_ATTR_SIZE_VER1`` = 56 bytes (5.3, utilisation clamps).
Times are nanoseconds. The layout is packed native-endian with no padding:

====== ================= ======= =========================
offset field             type    note
====== ================= ======= =========================
0      size              u32
4      sched_policy      u32
8      sched_flags       u64
16     sched_nice        s32     SCHED_NORMAL / SCHED_BATCH
20     sched_priority    u32     SCHED_FIFO / SCHED_RR
24     sched_runtime     u64     SCHED_DEADLINE, ns
32     sched_deadline    u64     ns
40     sched_period      u64     ns
48     sched_util_min    u32     VER1
52     sched_util_max    u32     VER1
====== ================= ======= =========================
"""

from __future__ import annotations

import enum
import struct
import sys
from dataclasses import dataclass

from memsched.errors import ConfigError

__all__ = [
    "SCHED_ATTR_SIZE_VER0",
    "SCHED_ATTR_SIZE_VER1",
    "SchedAttr",
    "SchedFlag",
    "SchedPolicy",
]

SCHED_ATTR_SIZE_VER0 = 48
SCHED_ATTR_SIZE_VER1 = 56

_ORDER = "<" if sys.byteorder == "little" else ">"
_VER0 = struct.Struct(_ORDER + "IIQiIQQQ")
_VER1 = struct.Struct(_ORDER + "IIQiIQQQII")
assert _VER0.size == SCHED_ATTR_SIZE_VER0 and _VER1.size == SCHED_ATTR_SIZE_VER1


class SchedPolicy(enum.IntEnum):
    """``SCHED_*`` policies (``SCHED_ISO`` = 4 was reserved and never implemented)."""

    NORMAL = 0
    FIFO = 1
    RR = 2
    BATCH = 3
    IDLE = 5
    DEADLINE = 6
    EXT = 7

    @property
    def is_rt(self) -> bool:
        return self in (SchedPolicy.FIFO, SchedPolicy.RR)

    @property
    def is_fair(self) -> bool:
        return self in (SchedPolicy.NORMAL, SchedPolicy.BATCH, SchedPolicy.IDLE)


class SchedFlag(enum.IntFlag):
    """``SCHED_FLAG_*`` for ``sched_attr.sched_flags``."""

    RESET_ON_FORK = 0x01
    RECLAIM = 0x02
    DL_OVERRUN = 0x04
    KEEP_POLICY = 0x08
    KEEP_PARAMS = 0x10
    UTIL_CLAMP_MIN = 0x20
    UTIL_CLAMP_MAX = 0x40

    @classmethod
    def parse(cls, text: str) -> SchedFlag:
        """``"reclaim,dl-overrun"`` -> ``RECLAIM | DL_OVERRUN`` (names as in the kernel, ``-`` or ``_``)."""
        from memsched.errors import UnknownNameError

        flags = cls(0)
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key = part.upper().replace("-", "_").removeprefix("SCHED_FLAG_")
            try:
                flags |= cls[key]
            except KeyError:
                raise UnknownNameError("flags", part, [str(m.name).lower().replace("_", "-") for m in cls]) from None
        return flags


#: ``SCHED_FLAG_ALL`` in the kernel (the user-settable flags).
SCHED_FLAG_ALL = int(sum(SchedFlag))


@dataclass(frozen=True, slots=True)
class SchedAttr:
    """``struct sched_attr``. ``size`` is the ABI version to encode (48 or 56)."""

    sched_policy: int = SchedPolicy.NORMAL
    sched_flags: int = 0
    sched_nice: int = 0
    sched_priority: int = 0
    sched_runtime: int = 0
    sched_deadline: int = 0
    sched_period: int = 0
    sched_util_min: int = 0
    sched_util_max: int = 0
    size: int = SCHED_ATTR_SIZE_VER1

    def __post_init__(self) -> None:
        for name in (
            "sched_policy", "sched_flags", "sched_nice", "sched_priority", "sched_runtime", "sched_deadline",
            "sched_period", "sched_util_min", "sched_util_max", "size",
        ):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not hasattr(type(v), "__index__"):  # (ints, IntEnums, numpy ints; not 2e6)
                ns = name in ("sched_runtime", "sched_deadline", "sched_period")
                raise ConfigError(name, v, "must be an integer number of nanoseconds" if ns else "must be an integer")
        if self.size not in (SCHED_ATTR_SIZE_VER0, SCHED_ATTR_SIZE_VER1):
            raise ConfigError("size", self.size, f"must be {SCHED_ATTR_SIZE_VER0} or {SCHED_ATTR_SIZE_VER1}")
        for name in ("sched_runtime", "sched_deadline", "sched_period"):
            v = getattr(self, name)
            if not 0 <= v < 1 << 64:
                raise ConfigError(name, v, "must fit in a u64 (0 .. 2**64-1 ns)")
        if not -20 <= self.sched_nice <= 19:
            raise ConfigError("sched_nice", self.sched_nice, "must be in -20..19")
        for name in ("sched_policy", "sched_priority", "sched_util_min", "sched_util_max"):
            v = getattr(self, name)
            if not 0 <= v < 1 << 32:
                raise ConfigError(name, v, "must fit in a u32")
        if not 0 <= self.sched_flags < 1 << 64:
            raise ConfigError("sched_flags", self.sched_flags, "must fit in a u64")

    @classmethod
    def deadline(cls, runtime: int, deadline: int, period: int = 0, flags: int = 0) -> SchedAttr:
        """A SCHED_DEADLINE attribute (period 0 means period = deadline, as in the kernel)."""
        return cls(
            sched_policy=SchedPolicy.DEADLINE,
            sched_flags=int(flags),
            sched_runtime=runtime,
            sched_deadline=deadline,
            sched_period=period,
        )

    @property
    def policy(self) -> SchedPolicy | int:
        try:
            return SchedPolicy(self.sched_policy)
        except ValueError:
            return self.sched_policy

    @property
    def effective_period(self) -> int:
        """``sched_period ?: sched_deadline``."""
        return self.sched_period or self.sched_deadline

    def pack(self) -> bytes:
        fields = (
            self.size,
            self.sched_policy,
            self.sched_flags,
            self.sched_nice,
            self.sched_priority,
            self.sched_runtime,
            self.sched_deadline,
            self.sched_period,
        )
        if self.size == SCHED_ATTR_SIZE_VER0:
            return _VER0.pack(*fields)
        return _VER1.pack(*fields, self.sched_util_min, self.sched_util_max)

    @classmethod
    def unpack(cls, data: bytes) -> SchedAttr:
        """Decode a 48- or 56-byte buffer (``size`` taken from the buffer's own first field)."""
        if len(data) < SCHED_ATTR_SIZE_VER0:
            raise ConfigError("sched_attr", len(data), f"must be at least {SCHED_ATTR_SIZE_VER0} bytes")
        size = struct.unpack_from(_ORDER + "I", data)[0]
        if size >= SCHED_ATTR_SIZE_VER1 and len(data) >= SCHED_ATTR_SIZE_VER1:
            v = _VER1.unpack_from(data)
            return cls(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], size=SCHED_ATTR_SIZE_VER1)
        v0 = _VER0.unpack_from(data)
        return cls(v0[1], v0[2], v0[3], v0[4], v0[5], v0[6], v0[7], size=SCHED_ATTR_SIZE_VER0)
