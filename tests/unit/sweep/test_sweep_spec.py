"""The sweep spec: which cells a grid or random spec expands to, their keys, and bad input named by field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from helpers.sweeps import FAST_SPEC, write_spec
from memsched.errors import ConfigError
from memsched.sweep import plan
from memsched.sweep.families import parse_family, to_toml
from memsched.sweep.spec import SweepSpec, load_spec, parse_spec
from memsched.sweep.values import draw, grid, parse_values
from memsched.topology import Topology, load_topology

ONE_CELL = 'workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\nbaseline = false\n'


def spec(text: str, tmp_path: Path) -> SweepSpec:
    return parse_spec(tomllib.loads(text), source="s.toml", base_dir=tmp_path)


def test_grid_crosses_a_set_key_only_with_the_policies_that_have_it(tmp_path: Path) -> None:
    """mainline runs once per scan size and seed; the baseline (none) once per seed, on every machine."""
    s = load_spec(write_spec(tmp_path))
    cells = s.cells
    assert len(cells) == 12  # 2 machines x (2 sizes x 2 seeds mainline + 2 seeds none)
    mainline = [c for c in cells if c.doc["policy"] == "mainline"]
    none = [c for c in cells if c.doc["policy"] == "none"]
    assert len(mainline) == 8 and len(none) == 4
    assert {c.spec.sets["scan_size_mb"] for c in mainline} == {"64", "512"}
    assert all(c.spec.sets == {} for c in none)
    assert {c.doc["topology"] for c in cells} == {"laptop-1n8", "tiny"}
    assert s.knobs == ("set_scan_size_mb",)


def test_keys_depend_on_content_not_on_spelling(tmp_path: Path) -> None:
    """1000 and 1000.0 for an int setting are the same cell; another value, seed or model version is not."""
    base = (
        'seeds = [3]\nworkloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\nbaseline = false\n'
    )
    a = spec(base + "[sets]\nscan_delay_ms = 1000\n", tmp_path)
    b = spec(base + "[sets]\nscan_delay_ms = 1000.0\n", tmp_path)
    c = spec(base + "[sets]\nscan_delay_ms = 999\n", tmp_path)
    assert [x.key for x in a.cells] == [x.key for x in b.cells]
    assert a.cells[0].spec.sets == {"scan_delay_ms": "1000"}
    assert a.cells[0].key != c.cells[0].key
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "MODEL_VERSION", "another-model")
        d = spec(base + "[sets]\nscan_delay_ms = 1000\n", tmp_path)
    assert d.cells[0].key != a.cells[0].key


def test_a_key_is_the_first_128_bits_of_the_sha256_of_the_canonical_description() -> None:
    """docs/sweeps.md's description of the key; stored databases depend on it, so it must not drift."""
    import hashlib

    from memsched.sweep.cell import cell_key

    key = cell_key({"b": 1, "a": [1.5, "x"]})
    assert key == hashlib.sha256(b'{"a":[1.5,"x"],"b":1}').hexdigest()[:32] and len(key) == 32


def test_a_file_topology_is_read_relative_to_the_spec_and_keyed_by_content(tmp_path: Path) -> None:
    """A topology file travels as text; the same machine as a file and as a preset has the same key."""
    (tmp_path / "boxes").mkdir()
    text = (Path(__file__).parents[3] / "src/memsched/data/topologies/laptop-1n8.toml").read_text()
    (tmp_path / "boxes" / "box.toml").write_text(text)
    head = 'workloads = ["numa02"]\npolicies = ["none"]\n'
    from_file = load_spec(write_spec(tmp_path, head + 'topologies = ["boxes/box.toml"]\n')).cells
    from_preset = load_spec(write_spec(tmp_path, head + 'topologies = ["laptop-1n8"]\n')).cells
    assert from_file[0].topology_toml == text and from_preset[0].topology_toml is None
    assert from_file[0].doc["topology_family"] == "box"
    assert [c.key for c in from_file] == [c.key for c in from_preset]


