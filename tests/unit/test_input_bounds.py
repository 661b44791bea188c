"""Every input is bounded and validated before work starts: durations and sizes parse exactly and within
limits, settings refuse NaN and infinity, topology and scenario files stay within what the simulator can hold,
and every refusal is a ConfigError naming the file and the key (the audit's crash classes, one by one)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from memsched.config import LongNumber, from_sets, parse_json, parse_toml, read_input_file
from memsched.errors import ConfigError
from memsched.live.pressure import PressureOptions
from memsched.live.pressure.options import parse_level, parse_psi_trigger
from memsched.policies.numa import registry as policies
from memsched.topology import load_topology
from memsched.uapi.cpumask import parse_cpulist
from memsched.units import KTIME_MAX, parse_duration, parse_size
from memsched.workloads.pressure.scenario import load_scenario

TOPOLOGY = """name = "t"
sockets = 2
cores_per_socket = 4
node_memory = "8GiB"
controller_gibps = 9.2
link_gibps = 5.5
latency_local_ns = 135
latency_hop_ns = 63
core_mlp_bytes = 640
"""


# ---------------------------------------------------------------------------------------------- units


@pytest.mark.parametrize("text", ["9" * 400 + "s", "9" * 30 + "s", 1.5, math.nan, "nan s", "inf ms", "²s", "1e9s"])
def test_durations_out_of_range_or_malformed_are_refused(text: object) -> None:
    """400 digits, values past KTIME_MAX, floats, NaN, Unicode digits: a ConfigError, never an OverflowError."""
    with pytest.raises(ConfigError, match="'d'"):
        parse_duration(text, field="d")  # type: ignore[arg-type]


def test_durations_parse_exactly_up_to_their_limit() -> None:
    """Exact arithmetic: the largest duration is KTIME_MAX; a limit is the caller's."""
    assert parse_duration(f"{KTIME_MAX}ns") == KTIME_MAX
    assert parse_duration("0.000000001s") == 1
    with pytest.raises(ConfigError, match="at most"):
        parse_duration("11s", max_ns=10 * 10**9)
    with pytest.raises(ConfigError, match="unit"):
        parse_duration(5, unit_required=True)
    assert parse_duration(0, unit_required=True) == 0


@pytest.mark.parametrize("text", [1.0, "9" * 50 + "TiB", "0.1B", "4096"])
def test_sizes_must_be_whole_bounded_and_carry_units_in_files(text: object) -> None:
    """A float, an 8-EiB-plus size, a fraction of a byte, or (in a file) a bare number is refused."""
    with pytest.raises(ConfigError):
        parse_size(text, unit_required=True)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- --set


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "NaN"])
def test_set_refuses_nan_and_infinity(value: str) -> None:
    """--set group_active_in=nan used to run and print a bare NaN in --json."""
    spec = policies.get("mainline")
    with pytest.raises(ConfigError, match="finite"):
        from_sets(spec.config_cls, {"group_active_in": value}, owner="policy mainline")


def test_set_refuses_numbers_beyond_64_bits_and_over_long_text() -> None:
    """An integer setting fits a signed 64-bit value; a 5,000-digit number is refused before int() sees it."""
    spec = policies.get("mainline")
    with pytest.raises(ConfigError, match="between"):
        from_sets(spec.config_cls, {"scan_delay_ms": str(2**64)}, owner="policy mainline")
    with pytest.raises(ConfigError, match="at most 64 characters"):
        from_sets(spec.config_cls, {"scan_delay_ms": "9" * 5000}, owner="policy mainline")
    with pytest.raises(ConfigError, match=r"'scan_size_mb' .*must be between 1 and 2147483647"):
        from_sets(spec.config_cls, {"scan_size_mb": str(2**63)}, owner="policy mainline")


def test_the_largest_scan_size_gives_scan_bounds_not_zero_division() -> None:
    """--set scan_size_mb=<huge> divided by zero computing 3.13's scan-period floor."""
    from memsched.policies.numa.base import SCAN_3_13, SYSCTL_INT_MAX

    scan = SCAN_3_13.__class__(1000, 1000, 60000, 0, SYSCTL_INT_MAX, scale_by_rss=True)  # (the knob's maximum)
    lo, hi = scan.period_bounds_ns(1 << 20)
    assert lo == 1000 * 1_000_000 and hi == 60000 * 1_000_000


