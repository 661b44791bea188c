"""The reclaimer inefficiency index and the level decision, in two flavours with their constants as data.

The index answers "of the pages reclaim scanned in the last window, what share could it not free?", 0 (all
freed) to 100 (none freed). Both flavours compute it with C unsigned integer arithmetic, and the truncation
decides the boundary cases, so the functions here emulate the C types exactly (``u32`` for the RFC, 64-bit
``unsigned long`` for mainline) instead of computing ``100 * (1 - r/s)`` in floating point.

``rfc2012`` — the ``vmpressure_fd()`` RFC (Anton Vorontsov, linux-mm, 7 Nov 2012, patch 1/3)
    ``vmpressure_calc_pressure(uint win, uint s, uint r)``: ``p = win - (r * win / s); p = p * 100 / win``
    — the *window*, not ``s``, is the scale; the first line is ``uint`` arithmetic, so ``r > s`` wraps
    modulo 2**32 and reads as OOM. Levels: ``>= vmevent_level_oom`` (99) OOM, ``>= vmevent_level_medium``
    (60) MEDIUM, else LOW; a reclaim priority ``<= vmevent_level_oom_priority`` (4) forces a full window of
    nothing reclaimed, i.e. OOM.

    **Window: 256 pages.** The RFC *code* set ``vmpressure_win = SWAP_CLUSTER_MAX * 16`` = 512 pages, while
    its cover letter and its Documentation/sysctl/vm.txt text said "by default the window size equals to 256
    pages (1MB)". The documented interface is what a user of the RFC would have relied on, so
    :class:`Rfc2012VmpressureConfig` defaults to 256; the code's 512 is one setting away
    (``vmevent_window=512``), as it was one sysctl write away in the RFC. The tunables carry the cover
    letter's sysctl names (``vmevent_*``); the code named them ``vmpressure_window``,
    ``vmpressure_level_medium``, ``vmpressure_level_oom``, ``vmpressure_level_oom_priority``.

``mainline`` — mm/vmpressure.c, 3.10 to today (checked against 3.10 and a 5.x/6.x tree)
    ``scale = scanned + reclaimed; pressure = scale - (reclaimed * scale / scanned);
    pressure = pressure * 100 / scale`` with ``unsigned long``; since 4.11 (Vinayak Menon) preceded by
    ``if (reclaimed >= scanned) goto out;`` (pressure 0), because reclaimed slab pages are added without a
    scan count. 3.10 had no guard and underflowed to an enormous value (critical): selectable with
    ``underflow_guard=False``. Window ``SWAP_CLUSTER_MAX * 16`` = 512, medium 60, critical 95, critical
    priority ``ilog2(100 / 10)`` = 3 — compile-time constants in the kernel, data here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from memsched.config import knob, validate
from memsched.errors import ConfigError, UnknownNameError
from memsched.uapi.pressure import MemcgLevel, VmpressureLevel

__all__ = [
    "DEF_PRIORITY",
    "FLAVOURS",
    "SWAP_CLUSTER_MAX",
    "Flavour",
    "MainlineVmpressureConfig",
    "Rfc2012VmpressureConfig",
    "get_flavour",
    "mainline_index",
    "mainline_level",
    "rfc2012_index",
    "rfc2012_level",
]

#: Reclaim starts at this priority and scans ``lru_size >> priority`` pages (include/linux/mmzone.h).
DEF_PRIORITY = 12
#: The reclaim batch (include/linux/swap.h); both flavours' windows are multiples of it.
SWAP_CLUSTER_MAX = 32

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


def rfc2012_index(window: int, scanned: int, reclaimed: int) -> int:
    """``vmpressure_calc_pressure()`` of the RFC, in its C types.

    >>> rfc2012_index(512, 512, 205), rfc2012_index(512, 1024, 30)
    (59, 97)
    """
    if scanned <= 0:
        raise ValueError(f"scanned must be > 0 (got {scanned}); the RFC only computes full windows")
    win, s, r = window & _U32, scanned & _U32, reclaimed & _U32
    p = (win - (((r * win) & _U32) // s)) & _U32  # uint arithmetic, then widened to ulong
    return ((p * 100) & _U64) // win


def rfc2012_level(index: int, config: Rfc2012VmpressureConfig) -> VmpressureLevel:
    """``vmpressure_level()`` of the RFC."""
    if index >= config.vmevent_level_oom:
        return VmpressureLevel.OOM
    if index >= config.vmevent_level_medium:
        return VmpressureLevel.MEDIUM
    return VmpressureLevel.LOW


def mainline_index(scanned: int, reclaimed: int, *, underflow_guard: bool = True) -> int:
    """``vmpressure_calc_level()``'s pressure value, in 64-bit ``unsigned long``.

    >>> mainline_index(512, 25), mainline_index(600, 700), mainline_index(600, 700, underflow_guard=False)
    (95, 0, 14189803133622715)
    """
    if scanned <= 0:
        raise ValueError(f"scanned must be > 0 (got {scanned}); vmpressure_work_fn() returns early on 0")
    if underflow_guard and reclaimed >= scanned:
        return 0
    scale = (scanned + reclaimed) & _U64
    pressure = (scale - (((reclaimed * scale) & _U64) // scanned)) & _U64
    return ((pressure * 100) & _U64) // scale


def mainline_level(index: int, config: MainlineVmpressureConfig) -> MemcgLevel:
    """``vmpressure_level()``."""
    if index >= config.vmpressure_level_critical:
        return MemcgLevel.CRITICAL
    if index >= config.vmpressure_level_med:
        return MemcgLevel.MEDIUM
    return MemcgLevel.LOW


class Flavour(Protocol):
    """What a reclaimer needs from a flavour: its window, its index, and when priority alone means the top."""

    name: str

    @property
    def window(self) -> int: ...

    def index(self, scanned: int, reclaimed: int) -> int: ...

    def prio_forces_top_level(self, priority: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Rfc2012VmpressureConfig:
    """Tunables of the RFC (``/proc/sys/vm/vmevent_*`` in its cover letter), defaults as documented there."""

    vmevent_window: int = knob(
        256,
        "pages scanned per index sample (cover letter and vm.txt: 256 pages = 1 MB; RFC code: 512)",
        min=1,
        max=_U32 >> 1,
    )
    vmevent_level_medium: int = knob(
        60, "index at or above which the level is MEDIUM (RFC default 60)", min=0, max=100
    )
    vmevent_level_oom: int = knob(
        99, "index at or above which the level is OOM (RFC default 99)", min=0, max=100
    )
    vmevent_level_oom_priority: int = knob(
        4,
        "reclaim priority at or below which the level is OOM (RFC default 4; valid 0..12)",
        min=0,
        max=DEF_PRIORITY,
    )

    name = "rfc2012"

    def __post_init__(self) -> None:
        validate(self)
        if self.vmevent_level_medium > self.vmevent_level_oom:
            raise ConfigError(
                "vmevent_level_medium",
                self.vmevent_level_medium,
                f"must be <= vmevent_level_oom ({self.vmevent_level_oom})",
            )

    @property
    def window(self) -> int:
        return self.vmevent_window

    def index(self, scanned: int, reclaimed: int) -> int:
        return rfc2012_index(self.vmevent_window, scanned, reclaimed)

    def level(self, index: int) -> VmpressureLevel:
        return rfc2012_level(index, self)

    def prio_forces_top_level(self, priority: int) -> bool:
        """``vmpressure_prio()``: ``prio > vmpressure_level_oom_prio`` returns, else a full OOM window."""
        return priority <= self.vmevent_level_oom_priority


@dataclass(frozen=True, slots=True)
class MainlineVmpressureConfig:
    """mm/vmpressure.c's constants (compile-time in the kernel), and the 3.10-vs-modern switches."""

    vmpressure_win: int = knob(
        512, "pages per window: SWAP_CLUSTER_MAX * 16 (mm/vmpressure.c)", min=1, max=_U32 >> 1
    )
    vmpressure_level_med: int = knob(
        60, "index at or above which the level is medium (mm/vmpressure.c)", min=0, max=100
    )
    vmpressure_level_critical: int = knob(
        95, "index at or above which the level is critical (since 3.10)", min=0, max=100
    )
    vmpressure_level_critical_prio: int = knob(
        3,
        "reclaim priority at or below which vmpressure_prio() signals critical: ilog2(100 / 10)",
        min=0,
        max=DEF_PRIORITY,
    )
    underflow_guard: bool = knob(True, "return 0 when reclaimed >= scanned (4.11+; 3.10 underflowed)")
    modes: bool = knob(
        True, "default/hierarchy/local propagation (modern); 3.10 stopped at the first memcg that signalled"
    )

    name = "mainline"

    def __post_init__(self) -> None:
        validate(self)
        if self.vmpressure_level_med > self.vmpressure_level_critical:
            raise ConfigError(
                "vmpressure_level_med",
                self.vmpressure_level_med,
                f"must be <= vmpressure_level_critical ({self.vmpressure_level_critical})",
            )

    @classmethod
    def v3_10(cls) -> MainlineVmpressureConfig:
        """mm/vmpressure.c as merged in 3.10: no underflow guard, no modes."""
        return cls(underflow_guard=False, modes=False)

    @property
    def window(self) -> int:
        return self.vmpressure_win

    def index(self, scanned: int, reclaimed: int) -> int:
        return mainline_index(scanned, reclaimed, underflow_guard=self.underflow_guard)

    def level(self, index: int) -> MemcgLevel:
        return mainline_level(index, self)

    def prio_forces_top_level(self, priority: int) -> bool:
        return priority <= self.vmpressure_level_critical_prio


#: Flavour ids (scenario files and ``--set`` use them) -> default configuration.
FLAVOURS: dict[str, Rfc2012VmpressureConfig | MainlineVmpressureConfig] = {
    "rfc2012": Rfc2012VmpressureConfig(),
    "mainline": MainlineVmpressureConfig(),
    "mainline-3.10": MainlineVmpressureConfig.v3_10(),
}


def get_flavour(name: str) -> Rfc2012VmpressureConfig | MainlineVmpressureConfig:
    try:
        return FLAVOURS[name]
    except KeyError:
        raise UnknownNameError("flavour", name, FLAVOURS) from None
