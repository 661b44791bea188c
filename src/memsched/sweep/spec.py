"""The sweep spec: a TOML file naming the dimensions of a sweep, checked field by field, and its cells.

::

    name = "scan-period"                 # default: the file's name
    mode = "grid"                        # or "random" (then samples = N, sample_seed = S)
    seeds = 3                            # 0, 1, 2; or a list [0, 7, 9]
    workloads = ["numa01", "numa02"]
    policies = ["mainline", "balancenuma"]
    topologies = ["x86-8n64", "boxes/my-box.toml"]   # presets or files (relative to this file)
    baseline = "none"                    # runs each speed-up is measured against (false: none)
    references = false                   # also each workload's references (numa01_HARD_BIND, ...)
    thp = true
    sample_interval_s = 1.0
    timelines = false                    # write each run's timeline to <db>.timelines/<key>.parquet

    [sets]                               # any --set key of the workloads or policies
    scan_period_min_ms = [100, 1000, 5000]
    scan_size_mb = {min = 64, max = 1024, steps = 5, log = true}

    [families.ring]                      # generated machines (see sweep/families.py)
    nodes = [2, 4, 8]
    wiring = "ring"

A grid runs every combination. A ``--set`` key is crossed only with the (workload, policy) pairs that have it
(``scan_size_mb`` multiplies ``mainline``'s runs, not ``none``'s); a key no pair has is an error. Random mode
draws ``samples`` points — a topology (or a family member), a workload, a policy and a value for each of their
keys — and runs each at every seed. Either way the baseline policy runs once per (machine, workload, workload
settings, seed), and cells that come out identical are run once.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memsched.config import MAX_SEED, check_name
from memsched.errors import ConfigError, UnknownNameError
from memsched.policies.numa import registry as policies
from memsched.sweep.cell import Cell
from memsched.sweep.families import Family, parse_family
from memsched.sweep.plan import Machine, check_cells, knob_kinds, make_cell, owners_of
from memsched.sweep.values import Scalar, Values, draw, grid, parse_values, varies
from memsched.workloads import base as workloads
from memsched.workloads.numa import NumaOptions

__all__ = ["SweepSpec", "load_spec", "parse_spec"]

_KEYS = {
    "name", "mode", "samples", "sample_seed", "seeds", "workloads", "policies", "topologies", "families", "sets",
    "baseline", "references", "thp", "sample_interval_s", "timelines",
}  # fmt: skip


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep spec and its cells (deduplicated, in a stable order)."""

    name: str
    source: str
    doc: Mapping[str, Any]
    cells: tuple[Cell, ...]
    knobs: tuple[str, ...]
    timelines: bool
    baseline: str | None
    families: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        """The sweep's id: a hash of its cells' keys (the same cells, the same sweep)."""
        return hashlib.sha256("\n".join(sorted(c.key for c in self.cells)).encode()).hexdigest()[:16]


#: A sweep's policy runs at most (a million cells is days of CPU here; the database and the driver cope).
MAX_CELLS = 1_000_000
#: Seeds per cell at most (the largest seed is memsched.config.MAX_SEED, as everywhere).
MAX_SEEDS = 10_000

