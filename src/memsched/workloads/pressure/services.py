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

from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.fluid.task import Call, Compute, FluidTask, Phase, Sleep, Spawn, ThreadSpec, Touch, Wait
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.mm.reclaim import Reclaim
from memsched.uapi.pressure import VmpressureLevel
from memsched.units import MIB, NSEC_PER_SEC
from memsched.workloads.pressure.listen import open_ears
from memsched.workloads.pressure.scenario import LEVELS, Scenario, ServiceSpec

__all__ = ["PressureRun"]

#: User CPU to give back one page (munmap/madvise work: TLB flush, freeing), estimate.
RELEASE_NS_PER_PAGE = 250
#: Upper bound on listener iterations (each handles one wake-up).
MAX_LISTENER_WAKEUPS = 20_000


class _Exited:
    """Wait until another service's process has exited (its main program ended, or it was killed)."""

    def __init__(self, run: PressureRun, name: str) -> None:
        self.run = run
        self.name = name

    def poll_ready(self, task: FluidTask) -> bool:
        return self.run.by_name[self.name].exited

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self.run.exit_waiters.setdefault(self.name, []).append((task, wake))


class _ExitWatch(Instrument):
    """Tells :class:`PressureRun` when a service's address space goes (a killed process)."""

    def __init__(self, run: PressureRun) -> None:
        self.run = run

    def mm_exit(self, mm: MmStruct) -> None:
        for svc in self.run.services:
            if svc.task is not None and svc.task.mm is mm:
                self.run.service_exited(svc)


@dataclass
class _Service:
    spec: ServiceSpec
    region: Region | None
    nr_chunks: int
    text: Region | None = None
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
    started_at: int | None = None
    exited: bool = False
    step_t0: int = 0
    receivers: dict[str, str] = field(default_factory=dict)

    def chunk(self, k: int) -> Region:
        assert self.region is not None
        return self.region.sub(k * self.spec.chunk, self.spec.chunk)


