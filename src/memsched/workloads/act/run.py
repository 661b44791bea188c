"""One action scenario under one action policy, and its scores.

The services are built by the pressure family's :class:`~memsched.workloads.pressure.services.PressureRun`
(design ``none``: no notification listener; the policy decides) and driven by
:class:`~memsched.sim.act.SimActDriver`. Scores (``figures["score"]``):

- ``thrashing_s``: time with PSI memory ``full`` avg10 above 10 % (timeline samples × their interval);
- ``trouble_s``: when memory first got tight: an allocation found free memory at the low watermark (kswapd
  wakes) or a task first stalled in reclaim (PSI ``some`` starts), at the instant it happened
  (``Reclaim.first_trouble_ns``; the timeline's 1 s samples saw it up to a second late, and not at all when a
  kill freed the memory before the next sample); ``first_action_s``, and ``time_to_action_s`` from trouble to the
  first applied action (negative: the policy acted before the kernel saw trouble);
- ``killed`` (user space and kernel), against ``culprit``: ``right`` (only culprits), ``wrong`` (innocents
  only), ``mixed``, ``none``;
- ``work_lost_cpu_s``: CPU time (user + system) of every killed process, thrown away;
- the protected service's throughput and mean request time (``cache`` kind: one request per step);
- ``kernel_oom_kills``: the kernel's OOM killer, which every policy keeps as its backstop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memsched.numeric import seq_sum
from memsched.policies.act import registry
from memsched.sim.act import SimActDriver
from memsched.units import NSEC_PER_SEC
from memsched.workloads.act.scenario import ActScenario
from memsched.workloads.pressure.services import PressureRun, _Service

__all__ = ["ActRun", "run_policy"]

THRASHING_FULL_PCT = 10.0


class ActRun:
    def __init__(self, sc: ActScenario, policy: str, seed: int = 0) -> None:
        self.sc = sc
        spec = registry.get(policy)
        self.policy_id = spec.versioned_id
        self.pr = PressureRun(sc.pressure, "none", seed)
        m, r = self.pr.machine, self.pr.r
        by_name = {s.spec.name: s for s in self.pr.services}
        tgid = {n: s.task.tgid for n, s in by_name.items() if s.task is not None}
        self.driver = SimActDriver(
            m, r, spec.make(spec.make_config(sc.policy_sets.get(policy, {}))),
            protected={tgid[n] for n in sc.protected},
            managed_pressure=set(sc.managed), managed_swap=set(sc.managed), preference=sc.preference,
            start_ns={tgid[n]: by_name[n].spec.start for n in tgid},
        )
        for s in self.pr.services:
            if s.spec.policy == "shed":
                self.driver.add_service(s.spec.name, s.spec.memcg or "/", self._sheddable(s), self._shed(s))

    def _present(self, s: _Service) -> int:
        if s.task is None or s.task.exit_ns is not None or s.region is None:  # a listener holds no memory
            return 0
        p0, p1 = s.region.page_span(self.pr.page_size)
        return int(np.count_nonzero(s.task.mm.page_node[p0:p1] >= 0)) * self.pr.page_size

    def _sheddable(self, s: _Service) -> Callable[[], int]:
        return lambda: self._present(s)

    def _shed(self, s: _Service) -> Callable[[int, str], int]:
        def shed(nbytes: int, level: str) -> int:
            have = self._present(s)
            if have <= 0:
                return 0
            before = s.released_pages
            self.pr._shed(s, min(1.0, nbytes / have))
            return (s.released_pages - before) * self.pr.page_size

        return shed

    def run(self) -> dict[str, Any]:
        self.driver.run_until(self.sc.pressure.duration)
        fig = self.pr.figures()
        fig["policy"] = self.policy_id
        fig["score"] = self.score(fig)
        fig["actions"] = [
            {"t_s": round(e.t_ns / NSEC_PER_SEC, 6), "action": e.action, "target": e.target, "signal": e.signal,
             "reason": e.reason, "status": e.status, "victims": list(e.victims)}
            for e in self.driver.events
        ]
        fig["samples"] = self.driver.samples
        return fig

    def _group(self, name: str) -> str:
        return self.sc.group.get(name, name)

    def score(self, fig: dict[str, Any]) -> dict[str, Any]:
        r, sc = self.pr.r, self.sc
        tl = r.timeline
        step = r.config.sample_interval_ns / NSEC_PER_SEC
        thrashing = seq_sum(step for s in tl if s["full_avg10"] > THRASHING_FULL_PCT)
        trouble = r.first_trouble_ns
        applied = [e for e in self.driver.events if e.status == "applied"]
        first = applied[0].t_ns if applied else None
        user_kills = [v for e in applied for v in e.victims]
        kernel_kills = [k.victim for k in r.oom.kills]
        killed = user_kills + kernel_kills
        groups = sorted({self._group(v) for v in killed})
        right = {g for g in groups if g in sc.culprit}
        wrong = {g for g in groups if g not in sc.culprit}
        verdict = "none" if not groups else "right" if not wrong else "wrong" if not right else "mixed"
        services = fig["services"]
        lost = seq_sum(services[v]["user_s"] + services[v]["system_s"] for v in set(killed) if v in services)
        prot = sorted(sc.protected)
        protected: dict[str, Any] = {}
        if prot:
            p = services[prot[0]]
            steps = p["work_done"] if p["kind"] == "cache" else None
            alive = (p["end_s"] if p["end_s"] is not None else fig["duration_s"]) - (
                self.pr.services[[s.spec.name for s in self.pr.services].index(prot[0])].spec.start / NSEC_PER_SEC)
            protected = {
                "name": prot[0], "throughput": p["throughput"], "unit": p["throughput_unit"],
                "mean_request_ms": round(alive * 1000 / steps, 3) if steps else None,
                "killed": p["oom_killed"] or prot[0] in user_kills,
                "reclaim_stall_s": p["reclaim_stall_s"],
            }
        shed = sum(1 for e in applied if e.action == "shed")
        return {
            "thrashing_s": round(thrashing, 3),
            "trouble_s": None if trouble is None else round(trouble / NSEC_PER_SEC, 3),
            "first_action_s": None if first is None else round(first / NSEC_PER_SEC, 3),
            "time_to_action_s": (
                None if first is None or trouble is None else round((first - trouble) / NSEC_PER_SEC, 3)
            ),
            "user_kills": sorted({self._group(v) for v in user_kills}),
            "user_kill_count": len(user_kills),
            "kernel_oom_kills": len(kernel_kills),
            "kernel_victims": sorted({self._group(v) for v in kernel_kills}),
            "sheds": shed,
            "culprit": sorted(sc.culprit),
            "verdict": verdict,
            "work_lost_cpu_s": round(lost, 3),
            "protected": protected,
        }


def run_policy(sc: ActScenario, policy: str, *, seed: int = 0) -> dict[str, Any]:
    return ActRun(sc, policy, seed).run()