def test_random_mode_draws_samples_at_every_seed_deterministically(tmp_path: Path) -> None:
    """samples x seeds policy cells plus baselines, the same for the same sample_seed, inside the ranges."""
    text = """
mode = "random"
samples = 6
sample_seed = 4
seeds = 2
workloads = ["numa02", "numa01"]
policies = ["mainline"]
[sets]
scan_period_min_ms = {min = 100, max = 10000, log = true}
[families.f]
nodes = {min = 2, max = 4}
cores_per_node = 2
link_gibps = {min = 2.0, max = 8.0}
"""
    a, b = spec(text, tmp_path), spec(text, tmp_path)
    assert [c.key for c in a.cells] == [c.key for c in b.cells]
    pol = [c for c in a.cells if c.doc["policy"] == "mainline"]
    assert len(pol) == 12
    for c in pol:
        assert 100 <= c.doc["sets"]["scan_period_min_ms"] <= 10000
        assert 2 <= c.doc["topology_params"]["nodes"] <= 4
        assert 2.0 <= c.doc["topology_params"]["link_gibps"] <= 8.0
    assert set(a.knobs) == {"set_scan_period_min_ms", "topo_nodes", "topo_link_gibps"}
    c = spec(text.replace("sample_seed = 4", "sample_seed = 5"), tmp_path)
    assert [x.key for x in c.cells] != [x.key for x in a.cells]


def test_references_add_each_workloads_reference_runs(tmp_path: Path) -> None:
    """references = true adds numa02_HARD_BIND and numa02_INVERSE_BIND, role reference, base numa02."""
    s = spec('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\nreferences = true\n',
             tmp_path)
    refs = [c for c in s.cells if c.doc["role"] == "reference"]
    assert {c.doc["workload"] for c in refs} == {"numa02_HARD_BIND", "numa02_INVERSE_BIND"}
    assert {c.doc["base"] for c in refs} == {"numa02"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\ncolour = 1\n', "'colour'"),
        ('workloads = ["nope"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\n', "'workloads'"),
        ('workloads = ["numa02"]\npolicies = ["nope"]\ntopologies = ["laptop-1n8"]\n', "'policies'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nbaseline = "nope"\n',
         "'baseline' must be one of: "),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nbaseline = 1\n', "'baseline'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["nowhere"]\n', "'topologies'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n', "'topologies'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nseeds = 0\n', "'seeds'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\n[sets]\nscan_size_mb = 4\n',
         "'sets.scan_size_mb'"),
        ('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\n[sets]\n'
         "scan_size_mb = {min = 1, max = 9}\n", "'sets.scan_size_mb.steps'"),
        ('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\n[sets]\n'
         "scan_size_mb = 0\n", "'scan_size_mb'"),
        ('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\n[sets]\n'
         "scan_size_mb = 1.5\n", "'sets.scan_size_mb'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nsamples = 3\n', "'samples'"),
        ('mode = "random"\nworkloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\n', "'samples'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.f]\ncores_per_node = 2\n', "'families.f.nodes'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.f]\nnodes = 2\nwiring = "star"\n',
         "'families.f.wiring'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.f]\nnodes = 2\nsockets = 2\n',
         "'families.f.sockets'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.f]\nnodes = {min = 2.5, max = 4, steps = 2}\n',
         "'families.f.nodes'"),
        # bounds: a spec that would take the driver minutes and gigabytes to plan is refused before planning
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nseeds = 100000000\n', "'seeds'"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\nseeds = [-1]\n', "'seeds'"),
        (ONE_CELL + "seeds = 2.5\n", "'seeds' must be a count in 1..10,000 or a list of seeds (integers) (got 2.5)"),
        (ONE_CELL + "seeds = [1, 2.5]\n", "'seeds' must be a list of integers (got 2.5)"),
        ('workloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8", 3]\n',
         "'topologies' must be a list of strings (got 3)"),
        ('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\n[sets]\n'
         "scan_size_mb = {min = 1, max = 1000000, steps = 1000000}\n", "'sets.scan_size_mb.steps'"),
        ('workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\nseeds = 2000\n[sets]\n'
         "scan_size_mb = {min = 1, max = 1000, steps = 1000}\n", "'sweep'"),
        ('mode = "random"\nsamples = 1000000\nseeds = 2\nworkloads = ["numa02"]\npolicies = ["none"]\n'
         'topologies = ["laptop-1n8"]\n', "'samples'"),
        # a member's topology errors name the family keys, not the generated file's sockets/cores_per_socket
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.g]\nlike = "x86-8n64"\n'
         "nodes = {min = 2, max = 64, steps = 2}\n", "'families.g.nodes' must be in 1..32 (got 64)"),
        ('workloads = ["numa02"]\npolicies = ["none"]\n[families.g]\nnodes = 2\ncores_per_node = 1000\n',
         "'families.g.cores_per_node' gives 4000 CPUs with 2 nodes"),
        (ONE_CELL + "sample_interval_s = nan\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = inf\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = 1e300\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = 1e-6\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = 0\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = 7200\n", "'sample_interval_s'"),
        (ONE_CELL + "sample_interval_s = 1" + "0" * 400 + "\n", "'sample_interval_s'"),
    ],
)
def test_bad_input_names_the_field_and_the_file(text: str, field: str, tmp_path: Path) -> None:
    """Every mistake is one ConfigError naming the spec file and the field, raised before any cell runs."""
    path = write_spec(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}: ")
    assert field in str(e.value)
    assert "\n" not in str(e.value)


