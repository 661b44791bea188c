"""The services of a memory-pressure scenario on a simulated machine, under one notification design.

:class:`PressureRun` builds the machine (the fluid machine with a :class:`~memsched.sim.mm.reclaim.Reclaim`
instrument), the memcgs, the services' programs and, for a shedding service under a design other than
``none``, its listener thread (a ``vmpressure_fd``, two memcg eventfds or two PSI triggers); runs it to the
scenario's end; and assembles the figures of the run (:meth:`PressureRun.figures`).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Call, Compute, FluidTask, Phase, Sleep, Spawn, ThreadSpec, Touch, Wait
from memsched.sim.mm.mm import Region
from memsched.sim.mm.reclaim import Reclaim
from memsched.uapi.pressure import VmpressureConfig, VmpressureLevel
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.pressure.scenario import LEVELS, Scenario, ServiceSpec

__all__ = ["PressureRun"]

#: User CPU to give back one page (munmap/madvise work: TLB flush, freeing), estimate.
RELEASE_NS_PER_PAGE = 250
#: Upper bound on listener iterations (each handles one wake-up).
MAX_LISTENER_WAKEUPS = 20_000


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


class PressureRun:
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
        """Run to the scenario's end; return the figures."""
        m = self.machine
        step = max(self.sc.duration // 20, 1)
        t = 0
        while t < self.sc.duration:
            t = min(t + step, self.sc.duration)
            m.run(until=t)
            if progress is not None:
                progress(t / self.sc.duration)
        return self.figures()

    def figures(self) -> dict[str, Any]:
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
