"""Memory-pressure scenarios: services filling a machine, each notification design, and what happens.

A scenario is a machine (topology, optionally smaller memory), the kernel's sysctls, and services. It is run
once per *notification design*:

``none``
    nobody listens; the kernel reclaims and, when it cannot, the OOM killer decides.
``rfc2012``
    each shedding service opens ``vmpressure_fd(threshold = VMPRESSURE_MEDIUM)`` (system-wide, the RFC's only
    mode) and reads the level: MEDIUM -> shed, OOM -> drop everything.
``mainline``
    each shedding service registers two eventfds on its memcg's ``memory.pressure_level`` through
    ``cgroup.event_control`` (``medium`` and ``critical``, default mode; the root memcg unless the service
    has its own): the eventfds count, so the service learns the level from which eventfd fired.
``psi``
    each shedding service arms two PSI triggers on ``/proc/pressure/memory`` (by default ``some 100000
    1000000`` -> medium and ``full 100000 1000000`` -> critical, privileged, as lmkd's defaults) and waits
    for ``POLLPRI``.

Service kinds (every one may ``ignore`` notifications or ``shed``: on MEDIUM give back ``shed_fraction`` of
what it holds, on OOM/critical give back everything; a ``cooldown`` after a shed ignores further MEDIUMs):

``streamer``
    writes a file through the page cache in ``chunk`` pieces as fast as dirty throttling lets it (the disk's
    write bandwidth once ``dirty_ratio`` is reached). Throughput in MiB/s. Shedding = ``POSIX_FADV_DONTNEED``
    on what it has written (clean pages only).
``cache``
    a memcached-like service cycling over ``size / chunk`` keys, one chunk of requests per step: a present
    chunk costs ``hit_cost``, an absent one ``miss_cost`` and is (re)filled, so the cache grows to ``size``.
    Throughput in steps/s. Shedding = ``MADV_DONTNEED`` on the most recently used chunks.
``allocator``
    an anonymous allocator (a batch job) that allocates ``size`` at ``rate`` and then keeps working on it.
    Throughput in MiB allocated per second. Shedding = freeing its most recent chunks.

Every service program is finite (sized for the scenario's duration); the run stops at ``duration``.
Scenario files are TOML (see ``memsched/data/scenarios/*.toml``); unknown keys and bad values are
:class:`~memsched.errors.ConfigError` naming the key, the value, what is allowed, and the file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from memsched.config import from_sets
from memsched.errors import ConfigError, KernelError, UnknownNameError
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Call, Compute, FluidTask, Phase, Sleep, Spawn, ThreadSpec, Touch, Wait
from memsched.sim.mm.mm import Region
from memsched.sim.mm.reclaim import Reclaim, ReclaimConfig
from memsched.topology import Topology, load_topology
from memsched.uapi.pressure import PsiTrigger, VmpressureConfig, VmpressureLevel
from memsched.units import MIB, NSEC_PER_SEC, parse_duration, parse_size

__all__ = [
    "DESIGNS",
    "KINDS",
    "Scenario",
    "ServiceSpec",
    "list_scenarios",
    "load_scenario",
    "run_design",
    "run_scenario",
]

DESIGNS = ("none", "rfc2012", "mainline", "psi")
KINDS = ("streamer", "cache", "allocator")
POLICIES = ("ignore", "shed")
LEVELS = ("low", "medium", "critical")

#: User CPU to give back one page (munmap/madvise work: TLB flush, freeing), estimate.
RELEASE_NS_PER_PAGE = 250
#: Upper bound on listener iterations (each handles one wake-up).
MAX_LISTENER_WAKEUPS = 20_000


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a scenario (sizes in bytes, times in ns)."""

    name: str
    kind: str
    size: int
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
    rate: int = 64 * MIB

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("name", self.name, "must be a non-empty name of letters, digits, - and _")
        if self.kind not in KINDS:
            raise UnknownNameError("kind", self.kind, KINDS)
        if self.policy not in POLICIES:
            raise UnknownNameError("policy", self.policy, POLICIES)
        if self.chunk < 4096 or self.chunk % 4096:
            raise ConfigError("chunk", self.chunk, "must be a positive multiple of 4 KiB")
        if self.size < self.chunk:
            raise ConfigError("size", self.size, f"must be at least one chunk ({self.chunk} B)")
        if not 0.0 < self.shed_fraction <= 1.0:
            raise ConfigError("shed_fraction", self.shed_fraction, "must be in (0, 1]")
        if not -1000 <= self.oom_score_adj <= 1000:
            raise ConfigError("oom_score_adj", self.oom_score_adj, "must be in -1000..1000")
        if self.limit is not None and self.memcg is None:
            raise ConfigError("limit", self.limit, "needs a 'memcg' to apply to")
        if self.memcg is not None and (not self.memcg.startswith("/") or self.memcg == "/"):
            raise ConfigError("memcg", self.memcg, "must be a child cgroup path such as /cache")
        for name in ("hit_cost", "miss_cost", "rate", "cooldown"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "must be >= 0")
        if self.rate == 0:
            raise ConfigError("rate", 0, "must be > 0")


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
        if self.duration <= 0:
            raise ConfigError("duration", self.duration, "must be > 0", source=self.source)
        if not self.services:
            raise ConfigError("service", [], "must list at least one [[service]]", source=self.source)
        names = [s.name for s in self.services]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError("service.name", dup[0], "must be unique", source=self.source)
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
_SIZE_KEYS = {"size", "chunk", "limit", "rate"}
_TIME_KEYS = {"start", "cooldown", "hit_cost", "miss_cost"}


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
        text = path.read_text()
        source = str(path)
    else:
        names = list_scenarios()
        if ref not in names:
            raise UnknownNameError("SCENARIO", ref, names)
        text = (_scenario_dir() / f"pressure-{ref}.toml").read_text()
        source = f"scenario {ref}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("SCENARIO", ref, f"must be valid TOML ({e})", source=source) from None
    return scenario_from_dict(raw, source=source)


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