# ---------------------------------------------------------------------------------------------- option values


@pytest.mark.parametrize("text", ["²", "٣", "1<<" + "9" * 400, "1<<64", "x" * 1000])
def test_levels_look_at_ascii_only(text: str) -> None:
    """--level ² passed str.isdigit() and crashed in int(); a huge shift is refused before it is computed."""
    with pytest.raises(ConfigError, match="'--level'"):
        parse_level(text, field="--level")


def test_psi_trigger_numbers_are_ascii_u32() -> None:
    """Kernel microseconds are ASCII digits that fit the kernel's u32."""
    for text in ("some ²³ 2s", "some 99999999999 2s"):
        with pytest.raises(ConfigError):
            parse_psi_trigger(text, field="psi_low")


@pytest.mark.parametrize("text", ["0-99999999999", "8192", "1-" + "9" * 5000, "０-3", "1_0"])
def test_cpu_lists_name_cpus_the_kernel_could_have(text: str) -> None:
    """--cpus 0-99999999999 was expanded into a set of 10^11 ids; ids are below CONFIG_NR_CPUS (8192)."""
    with pytest.raises(ConfigError, match="'--cpus'"):
        parse_cpulist(text, field="--cpus")


def test_pressure_options_refuse_nan() -> None:
    """Every config object refuses NaN through validate()."""
    with pytest.raises(ConfigError):
        from_sets(PressureOptions, {"reclaim_interval_ms": "nan"}, owner="the pressure backends")


# ---------------------------------------------------------------------------------------------- files


def test_input_files_are_regular_and_small(tmp_path: Path) -> None:
    """A directory, a FIFO (which would block) or a file over 1 MiB is refused with the field named."""
    fifo = tmp_path / "fifo"
    import os

    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * ((1 << 20) + 1))
    for path in (tmp_path, fifo, big, tmp_path / "absent"):
        with pytest.raises(ConfigError, match="'topology'"):
            read_input_file(path, "topology", "TOML file")


