"""What a memory-pressure scenario is — a machine, its sysctls, services, the designs to compare — and how
one is loaded and validated from TOML (a built-in name or a file).

A service may start at a time (``start``) or when another service's process exits (``start_after``, then
``start`` is a delay after that exit); move ``rate`` bytes per second (streamer, reader, allocator); have
``file_backed`` memory (its interpreter and libraries, mapped and touched as it works). A ``reader`` reads the
file a ``streamer`` wrote (``file = "<service>"``) or a file already on disk; a ``listener`` only registers
for ``levels`` in ``mode`` on its memcg and counts what it hears.

Sizes and durations in a scenario file are strings with units (``"640MiB"``, ``"8ms"``): a bare number is
refused, since ``duration = 5`` used to simulate 5 ns without a word (only ``0`` may be bare). Every value is
bounded so that an accepted scenario can be simulated here:

* the machine's memory, :data:`MAX_MEMORY` = 16 GiB (the reclaim model keeps a frame table of about 80 bytes
  per 4 KiB page: ~320 MB at the limit; 1 GiB and 8 GiB simulate in about the same 4 s);
* the duration, :data:`MAX_DURATION` = 600 s of simulated time (the 24 s default takes ~4 s per design);
* at most :data:`MAX_SERVICES` services, each at most :data:`MAX_SERVICE_SIZE` (64 GiB; a streamer's file is
  written, not held), chunks of 4 KiB..1 GiB, rates up to 64 GiB/s, and times up to the duration limit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memsched.config import check_name, finite_number, from_sets, parse_toml, read_input_file
from memsched.errors import ConfigError, KernelError, UnknownNameError
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.sim.mm.reclaim import ReclaimConfig
from memsched.topology import Topology, load_topology
from memsched.uapi.pressure import PsiTrigger
from memsched.units import GIB, MIB, NSEC_PER_SEC, parse_duration, parse_size

__all__ = [
    "DESIGNS",
    "KINDS",
    "LEVELS",
    "MODES",
    "POLICIES",
    "Scenario",
    "ServiceSpec",
    "list_scenarios",
    "load_scenario",
    "scenario_from_dict",
]

DESIGNS = ("none", "rfc2012", "mainline", "psi")
KINDS = ("streamer", "cache", "allocator", "reader", "listener")
POLICIES = ("ignore", "shed")
LEVELS = ("low", "medium", "critical")
MODES = ("default", "hierarchy", "local")
#: An allocator's rate when the scenario gives none.
DEFAULT_ALLOCATOR_RATE = 64 * MIB

#: Limits of a scenario (see the module docstring for why).
MAX_MEMORY = 16 * GIB
MAX_DURATION = 600 * NSEC_PER_SEC
MAX_SERVICES = 1024  # processes, not frames, bound the cost: an act-sim fork bomb expands to up to 512
MAX_SERVICE_SIZE = 64 * GIB
MAX_CHUNK = GIB
MAX_RATE = 64 * GIB


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a scenario (sizes in bytes, times in ns)."""

    name: str
    kind: str
    size: int = 0
    chunk: int = 2 * MIB
    start: int = 0
    policy: str = "ignore"
    shed_fraction: float = 0.25
    cooldown: int = NSEC_PER_SEC
    memcg: str | None = None
    limit: int | None = None
    oom_score_adj: int = 0
    hit_cost: int = 4_000_000
    miss_cost: int = 12_000_000
    #: Bytes per second the service moves while the kernel lets it (None: streamer/reader as fast as they
    #: can, allocator 64 MiB/s).
    rate: int | None = None
    start_after: str | None = None
    file: str | None = None
    levels: tuple[str, ...] = ()
    mode: str = "default"
    file_backed: int = 0
    #: Allocator: how long it keeps what it allocated before exiting (None: to the scenario's end).
    hold: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("name", self.name, "must be a non-empty name of letters, digits, - and _")
        if self.kind not in KINDS:
            raise UnknownNameError("kind", self.kind, KINDS)
        if self.policy not in POLICIES:
            raise UnknownNameError("policy", self.policy, POLICIES)
        if self.chunk < 4096 or self.chunk % 4096 or self.chunk > MAX_CHUNK:
            raise ConfigError("chunk", self.chunk, f"must be a multiple of 4 KiB in 4KiB..{MAX_CHUNK >> 30}GiB")
        if self.size > MAX_SERVICE_SIZE:
            raise ConfigError("size", self.size, f"must be at most {MAX_SERVICE_SIZE >> 30}GiB")
        if self.kind == "listener":
            self._check_listener()
        elif self.size < self.chunk and not (self.kind == "reader" and self.file and not self.size):
            raise ConfigError("size", self.size, f"must be at least one chunk ({self.chunk} B)")
        if self.file is not None and self.kind != "reader":
            raise ConfigError("file", self.file, "is for a reader (the service whose file it reads)")
        if self.file_backed < 0 or self.file_backed % 4096 or self.file_backed > MAX_SERVICE_SIZE:
            raise ConfigError(
                "file_backed", self.file_backed, f"must be a multiple of 4 KiB in 0..{MAX_SERVICE_SIZE >> 30}GiB"
            )
        if self.start_after == self.name:
            raise ConfigError("start_after", self.start_after, "must name another service")
        if not 0.0 < self.shed_fraction <= 1.0:  # NaN fails this too
            raise ConfigError("shed_fraction", self.shed_fraction, "must be in (0, 1]")
        if not -1000 <= self.oom_score_adj <= 1000:
            raise ConfigError("oom_score_adj", self.oom_score_adj, "must be in -1000..1000")
        if self.limit is not None and self.memcg is None:
            raise ConfigError("limit", self.limit, "needs a 'memcg' to apply to")
        if self.memcg is not None and (
            not self.memcg.startswith("/") or any(part in ("", ".", "..") for part in self.memcg[1:].split("/"))
        ):
            raise ConfigError(
                "memcg", self.memcg, "must be a child cgroup path such as /cache (no empty, '.' or '..' components)"
            )
        for name in ("hit_cost", "miss_cost", "cooldown", "start"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "must be >= 0")
            if getattr(self, name) > MAX_DURATION:
                raise ConfigError(name, getattr(self, name), f"must be at most {MAX_DURATION // NSEC_PER_SEC}s")
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            raise ConfigError("rate", self.rate, f"must be in 1B..{MAX_RATE >> 30}GiB (per second)")
        if self.rate is not None and self.kind in ("cache", "listener"):
            raise ConfigError("rate", self.rate, "is for a streamer, reader or allocator")
        if self.hold is not None and (self.kind != "allocator" or not 0 <= self.hold <= MAX_DURATION):
            raise ConfigError(
                "hold", self.hold, f"is for an allocator, and must be in 0..{MAX_DURATION // NSEC_PER_SEC}s"
            )
        if self.limit is not None and not 4096 <= self.limit <= MAX_MEMORY:  # the memcg charges whole 4 KiB pages
            raise ConfigError("limit", self.limit, f"must be in 4KiB..{MAX_MEMORY >> 30}GiB (at least one page)")

    def _check_listener(self) -> None:
        if not self.levels:
            raise ConfigError("levels", [], "must list at least one of: " + ", ".join(LEVELS))
        for level in self.levels:
            if level not in LEVELS:
                raise UnknownNameError("levels", level, LEVELS)
        if len(set(self.levels)) != len(self.levels):
            raise ConfigError("levels", list(self.levels), "must not repeat a level")
        if self.mode not in MODES:
            raise UnknownNameError("mode", self.mode, MODES)
        if self.policy != "ignore":
            raise ConfigError("policy", self.policy, "must be ignore for a listener (it only counts)")
        if self.size or self.file_backed:
            key = "size" if self.size else "file_backed"
            raise ConfigError(key, getattr(self, key), "is not for a listener (it holds no memory)")

    @property
    def pace(self) -> int | None:
        """Bytes per second it keeps to (None: as fast as it can)."""
        if self.rate is None and self.kind == "allocator":
            return DEFAULT_ALLOCATOR_RATE
        return self.rate


