"""CPU lists in the kernel's ``%*pbl`` format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memsched.errors import ConfigError
from memsched.uapi.cpumask import format_cpulist, parse_cpulist


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8,10-11\n", {0, 1, 2, 3, 8, 10, 11}),
        ("5", {5}),
        ("\n", set()),
        ("", set()),
        ("(null)\n", set()),
    ],
)
def test_parse_cpulist(text: str, cpus: set[int]) -> None:
    """Ranges, single CPUs, the empty line and nohz_full's "(null)" all parse to the right set."""
    assert parse_cpulist(text) == frozenset(cpus)


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "0-7:2/4", "-1"])
def test_parse_cpulist_refuses_malformed(text: str) -> None:
    """A malformed list is a ConfigError naming the field, not a wrong set."""
    with pytest.raises(ConfigError, match="'isolated'"):
        parse_cpulist(text, field="isolated")


def test_format_cpulist_compresses_runs() -> None:
    """Consecutive CPUs print as ranges, as the kernel prints them."""
    assert format_cpulist({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_cpulist(set()) == ""


@given(st.frozensets(st.integers(min_value=0, max_value=4095)))
def test_cpulist_round_trip(cpus: frozenset[int]) -> None:
    """parse(format(s)) == s for every set of CPUs."""
    assert parse_cpulist(format_cpulist(cpus)) == cpus
