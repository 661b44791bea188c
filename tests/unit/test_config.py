"""config: knobs are validated and reachable from --set strings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from memsched.config import describe, finite_number, format_bound, from_sets, knob, parse_set_args, validate
from memsched.errors import ConfigError


@dataclass(frozen=True)
class Demo:
    scan_delay_ms: int = knob(1000, "first scan after this delay", min=0)
    ratio: float = knob(0.5, "a ratio", min=0.0, max=1.0)
    enabled: bool = knob(True, "on or off")
    mode: str = knob("fast", "how", choices=("fast", "slow"))

    def __post_init__(self) -> None:
        validate(self)


def test_from_sets_parses_each_type() -> None:
    """Strings become ints, floats, bools and choices."""
    d = from_sets(Demo, {"scan_delay_ms": "250", "ratio": "0.25", "enabled": "off", "mode": "slow"}, owner="demo")
    assert (d.scan_delay_ms, d.ratio, d.enabled, d.mode) == (250, 0.25, False, "slow")


@pytest.mark.parametrize(
    ("sets", "field"),
    [
        ({"scan_delay_ms": "-5"}, "scan_delay_ms"),
        ({"scan_delay_ms": "x"}, "scan_delay_ms"),
        ({"ratio": "2"}, "ratio"),
        ({"enabled": "maybe"}, "enabled"),
        ({"mode": "medium"}, "mode"),
        ({"nope": "1"}, "nope"),
    ],
)
def test_bad_values_name_the_field(sets: dict[str, str], field: str) -> None:
    """Every bad value raises ConfigError naming the field and the value."""
    with pytest.raises(ConfigError) as exc:
        from_sets(Demo, sets, owner="demo")
    assert exc.value.field == field
    assert repr(sets[field]) in str(exc.value) or sets[field] in str(exc.value)


@pytest.mark.parametrize("text", ["0x10", "0o7", "0b1", "1_000", "\uff15", "1e3", "5.0", ""])
def test_an_integer_is_written_in_digits(text: str) -> None:
    """As every integer option (--seed, --cpus): int(text, 0) took hex, octal, binary, underscores and
    fullwidth digits; a sign and surrounding spaces are still fine."""
    with pytest.raises(ConfigError, match="must be an integer written in digits"):
        from_sets(Demo, {"scan_delay_ms": text}, owner="demo")
    assert from_sets(Demo, {"scan_delay_ms": " +0250 "}, owner="demo").scan_delay_ms == 250


def test_unknown_key_lists_valid_settings() -> None:
    """An unknown key's message lists the valid settings."""
    with pytest.raises(ConfigError, match="enabled, mode, ratio, scan_delay_ms"):
        from_sets(Demo, {"nope": "1"}, owner="demo")


def test_parse_set_args() -> None:
    """key=value pairs parse; malformed or repeated keys are refused."""
    assert parse_set_args(["a=1", "b-c= x "]) == {"a": "1", "b_c": "x"}
    for bad in (["a"], ["=1"], ["a=1", "a=2"], ["a b=1"]):
        with pytest.raises(ConfigError, match="--set"):
            parse_set_args(bad)


def test_describe_lists_knobs() -> None:
    """describe() exposes name, type, default and help of each knob."""
    info = {k.name: k for k in describe(Demo)}
    assert info["scan_delay_ms"].default == 1000
    assert info["scan_delay_ms"].type == "int"
    assert "delay" in info["scan_delay_ms"].help


def test_limits_are_printed_in_full() -> None:
    """A range in a message shows its real ends (1048576, 4294967295, 0.001), never %g's 1.04858e+06."""
    assert [format_bound(x) for x in (1 << 20, float(1 << 20), 4294967295, 0.001, 18.4, 0.0, 1e30)] == [
        "1048576", "1048576", "4294967295", "0.001", "18.4", "0", "1e+30",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"must be in 64\.\.1048576 bytes \(got 63\)"):
        finite_number(63, "core_mlp_bytes", lo=64.0, hi=float(1 << 20), unit=" bytes")
