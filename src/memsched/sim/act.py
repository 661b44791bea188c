"""Action policies on the simulated kernel: views from the fluid machine's memory model, actions applied to it.

:class:`SimActDriver` samples a :class:`~memsched.sim.mm.reclaim.Reclaim`-equipped machine whenever the policy
asks (``next_interval_ns``), builds a :class:`~memsched.policies.act.views.MemoryView` from the simulated
kernel's own state and applies the actions with the same safety rules as the live backend (never a protected
process; a cgroup holding one is not killed):

| view | simulated source |
|---|---|
| ``mem_total``/``mem_free`` | the page allocator's total and free pages |
| ``mem_available`` | free + file LRU - min(file LRU / 2, low watermark) (``si_mem_available()``) |
| ``swap_total``/``swap_free`` | the swap device (``[sysctl] swap_bytes``) |
| ``file_lru``, ``workingset_refault``, ``pgscan_*`` | the LRU lists and ``/proc/vmstat`` counters |
| watermarks | the zone watermarks (``page_alloc.watermarks()``) summed over nodes |
| PSI | ``SimPsi`` (system-wide; every cgroup view carries the system's averages) |
| vmpressure | the highest mainline level of any memcg's windows since the last sample (a hierarchy listener) |
| processes | every live unprotected process: anonymous RSS, swap entries, ``oom_score`` (below), pid = tgid + 1000 |
| cgroups | each memcg: usage, swap of its processes, hierarchical ``pgscan``; managed flags from the scenario |

``oom_score`` is ``proc_oom_score()`` of 5.x: 1000 + ``oom_badness()`` × 1000 / totalpages (0..2000).

Deviations: SIGTERM is SIGKILL (simulated programs install no handler, and the default action ends them);
a kill frees the victim's memory at once (``process_mrelease`` speed) with no exit latency; PSI is system-wide
only; a ``Shed`` is carried out by the service's callback at no CPU cost to it.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from memsched.policies.act.actions import Action, ActionResult, KillCgroup, KillProcess, Shed
from memsched.policies.act.base import ActPolicy
from memsched.policies.act.views import VMPRESSURE_LEVELS, CgroupView, MemoryView, ProcView, ServiceView
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.reclaim import Reclaim

__all__ = ["PID_OFFSET", "ActEvent", "SimActDriver"]

PID_OFFSET = 1000


@dataclass(frozen=True)
class ActEvent:
    t_ns: int
    action: str
    target: str
    signal: str | None
    reason: str
    status: str
    victims: tuple[str, ...]
    evidence: Mapping[str, object] = field(default_factory=dict)


@dataclass
class _Svc:
    cgroup: str
    sheddable: Callable[[], int]
    shed: Callable[[int, str], int]


class SimActDriver:
    def __init__(
        self,
        machine: FluidMachine,
        reclaim: Reclaim,
        policy: ActPolicy,
        *,
        protected: set[int] | None = None,
        managed_pressure: set[str] | None = None,
        managed_swap: set[str] | None = None,
        preference: Mapping[str, str] | None = None,
        start_ns: Mapping[int, int] | None = None,
    ) -> None:
        self.m = machine
        self.r = reclaim
        self.policy = policy
        self.protected = protected or set()
        self.managed_pressure = managed_pressure or set()
        self.managed_swap = managed_swap or set()
        self.preference = dict(preference or {})
        self.start_ns = dict(start_ns or {})
        self.services: dict[str, _Svc] = {}
        self.events: list[ActEvent] = []
        self.samples = 0
        self._vmp_seen = 0
        self.next_ns = 0

    def add_service(
        self, name: str, cgroup: str, sheddable: Callable[[], int], shed: Callable[[int, str], int]
    ) -> None:
        self.services[name] = _Svc(cgroup, sheddable, shed)

    # -- views ---------------------------------------------------------------------------------------------
    def _alive(self) -> list[FluidTask]:
        return [t for t in self.m.tasks if t.id == t.tgid and t.state is not FluidTaskState.EXITED]

    def view(self) -> MemoryView:
        m, r = self.m, self.r
        ps = m.page_size
        now = m.engine.now
        info = r.meminfo()
        total = int(m.page_alloc.total_pages.sum())
        file_lru = info["inactive_file"] + info["active_file"]
        wmin, wlow, whigh = int(r.wmark.min.sum()), int(r.wmark.low.sum()), int(r.wmark.high.sum())
        avail = info["free"] + file_lru - min(file_lru // 2, wlow)
        psi = r.psi.snapshot()
        vs = m.vmstat
        level = 0
        samples = r.vmpressure.samples
        for s in samples[self._vmp_seen:]:
            if s.flavour == "mainline":
                level = max(level, int(s.level) + 1)
        self._vmp_seen = len(samples)
        totalpages = total + r.swap.total
        procs = []
        swap_of_memcg: dict[int, int] = {}
        for t in self._alive():
            sw = r.oom.swapents(t)
            mid = r.memcgs.memcg_of(t.tgid)
            swap_of_memcg[mid] = swap_of_memcg.get(mid, 0) + sw
            if t.tgid in self.protected:
                continue
            adj = r.oom.oom_score_adj.get(t.tgid, 0)
            bad = r.oom.badness(t, totalpages)
            # proc_oom_score() (5.x): 1000 + badness * 1000 / totalpages, where badness already holds the adj
            score = 0 if bad is None else max(0, min(2000, 1000 + bad * 1000 // max(1, totalpages)))
            procs.append(ProcView(t.tgid + PID_OFFSET, t.name, r.memcgs.memcgs[mid].path, r.oom.rss_anon(t) * ps,
                                  sw * ps, score, adj, self.start_ns.get(t.tgid, 0)))
        groups = []
        blocked = {r.memcgs.memcg_of(t.tgid) for t in self._alive() if t.tgid in self.protected}
        for g in r.memcgs.memcgs:
            sub = r.memcgs.subtree(g.id)
            nr = sum(1 for t in self._alive() if r.memcgs.memcg_of(t.tgid) in sub)
            pref = "omit" if blocked & set(sub) else self.preference.get(g.path, "none")
            pgscan = sum(r.memcgs.memcgs[i].stat["pgscan"] for i in sub)
            groups.append(CgroupView(
                g.path, int(r.memcgs.usage[g.id]) * ps, sum(swap_of_memcg.get(i, 0) for i in sub) * ps,
                float(psi["some_avg10"]), float(psi["full_avg10"]), pgscan,
                managed_pressure=g.path in self.managed_pressure, managed_swap=g.path in self.managed_swap,
                preference=pref, nr_procs=nr))
        services = tuple(ServiceView(n, s.cgroup, max(0, int(s.sheddable()))) for n, s in sorted(self.services.items()))
        return MemoryView(
            now_ns=now, mem_total=total * ps, mem_available=max(0, avail) * ps, mem_free=info["free"] * ps,
            swap_total=r.swap.total * ps, swap_free=r.swap.free * ps, file_lru=file_lru * ps,
            workingset_refault=vs["workingset_refault_file"] + vs["workingset_refault_anon"],
            pgscan_kswapd=vs["pgscan_kswapd"], pgscan_direct=vs["pgscan_direct"],
            wmark_min=wmin * ps, wmark_low=wlow * ps, wmark_high=whigh * ps,
            psi_some_avg10=float(psi["some_avg10"]), psi_full_avg10=float(psi["full_avg10"]),
            psi_some_total_us=int(psi["some_total_us"]), psi_full_total_us=int(psi["full_total_us"]),
            vmpressure=VMPRESSURE_LEVELS[level], procs=tuple(procs), cgroups=tuple(groups), services=services,
        )

    # -- acting --------------------------------------------------------------------------------------------
    def _task(self, pid: int) -> FluidTask | None:
        return next((t for t in self._alive() if t.tgid + PID_OFFSET == pid), None)

    def apply(self, a: Action) -> ActionResult:
        now = self.m.engine.now
        sig = _signal.Signals(a.signal).name if isinstance(a, (KillProcess, KillCgroup)) else None
        if isinstance(a, KillProcess):
            t = self._task(a.pid)
            if t is None or t.tgid in self.protected:
                res = ActionResult(a, "skipped", "gone" if t is None else "protected")
                victims: tuple[str, ...] = ()
            else:
                self.m.kill_process(t)
                res, victims = ActionResult(a, "applied", "", (a.pid,)), (t.name,)
            target = f"pid {a.pid}"
        elif isinstance(a, KillCgroup):
            target = a.path
            mid = self.r.memcgs.by_path.get(a.path)
            tasks = [] if mid is None else [t for t in self._alive()
                                            if self.r.memcgs.memcg_of(t.tgid) in self.r.memcgs.subtree(mid)]
            if any(t.tgid in self.protected for t in tasks):
                res, victims = ActionResult(a, "skipped", "holds a protected process"), ()
            elif not tasks:
                res, victims = ActionResult(a, "skipped", "no process"), ()
            else:
                for t in tasks:
                    self.m.kill_process(t)
                res = ActionResult(a, "applied", "", tuple(t.tgid + PID_OFFSET for t in tasks))
                victims = tuple(t.name for t in tasks)
        else:
            target = a.service
            svc = self.services.get(a.service)
            if svc is None:
                res, victims = ActionResult(a, "skipped", "no such service"), ()
            else:
                freed = svc.shed(a.bytes, a.level)
                res, victims = ActionResult(a, "applied", f"freed {freed} bytes"), ()
        kind = {KillProcess: "kill-process", KillCgroup: "kill-cgroup", Shed: "shed"}[type(a)]
        self.events.append(ActEvent(now, kind, target, sig, a.reason, res.status, victims, dict(a.evidence)))
        return res

    def run_until(self, end_ns: int) -> None:
        """Run the machine to ``end_ns``, sampling the policy at the times it asks for."""
        while True:
            t = min(self.next_ns, end_ns)
            if t > self.m.engine.now:
                self.m.run(until=t)
            if self.next_ns > end_ns:
                return
            view = self.view()
            self.samples += 1
            for a in self.policy.on_sample(view):
                self.apply(a)
            self.next_ns = view.now_ns + max(1_000_000, self.policy.next_interval_ns(view))
            if not self._alive():
                self.m.run(until=end_ns)
                return

