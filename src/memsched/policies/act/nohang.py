"""``nohang``: a configurable user-space OOM preventer (hakavlad/nohang, v0.2; defaults of
conf/nohang/nohang.conf.in and man nohang(8)).

What is modelled, with the configuration file's defaults:

- **Memory and swap**: SIGTERM when ``MemAvailable`` is at most ``soft_threshold_min_mem`` (5 %) **and**
  ``SwapFree`` at most ``soft_threshold_min_swap`` (10 %); SIGKILL at the hard thresholds (2 %, 4 %).
- **PSI** (``psi_checking_enabled``, default **False**): ``psi_metrics`` (``full_avg10``) above
  ``soft_threshold_max_psi`` (40) for ``psi_excess_duration`` (30 s) is a SIGTERM, above
  ``hard_threshold_max_psi`` (90) for as long a SIGKILL; no PSI action within ``psi_post_action_delay`` (15 s)
  of the previous one.
- **Victim**: the highest badness (``oom_score``; ``ignore_positive_oom_score_adj`` False), at least
  ``min_badness`` (1); after SIGTERM the victim gets ``max_soft_exit_time`` (10 s) to exit, with a SIGKILL as
  soon as a hard threshold is crossed meanwhile, and nothing else happens for ``post_soft_action_delay`` (3 s).
- **Polling**: sleep = memory headroom above the soft threshold at ``fill_rate_mem`` (6000 MiB/s) + swap
  headroom at ``fill_rate_swap`` (2000 MiB/s), clamped to ``min_sleep``..``max_sleep`` (0.1..3 s).

Deviations: zram thresholds, the ``@BADNESS_ADJ_RE_*`` rules, soft actions other than SIGTERM, warnings and
notifications are not modelled.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.act.actions import Action, KillProcess
from memsched.policies.act.base import MAX_FILL_RATE_MIB_S, MAX_INTERVAL_S, ActPolicy
from memsched.policies.act.views import MemoryView, ProcView
from memsched.units import NSEC_PER_SEC

__all__ = ["MAX_BADNESS", "Nohang", "NohangConfig"]

#: nohang checks only lower bounds (src/nohang's config checks: ``< 0.1``, ``< 10``, ``< 100``; floats and ints of any
#: size); its maxima here are the product limits of ``base.py`` (one hour, 1 TiB/s) and, for ``min_badness``, the
#: largest ``/proc/<pid>/oom_score``, 2000 (fs/proc/base.c ``proc_oom_score()``, 5.9+: badness scaled into 0..2000),
#: above which nothing could ever be killed.
MAX_BADNESS = 2000


@dataclass(frozen=True)
class NohangConfig:
    soft_threshold_min_mem: float = knob(5.0, "SIGTERM: MemAvailable <= this % (nohang.conf 5 %)", min=0, max=50)
    soft_threshold_min_swap: float = knob(10.0, "... and SwapFree <= this % (10 %)", min=0, max=100)
    hard_threshold_min_mem: float = knob(2.0, "SIGKILL: MemAvailable <= this % (2 %)", min=0, max=50)
    hard_threshold_min_swap: float = knob(4.0, "... and SwapFree <= this % (4 %)", min=0, max=100)
    psi_checking_enabled: bool = knob(False, "act on PSI too (default False)")
    soft_threshold_max_psi: float = knob(40.0, "PSI full_avg10 for SIGTERM (40)", min=5, max=100)
    hard_threshold_max_psi: float = knob(90.0, "PSI full_avg10 for SIGKILL (90)", min=5, max=100)
    psi_excess_duration: float = knob(
        30.0, "PSI above a threshold this long (s, 30)", min=0, max=MAX_INTERVAL_S, limit=True
    )
    psi_post_action_delay: float = knob(
        15.0, "no PSI action this soon after one (s, 15)", min=10, max=MAX_INTERVAL_S, limit=True
    )
    max_soft_exit_time: float = knob(
        10.0, "time a SIGTERMed victim gets to exit (s, 10)", min=0.1, max=MAX_INTERVAL_S, limit=True
    )
    post_soft_action_delay: float = knob(
        3.0, "pause after a soft action (s, 3)", min=0.1, max=MAX_INTERVAL_S, limit=True
    )
    min_badness: int = knob(1, "nothing is killed below this badness (1)", min=1, max=MAX_BADNESS, limit=True)
    fill_rate_mem: float = knob(
        6000.0, "MiB/s for the adaptive sleep (6000)", min=100, max=MAX_FILL_RATE_MIB_S, limit=True
    )
    fill_rate_swap: float = knob(
        2000.0, "MiB/s for the adaptive sleep (2000)", min=100, max=MAX_FILL_RATE_MIB_S, limit=True
    )
    min_sleep: float = knob(0.1, "s (0.1)", min=0.01, max=MAX_INTERVAL_S, limit=True)
    max_sleep: float = knob(3.0, "s (3)", min=0.01, max=MAX_INTERVAL_S, limit=True)

    def __post_init__(self) -> None:
        validate(self)


class Nohang(ActPolicy):
    def __init__(self, config: NohangConfig) -> None:
        self.config = config
        self._pending: tuple[int, int, int] | None = None  # pid, signal, since
        self._quiet_until = 0
        self._psi_since: dict[str, int | None] = {"soft": None, "hard": None}
        self._psi_last_action = -(1 << 62)
        self.kills = {"SIGTERM": 0, "SIGKILL": 0}

    def _victim(self, view: MemoryView) -> ProcView | None:
        cands = [p for p in view.procs if p.oom_score >= self.config.min_badness and p.oom_score_adj > -1000]
        return max(cands, key=lambda p: (p.oom_score, p.rss), default=None)

    def _psi_level(self, view: MemoryView) -> int | None:
        c = self.config
        if not c.psi_checking_enabled:
            return None
        now, v = view.now_ns, view.psi_full_avg10
        level = None
        for name, threshold, sig in (("hard", c.hard_threshold_max_psi, signal.SIGKILL),
                                     ("soft", c.soft_threshold_max_psi, signal.SIGTERM)):
            if v >= threshold:
                since = self._psi_since[name]
                if since is None:
                    self._psi_since[name] = since = now
                if now - since >= c.psi_excess_duration * NSEC_PER_SEC and level is None:
                    level = int(sig)
            else:
                self._psi_since[name] = None
        if level is not None and now - self._psi_last_action < c.psi_post_action_delay * NSEC_PER_SEC:
            return None
        return level

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        c = self.config
        mem, swap = view.mem_available_pct, view.swap_free_pct
        hard = mem <= c.hard_threshold_min_mem and swap <= c.hard_threshold_min_swap
        soft = mem <= c.soft_threshold_min_mem and swap <= c.soft_threshold_min_swap
        psi = self._psi_level(view)
        ev = {"mem_available_pct": round(mem, 2), "swap_free_pct": round(swap, 2),
              "psi_full_avg10": view.psi_full_avg10, "soft_mem_pct": c.soft_threshold_min_mem,
              "hard_mem_pct": c.hard_threshold_min_mem}
        if self._pending is not None:
            pid, sig, since = self._pending
            p = view.proc(pid)
            if p is None or view.now_ns - since >= c.max_soft_exit_time * NSEC_PER_SEC:
                self._pending = None
                self._quiet_until = view.now_ns + int(c.post_soft_action_delay * NSEC_PER_SEC)
                return ()
            if sig != signal.SIGKILL and (hard or psi == signal.SIGKILL):
                self._pending = (pid, int(signal.SIGKILL), since)
                self.kills["SIGKILL"] += 1
                return (KillProcess(pid, int(signal.SIGKILL), "hard threshold crossed while waiting",
                                    {**ev, "victim_badness": p.oom_score}),)
            return ()
        if view.now_ns < self._quiet_until:
            return ()
        if hard or psi == signal.SIGKILL:
            sig = int(signal.SIGKILL)
        elif soft or psi == signal.SIGTERM:
            sig = int(signal.SIGTERM)
        else:
            return ()
        v = self._victim(view)
        if v is None:
            return ()
        if psi is not None:
            self._psi_last_action = view.now_ns
        self._pending = (v.pid, sig, view.now_ns)
        self.kills[signal.Signals(sig).name] += 1
        why = ("PSI above the threshold" if psi is not None and not soft and not hard
               else "memory and swap below the thresholds")
        return (KillProcess(v.pid, sig, why, {**ev, "victim_badness": v.oom_score, "victim_comm": v.comm}),)

    def next_interval_ns(self, view: MemoryView) -> int:
        c = self.config
        if self._pending is not None:
            return int(c.min_sleep * NSEC_PER_SEC)
        mem_mib = max(0.0, (view.mem_available_pct - c.soft_threshold_min_mem) * view.mem_total / 100 / (1 << 20))
        swap_mib = max(0.0, (view.swap_free_pct - c.soft_threshold_min_swap) * view.swap_total / 100 / (1 << 20))
        s = mem_mib / c.fill_rate_mem + swap_mib / c.fill_rate_swap
        return int(min(c.max_sleep, max(c.min_sleep, s)) * NSEC_PER_SEC)

    def metrics(self) -> dict[str, object]:
        return {"signals": dict(self.kills)}