def load_spec(path: Path | str) -> SweepSpec:
    """Read, check and expand a sweep spec file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError("SPEC", str(path), f"must be a readable TOML file ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError("SPEC", str(path), f"must be valid TOML ({e})") from None
    return parse_spec(raw, source=str(path), base_dir=path.parent, default_name=path.stem)


def parse_spec(raw: Mapping[str, Any], *, source: str, base_dir: Path, default_name: str = "sweep") -> SweepSpec:
    """Check a parsed spec (every error names its field and the file) and list its cells."""
    try:
        return _parse(raw, source, base_dir, default_name)
    except ConfigError as e:
        if e.source:
            raise
        raise ConfigError(e.field, e.value, e.allowed, source=source) from None


def _parse(raw: Mapping[str, Any], source: str, base_dir: Path, default_name: str) -> SweepSpec:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], "is not a sweep key; known: " + ", ".join(sorted(_KEYS)))
    name = check_name(_get(raw, "name", str, default_name), "name")
    mode = _get(raw, "mode", str, "grid")
    if mode not in ("grid", "random"):
        raise ConfigError("mode", mode, "must be grid or random")
    wls = _names(raw, "workloads", workloads.names())
    pols = _names(raw, "policies", [s.id for s in policies.specs()], versioned=True)
    seeds = _seeds(raw.get("seeds", 1))
    baseline = raw.get("baseline", "none")
    if baseline is False:
        baseline = None
    elif not isinstance(baseline, str):
        raise ConfigError("baseline", baseline, "must be a policy id or false")
    else:
        try:
            policies.get(baseline)
        except UnknownNameError as e:
            raise UnknownNameError("baseline", baseline, e.valid) from None
    references = _get(raw, "references", bool, False)
    # NumaOptions refuses an interval outside MIN_SAMPLE_INTERVAL_S..MAX_SAMPLE_INTERVAL_S (NaN and inf too).
    options = NumaOptions(thp=_get(raw, "thp", bool, True), sample_interval_s=_get(raw, "sample_interval_s",
                                                                                    (int, float), 1.0))
    machines = [Machine.named(t, base_dir) for t in _list(raw, "topologies", str)]
    fams_raw = raw.get("families", {})
    if not isinstance(fams_raw, dict):
        raise ConfigError("families", fams_raw, "must be a table of [families.NAME] tables")
    families = [parse_family(n, v, source) for n, v in fams_raw.items()]
    if not machines and not families:
        raise ConfigError("topologies", None, "must name at least one topology (or define [families.NAME])")
    sets_raw = raw.get("sets", {})
    if not isinstance(sets_raw, dict):
        raise ConfigError("sets", sets_raw, "must be a table of --set keys")
    sets = {k: parse_values(v, f"sets.{k}", source) for k, v in sets_raw.items()}
    _check_keys_apply(sets, wls, pols + ([baseline] if baseline else []))

    plan = _Plan(options, baseline, references, sets)
    if mode == "grid":
        for key in ("samples", "sample_seed"):
            if key in raw:
                raise ConfigError(key, raw[key], "applies to mode = random only")
        nr_members = sum(math.prod(len(grid(v, f"families.{f.name}.{k}", source)) for k, v in f.dims.items())
                         for f in families)
        size = _grid_size(plan, len(machines) + nr_members, wls, pols, len(seeds))
        if size > MAX_CELLS:
            raise ConfigError("sweep", f"{size:,} runs", f"must have at most {MAX_CELLS:,} (split it into sweeps)")
        members = [m for fam in families for m in map(Machine.member, fam.members())]
        cells = plan.grid([*machines, *members], wls, pols, seeds)
    else:
        samples = _get(raw, "samples", int, None)
        if samples is None or not 1 <= samples * len(seeds) <= MAX_CELLS:
            raise ConfigError(
                "samples", samples, f"must be an integer >= 1 for mode = random, with samples x seeds <= {MAX_CELLS:,}"
            )
        rng = np.random.default_rng(_get(raw, "sample_seed", int, 0))
        cells = plan.random(machines, families, wls, pols, seeds, samples, rng)
    unique = tuple({c.key: c for c in cells}.values())
    check_cells(unique)
    knobs = [f"set_{k}" for k, v in sets.items() if varies(v)]
    knobs += sorted({f"topo_{k}" for fam in families for k, v in fam.dims.items() if varies(v)})
    return SweepSpec(
        name, source, dict(raw), unique, tuple(knobs), _get(raw, "timelines", bool, False), baseline,
        tuple(f.name for f in families),
    )


@dataclass
class _Plan:
    options: NumaOptions
    baseline: str | None
    references: bool
    sets: Mapping[str, Values]
    #: The machines planned so far, by name: a run's ``topology`` column, the report's grouping and its
    #: baselines know a machine by its name only.
    machines: dict[str, Machine] = field(default_factory=dict)

    def grid(self, machines: Sequence[Machine], wls: Sequence[str], pols: Sequence[str],
             seeds: Sequence[int]) -> list[Cell]:
        for m in machines:
            self._use(m)
        cells = []
        for m in machines:
            for wl in wls:
                for pol in pols:
                    keys = self._keys(wl, pol)
                    for combo in itertools.product(*(grid(self.sets[k], f"sets.{k}") for k in keys)):
                        cells += self._runs(m, wl, pol, dict(zip(keys, combo, strict=True)), seeds)
        return cells

    def random(self, machines: Sequence[Machine], families: Sequence[Family], wls: Sequence[str],
               pols: Sequence[str], seeds: Sequence[int], samples: int, rng: np.random.Generator) -> list[Cell]:
        for m in machines:
            self._use(m)
        cells = []
        sources: list[Machine | Family] = [*machines, *families]
        for _ in range(samples):
            src = sources[int(rng.integers(len(sources)))]
            m = src if isinstance(src, Machine) else Machine.member(src.sample(rng))
            self._use(m)
            wl = wls[int(rng.integers(len(wls)))]
            pol = pols[int(rng.integers(len(pols)))]
            values = {k: draw(self.sets[k], rng) for k in self._keys(wl, pol)}
            cells += self._runs(m, wl, pol, values, seeds)
        return cells

    def _use(self, m: Machine) -> None:
        """Refuse a second, different machine under a name already planned (an identical one is the same
        cells, run once): its runs would share the first one's ``topology`` and be compared with its baselines."""
        seen = self.machines.setdefault(m.name, m)
        if seen is m or seen.topology.to_mapping() == m.topology.to_mapping():
            return
        # In the spec's order (topologies, then families), whatever order random draws met them in.
        first, second = sorted((seen, m), key=lambda x: x.origin.startswith("families."))
        field_ = f"families.{second.family}" if second.origin.startswith("families.") else "topologies"
        raise ConfigError(
            field_,
            m.name,
            f"must not give two different machines one name: {first.origin} and {second.origin} are both named "
            "this (rename one: a topology file's name, a family's table)",
        )

    def _keys(self, workload: str, policy: str) -> list[str]:
        kinds = knob_kinds(owners_of(workload, policy))
        return [k for k in self.sets if k in kinds]

    def _runs(self, m: Machine, wl: str, pol: str, values: Mapping[str, Scalar], seeds: Sequence[int]) -> list[Cell]:
        """The policy's runs at every seed, then the baseline's and the references' with the workload's values."""
        out = [make_cell(m, wl, pol, s, values, options=self.options) for s in seeds]
        wl_values = self._restrict(values, wl, "none")
        if self.baseline is not None:
            base_values = self._restrict(values, wl, self.baseline)
            out += [make_cell(m, wl, self.baseline, s, base_values, options=self.options) for s in seeds]
        if self.references:
            known = set(workloads.names())
            for ref in workloads.get(wl).references:
                if ref.workload in known:
                    ref_values = self._restrict(wl_values, ref.workload, "none")
                    out += [
                        make_cell(m, ref.workload, "none", s, ref_values, options=self.options, role="reference",
                                  base=wl, label=ref.label)
                        for s in seeds
                    ]
        return out

    @staticmethod
    def _restrict(values: Mapping[str, Scalar], workload: str, policy: str) -> dict[str, Scalar]:
        kinds = knob_kinds(owners_of(workload, policy))
        return {k: v for k, v in values.items() if k in kinds}


