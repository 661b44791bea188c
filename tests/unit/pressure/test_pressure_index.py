"""The reclaimer inefficiency index and levels against test vectors worked out from mm/vmpressure.c's arithmetic
(3.10 and 6.x) and the RFC's (Anton Vorontsov, Nov 2012)."""

from __future__ import annotations

import pytest

from memsched.errors import ConfigError
from memsched.pressure import (
    FLAVOURS,
    MainlineVmpressureConfig,
    Rfc2012VmpressureConfig,
    get_flavour,
    mainline_index,
    mainline_level,
    rfc2012_index,
    rfc2012_level,
)
from memsched.uapi.pressure import MemcgLevel, VmpressureLevel

L, M, C = MemcgLevel.LOW, MemcgLevel.MEDIUM, MemcgLevel.CRITICAL
RL, RM, RO = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM

# scanned, reclaimed, 3.10 index, 3.10 level, modern index, modern level, RFC (win 512) index, RFC level
VECTORS = [
    (512, 512, 0, L, 0, L, 0, RL),
    (512, 256, 50, L, 50, L, 50, RL),
    (512, 205, 59, L, 59, L, 59, RL),
    (512, 204, 60, M, 60, M, 60, RM),
    (512, 200, 60, M, 60, M, 60, RM),
    (512, 26, 94, M, 94, M, 94, RM),
    (512, 25, 95, C, 95, C, 95, RM),
    (512, 1, 99, C, 99, C, 99, RO),
    (512, 0, 100, C, 100, C, 100, RO),
    (1024, 30, 97, C, 97, C, 97, RM),
    (1024, 512, 50, L, 50, L, 50, RL),
]


@pytest.mark.parametrize(("s", "r", "i310", "l310", "imod", "lmod", "irfc", "lrfc"), VECTORS)
def test_reference_vectors_all_flavours(
    s: int, r: int, i310: int, l310: MemcgLevel, imod: int, lmod: MemcgLevel, irfc: int, lrfc: VmpressureLevel
) -> None:
    """Every worked row gives the tabulated index and level in 3.10, modern and the RFC."""
    v310, modern = MainlineVmpressureConfig.v3_10(), MainlineVmpressureConfig()
    rfc = Rfc2012VmpressureConfig(vmevent_window=512)
    assert mainline_index(s, r, underflow_guard=False) == i310
    assert mainline_level(mainline_index(s, r, underflow_guard=False), v310) is l310
    assert modern.index(s, r) == imod
    assert modern.level(modern.index(s, r)) is lmod
    assert rfc.index(s, r) == irfc
    assert rfc.level(rfc.index(s, r)) is lrfc


def test_underflow_row_310_reads_critical() -> None:
    """600 scanned / 700 reclaimed underflows to 14189803133622715 in 3.10, which reads as critical."""
    v310 = MainlineVmpressureConfig.v3_10()
    assert v310.index(600, 700) == 14189803133622715
    assert v310.level(v310.index(600, 700)) is MemcgLevel.CRITICAL


def test_underflow_row_modern_guard_gives_zero() -> None:
    """The modern ``reclaimed >= scanned`` guard turns the underflow row (and r == s) into index 0, low."""
    modern = MainlineVmpressureConfig()
    assert modern.index(600, 700) == 0
    assert modern.index(600, 600) == 0
    assert modern.level(0) is MemcgLevel.LOW


def test_underflow_row_rfc_wraps_in_u32_and_reads_oom() -> None:
    """The RFC's uint arithmetic wraps r > s modulo 2**32: (600, 700) at win 512 is 838860783, OOM."""
    cfg = Rfc2012VmpressureConfig(vmevent_window=512)
    assert cfg.index(600, 700) == ((2**32 - 85) * 100) // 512 == 838860783
    assert cfg.level(cfg.index(600, 700)) is VmpressureLevel.OOM


def test_rfc_scale_is_window_not_scanned() -> None:
    """The RFC scales by the window: with win 256, 1024 scanned / 30 reclaimed is 256 - 7 = 249 -> 97."""
    assert rfc2012_index(256, 1024, 30) == (256 - (30 * 256 // 1024)) * 100 // 256 == 97


def test_rfc_boundaries_at_default_thresholds() -> None:
    """RFC levels flip exactly at 60 (MEDIUM) and 99 (OOM); 98 stays MEDIUM."""
    cfg = Rfc2012VmpressureConfig()
    assert rfc2012_level(59, cfg) is RL
    assert rfc2012_level(60, cfg) is RM
    assert rfc2012_level(98, cfg) is RM
    assert rfc2012_level(99, cfg) is RO


def test_mainline_boundaries() -> None:
    """Mainline levels flip exactly at 60 (medium) and 95 (critical)."""
    cfg = MainlineVmpressureConfig()
    assert [mainline_level(i, cfg) for i in (59, 60, 94, 95)] == [L, M, M, C]


def test_zero_scanned_is_rejected() -> None:
    """A window with nothing scanned is never computed (the kernel returns early); calling it is an error."""
    with pytest.raises(ValueError, match="scanned"):
        mainline_index(0, 0)
    with pytest.raises(ValueError, match="scanned"):
        rfc2012_index(256, 0, 0)


def test_rfc_defaults_are_the_documented_ones() -> None:
    """rfc2012 defaults: window 256 (documented, not the code's 512), 60 / 99, OOM priority 4."""
    cfg = Rfc2012VmpressureConfig()
    assert (
        cfg.vmevent_window,
        cfg.vmevent_level_medium,
        cfg.vmevent_level_oom,
        cfg.vmevent_level_oom_priority,
    ) == (
        256,
        60,
        99,
        4,
    )
    assert [cfg.prio_forces_top_level(p) for p in (5, 4, 0)] == [False, True, True]


def test_mainline_defaults() -> None:
    """mainline: window 512, 60 / 95, critical priority 3 = ilog2(100 / 10)."""
    cfg = MainlineVmpressureConfig()
    assert (cfg.window, cfg.vmpressure_level_med, cfg.vmpressure_level_critical) == (512, 60, 95)
    assert [cfg.prio_forces_top_level(p) for p in (4, 3)] == [False, True]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vmevent_window": 0}, "vmevent_window"),
        ({"vmevent_level_medium": 101}, "vmevent_level_medium"),
        ({"vmevent_level_oom": -1}, "vmevent_level_oom"),
        ({"vmevent_level_oom_priority": 13}, "vmevent_level_oom_priority"),
        ({"vmevent_level_medium": 80, "vmevent_level_oom": 70}, "vmevent_level_medium"),
    ],
)
def test_rfc_bad_tunables_name_the_field(kwargs: dict[str, int], field: str) -> None:
    """Out-of-range RFC tunables raise ConfigError naming the sysctl-style field and the value."""
    with pytest.raises(ConfigError, match=f"'{field}'"):
        Rfc2012VmpressureConfig(**kwargs)


def test_mainline_bad_window() -> None:
    """A mainline window of 0 pages is refused with the field named."""
    with pytest.raises(ConfigError, match="'vmpressure_win' must be >= 1"):
        MainlineVmpressureConfig(vmpressure_win=0)


def test_flavour_registry() -> None:
    """Flavours are found by id; an unknown id lists the valid ones."""
    assert set(FLAVOURS) == {"rfc2012", "mainline", "mainline-3.10"}
    assert get_flavour("mainline-3.10").underflow_guard is False  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="rfc2012"):
        get_flavour("vmevent")
