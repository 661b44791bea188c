"""Generated topology families: machines built in code from a few swept parameters.

A family in a sweep spec (``[families.NAME]``) names a preset it resembles (``like``, default
``sandybridge-2n32``) and any of the parameters below, each one value, a list or a range::

    [families.glueless]
    like = "x86-8n64"
    nodes = {min = 2, max = 8, steps = 4}     # one socket per node
    link_gibps = [4.0, 7.36, 16.0]            # per direction, every link
    wiring = "full"                           # full | ring | line

Parameters not given are the ``like`` preset's (its first node's memory and controller, its first link's
capacity). Each member is validated like a user's TOML file (:meth:`Topology.from_mapping`) and travels to
the workers as TOML text (:func:`to_toml`), since a run names its topology by preset or file. A member is named
after the family and the parameters that vary, ``glueless(link_gibps=4,nodes=2)``, which is the ``topology``
of its runs.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from memsched.errors import ConfigError, UnknownNameError
from memsched.sweep.values import Scalar, Values, draw, grid, parse_values, varies
from memsched.topology import Topology, list_presets, load_topology

__all__ = ["WIRINGS", "Family", "Member", "parse_family", "to_toml"]

WIRINGS = ("full", "ring", "line")
DEFAULT_LIKE = "sandybridge-2n32"

#: Parameter -> the value kinds it takes.
_PARAMS: dict[str, tuple[type, ...]] = {
    "nodes": (int,),
    "cores_per_node": (int,),
    "threads_per_core": (int,),
    "node_memory": (str,),  # a size with a unit, as in a topology file
    "controller_gibps": (int, float),
    "link_gibps": (int, float),
    "latency_local_ns": (int, float),
    "latency_hop_ns": (int, float),
    "core_mlp_bytes": (int, float),
    "smt_yield": (int, float),
    "wiring": (str,),
}


#: The generated topology document's keys that carry a family parameter under another name (:func:`_mapping`).
_TOPOLOGY_TO_FAMILY = {"sockets": "nodes", "cores_per_socket": "cores_per_node"}


@dataclass(frozen=True)
class Member:
    """One generated machine: the parameters it was made from, its TOML document and its topology."""

    family: str
    params: dict[str, Scalar]
    mapping: dict[str, Any]
    topology: Topology


@dataclass(frozen=True)
class Family:
    """A named family: its ``like`` preset and the values of each parameter."""

    name: str
    like: str
    dims: Mapping[str, Values]
    source: str

    def members(self) -> list[Member]:
        """Every member of a grid: its parameters and its validated topology."""
        names = sorted(self.dims)
        combos = itertools.product(*(grid(self.dims[n], f"families.{self.name}.{n}", self.source) for n in names))
        return [self.member(dict(zip(names, combo, strict=True))) for combo in combos]

    def sample(self, rng: np.random.Generator) -> Member:
        """One random member."""
        return self.member({n: draw(self.dims[n], rng) for n in sorted(self.dims)})

    def member(self, params: Mapping[str, Scalar]) -> Member:
        varying = {k: v for k, v in sorted(params.items()) if varies(self.dims[k])}
        label = self.name + ("(" + ",".join(f"{k}={v}" for k, v in varying.items()) + ")" if varying else "")
        mapping = _mapping(label, self.like, params)
        try:
            topo = Topology.from_mapping(mapping, source=f"{self.source}: families.{self.name}")
        except ConfigError as e:
            raise self._in_family_terms(e) from None
        return Member(self.name, dict(params), mapping, topo)

    def _in_family_terms(self, error: ConfigError) -> ConfigError:
        """A member's topology error named by the family key the user wrote (``nodes``, not the generated
        document's ``sockets``), as ``families.NAME.KEY`` like every other family error."""
        key = _TOPOLOGY_TO_FAMILY.get(error.field, error.field)
        if key not in _PARAMS:
            return error  # a key of the generated document only (links, name): the family's own message
        allowed = re.sub(r"\bsockets\b", "nodes", error.allowed)  # "gives 2000 CPUs with 2 sockets"
        return ConfigError(f"families.{self.name}.{key}", error.value, allowed, source=self.source)


def parse_family(name: str, raw: Any, source: str) -> Family:
    """A ``[families.NAME]`` table, checked field by field."""
    field = f"families.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(field, raw, "must be a table of family parameters", source=source)
    like = raw.get("like", DEFAULT_LIKE)
    if not isinstance(like, str):
        raise ConfigError(f"{field}.like", like, "must be a preset name", source=source)
    if like not in list_presets():
        raise UnknownNameError(f"{field}.like", like, list_presets(), source=source)
    if "nodes" not in raw:
        raise ConfigError(f"{field}.nodes", None, "is required (a number of nodes, a list or a range)", source=source)
    dims: dict[str, Values] = {}
    for key, value in raw.items():
        if key == "like":
            continue
        if key not in _PARAMS:
            raise ConfigError(
                f"{field}.{key}", value, "is not a family parameter; known: like, " + ", ".join(_PARAMS),
                source=source,
            )
        dims[key] = parse_values(value, f"{field}.{key}", source, kinds=_PARAMS[key])
    for w in grid(dims.get("wiring", ("full",))):
        if w not in WIRINGS:
            raise ConfigError(f"{field}.wiring", w, "must be one of: " + ", ".join(WIRINGS), source=source)
    return Family(name, like, dims, source)


def _mapping(label: str, like: str, params: Mapping[str, Scalar]) -> dict[str, Any]:
    """The topology TOML document (``docs/topology.md``) of one member."""
    base = load_topology(like)
    p = dict(params)
    nodes = int(p["nodes"])
    threads = int(p.get("threads_per_core", base.threads_per_core))
    cores = int(p.get("cores_per_node", base.nr_cores // base.nr_nodes))
    link = p.get("link_gibps", base.links[0].gibps if base.links else 1.0)
    wiring = str(p.get("wiring", "full"))
    if wiring == "full":
        links: str | list[list[int]] = "full"
    else:
        links = [[i, i + 1] for i in range(nodes - 1)]
        if wiring == "ring" and nodes > 2:
            links.append([0, nodes - 1])
    doc: dict[str, Any] = {
        "name": label,
        "description": f"generated: {nodes} nodes x {cores} cores x {threads} threads, {wiring} links of "
        f"{link} GiB/s, otherwise like {like}",
        "sockets": nodes,
        "nodes_per_socket": 1,
        "cores_per_socket": cores,
        "threads_per_core": threads,
        "node_memory": p.get("node_memory", f"{base.nodes[0].memory_bytes}B"),  # topology files take units
        "controller_gibps": p.get("controller_gibps", base.nodes[0].controller_gibps),
        "latency_local_ns": p.get("latency_local_ns", base.latency_local_ns),
        "core_mlp_bytes": p.get("core_mlp_bytes", base.core_mlp_bytes),
        "smt_yield": p.get("smt_yield", base.smt_yield),
    }
    if nodes > 1:
        doc |= {"link_gibps": link, "links": links, "latency_hop_ns": p.get("latency_hop_ns", base.latency_hop_ns)}
    return doc


def to_toml(doc: Mapping[str, Any]) -> str:
    """A flat topology document as TOML (strings, numbers, and arrays of them or of integer pairs)."""
    lines = []
    for key, value in doc.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _bad(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _bad(value)


def _bad(value: Any) -> str:
    raise ConfigError("topology", value, "must be a string, a finite number or an array of them")