def _check_keys_apply(sets: Mapping[str, Values], wls: Sequence[str], pols: Sequence[str]) -> None:
    valid = knob_kinds(cls for wl in wls for pol in pols for cls in owners_of(wl, pol))
    for key in sets:
        if key not in valid:
            raise ConfigError(
                f"sets.{key}", key, "is not a setting of any workload or policy of this sweep; valid settings: "
                + (", ".join(sorted(valid)) or "(none)"),
            )


def _get(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ConfigError(key, value, "must be " + " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds))
    return value


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_KIND_PLURALS = {str: "strings", int: "integers"}


def _list(raw: Mapping[str, Any], key: str, kind: type) -> list[Any]:
    value = raw.get(key, [])
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise ConfigError(key, item, f"must be a list of {_KIND_PLURALS[kind]}")
    if len(set(items)) != len(items):
        raise ConfigError(key, value, "must not list a value twice")
    return items


def _names(raw: Mapping[str, Any], key: str, valid: Sequence[str], *, versioned: bool = False) -> list[str]:
    names = _list(raw, key, str)
    if not names:
        raise ConfigError(key, raw.get(key), "must list at least one of: " + ", ".join(valid))
    for n in names:
        if versioned:
            try:
                policies.get(n)  # mainline or mainline-v1
            except UnknownNameError as e:
                raise UnknownNameError(key, n, e.valid) from None
        elif n not in valid:
            raise UnknownNameError(key, n, valid)
    return names


def _seeds(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise ConfigError("seeds", value, f"must be a count in 1..{MAX_SEEDS:,} or a list of seeds")
        return list(range(value))
    if not isinstance(value, list):
        raise ConfigError("seeds", value, f"must be a count in 1..{MAX_SEEDS:,} or a list of seeds (integers)")
    seeds = _list({"seeds": value}, "seeds", int)
    if not seeds or len(seeds) > MAX_SEEDS or any(not 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(
            "seeds", value, f"must be a count or a list of at most {MAX_SEEDS:,} seeds, each in 0..{MAX_SEED}"
        )
    return seeds


def _grid_size(plan: _Plan, machines: int, wls: Sequence[str], pols: Sequence[str], seeds: int) -> int:
    """How many policy runs a grid has, counted before any cell is made."""
    per_machine = 0
    for wl in wls:
        for pol in pols:
            n = 1
            for k in plan._keys(wl, pol):
                n *= len(grid(plan.sets[k], f"sets.{k}"))
            per_machine += n
    return machines * per_machine * seeds