def test_sample_interval_ends_are_accepted(tmp_path: Path) -> None:
    """The timeline's resolution is accepted from 10 ms to an hour, and reaches the cells as a float."""
    for value in ("0.01", "3600"):
        (cell,) = spec(ONE_CELL + f"sample_interval_s = {value}\n", tmp_path).cells
        assert cell.spec.options.sample_interval_s == float(value)
        assert cell.doc["options"]["sample_interval_s"] == float(value)


def test_ranges_in_a_grid_and_as_draws() -> None:
    """A range gives evenly (or geometrically) spaced values, integers when its ends are; draws stay inside."""
    assert grid(parse_values({"min": 0, "max": 10, "steps": 3}, "x", "s")) == [0, 5, 10]
    assert grid(parse_values({"min": 1, "max": 100, "steps": 3, "log": True}, "x", "s")) == [1, 10, 100]
    assert grid(parse_values({"min": 0.5, "max": 1.0, "steps": 2}, "x", "s")) == [0.5, 1.0]
    assert grid(parse_values([3, "a", True], "x", "s")) == [3, "a", True]
    rng = np.random.default_rng(0)
    r = parse_values({"min": 2, "max": 5}, "x", "s")
    values = {draw(r, rng) for _ in range(200)}
    assert values == {2, 3, 4, 5}
    f = parse_values({"min": 1.0, "max": 1000.0, "log": True}, "x", "s")
    assert all(1.0 <= draw(f, rng) <= 1000.0 for _ in range(100))


def test_a_family_member_round_trips_through_toml(tmp_path: Path) -> None:
    """The TOML text a worker gets loads to the same machine the spec validated, ring links included."""
    fam = parse_family("r", {"like": "x86-8n64", "nodes": [4], "wiring": ["ring", "line"], "link_gibps": 3.5}, "s")
    members = fam.members()
    assert [m.topology.name for m in members] == ["r(wiring=ring)", "r(wiring=line)"]
    for m in members:
        path = tmp_path / f"{m.topology.name}.toml"
        path.write_text(to_toml(m.mapping))
        loaded = load_topology(path)
        assert loaded.to_mapping() == Topology.from_mapping(m.mapping).to_mapping()
        assert loaded.nr_nodes == 4 and all(link.gibps == 3.5 for link in loaded.links)
        assert loaded.latency_hop_ns == load_topology("x86-8n64").latency_hop_ns
    ring, line = members
    assert len(line.topology.links) == 3 and len(ring.topology.links) == 4