class PressureRun:
    """One scenario under one design."""

    def __init__(self, scenario: Scenario, design: str, seed: int) -> None:
        self.sc = scenario
        self.design = design
        self.machine = FluidMachine(scenario.topology, seed=seed, config=MachineConfig(thp=False))
        self.r = Reclaim(self.machine, scenario.reclaim)
        self.machine.add_instrument(self.r)
        self.machine.add_instrument(_ExitWatch(self))
        self.page_size = self.machine.page_size
        self.services: list[_Service] = []
        self.by_name: dict[str, _Service] = {}
        self.exit_waiters: dict[str, list[tuple[FluidTask, Callable[[FluidTask], None]]]] = {}
        for spec in scenario.services:
            svc = self._build(spec)
            self.services.append(svc)
            self.by_name[spec.name] = svc

    # -- building
    def _memcg(self, spec: ServiceSpec) -> None:
        r = self.r
        if spec.memcg is None:
            return
        if spec.memcg not in r.memcgs.by_path:
            parts = spec.memcg.strip("/").split("/")
            for i in range(len(parts)):
                p = "/" + "/".join(parts[: i + 1])
                if p not in r.memcgs.by_path:
                    r.memcgs.mkdir(p)
        if spec.limit is not None:
            r.memcgs.set_limit(spec.memcg, spec.limit, self.page_size)

    def _build(self, spec: ServiceSpec) -> _Service:
        m, r = self.machine, self.r
        self._memcg(spec)
        mm = m.new_mm(spec.name)
        size = spec.size
        region: Region | None = None
        if spec.kind == "reader" and spec.file in {s.name for s in self.sc.services}:
            size = size or next(s.size for s in self.sc.services if s.name == spec.file)
        if spec.kind in ("streamer", "reader"):
            region = mm.mmap(size, f"{spec.name}:file", header=0)
            if spec.kind == "streamer":
                r.map_file(mm, region, file=f"{spec.name}.data")
            elif spec.file in {s.name for s in self.sc.services}:
                r.map_file(mm, region, file=f"{spec.file}.data")
            else:
                r.map_file(mm, region, file=spec.file or f"{spec.name}.input", exists=True)
        elif spec.kind != "listener":
            region = mm.mmap(size, f"{spec.name}:heap", header=0)
        svc = _Service(spec, region, 0 if region is None else region.nbytes // spec.chunk)
        if spec.file_backed:
            svc.text = mm.mmap(spec.file_backed, f"{spec.name}:text", header=0)
            r.map_file(mm, svc.text, file=f"{spec.name}:text", mapped=True, exists=True)
        program: list[Phase] = []
        if spec.start_after is not None:
            program.append(Wait(_Exited(self, spec.start_after)))
        if spec.start:
            program.append(Sleep(spec.start))
        program.append(Call(functools.partial(self._started, svc)))
        if svc.text is not None:
            program.append(Touch(svc.text, write=0.0))
        if spec.policy == "shed" and self.design != "none":
            listener = self._listener_program(svc, ("medium",) if self.design == "rfc2012" else ("medium", "critical"))
            program.append(Spawn((ThreadSpec(f"{spec.name}-listener", tuple(listener)),)))
        program += self._main_program(svc)
        program.append(Call(functools.partial(self._finished, svc)))
        svc.task = m.spawn_process(spec.name, tuple(program), mm=mm)
        if spec.memcg is not None:
            r.memcgs.attach(svc.task.tgid, spec.memcg)
        if spec.oom_score_adj:
            r.set_oom_score_adj(svc.task, spec.oom_score_adj)
        return svc

    def _main_program(self, svc: _Service) -> list[Phase]:
        spec = svc.spec
        dur = self.sc.duration - spec.start
        out: list[Phase] = []
        done = Call(functools.partial(self._count, svc))
        if spec.kind == "streamer":
            throttle = Wait(self.r.writeback.throttle)
            for k in range(svc.nr_chunks):
                out += self._step(svc, k, [Touch(svc.chunk(k), write=1.0), throttle, done])
        elif spec.kind == "reader":
            for k in range(svc.nr_chunks):
                out += self._step(svc, k, [Touch(svc.chunk(k), write=0.0), done])
        elif spec.kind == "cache":
            steps = max(1, math.ceil(dur / max(spec.hit_cost, 1))) + 1
            keys = svc.nr_chunks
            touches = [Touch(svc.chunk(k), write=0.25) for k in range(keys)]
            calls = [Call(functools.partial(self._request, svc, k)) for k in range(keys)]
            for i in range(steps):
                out += [*self._text_touch(svc, i), calls[i % keys], touches[i % keys]]
        elif spec.kind == "allocator":
            for k in range(svc.nr_chunks):
                out += self._step(svc, k, [Touch(svc.chunk(k), write=1.0), done])
            out.append(Compute(max(1, dur if spec.hold is None else spec.hold)))
        else:  # listener
            out += self._listener_program(svc, spec.levels)
        return out

    def _step(self, svc: _Service, k: int, phases: list[Phase]) -> list[Phase]:
        """One chunk of work, kept to the service's rate: what the kernel leaves of the chunk's time budget
        is spent in the service's own code (a copy loop, computing)."""
        pace = svc.spec.pace
        text = self._text_touch(svc, k)
        if pace is None:
            return [*text, *phases]
        budget = round(svc.spec.chunk * NSEC_PER_SEC / pace)
        start, pad = Call(functools.partial(self._step_start, svc)), Call(functools.partial(self._pad, svc, budget))
        return [start, *text, *phases, pad]

    def _text_touch(self, svc: _Service, k: int) -> list[Phase]:
        """The code the service runs for a step: one 64 KiB piece of its file-backed memory, in rotation."""
        if svc.text is None:
            return []
        piece = min(64 * 1024, svc.text.nbytes)
        n = max(1, svc.text.nbytes // piece)
        return [Touch(svc.text.sub((k % n) * piece, piece), write=0.0)]

    def _step_start(self, svc: _Service, m: FluidMachine, t: FluidTask) -> int:
        svc.step_t0 = m.engine.now
        return 0

    def _pad(self, svc: _Service, budget: int, m: FluidMachine, t: FluidTask) -> int:
        return max(0, budget - (m.engine.now - svc.step_t0))

    def _started(self, svc: _Service, m: FluidMachine, t: FluidTask) -> int:
        svc.started_at = m.engine.now
        return 0

    def _finished(self, svc: _Service, m: FluidMachine, t: FluidTask) -> int:
        self.service_exited(svc)
        return 0

    def service_exited(self, svc: _Service) -> None:
        """The service's process ends (now): whoever waits for it starts."""
        if svc.exited:
            return
        svc.exited = True
        for task, wake in self.exit_waiters.pop(svc.spec.name, []):
            wake(task)

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
    def _listener_program(self, svc: _Service, levels: tuple[str, ...]) -> list[Phase]:
        """Listen for ``levels`` under the design: a shedding service's listener thread reacts, a
        ``listener`` service only counts."""
        spec = svc.spec
        ears = open_ears(
            self.r,
            self.design,
            spec.name,
            levels,
            mode=spec.mode,
            memcg=spec.memcg or "/",
            psi={"medium": self.sc.psi_medium, "critical": self.sc.psi_critical},
            psi_privileged=self.sc.psi_privileged,
        )
        if ears is None:
            return [Sleep(max(1, self.sc.duration))] if spec.kind == "listener" else []
        svc.receivers = ears.receivers
        pure = spec.kind == "listener"

        def react(m: FluidMachine, t: FluidTask) -> int:
            heard = ears.read()
            now = m.engine.now
            if pure:
                for level, _, n in heard:
                    svc.events += [(now, level)] * n
                return 0
            if heard:
                svc.pending.append(max((h for _, h, _ in heard), key=LEVELS.index))
            return self._react(svc)

        return [Wait(ears.waitable), Call(react)] * MAX_LISTENER_WAKEUPS

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
            pages += self.r.release(task, svc.chunk(k), clean_only=svc.spec.kind in ("streamer", "reader"))
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
            start = svc.started_at if svc.started_at is not None else end
            alive_s = max((end - start) / NSEC_PER_SEC, 1e-9)
            chunk_mib = svc.spec.chunk / MIB
            extra: dict[str, Any] = {}
            if svc.spec.kind == "cache":
                unit, ops = "steps/s", float(svc.steps)
                extra["hit_ratio"] = round(svc.hits / svc.steps, 4) if svc.steps else None
            elif svc.spec.kind == "listener":
                unit, ops = "events/s", float(len(svc.events))
                extra["signal_times_s"] = self._signal_times(svc)
            else:
                unit, ops = "MiB/s", svc.chunks_done * chunk_mib
                if svc.spec.kind == "allocator":  # its rate while allocating, not over its whole life
                    end = svc.alloc_done if svc.alloc_done is not None else end
                    alive_s = max((end - start) / NSEC_PER_SEC, 1e-9)
                    extra["allocated_s"] = _r(svc.alloc_done)
            user, system = m.task_times(task)
            services[svc.spec.name] = {
                "kind": svc.spec.kind,
                "policy": svc.spec.policy,
                "throughput": round(ops / alive_s, 3),
                "throughput_unit": unit,
                "work_done": round(ops, 3),
                "oom_killed": task.killed,
                "start_s": _r(svc.started_at),
                "end_s": round(task.exit_ns / NSEC_PER_SEC, 6) if task.exit_ns is not None else None,
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

    def _signal_times(self, svc: _Service) -> dict[str, list[float | None]]:
        """When each of a listener's descriptors was signalled (the kernel's side; PSI: when it was read)."""
        out: dict[str, list[float | None]] = {lv: [] for lv in svc.spec.levels}
        if svc.receivers:
            for t, _, receiver, _ in self.r.vmpressure.deliveries:
                level = svc.receivers.get(receiver)
                if level is not None:
                    out[level].append(_r(t))
        else:
            for t, level in svc.events:
                out[level].append(_r(t))
        return out

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
