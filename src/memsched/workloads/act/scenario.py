"""An action scenario: a memory-pressure scenario (``memsched.workloads.pressure.scenario``, every key of it)
plus what acting on pressure needs.

Top level: ``policies`` (the action policies to compare, default all), ``culprit`` (the services a good policy
kills or makes shed: the answer key for "who should have been killed"), ``managed`` (cgroups with
systemd's ``ManagedOOMMemoryPressure=kill`` and ``ManagedOOMSwap=kill``; default ``["/"]``), ``[policy.<id>]``
tables (``--set`` values for one policy). Per ``[[service]]``: ``protected = true`` (never signalled:
``--protect``), ``preference`` (``ManagedOOMPreference=``: ``none``, ``avoid``, ``omit``), and the kind
``forkbomb`` with ``forks`` processes of ``size`` each started every ``fork_interval`` (expanded into that
many allocator services ``<name>-<i>`` sharing the memcg). ``designs`` is not used (the services' own
notification listeners stay off: the policy decides). Unknown keys and bad values are refused with the key,
the value and the file (exit 2).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memsched.errors import ConfigError, UnknownNameError
from memsched.policies.act import registry
from memsched.units import parse_duration
from memsched.workloads.pressure.scenario import Scenario, scenario_from_dict

__all__ = ["ActScenario", "list_act_scenarios", "load_act_scenario"]

_ACT_TOP = {"policies", "culprit", "managed", "policy"}
_ACT_SERVICE = {"protected", "preference", "forks", "fork_interval"}


@dataclass(frozen=True)
class ActScenario:
    pressure: Scenario
    policies: tuple[str, ...]
    culprit: frozenset[str]
    managed: frozenset[str]
    protected: frozenset[str]
    preference: Mapping[str, str]
    policy_sets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: forkbomb member -> the [[service]] it was expanded from
    group: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.pressure.name


def _dir() -> Any:
    return resources.files("memsched.data") / "scenarios"


def list_act_scenarios() -> list[str]:
    return sorted(p.name.removeprefix("act-").removesuffix(".toml") for p in _dir().iterdir()
                  if p.name.startswith("act-") and p.name.endswith(".toml"))


def load_act_scenario(ref: str) -> ActScenario:
    path = Path(ref)
    if ref.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ConfigError("SCENARIO", ref, "must be a readable TOML file or one of: "
                              + ", ".join(list_act_scenarios()))
        text, source = path.read_text(), str(path)
    else:
        if ref not in list_act_scenarios():
            raise UnknownNameError("SCENARIO", ref, list_act_scenarios())
        text, source = (_dir() / f"act-{ref}.toml").read_text(), f"scenario {ref}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("SCENARIO", ref, f"must be valid TOML ({e})", source=source) from None
    return act_scenario_from_dict(raw, source=source)


def _names(raw: Any, key: str, source: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(key, raw, "must be a list of names", source=source)
    return list(raw)


def act_scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> ActScenario:
    rest = {k: v for k, v in raw.items() if k not in _ACT_TOP}
    rest["designs"] = ["none"]
    services: list[dict[str, Any]] = []
    protected, preference, group = set(), {}, {}
    svc_raw = raw.get("service", [])
    if not isinstance(svc_raw, list):
        raise ConfigError("service", svc_raw, "must be an array of tables ([[service]])", source=source)
    for i, s in enumerate(svc_raw):
        if not isinstance(s, Mapping):
            raise ConfigError("service", s, "entries must be tables ([[service]])", source=source)
        base = {k: v for k, v in s.items() if k not in _ACT_SERVICE}
        name = str(s.get("name", f"#{i + 1}"))
        prot = s.get("protected", False)
        if not isinstance(prot, bool):
            raise ConfigError(f"service.{name}.protected", prot, "must be true or false", source=source)
        pref = s.get("preference", "none")
        if pref not in ("none", "avoid", "omit"):
            raise ConfigError(f"service.{name}.preference", pref, "must be one of: none, avoid, omit", source=source)
        if base.get("kind") == "forkbomb":
            forks = s.get("forks")
            if not isinstance(forks, int) or not 1 <= forks <= 512:
                raise ConfigError(f"service.{name}.forks", forks, "must be an integer in 1..512", source=source)
            try:
                interval = parse_duration(s.get("fork_interval", "100ms"), field=f"service.{name}.fork_interval")
                start = parse_duration(s.get("start", "0s"), field=f"service.{name}.start")
            except ConfigError as e:
                raise ConfigError(e.field, e.value, e.allowed, source=source) from None
            for k in range(forks):
                member = dict(base, name=f"{name}-{k}", kind="allocator",
                              start=f"{start + k * interval}ns")
                services.append(member)
                group[f"{name}-{k}"] = name
                if prot:
                    protected.add(f"{name}-{k}")
        else:
            for key in ("forks", "fork_interval"):
                if key in s:
                    raise ConfigError(f"service.{name}.{key}", s[key], "is only for kind = \"forkbomb\"",
                                      source=source)
            services.append(base)
            if prot:
                protected.add(name)
            preference[name] = pref
    rest["service"] = services
    sc = scenario_from_dict(rest, source=source)
    known = {s.name for s in sc.services} | set(group.values())
    pol = raw.get("policies", registry.names())
    policies = _names(pol, "policies", source)
    for p in policies:
        try:
            registry.get(p)
        except UnknownNameError:
            raise UnknownNameError("policies", p, registry.names(), source=source) from None
    culprit = _names(raw.get("culprit", []), "culprit", source)
    for c in culprit:
        if c not in known:
            raise UnknownNameError("culprit", c, sorted(known), source=source)
    managed = _names(raw.get("managed", ["/"]), "managed", source)
    sets_raw = raw.get("policy", {})
    if not isinstance(sets_raw, Mapping):
        raise ConfigError("policy", sets_raw, "must be a table of [policy.<id>] tables", source=source)
    policy_sets: dict[str, dict[str, str]] = {}
    for pid, table in sets_raw.items():
        if pid not in registry.names():
            raise UnknownNameError("policy", pid, registry.names(), source=source)
        if not isinstance(table, Mapping):
            raise ConfigError(f"policy.{pid}", table, "must be a table of knob = value", source=source)
        policy_sets[pid] = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in table.items()}
        try:
            registry.get(pid).make_config(policy_sets[pid])
        except ConfigError as e:
            raise ConfigError(f"policy.{pid}.{e.field}", e.value, e.allowed, source=source) from None
    pref_paths = {}
    for s in sc.services:
        if preference.get(s.name, "none") != "none":
            if s.memcg is None:
                raise ConfigError(f"service.{s.name}.preference", preference[s.name], "needs a memcg", source=source)
            pref_paths[s.memcg] = preference[s.name]
    return ActScenario(sc, tuple(policies), frozenset(culprit), frozenset(managed), frozenset(protected),
                       pref_paths, policy_sets, group)
