"""units: parsing human durations and sizes at the edges, integers inside."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memsched.errors import ConfigError
from memsched.units import GIB, MIB, bytes_to_pages, format_bytes, format_ns, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "ns"),
    [("2ms", 2_000_000), ("10us", 10_000), ("1.5s", 1_500_000_000), ("100ns", 100), ("0s", 0), (" 3 ms ", 3_000_000)],
)
def test_parse_duration_units(text: str, ns: int) -> None:
    """Durations take ns/us/ms/s suffixes and become integer nanoseconds."""
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["10", "2 hours", "ms", "-1ms", "1.0000000001ns", "", "1e3ms"])
def test_parse_duration_rejects(text: str) -> None:
    """A bare number, an unknown unit or a fraction of a nanosecond is refused with the field named."""
    with pytest.raises(ConfigError, match="'runtime'"):
        parse_duration(text, field="runtime")


def test_bare_zero_is_a_duration_and_a_size() -> None:
    """A bare zero is the same in every unit, so it is accepted even where a unit is required."""
    assert parse_duration("0", unit_required=True) == parse_duration(0, unit_required=True) == 0
    assert parse_size("0", unit_required=True) == parse_size(0, unit_required=True) == 0
    with pytest.raises(ConfigError, match="must be a size"):
        parse_size("1", unit_required=True)


@pytest.mark.parametrize(("parse", "text"), [(parse_duration, "-1s"), (parse_size, "-1MiB")])
def test_a_negative_value_is_refused_for_its_sign(parse: Callable[..., int], text: str) -> None:
    """A negative number with a unit is told it must be >= 0, not that it lacks a unit."""
    with pytest.raises(ConfigError, match=r"'x' must be >= 0 \(got '-1"):
        parse(text, field="x")


def test_parse_duration_int_is_ns() -> None:
    """An int is taken as nanoseconds; a negative one is refused."""
    assert parse_duration(5) == 5
    with pytest.raises(ConfigError):
        parse_duration(-5)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("3GiB", 3 * GIB), ("256M", 256 * MIB), ("1MB", 1_000_000), ("4096", 4096), ("1.5KiB", 1536), ("2 g", 2 * GIB)],
)
def test_parse_size(text: str, nbytes: int) -> None:
    """Binary suffixes (KiB, K as memparse) and decimal ones (MB) are both understood."""
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["3 parsecs", "GiB", "0.1B", "-1G"])
def test_parse_size_rejects(text: str) -> None:
    """Malformed sizes are refused with the field named."""
    with pytest.raises(ConfigError, match="'node_memory'"):
        parse_size(text, field="node_memory")


def test_pages_round_up_and_formatting() -> None:
    """Page counts round up; formatting is short and binary."""
    assert bytes_to_pages(4097, 4096) == 2
    assert bytes_to_pages(0, 4096) == 0
    assert format_bytes(3 * GIB) == "3.00 GiB"
    assert format_ns(2_000_000) == "2.00 ms"
