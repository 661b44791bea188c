"""Turning the dimensions of a sweep into cells: machines, typed ``--set`` values, keys.

:class:`Machine` is a topology as a sweep uses it (a preset, a file, or a generated family member) and
:func:`make_cell` the one constructor of a :class:`~memsched.sweep.cell.Cell` that the sweep spec and the tuner
share. :func:`knob_kinds` gives the type of every setting of the workloads and policies involved, so that a
TOML value becomes the one string ``--set`` would carry (``1000``, not ``1000.0``) and a cell's key does not
depend on how a number was written.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, UnknownNameError
from memsched.policies.numa import registry as policies
from memsched.record import MODEL_VERSION, Role
from memsched.sweep.cell import Cell, cell_key, topology_file
from memsched.sweep.families import Member, to_toml
from memsched.sweep.values import Scalar
from memsched.topology import Topology, list_presets, load_topology
from memsched.workloads import base as workloads
from memsched.workloads.numa import NumaOptions
from memsched.workloads.runner import runner_for
from memsched.workloads.runspec import RunSpec

__all__ = ["Machine", "check_cells", "knob_kinds", "make_cell", "owners_of"]


@dataclass(frozen=True)
class Machine:
    """A topology of a sweep. ``arg`` is what a run names it by (a preset or a path), ``toml`` the text a
    worker needs when that is not a preset, ``family`` the preset, file or family it stands for, ``origin`` where
    the spec gave it (``preset x86-8n64``, ``file boxes/my-box.toml``, ``families.glueless``) for messages."""

    name: str
    arg: str
    toml: str | None
    family: str
    params: Mapping[str, Scalar]
    topology: Topology
    origin: str = ""

    @classmethod
    def named(cls, text: str, base_dir: Path, field: str = "topologies") -> Machine:
        """A preset by name, or a TOML file (relative to ``base_dir``)."""
        if text in list_presets():
            return cls(text, text, None, text, {}, load_topology(text), f"preset {text}")
        if not (text.endswith(".toml") or "/" in text):
            raise UnknownNameError(field, text, [*list_presets(), "<path>.toml"])
        path = Path(text) if Path(text).is_absolute() else base_dir / text
        try:
            raw = path.read_text()
        except OSError as e:
            raise ConfigError(field, text, f"must be a preset or a readable TOML file ({e.strerror})") from None
        topo = load_topology(path)
        if topo.name in list_presets() and topo.to_mapping() != load_topology(topo.name).to_mapping():
            # Runs are stored, grouped and paired with their baselines by machine name, in one sweep and across
            # the sweeps and tuning runs of a database: a preset's name is the preset's.
            raise ConfigError(
                field,
                topo.name,
                f"must not give two different machines one name: preset {topo.name} and file {text} are both named "
                "this (give the file's machine a name of its own)",
            )
        return cls(topo.name, str(path), raw, path.stem, {}, topo, f"file {text}")

    @classmethod
    def member(cls, m: Member) -> Machine:
        return cls(
            m.topology.name, m.topology.name, to_toml(m.mapping), m.family, m.params, m.topology, f"families.{m.family}"
        )


def owners_of(workload: str, policy: str) -> list[type]:
    """The config classes a ``--set`` key of this (workload, policy) run can belong to."""
    return [workloads.get(workload).config_cls, policies.get(policy).config_cls]


def knob_kinds(classes: Iterable[type]) -> dict[str, type]:
    """Setting name -> its Python type, over the given config classes."""
    out: dict[str, type] = {}
    for cls in classes:
        for name, kind in _kinds(cls):
            out.setdefault(name, kind)
    return out


@functools.cache
def _kinds(cls: type) -> tuple[tuple[str, type], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def make_cell(
    machine: Machine,
    workload: str,
    policy: str,
    seed: int,
    sets: Mapping[str, Scalar],
    *,
    options: NumaOptions,
    role: Role = "policy",
    base: str | None = None,
    label: str | None = None,
) -> Cell:
    """The cell of one NUMA run; ``sets`` are typed values of settings this workload or policy has."""
    pol = policies.get(policy)
    kinds = knob_kinds(owners_of(workload, policy))
    typed = {k: _typed(k, v, kinds[k]) for k, v in sorted(sets.items())}
    strings = {k: _as_set(v) for k, v in typed.items()}
    label = label or pol.id
    base = base or workload
    opts = dataclasses.asdict(options)
    description = {
        "family": "numa", "workload": workload, "topology": machine.topology.to_mapping(), "policy": pol.id,
        "policy_version": pol.version, "seed": seed, "sets": strings, "role": role, "base": base, "label": label,
        "options": opts, "model_version": MODEL_VERSION,
    }  # fmt: skip
    doc = {
        "family": "numa", "workload": workload, "policy": pol.id, "policy_version": pol.version, "label": label,
        "role": role, "base": base, "topology": machine.name, "topology_family": machine.family,
        "topology_params": dict(machine.params), "seed": seed, "sets": typed, "options": opts,
        "model_version": MODEL_VERSION,
    }  # fmt: skip
    spec = RunSpec(  # the exact version the key names, even after a newer one is registered
        workload, machine.arg, pol.versioned_id, seed, sets=strings, label=label, role=role, base=base,
        options=options,
    )
    return Cell(cell_key(description), spec, doc, machine.toml)


def check_cells(cells: Iterable[Cell]) -> None:
    """Validate every distinct (workload, policy, settings) before any work, as ``memsched run`` would."""
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    runner = runner_for("numa")
    for cell in cells:
        spec = cell.spec
        sig = (spec.workload, spec.policy or "none", tuple(sorted(spec.sets.items())))
        if sig in seen:
            continue
        seen.add(sig)
        if cell.topology_toml is not None:
            spec = dataclasses.replace(spec, topology=topology_file(cell.topology_toml))
        runner.check(spec)


def _typed(key: str, value: Scalar, kind: type) -> Scalar:
    """A TOML value as the setting's type (an integral float for an int setting is accepted)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"sets.{key}", value, "must be true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"sets.{key}", value, "must be an integer")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"sets.{key}", value, "must be a number")
    if isinstance(value, str):
        return value
    raise ConfigError(f"sets.{key}", value, "must be a string")


def _as_set(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