@dataclass(frozen=True)
class Scenario:
    """A machine, its sysctls, the services, and the designs to compare."""

    name: str
    description: str
    topology: Topology
    duration: int
    services: tuple[ServiceSpec, ...]
    designs: tuple[str, ...] = DESIGNS
    reclaim: ReclaimConfig = field(default_factory=ReclaimConfig)
    psi_medium: PsiTrigger = field(default_factory=lambda: PsiTrigger("some", 100_000, 1_000_000))
    psi_critical: PsiTrigger = field(default_factory=lambda: PsiTrigger("full", 100_000, 1_000_000))
    psi_privileged: bool = True
    source: str = "<builtin>"

    def __post_init__(self) -> None:
        if not 0 < self.duration <= MAX_DURATION:
            raise ConfigError(
                "duration", self.duration, f"must be in 1ns..{MAX_DURATION // NSEC_PER_SEC}s", source=self.source
            )
        if self.topology.memory_bytes > MAX_MEMORY:
            raise ConfigError(
                "memory", self.topology.memory_bytes,
                f"must be at most {MAX_MEMORY >> 30}GiB (the reclaim model keeps a frame per page)", source=self.source,
            )  # fmt: skip
        if not self.services:
            raise ConfigError("service", [], "must list at least one [[service]]", source=self.source)
        if len(self.services) > MAX_SERVICES:
            raise ConfigError("service", len(self.services), f"must list at most {MAX_SERVICES}", source=self.source)
        names = [s.name for s in self.services]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError("service.name", dup[0], "must be unique", source=self.source)
        by_name = {s.name: s for s in self.services}
        for svc in self.services:
            after = svc.start_after
            if after is not None and after not in by_name:
                raise ConfigError(
                    "service.start_after", after, "must name a service: " + ", ".join(names), source=self.source
                )
            if after is not None and by_name[after].kind == "listener":
                raise ConfigError(
                    "service.start_after", after, "must name a service that ends (not a listener)", source=self.source
                )
            if svc.file is not None and svc.file in by_name and by_name[svc.file].kind != "streamer":
                raise ConfigError(
                    "service.file", svc.file, "must name a streamer (or a file on disk)", source=self.source
                )
            if svc.file is not None and svc.file not in by_name and "/" not in svc.file:
                # A bare word is a service's name: one no service has is a typo, not a file on disk (those are
                # paths, such as /var/backup.tar).
                streamers = ", ".join(s.name for s in self.services if s.kind == "streamer") or "none"
                raise ConfigError(
                    "service.file", svc.file,
                    f"must name a streamer of this scenario (streamers: {streamers}) or be the path of a file on "
                    "disk (with a /, and size = ...)",
                    source=self.source,
                )  # fmt: skip
            if svc.kind == "reader" and not svc.size and (svc.file is None or svc.file not in by_name):
                raise ConfigError(
                    "service.size", 0, "is required for a reader of a file on disk", source=self.source
                )
            seen = {svc.name}
            while after is not None:
                if after in seen:
                    raise ConfigError(
                        "service.start_after", svc.start_after, "must not form a cycle", source=self.source
                    )
                seen.add(after)
                after = by_name[after].start_after
        for d in self.designs:
            if d not in DESIGNS:
                raise UnknownNameError("designs", d, DESIGNS, source=self.source)
        for trig in (self.psi_medium, self.psi_critical):
            try:
                trig.check_privilege(self.psi_privileged)
            except ConfigError as e:
                raise ConfigError("psi", trig.format(), e.allowed, source=self.source) from None