def _service(raw: Mapping[str, Any], i: int, source: str) -> ServiceSpec:
    where = f"[[service]] #{i + 1}"
    if not isinstance(raw, Mapping):
        raise ConfigError("service", raw, "entries must be tables ([[service]])", source=source)
    _check_keys(raw, _SERVICE_KEYS, where, source)
    for key in ("name", "kind", "size"):
        if key not in raw:
            raise ConfigError(key, None, f"is required in {where}", source=source)
    kw: dict[str, Any] = {}
    for key, v in raw.items():
        try:
            if key in _SIZE_KEYS:
                kw[key] = parse_size(v, field=key)
            elif key in _TIME_KEYS:
                kw[key] = parse_duration(v, field=key)
            elif key == "shed_fraction":
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ConfigError(key, v, "must be a number in (0, 1]")
                kw[key] = float(v)
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
        elif isinstance(v, str) and k.endswith(("_bytes", "_per_s")):
            out[k] = str(parse_size(v, field=k))
        elif isinstance(v, str) and k.endswith("_ns"):
            out[k] = str(parse_duration(v, field=k))
        else:
            out[k] = str(v)
    return out


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Validate a parsed scenario document (see the module docstring for the keys)."""
    _check_keys(raw, _TOP_KEYS, "a scenario", source)
    name = _as_str(raw, "name", source) if "name" in raw else Path(source).stem
    topo = load_topology(_as_str(raw, "topology", source) if "topology" in raw else "pressure-1n4")
    if "memory" in raw:
        mem = parse_size(raw["memory"], field="memory")
        if mem < 64 * MIB:
            raise ConfigError("memory", raw["memory"], "must be at least 64MiB", source=source)
        per_node = mem // topo.nr_nodes
        topo = dataclasses.replace(
            topo, nodes=tuple(dataclasses.replace(n, memory_bytes=per_node) for n in topo.nodes)
        )
    try:
        duration = parse_duration(raw.get("duration", "30s"), field="duration")
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
        raise ConfigError(
            "designs", designs, "must be a non-empty list of: " + ", ".join(DESIGNS), source=source
        )
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


# ---- services on the machine -------------------------------------------------------------------------------


class _AnyOf:
    """Wait on several wait queues at once (``poll`` on a set of fds); ready as soon as one is."""

    def __init__(self, *waitables: Any) -> None:
        self.waitables = waitables

    def poll_ready(self, task: FluidTask) -> bool:
        return any(w.poll_ready(task) for w in self.waitables)

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        for w in self.waitables:
            w.add_waiter(task, wake)


@dataclass
class _Service:
    spec: ServiceSpec
    region: Region
    nr_chunks: int
    task: FluidTask | None = None
    steps: int = 0
    hits: float = 0.0
    chunks_done: int = 0
    sheds: int = 0
    released_pages: int = 0
    last_shed: int = -(1 << 62)
    events: list[tuple[int, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    alloc_done: int | None = None

    def chunk(self, k: int) -> Region:
        return self.region.sub(k * self.spec.chunk, self.spec.chunk)


class _Run:
    """One scenario under one design."""

    def __init__(self, scenario: Scenario, design: str, seed: int) -> None:
        self.sc = scenario
        self.design = design
        self.machine = FluidMachine(scenario.topology, seed=seed, config=MachineConfig(thp=False))
        self.r = Reclaim(self.machine, scenario.reclaim)
        self.machine.add_instrument(self.r)
        self.page_size = self.machine.page_size
        self.services: list[_Service] = []
        for spec in scenario.services:
            self.services.append(self._build(spec))

    # -- building
    def _build(self, spec: ServiceSpec) -> _Service:
        m, r = self.machine, self.r
        if spec.memcg is not None:
            if spec.memcg not in r.memcgs.by_path:
                parts = spec.memcg.strip("/").split("/")
                for i in range(len(parts)):
                    p = "/" + "/".join(parts[: i + 1])
                    if p not in r.memcgs.by_path:
                        r.memcgs.mkdir(p)
            if spec.limit is not None:
                r.memcgs.set_limit(spec.memcg, spec.limit, self.page_size)
        mm = m.new_mm(spec.name)
        if spec.kind == "streamer":
            region = mm.mmap(spec.size, f"{spec.name}:file", header=0)
            r.map_file(mm, region)
        else:
            region = mm.mmap(spec.size, f"{spec.name}:heap", header=0)
        svc = _Service(spec, region, region.nbytes // spec.chunk)
        main = self._main_program(svc)
        program: tuple[Phase, ...] = main
        if spec.policy == "shed" and self.design != "none":
            listener = self._listener_program(svc)
            program = (Spawn((ThreadSpec(f"{spec.name}-listener", listener),)), *main)
        if spec.start:
            program = (Sleep(spec.start), *program)
        svc.task = m.spawn_process(spec.name, program, mm=mm)
        if spec.memcg is not None:
            r.memcgs.attach(svc.task.tgid, spec.memcg)
        if spec.oom_score_adj:
            r.set_oom_score_adj(svc.task, spec.oom_score_adj)
        return svc

    def _main_program(self, svc: _Service) -> tuple[Phase, ...]:
        spec = svc.spec
        dur = self.sc.duration - spec.start
        out: list[Phase] = []
        if spec.kind == "streamer":
            throttle = Wait(self.r.writeback.throttle)
            done = Call(functools.partial(self._count, svc))
            for k in range(svc.nr_chunks):
                out += [Touch(svc.chunk(k), write=1.0), done, throttle]
        elif spec.kind == "cache":
            steps = max(1, math.ceil(dur / max(spec.hit_cost, 1))) + 1
            keys = svc.nr_chunks
            touches = [Touch(svc.chunk(k), write=0.25) for k in range(keys)]
            calls = [Call(functools.partial(self._request, svc, k)) for k in range(keys)]
            for i in range(steps):
                out += [calls[i % keys], touches[i % keys]]
        else:  # allocator
            think = max(0, round(spec.chunk / spec.rate * NSEC_PER_SEC))
            done = Call(functools.partial(self._count, svc))
            for k in range(svc.nr_chunks):
                out += [Touch(svc.chunk(k), write=1.0), done, Compute(think)]
            out.append(Compute(max(1, dur)))
        return tuple(out)

    def _count(self, svc: _Service, m: FluidMachine, t: FluidTask) -> int:
        svc.chunks_done += 1
        if svc.chunks_done == svc.nr_chunks:
            svc.alloc_done = self.machine.engine.now
        return 0

    def _request(self, svc: _Service, k: int, m: FluidMachine, task: FluidTask) -> int:
        """One step of the cache: the cost depends on how much of chunk ``k`` is resident."""
        p0, p1 = svc.chunk(k).page_span(self.page_size)
        present = float(np.count_nonzero(task.mm.page_node[p0:p1] >= 0)) / (p1 - p0)
        svc.steps += 1
        svc.hits += present
        return round(present * svc.spec.hit_cost + (1.0 - present) * svc.spec.miss_cost)

    # -- listening
    def _listener_program(self, svc: _Service) -> tuple[Phase, ...]:
        r = self.r
        name = svc.spec.name
        if self.design == "rfc2012":
            f = r.vmpressure.vmpressure_fd(
                VmpressureConfig(threshold=VmpressureLevel.MEDIUM), name=f"{name}:vmpressure_fd"
            )
            source: Any = r.vmpressure.wait(f)

            def read(m: FluidMachine, t: FluidTask) -> None:
                try:
                    ev = f.read_event_nowait()
                except BlockingIOError:
                    return
                svc.pending.append("critical" if ev.level is VmpressureLevel.OOM else ev.level.name.lower())

        elif self.design == "mainline":
            memcg = svc.spec.memcg or "/"
            efds = {}
            for level in ("medium", "critical"):
                efd = r.memcgs.eventfd(f"{name}:{level}")
                plf = r.memcgs.open_pressure_level(memcg)
                r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} {level}")
                efds[level] = efd
            source = _AnyOf(efds["critical"], efds["medium"])

            def read(m: FluidMachine, t: FluidTask) -> None:
                got = {lv: (efd.read() if efd.count else 0) for lv, efd in efds.items()}
                if got["critical"]:
                    svc.pending.append("critical")
                elif got["medium"]:
                    svc.pending.append("medium")

        else:  # psi
            files = {}
            for level, trig in (("medium", self.sc.psi_medium), ("critical", self.sc.psi_critical)):
                pf = r.psi.open(privileged=self.sc.psi_privileged, name=f"{name}:psi-{level}")
                pf.write(trig.encode())
                files[level] = pf
            fired: list[str] = []

            class _Trig:
                def __init__(self, level: str) -> None:
                    self.level = level

                def poll_ready(self, task: FluidTask) -> bool:
                    if files[self.level].poll():
                        fired.append(self.level)
                        return True
                    return False

                def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
                    files[self.level].add_waiter(task, wake)

            source = _AnyOf(_Trig("critical"), _Trig("medium"))

            def read(m: FluidMachine, t: FluidTask) -> None:
                for level in ("critical", "medium"):
                    if files[level].poll():
                        fired.append(level)
                if fired:
                    svc.pending.append("critical" if "critical" in fired else "medium")
                    fired.clear()

        def react(m: FluidMachine, t: FluidTask) -> int:
            read(m, t)
            return self._react(svc)

        return (Wait(source), Call(react)) * MAX_LISTENER_WAKEUPS

    def _react(self, svc: _Service) -> int:
        now = self.machine.engine.now
        cost = 0
        while svc.pending:
            level = svc.pending.pop(0)
            svc.events.append((now, level))
            if level == "low":  # an RFC read returns the latest level, which may be below the threshold
                continue
            if level == "medium" and now - svc.last_shed < svc.spec.cooldown:
                continue
            frac = 1.0 if level == "critical" else svc.spec.shed_fraction
            cost += self._shed(svc, frac)
            svc.last_shed = now
        return cost

    def _shed(self, svc: _Service, fraction: float) -> int:
        """Give back ``fraction`` of what the service holds, most recently used chunks first."""
        task = svc.task
        if task is None or task.state.name == "EXITED":
            return 0
        mm = task.mm
        present = []
        for k in range(svc.nr_chunks):
            p0, p1 = svc.chunk(k).page_span(self.page_size)
            if (mm.page_node[p0:p1] >= 0).any():
                present.append(k)
        if not present:
            return 0
        n = max(1, math.ceil(len(present) * fraction))
        if svc.spec.kind == "cache":
            cur = (svc.steps - 1) % svc.nr_chunks
            present.sort(key=lambda k: (cur - k) % svc.nr_chunks)  # most recently used first
        else:
            present.sort(reverse=True)
        pages = 0
        for k in present[:n]:
            pages += self.r.release(task, svc.chunk(k), clean_only=svc.spec.kind == "streamer")
        svc.sheds += 1
        svc.released_pages += pages
        return pages * RELEASE_NS_PER_PAGE

    # -- running and reporting
    def run(self, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        m = self.machine
        step = max(self.sc.duration // 20, 1)
        t = 0
        while t < self.sc.duration:
            t = min(t + step, self.sc.duration)
            m.run(until=t)
            if progress is not None:
                progress(t / self.sc.duration)
        return self.record()

    def record(self) -> dict[str, Any]:
        m, r, sc = self.machine, self.r, self.sc
        dur_s = sc.duration / NSEC_PER_SEC
        services = {}
        for svc in self.services:
            task = svc.task
            assert task is not None
            end = task.exit_ns if task.exit_ns is not None else sc.duration
            alive_s = max((end - svc.spec.start) / NSEC_PER_SEC, 1e-9)
            chunk_mib = svc.spec.chunk / MIB
            if svc.spec.kind == "cache":
                unit, ops = "steps/s", float(svc.steps)
                extra: dict[str, Any] = {"hit_ratio": round(svc.hits / svc.steps, 4) if svc.steps else None}
            else:
                unit, ops = "MiB/s", svc.chunks_done * chunk_mib
                extra = {}
                if svc.spec.kind == "allocator":  # its rate while allocating, not over its whole life
                    end = svc.alloc_done if svc.alloc_done is not None else end
                    alive_s = max((end - svc.spec.start) / NSEC_PER_SEC, 1e-9)
                    extra["allocated_s"] = _r(svc.alloc_done)
            user, system = m.task_times(task)
            services[svc.spec.name] = {
                "kind": svc.spec.kind,
                "policy": svc.spec.policy,
                "throughput": round(ops / alive_s, 3),
                "throughput_unit": unit,
                "work_done": round(ops, 3),
                "oom_killed": task.killed,
                "end_s": round(end / NSEC_PER_SEC, 6) if task.exit_ns is not None else None,
                "sheds": svc.sheds,
                "released_mib": round(svc.released_pages * self.page_size / MIB, 3),
                "events": dict(Counter(level for _, level in svc.events)),
                "reclaim_stall_s": round(r.stall_ns.get(task.id, 0.0) / NSEC_PER_SEC, 6),
                "user_s": round(user / NSEC_PER_SEC, 6),
                "system_s": round(system / NSEC_PER_SEC, 6),
                **extra,
            }
        app_events = [(t, lv) for svc in self.services for t, lv in svc.events]
        by_level = {lv: sorted(t for t, l2 in app_events if l2 == lv) for lv in LEVELS}
        deliveries = self._kernel_events()
        stats = r.stats()
        released = sum(svc.released_pages for svc in self.services)
        index = {}
        for flavour in ("rfc2012", "mainline"):
            samples = [s for s in r.vmpressure.samples if s.flavour == flavour]
            levels = Counter(_level_name(flavour, s.level) for s in samples)
            index[flavour] = {
                "windows": len(samples),
                "levels": {lv: levels.get(lv, 0) for lv in LEVELS},
                "first_s": {
                    lv: _r(
                        min((s.t_ns for s in samples if _level_name(flavour, s.level) == lv), default=None)
                    )
                    for lv in LEVELS
                },
            }
        return {
            "scenario": sc.name,
            "design": self.design,
            "seed": m.engine.seed,
            "topology": sc.topology.name,
            "memory_mib": int(m.page_alloc.total_pages.sum()) * self.page_size // MIB,
            "duration_s": dur_s,
            "events": {lv: len(by_level[lv]) for lv in LEVELS},
            "event_first_s": {lv: _r(by_level[lv][0] if by_level[lv] else None) for lv in LEVELS},
            "event_times_s": {lv: [_r(t) for t in by_level[lv]] for lv in LEVELS},
            "kernel_events": deliveries,
            "oom_kills": len(r.oom.kills),
            "oom_victims": [
                {
                    "t_s": _r(k.t_ns),
                    "victim": k.victim,
                    "scope": k.scope,
                    "rss_mib": round(k.rss_pages * self.page_size / MIB, 3),
                }
                for k in r.oom.kills
            ],
            "app_released_mib": round(released * self.page_size / MIB, 3),
            "services": services,
            "index": index,
            "psi": r.psi.snapshot(),
            "vmstat": stats["vmstat"],
            "memcg": stats["memcg"],
            "kswapd_busy_s": round(stats["kswapd_busy_s"], 6),
            "timeline": self._timeline(),
        }

    def _kernel_events(self) -> dict[str, int]:
        """Notifications the kernel side produced for the listeners (what reached an fd)."""
        r = self.r
        c: Counter[str] = Counter()
        if self.design in ("rfc2012", "mainline"):
            for _, design, _, level in r.vmpressure.deliveries:
                if design == self.design:
                    c["critical" if level == "oom" else level] += 1
        elif self.design == "psi":
            for t in r.psi.triggers:
                c["critical" if t.file.name.endswith("critical") else "medium"] += t.file.events
        return {lv: c.get(lv, 0) for lv in LEVELS}

    def _timeline(self) -> dict[str, list[Any]]:
        tl = self.r.timeline
        mib = self.page_size / MIB
        samples = self.r.vmpressure.samples
        return {
            "t_s": [_r(s["t_ns"]) for s in tl],
            "free_mib": [round(s["free"] * mib, 2) for s in tl],
            "file_mib": [round((s["inactive_file"] + s["active_file"]) * mib, 2) for s in tl],
            "anon_mib": [round((s["inactive_anon"] + s["active_anon"]) * mib, 2) for s in tl],
            "dirty_mib": [round((s["dirty"] + s["writeback"]) * mib, 2) for s in tl],
            "psi_some_avg10": [s["some_avg10"] for s in tl],
            "index_mainline": [
                [_r(s.t_ns), min(s.index, 100)] for s in samples if s.flavour == "mainline" and s.memcg == 0
            ],
            "index_rfc2012": [[_r(s.t_ns), min(s.index, 100)] for s in samples if s.flavour == "rfc2012"],
        }


def _level_name(flavour: str, level: int) -> str:
    if flavour == "rfc2012":
        return {VmpressureLevel.LOW: "low", VmpressureLevel.MEDIUM: "medium"}.get(
            VmpressureLevel(level), "critical"
        )
    return LEVELS[level]


def _r(t_ns: float | None) -> float | None:
    return None if t_ns is None else round(t_ns / NSEC_PER_SEC, 6)


def run_design(
    scenario: Scenario, design: str, *, seed: int = 0, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Run ``scenario`` under one notification design; returns its record."""
    if design not in DESIGNS:
        raise UnknownNameError("design", design, DESIGNS)
    return _Run(scenario, design, seed).run(progress)


def run_scenario(
    scenario: Scenario,
    *,
    designs: tuple[str, ...] | None = None,
    seed: int = 0,
    on_done: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Every design of the scenario, in order."""
    out = []
    for d in designs or scenario.designs:
        out.append(run_design(scenario, d, seed=seed))
        if on_done is not None:
            on_done(d)
    return out