def test_fast_spec_helper_is_twelve_cells(tmp_path: Path) -> None:
    """The tests' shared spec has the twelve cells the issue's Ray test asks for."""
    assert len(load_spec(write_spec(tmp_path, FAST_SPEC)).cells) == 12


LAPTOP_TOML = (Path(__file__).parents[3] / "src/memsched/data/topologies/laptop-1n8.toml").read_text()


def _boxes(tmp_path: Path) -> None:
    """a/box.toml: the laptop preset with a slower memory controller, under the preset's name; b/box.toml: the
    preset itself, as a file; c/box.toml and d/box.toml: two different machines both named my-box."""
    for sub in ("a", "b", "c", "d"):
        (tmp_path / sub).mkdir()
    slower = LAPTOP_TOML.replace("controller_gibps = 40.0", "controller_gibps = 20.0")
    (tmp_path / "a" / "box.toml").write_text(slower)
    (tmp_path / "b" / "box.toml").write_text(LAPTOP_TOML)
    (tmp_path / "c" / "box.toml").write_text(LAPTOP_TOML.replace('name = "laptop-1n8"', 'name = "my-box"'))
    (tmp_path / "d" / "box.toml").write_text(slower.replace('name = "laptop-1n8"', 'name = "my-box"'))


@pytest.mark.parametrize(
    ("machines", "field", "sources"),
    [
        ('topologies = ["laptop-1n8", "a/box.toml", "b/box.toml"]\n', "'topologies'",
         ("preset laptop-1n8", "file a/box.toml")),
        ('topologies = ["b/box.toml", "a/box.toml"]\n', "'topologies'", ("preset laptop-1n8", "file a/box.toml")),
        ('topologies = ["c/box.toml", "d/box.toml"]\n', "'topologies'", ("file c/box.toml", "file d/box.toml")),
        ('topologies = ["laptop-1n8"]\n[families.laptop-1n8]\nlike = "laptop-1n8"\nnodes = 2\n',
         "'families.laptop-1n8'", ("preset laptop-1n8", "families.laptop-1n8")),
        ('mode = "random"\nsamples = 20\ntopologies = ["laptop-1n8"]\n[families.laptop-1n8]\nnodes = 2\n',
         "'families.laptop-1n8'", ("preset laptop-1n8", "families.laptop-1n8")),
    ],
)
def test_two_different_machines_under_one_name_are_refused(
    machines: str, field: str, sources: tuple[str, str], tmp_path: Path
) -> None:
    """Runs are grouped and paired with their baselines by machine name: one name, two machines is an error."""
    _boxes(tmp_path)
    path = write_spec(tmp_path, 'workloads = ["numa02"]\npolicies = ["mainline"]\n' + machines)
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    message = str(e.value)
    assert message.startswith(f"{path}: {field} ") and "\n" not in message
    assert all(s in message for s in sources) and ("'laptop-1n8'" in message or "'my-box'" in message)


def test_the_same_machine_listed_twice_is_run_once(tmp_path: Path) -> None:
    """A preset and a file identical to it are one machine: its cells are planned once, not refused."""
    _boxes(tmp_path)
    head = 'workloads = ["numa02"]\npolicies = ["mainline"]\n'
    both = load_spec(write_spec(tmp_path, head + 'topologies = ["laptop-1n8", "b/box.toml"]\n')).cells
    alone = load_spec(write_spec(tmp_path, head + 'topologies = ["laptop-1n8"]\n')).cells
    assert sorted(c.key for c in both) == sorted(c.key for c in alone) and len(both) == 2


def test_a_file_is_priced_by_its_cpus(tmp_path: Path) -> None:
    """--dry-run prices a file by its CPUs, not from the rates of a preset whose name it carries (only a copy of
    the preset may carry it: a different machine under a preset's name is refused)."""
    from memsched.sweep.estimate import estimate

    _boxes(tmp_path)
    cells = load_spec(write_spec(tmp_path, 'workloads = ["numa02"]\npolicies = ["none"]\n'
                                           'topologies = ["b/box.toml"]\n')).cells  # fmt: skip
    assert estimate(cells, 1).sources == {"rates.json, scaled by CPUs": 1}