# ---- loading -----------------------------------------------------------------------------------------------

_TOP_KEYS = {
    "name",
    "description",
    "topology",
    "memory",
    "duration",
    "designs",
    "sysctl",
    "rfc2012",
    "mainline",
    "psi",
    "service",
}
_SERVICE_KEYS = {f.name for f in dataclasses.fields(ServiceSpec)}
_SIZE_KEYS = {"size", "chunk", "limit", "rate", "file_backed"}
_TIME_KEYS = {"start", "cooldown", "hit_cost", "miss_cost", "hold"}


def _scenario_dir() -> Any:
    return resources.files("memsched.data") / "scenarios"


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios (``memsched/data/scenarios/pressure-*.toml``)."""
    return sorted(
        p.name.removeprefix("pressure-").removesuffix(".toml")
        for p in _scenario_dir().iterdir()
        if p.name.startswith("pressure-") and p.name.endswith(".toml")
    )


def load_scenario(ref: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(ref)
    if ref.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ConfigError(
                "SCENARIO",
                ref,
                "must be a readable TOML file or a built-in scenario: " + ", ".join(list_scenarios()),
            )
        data = read_input_file(path, "SCENARIO", "TOML file")
        source = str(path)
    else:
        names = list_scenarios()
        if ref not in names:
            raise UnknownNameError("SCENARIO", ref, names)
        data = (_scenario_dir() / f"pressure-{ref}.toml").read_bytes()
        source = f"scenario {ref}"
    return scenario_from_dict(parse_toml(data, "SCENARIO", source), source=source)


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str, source: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                key,
                raw[key],
                f"is not a key of {where}; valid keys: " + ", ".join(sorted(allowed)),
                source=source,
            )


def _as_str(raw: Mapping[str, Any], key: str, source: str) -> str:
    v = raw[key]
    if not isinstance(v, str):
        raise ConfigError(key, v, "must be a string", source=source)
    return v


def _topology(ref: str, source: str) -> Topology:
    """The scenario's machine; a name that is neither a preset nor a file is this scenario's error (a topology
    file's own errors already name that file)."""
    try:
        return load_topology(ref)
    except UnknownNameError as e:
        if e.source is not None:
            raise
        raise UnknownNameError("topology", e.value, e.valid, source=source) from None
    except ConfigError as e:
        if e.source is not None:
            raise
        raise ConfigError("topology", e.value, e.allowed, source=source) from None


def _service(raw: Mapping[str, Any], i: int, source: str) -> ServiceSpec:
    where = f"[[service]] #{i + 1}"
    if not isinstance(raw, Mapping):
        raise ConfigError("service", raw, "entries must be tables ([[service]])", source=source)
    _check_keys(raw, _SERVICE_KEYS, where, source)
    required = ["name", "kind"]
    if raw.get("kind") not in ("listener", "reader"):
        required.append("size")
    for key in required:
        if key not in raw:
            raise ConfigError(key, None, f"is required in {where}", source=source)
    kw: dict[str, Any] = {}
    for key, v in raw.items():
        try:
            # Unbounded here: ServiceSpec checks each key's own limit, which a huge value must be told of too.
            if key in _SIZE_KEYS:
                kw[key] = parse_size(v, field=key, unit_required=True, max_bytes=None)
            elif key in _TIME_KEYS:
                kw[key] = parse_duration(v, field=key, unit_required=True, max_ns=None)
            elif key == "shed_fraction":
                kw[key] = finite_number(v, key, lo=-math.inf, hi=math.inf)  # the range: ServiceSpec's "(0, 1]"
            elif key == "levels":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ConfigError(key, v, "must be a list of: " + ", ".join(LEVELS))
                kw[key] = tuple(v)
            elif key == "oom_score_adj":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(key, v, "must be an integer in -1000..1000")
                kw[key] = v
            else:
                kw[key] = _as_str(raw, key, source)
        except ConfigError as e:
            raise ConfigError(f"service.{e.field}", e.value, e.allowed, source=f"{source}, {where}") from None
    try:
        return ServiceSpec(**kw)
    except ConfigError as e:
        raise ConfigError(f"service.{e.field}", e.value, e.allowed, source=f"{source}, {where}") from None


def _sets(raw: Any, section: str, source: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(section, raw, "must be a table", source=source)
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, str) and k.endswith(("_bytes", "_per_s")):  # unbounded: from_sets checks the knob's max
            out[k] = str(parse_size(v, field=k, max_bytes=None))
        elif isinstance(v, str) and k.endswith("_ns"):
            out[k] = str(parse_duration(v, field=k, max_ns=None))
        elif isinstance(v, int | float | str):  # the unit is in the name; from_sets checks the number
            out[k] = str(v)
        else:
            raise ConfigError(k, v, "must be a number, a string or true/false", source=source)
    return out


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Validate a parsed scenario document (see the module docstring for the keys)."""
    _check_keys(raw, _TOP_KEYS, "a scenario", source)
    name = check_name(_as_str(raw, "name", source) if "name" in raw else Path(source).stem, "name", source=source)
    topo = _topology(_as_str(raw, "topology", source) if "topology" in raw else "pressure-1n4", source)
    if "memory" in raw:
        try:
            mem = parse_size(raw["memory"], field="memory", max_bytes=MAX_MEMORY, unit_required=True)
        except ConfigError as e:
            raise ConfigError("memory", raw["memory"], e.allowed, source=source) from None
        if mem < 64 * MIB:
            raise ConfigError("memory", raw["memory"], "must be at least 64MiB", source=source)
        per_node = mem // topo.nr_nodes
        topo = dataclasses.replace(topo, nodes=tuple(dataclasses.replace(n, memory_bytes=per_node) for n in topo.nodes))
    try:
        duration = parse_duration(raw.get("duration", "30s"), field="duration", unit_required=True)
        reclaim_sets = _sets(raw.get("sysctl", {}), "sysctl", source)
        rfc = from_sets(Rfc2012VmpressureConfig, _sets(raw.get("rfc2012", {}), "rfc2012", source), owner="[rfc2012]")
        mainline = from_sets(
            MainlineVmpressureConfig, _sets(raw.get("mainline", {}), "mainline", source), owner="[mainline]"
        )
        base = ReclaimConfig(rfc=rfc, mainline=mainline)
        reclaim = from_sets(ReclaimConfig, reclaim_sets, owner="[sysctl]", base=base)
    except ConfigError as e:
        raise ConfigError(e.field, e.value, e.allowed, source=source) from None
    psi_raw = raw.get("psi", {})
    if not isinstance(psi_raw, Mapping):
        raise ConfigError("psi", psi_raw, "must be a table", source=source)
    _check_keys(psi_raw, {"medium", "critical", "privileged"}, "[psi]", source)
    privileged = psi_raw.get("privileged", True)
    if not isinstance(privileged, bool):
        raise ConfigError("psi.privileged", privileged, "must be true or false", source=source)
    trig = {}
    for level, default in (("medium", "some 100000 1000000"), ("critical", "full 100000 1000000")):
        text = psi_raw.get(level, default)
        try:
            trig[level] = PsiTrigger.parse_write(str(text).encode() + b"\0", privileged=True)
        except (KernelError, ConfigError) as e:
            raise ConfigError(
                f"psi.{level}",
                text,
                f"must be a PSI trigger '<some|full> <stall us> <window us>' ({e})",
                source=source,
            ) from None
    designs = raw.get("designs", list(DESIGNS))
    if not isinstance(designs, list) or not all(isinstance(d, str) for d in designs) or not designs:
        raise ConfigError("designs", designs, "must be a non-empty list of: " + ", ".join(DESIGNS), source=source)
    if len(set(designs)) != len(designs):
        raise ConfigError("designs", designs, "must not name a design twice", source=source)
    services_raw = raw.get("service", [])
    if not isinstance(services_raw, list):
        raise ConfigError("service", services_raw, "must be an array of tables ([[service]])", source=source)
    services = tuple(_service(s, i, source) for i, s in enumerate(services_raw))
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        topology=topo,
        duration=duration,
        services=services,
        designs=tuple(designs),
        reclaim=reclaim,
        psi_medium=trig["medium"],
        psi_critical=trig["critical"],
        psi_privileged=privileged,
        source=source,
    )