def test_toml_and_json_errors_are_config_errors() -> None:
    """4,300+-digit integers, deep nesting and NaN/Infinity in JSON are refused, not tracebacks; a JSON integer
    of more than 64 digits is read as a LongNumber, beyond every range, for the field's own check to refuse."""
    for raw in (b"a = " + b"9" * 5000, b"a = " + b"[" * 2000):
        with pytest.raises(ConfigError, match="valid TOML"):
            parse_toml(raw, "f", "x.toml")
    for raw in (b'{"a": NaN}', b'{"a": Infinity}', b"[" * 100_000, b'{"a": 1, "a": 1}'):
        with pytest.raises(ConfigError, match="valid JSON"):
            parse_json(raw, "f", "x.json")
    long = parse_json(b'{"a": -' + b"9" * 5000 + b"}", "f", "x.json")["a"]
    assert isinstance(long, LongNumber) and long < -(2**63) and repr(long) == "a number of 5000 digits"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("sockets = 100000", "sockets"),
        ("sockets = 300", "sockets"),
        ("nodes_per_socket = 20\ncores_per_socket = 40", "nodes_per_socket"),
        ("cores_per_socket = 1000\nthreads_per_core = 2", "cores_per_socket"),
        ("latency_hop_ns = nan", "latency_hop_ns"),
        ("controller_gibps = inf", "controller_gibps"),
        ("core_mlp_bytes = 1e300", "core_mlp_bytes"),
        ('node_memory = [1.5, "8GiB"]', "node_memory"),
        ("node_memory = 8589934592", "node_memory"),
        ('node_memory = "100000TiB"', "node_memory"),
        ("distance = [[10, 9223372036854775808], [20, 10]]", "distance"),
        ("smt_yield = nan", "smt_yield"),
        ("snoop_gibps = 68.0\nsnoop_hop_cost = nan", "snoop_hop_cost"),
        ("snoop_gibps = 68.0\nsnoop_hop_cost = inf", "snoop_hop_cost"),
        ("snoop_gibps = 68.0\nsnoop_hop_cost = 1e300", "snoop_hop_cost"),
        ("snoop_gibps = 68.0\nsnoop_hop_cost = -1", "snoop_hop_cost"),
        ("snoop_gibps = 0.001", "snoop_gibps"),
        ("snoop_gibps = nan", "snoop_gibps"),
        ("links = [[0, 1, 1e-300]]", "links"),
        ("links = [[0, 1, 1e5]]", "links"),
        ("links = [[0, 1, nan]]", "links"),
        ("links = [[0, 1, true]]", "links"),
    ],
)
def test_topology_limits_name_the_key_and_the_file(tmp_path: Path, patch: str, field: str) -> None:
    """Machines the simulator cannot hold (or NaN figures) are refused before anything is built."""
    lines = [
        ln for ln in TOPOLOGY.splitlines() if ln.split(" = ")[0] not in {p.split(" = ")[0] for p in patch.splitlines()}
    ]
    path = tmp_path / "t.toml"
    path.write_text("\n".join(lines) + "\n" + patch + "\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert info.value.field == field and info.value.source == str(path)


def test_topology_figures_at_their_limits_load(tmp_path: Path) -> None:
    """The ends of the snoop and per-link ranges are accepted, and the limits are named in full."""
    path = tmp_path / "t.toml"
    path.write_text(TOPOLOGY + "snoop_gibps = 0.1\nsnoop_hop_cost = 10\nlinks = [[0, 1, 10000]]\n")
    topo = load_topology(path)
    assert (topo.snoop_gibps, topo.snoop_hop_cost, topo.links[0].gibps) == (0.1, 10.0, 10000.0)
    path.write_text(TOPOLOGY + "links = [[0, 1, 0.05]]\n")
    with pytest.raises(ConfigError, match=r"in 0\.1\.\.10000 GiB/s"):
        load_topology(path)


def test_topology_at_its_limits_loads(tmp_path: Path) -> None:
    """32 nodes and 1,024 CPUs are accepted."""
    path = tmp_path / "big.toml"
    path.write_text(
        TOPOLOGY.replace("sockets = 2", "sockets = 32").replace("cores_per_socket = 4", "cores_per_socket = 16")
        + "threads_per_core = 2\n"
    )
    topo = load_topology(path)
    assert topo.nr_nodes == 32 and topo.nr_cpus == 1024


SCENARIO = """duration = "1s"
[[service]]
name = "a"
kind = "cache"
size = "64MiB"
"""


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("duration = 5", "duration"),
        ('duration = "601s"', "duration"),
        ('memory = "100000TiB"', "memory"),
        ('topology = "westmere-ex-4n48"', "memory"),
        ('designs = ["psi", "psi"]', "designs"),
    ],
)
def test_scenario_limits_name_the_key_and_the_file(tmp_path: Path, patch: str, field: str) -> None:
    """duration = 5 simulated 5 ns; 100000 TiB built a frame table for it; a 64 GiB preset is over the limit."""
    path = tmp_path / "s.toml"
    path.write_text(
        patch
        + "\n"
        + SCENARIO.replace('duration = "1s"\n', "" if patch.startswith("duration") else 'duration = "1s"\n')
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    assert info.value.field == field and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("size", "1.0"),
        ("size", "4096"),
        ("start", "5"),
        ("shed_fraction", "nan"),
        ("shed_fraction", "9" * 400),
        ("chunk", '"2GiB"'),
    ],
)
def test_scenario_service_values(tmp_path: Path, key: str, value: str) -> None:
    """size = 1.0 crashed; bare numbers where a unit is expected and NaN are refused, naming the service."""
    path = tmp_path / "s.toml"
    path.write_text(
        SCENARIO.replace('size = "64MiB"', f"{key} = {value}" if key == "size" else f'size = "64MiB"\n{key} = {value}')
    )
    with pytest.raises(ConfigError, match=f"service.{key}") as info:
        load_scenario(str(path))
    assert "[[service]] #1" in str(info.value)
