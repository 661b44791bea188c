"""``systemd-oomd``: systemd's user-space OOM killer (systemd 254-256: src/oom/oomd-manager.{c,h},
oomd-util.c; oomd.conf(5), systemd.resource-control(5) ``ManagedOOM*=``).

What is modelled, with the source's constants (oomd-manager.h):

- **Pressure** (every ``MEM_PRESSURE_INTERVAL_USEC`` = 1 s): for each cgroup with
  ``ManagedOOMMemoryPressure=kill``, PSI ``full`` avg10 above ``ManagedOOMMemoryPressureLimit`` (default
  ``DEFAULT_MEM_PRESSURE_LIMIT_PERCENT`` = 60 %) continuously for ``DefaultMemoryPressureDurationSec``
  (``DEFAULT_MEM_PRESSURE_DURATION_USEC`` = 30 s) — ``oomd_pressure_above()`` keeps the instant the limit was
  first exceeded and forgets it when pressure drops below — makes the manager kill one candidate under it:
  only if there was reclaim activity within ``RECLAIM_DURATION_USEC`` (30 s), and not within
  ``POST_ACTION_DELAY_USEC`` (15 s) of the previous pressure kill.
- **Candidate** (oomd-util.c ``oomd_kill_by_pgscan_rate()``): the descendant cgroups of the monitored one,
  sorted by ``ManagedOOMPreference`` (``avoid`` last, ``omit`` never), then by pgscan rate since the previous
  pass, then by memory use; the first is killed **as a whole cgroup** (``oomd_cgroup_kill()``, SIGKILL to every
  process, recursively).
- **Swap** (every ``SWAP_INTERVAL_USEC`` = 150 ms): swap used above ``SwapUsedLimit`` (default
  ``DEFAULT_SWAP_USED_LIMIT_PERCENT`` = 90 %) kills the ``ManagedOOMSwap=kill`` cgroup using the most swap,
  among those using at least ``THRESHOLD_SWAP_USED_PERCENT`` (5 %) of it (``oomd_kill_by_swap_usage()``).

Deviations: the D-Bus/varlink registration of units is replaced by the flags of each
:class:`~memsched.policies.act.views.CgroupView`; the ``user@.service`` split and the xattr kill counters are
not modelled; the pgscan figure is whatever the backend can read (``memory.stat`` ``pgscan`` on v2; on a v1
memcg the live backend uses ``memory.failcnt`` growth as the reclaim signal).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.act.actions import Action, KillCgroup
from memsched.policies.act.base import MAX_INTERVAL_MS, MAX_INTERVAL_S, ActPolicy
from memsched.policies.act.views import CgroupView, MemoryView
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC

__all__ = ["SystemdOomd", "SystemdOomdConfig"]


@dataclass(frozen=True)
class SystemdOomdConfig:
    mem_pressure_limit_pct: float = knob(60.0, "DefaultMemoryPressureLimit= (oomd-manager.h: 60 %)", min=0, max=100)
    # oomd.c only refuses a duration under 1 s, and parse_sec() takes any usec_t: at most one hour here; the
    # RECLAIM/POST_ACTION/INTERVAL figures below are compile-time constants of oomd-manager.h, as knobs as long.
    mem_pressure_duration_s: float = knob(
        30.0, "DefaultMemoryPressureDurationSec= (30 s)", min=0, max=MAX_INTERVAL_S, limit=True
    )
    swap_used_limit_pct: float = knob(90.0, "SwapUsedLimit= (90 %)", min=0, max=100)
    threshold_swap_used_pct: float = knob(5.0, "THRESHOLD_SWAP_USED_PERCENT: minimum share of swap a candidate uses",
                                          min=0, max=100)
    reclaim_duration_s: float = knob(
        30.0, "RECLAIM_DURATION_USEC: reclaim must have happened this recently", min=0, max=MAX_INTERVAL_S, limit=True
    )
    post_action_delay_s: float = knob(
        15.0, "POST_ACTION_DELAY_USEC: pause after a pressure kill", min=0, max=MAX_INTERVAL_S, limit=True
    )
    pressure_interval_ms: int = knob(
        1000, "MEM_PRESSURE_INTERVAL_USEC (1 s)", min=1, max=MAX_INTERVAL_MS, limit=True
    )
    swap_interval_ms: int = knob(150, "SWAP_INTERVAL_USEC (150 ms)", min=1, max=MAX_INTERVAL_MS, limit=True)

    def __post_init__(self) -> None:
        validate(self)


def _under(path: str, parent: str) -> bool:
    return path != parent and path.startswith(parent.rstrip("/") + "/")


class SystemdOomd(ActPolicy):
    def __init__(self, config: SystemdOomdConfig) -> None:
        self.config = config
        self.interval_ns = config.swap_interval_ms * NSEC_PER_MSEC
        self._hit_start: dict[str, int] = {}
        self._last_pgscan: dict[str, int] = {}
        self._last_reclaim_at: int | None = None
        self._post_action_at: int | None = None
        self._next_pressure_ns = 0
        self.kills = {"pressure": 0, "swap": 0}

    # -- the swap path ---------------------------------------------------------------------------------
    def _swap(self, view: MemoryView) -> list[Action]:
        c = self.config
        if view.swap_total <= 0:
            return []
        used_pct = 100.0 * (view.swap_total - view.swap_free) / view.swap_total
        if used_pct <= c.swap_used_limit_pct:
            return []
        managed = [g.path for g in view.cgroups if g.managed_swap]
        cands = [
            g for g in view.cgroups
            if (g.managed_swap or any(_under(g.path, m) for m in managed)) and g.preference != "omit"
            and g.nr_procs > 0 and g.swap_current >= view.swap_total * c.threshold_swap_used_pct / 100
        ]
        if not cands:
            return []
        cands.sort(key=lambda g: (g.preference == "avoid", -g.swap_current, g.path))
        v = cands[0]
        self.kills["swap"] += 1
        return [KillCgroup(v.path, int(signal.SIGKILL), "swap used above the limit", {
            "swap_used_pct": round(used_pct, 2), "swap_used_limit_pct": c.swap_used_limit_pct,
            "victim_swap": v.swap_current, "victim_memory": v.memory_current})]

    # -- the pressure path -----------------------------------------------------------------------------
    def _pressure(self, view: MemoryView) -> list[Action]:
        c = self.config
        now = view.now_ns
        rates: dict[str, int] = {}
        for g in view.cgroups:
            last = self._last_pgscan.get(g.path)
            rates[g.path] = 0 if last is None else max(0, g.pgscan - last)
            self._last_pgscan[g.path] = g.pgscan
        if any(rates.values()):
            self._last_reclaim_at = now
        out: list[Action] = []
        for m in view.cgroups:
            if not m.managed_pressure:
                continue
            limit = m.pressure_limit_pct if m.pressure_limit_pct is not None else c.mem_pressure_limit_pct
            if m.psi_full_avg10 <= limit:  # oomd_pressure_above(): reset the hit
                self._hit_start.pop(m.path, None)
                continue
            start = self._hit_start.setdefault(m.path, now)
            if now - start < c.mem_pressure_duration_s * NSEC_PER_SEC:
                continue
            if self._post_action_at is not None and now - self._post_action_at < c.post_action_delay_s * NSEC_PER_SEC:
                continue
            if self._last_reclaim_at is None or now - self._last_reclaim_at > c.reclaim_duration_s * NSEC_PER_SEC:
                continue
            cands = [g for g in view.cgroups if _under(g.path, m.path) and g.preference != "omit" and g.nr_procs > 0]
            if not cands:
                continue
            cands.sort(key=lambda g: (g.preference == "avoid", -rates.get(g.path, 0), -g.memory_current, g.path))
            v: CgroupView = cands[0]
            self._post_action_at = now
            self.kills["pressure"] += 1
            out.append(KillCgroup(v.path, int(signal.SIGKILL), f"memory pressure above the limit of {m.path}", {
                "monitored": m.path, "psi_full_avg10": round(m.psi_full_avg10, 2), "limit_pct": limit,
                "above_for_s": round((now - start) / NSEC_PER_SEC, 3), "duration_s": c.mem_pressure_duration_s,
                "victim_pgscan_rate": rates.get(v.path, 0), "victim_memory": v.memory_current}))
            break  # one kill per pass; the post-action delay holds the rest
        return out

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        out = self._swap(view)
        if view.now_ns >= self._next_pressure_ns:
            self._next_pressure_ns = view.now_ns + self.config.pressure_interval_ms * NSEC_PER_MSEC
            if not out:
                out = self._pressure(view)
        return out

    def next_interval_ns(self, view: MemoryView) -> int:
        if view.swap_total > 0 and any(g.managed_swap for g in view.cgroups):
            return self.config.swap_interval_ms * NSEC_PER_MSEC
        return max(1, min(self.config.pressure_interval_ms * NSEC_PER_MSEC, self._next_pressure_ns - view.now_ns))

    def metrics(self) -> dict[str, object]:
        return {"kills": dict(self.kills)}
