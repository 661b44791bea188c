"""Memory policy modes and flags, from ``include/uapi/linux/mempolicy.h`` (Linux 6.x; the modes up to
``MPOL_LOCAL`` existed in 3.7, the era of the NUMA balancing debate).

``set_mempolicy(2)`` and ``mbind(2)`` take a mode OR'ed with optional mode flags; ``migrate_pages(2)`` and
``mbind`` take ``MPOL_MF_*`` flags.
"""

from __future__ import annotations

import enum

__all__ = [
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
    "MPOL_MF_MOVE",
    "MPOL_MF_MOVE_ALL",
    "MPOL_MF_STRICT",
    "MpolMode",
]


class MpolMode(enum.IntEnum):
    """``enum { MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, ... }``."""

    DEFAULT = 0
    PREFERRED = 1
    BIND = 2
    INTERLEAVE = 3
    LOCAL = 4  # 3.8+
    PREFERRED_MANY = 5  # 5.15+
    WEIGHTED_INTERLEAVE = 6  # 6.9+

    @classmethod
    def parse(cls, text: str) -> MpolMode:
        """Accept ``bind``, ``MPOL_BIND`` or ``2``."""
        from memsched.errors import UnknownNameError

        key = text.strip().upper().removeprefix("MPOL_")
        if key.isdigit() and int(key) in cls._value2member_map_:
            return cls(int(key))
        try:
            return cls[key]
        except KeyError:
            raise UnknownNameError("mempolicy", text, [m.name.lower() for m in cls]) from None


# Mode flags (the high bits of the mode argument).
MPOL_F_STATIC_NODES = 1 << 15
MPOL_F_RELATIVE_NODES = 1 << 14
MPOL_F_NUMA_BALANCING = 1 << 13  # 5.12+, MPOL_BIND only

# mbind()/migrate_pages() flags.
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
