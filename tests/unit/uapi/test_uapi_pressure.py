"""The pressure ABI types: vmpressure_config/event layouts, level names, PSI trigger strings and rules."""

from __future__ import annotations

import errno

import numpy
import pytest

from memsched.errors import ConfigError, KernelError
from memsched.uapi.pressure import (
    MemcgLevel,
    MemcgMode,
    PsiTrigger,
    VmpressureConfig,
    VmpressureEvent,
    VmpressureLevel,
    memcg_to_rfc_level,
)


def test_rfc_level_constants() -> None:
    """The RFC's levels are the spread-out constants 1<<10, 1<<20, 1<<30; mainline's are 0/1/2."""
    assert [int(x) for x in VmpressureLevel] == [1 << 10, 1 << 20, 1 << 30]
    assert [int(x) for x in MemcgLevel] == [0, 1, 2]
    assert [x.text for x in MemcgLevel] == ["low", "medium", "critical"]
    assert [x.text for x in MemcgMode] == ["default", "hierarchy", "local"]
    assert memcg_to_rfc_level(MemcgLevel.CRITICAL) is VmpressureLevel.OOM


def test_config_round_trip_and_size_check() -> None:
    """vmpressure_config packs to 8 bytes (size, threshold) and unpacks to the same value."""
    cfg = VmpressureConfig(threshold=VmpressureLevel.MEDIUM)
    raw = cfg.pack()
    assert len(raw) == 8 and VmpressureConfig.unpack(raw) == cfg


@pytest.mark.parametrize("size", [0, 4, 12, 16])
def test_wrong_size_is_a_config_error(size: int) -> None:
    """'size' versions the ABI: anything but 8 is refused with the field named."""
    with pytest.raises(ConfigError, match="'size' must be 8"):
        VmpressureConfig(threshold=VmpressureLevel.LOW, size=size)


def test_wrong_size_in_raw_struct_is_einval() -> None:
    """A raw struct with a bad size (or too short) is EINVAL, as a syscall would report it."""
    import struct

    with pytest.raises(KernelError) as exc:
        VmpressureConfig.unpack(struct.pack("=II", 12, 1 << 10))
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(KernelError):
        VmpressureConfig.unpack(b"\x08\x00")


@pytest.mark.parametrize("threshold", [0, 1, 99, (1 << 20) + 1, "warning", 1 << 31])
def test_unknown_threshold_is_refused(threshold: object) -> None:
    """A threshold that is not one of the level constants is refused, listing the levels."""
    with pytest.raises(ConfigError, match="threshold"):
        VmpressureConfig(threshold=threshold)  # type: ignore[arg-type]


def test_threshold_by_name() -> None:
    """Thresholds may be given by name or as '1<<20'."""
    assert VmpressureConfig(threshold="medium").threshold is VmpressureLevel.MEDIUM  # type: ignore[arg-type]
    assert VmpressureLevel.parse("VMPRESSURE_OOM") is VmpressureLevel.OOM
    assert VmpressureLevel.parse("1<<10") is VmpressureLevel.LOW


@pytest.mark.parametrize(
    "threshold",
    ["²", "٣", "１０２４", "1<<" + "9" * 400, "1<<64", "1 << 99", "x" * 100_000, 1.5, None, True, b"low"],
)
def test_threshold_text_is_read_as_ascii_and_bounded(threshold: object) -> None:
    """'²' passes str.isdigit() and crashed in int(); a huge shift is refused before it is computed; other
    types are refused: each a ConfigError naming 'threshold' (VmpressureConfig and VmpressureLevel.parse)."""
    with pytest.raises(ConfigError, match=r"^'threshold' must be one of: low"):
        VmpressureConfig(threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^'level' must be one of: low"):
        VmpressureLevel.parse(threshold, field="level")  # type: ignore[arg-type]


def test_threshold_integers_of_any_int_type() -> None:
    """A level constant as a Python int, a numpy integer or text with spaces around it is accepted."""
    assert VmpressureConfig(threshold=1 << 30).threshold is VmpressureLevel.OOM
    assert VmpressureLevel.parse(numpy.int64(1 << 20)) is VmpressureLevel.MEDIUM  # type: ignore[arg-type]
    assert VmpressureLevel.parse(" 1024 ") is VmpressureLevel.LOW
    assert VmpressureLevel.parse("1 << 30") is VmpressureLevel.OOM


def test_event_layout() -> None:
    """vmpressure_event is one u32; a short buffer is EINVAL."""
    assert VmpressureEvent(VmpressureLevel.OOM).pack() == (1 << 30).to_bytes(
        4, "little" if b"\x01\x00"[0] else "big"
    )
    with pytest.raises(KernelError):
        VmpressureEvent.unpack(b"\x00\x00")


# kernel/sched/psi.c (6.18) psi_trigger_create(), observed as root without CAP_SYS_RESOURCE on 6.18.
OBSERVED = [
    (b"some 150000 1000000\0", False),
    (b"some 150000 2000000\0", True),
    (b"some 150000 2000000", False),  # without the NUL: the last digit is overwritten -> window 200000
    (b"full 50000 500000\0", False),
    (b"some 0 2000000\0", False),
    (b"some 3000000 2000000\0", False),
    (b"some 150000 10000000\0", True),
    (b"some 150000 12000000\0", False),
]


@pytest.mark.parametrize(("buf", "ok"), OBSERVED)
def test_psi_trigger_rules_match_observed_kernel(buf: bytes, ok: bool) -> None:
    """psi_write + psi_trigger_create accept and refuse exactly what the unprivileged probe saw."""
    if ok:
        assert PsiTrigger.parse_write(buf, privileged=False).encode() == buf
    else:
        with pytest.raises(KernelError) as exc:
            PsiTrigger.parse_write(buf, privileged=False)
        assert exc.value.errno == errno.EINVAL


def test_psi_privileged_may_use_any_window_up_to_10s() -> None:
    """With CAP_SYS_RESOURCE, 1 s and 500 ms windows are fine; 0 and > 10 s are not."""
    assert PsiTrigger.parse_write(b"some 150000 1000000\0", privileged=True).window_us == 1_000_000
    assert PsiTrigger.parse_write(b"full 50000 500000\0", privileged=True).kind == "full"
    for bad in (b"some 1 0\0", b"some 1 10000001\0"):
        with pytest.raises(KernelError):
            PsiTrigger.parse_write(bad, privileged=True)


def test_psi_missing_nul_truncates_window() -> None:
    """Without the NUL the kernel parses 'some 150000 2000000' as window 200000 (privileged: accepted)."""
    assert PsiTrigger.parse_write(b"some 150000 2000000", privileged=True).window_us == 200_000


def test_psi_sscanf_leniency() -> None:
    """sscanf ignores what follows the second number and accepts extra blanks."""
    assert PsiTrigger.parse_write(b"some  100000   2000000 junk\0", privileged=False).threshold_us == 100_000
    with pytest.raises(KernelError):
        PsiTrigger.parse_write(b"memory 100000 2000000\0", privileged=True)


def test_psi_trigger_constructor_names_fields() -> None:
    """Building a bad trigger in Python names the field and the allowed range."""
    with pytest.raises(ConfigError, match="'threshold_us'"):
        PsiTrigger("some", 0, 1_000_000)
    with pytest.raises(ConfigError, match="'window_us'"):
        PsiTrigger("full", 1, 20_000_000)
    with pytest.raises(ConfigError, match="'kind'"):
        PsiTrigger("all", 1, 1_000_000)
    with pytest.raises(ConfigError, match="multiple of 2000000"):
        PsiTrigger("some", 100_000, 1_000_000).check_privilege(False)
