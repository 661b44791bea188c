"""``earlyoom``: the Early OOM Daemon (rfjakob/earlyoom main.c, kill.c, meminfo.c; 1.6-1.8).

What is modelled, with the source's constants:

- **Thresholds** (main.c, ``-m``/``-s``): SIGTERM when ``MemAvailable`` is at most ``mem_term_percent``
  (10 %) **and** ``SwapFree`` at most ``swap_term_percent`` (10 %); SIGKILL when both are at most the kill
  percentages (default: half the term ones, 5 %). meminfo.c reports ``SwapFreePercent`` as 0 on a machine
  without swap, so the swap condition then always holds.
- **Victim** (kill.c ``is_larger()``): the highest ``oom_score``, plus ``BADNESS_PREFER`` (300) when ``comm``
  matches ``--prefer``, minus ``BADNESS_AVOID`` (300) for ``--avoid``; equal scores go to the larger
  ``VmRSS``; processes with ``VmRSS`` 0 (kernel threads) and with ``oom_score_adj`` -1000 are skipped, "like
  the kernel oom killer would".
- **SIGTERM, then SIGKILL** (kill.c ``kill_wait()``): after the signal earlyoom polls every 100 ms for up to
  ``kill_wait_timeout`` (10 s) until the victim is gone, escalating to SIGKILL as soon as memory falls below
  the kill thresholds; it picks no other victim meanwhile.
- **Adaptive polling** (main.c ``sleep_time_ms()``): sleep = memory headroom above the term threshold at
  6000 MiB/s + swap headroom at 800 MiB/s, clamped to 100..1000 ms.

Deviations: percentages are of ``MemTotal`` (the view's ``mem_total``) as in earlyoom up to 1.6; later
meminfo.c divides ``MemAvailable`` by ``UserMemTotal`` = ``MemAvailable + AnonPages`` (kernel memory and page
cache left out), which fires somewhat later on machines with much kernel memory. ``--ignore``, ``-g``
(process groups), notifications, hooks and ``process_mrelease`` are not modelled; ``MemAvailable`` and
``MemTotal`` are whatever the backend puts in the view (in a memory cgroup: the cgroup's headroom and limit,
see ``docs/act.md``).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.policies.act.actions import Action, KillProcess
from memsched.policies.act.base import MAX_INTERVAL_S, ActPolicy
from memsched.policies.act.views import MemoryView, ProcView
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC

__all__ = ["BADNESS_AVOID", "BADNESS_PREFER", "Earlyoom", "EarlyoomConfig"]

#: kill.c
BADNESS_PREFER = 300
BADNESS_AVOID = -300
#: main.c sleep_time_ms(): expected fill rates (MiB/s) and the clamp (ms).
MEM_FILL_RATE_MIB_S = 6000
SWAP_FILL_RATE_MIB_S = 800
MIN_SLEEP_MS, MAX_SLEEP_MS = 100, 1000
#: kill.c kill_wait(): poll period while waiting for the victim to exit.
KILL_WAIT_POLL_MS = 100
#: earlyoom (1.6-1.9 kill.c kill_wait()) hard-codes the wait, 100 polls of 100 ms; as a knob, at most one hour.
MAX_KILL_WAIT_TIMEOUT_S = MAX_INTERVAL_S

@dataclass(frozen=True)
class EarlyoomConfig:
    mem_term_percent: float = knob(10.0, "-m: SIGTERM when MemAvailable <= this % (main.c default 10)", min=0, max=100)
    swap_term_percent: float = knob(10.0, "-s: ... and SwapFree <= this % (default 10)", min=0, max=100)
    mem_kill_percent: float = knob(-1.0, "-m ,KILL: SIGKILL threshold; -1: half the term one", min=-1, max=100)
    swap_kill_percent: float = knob(-1.0, "-s ,KILL: SIGKILL threshold; -1 = half the term one", min=-1, max=100)
    prefer: str = knob("", "--prefer REGEX on comm: +300 badness (kill.c BADNESS_PREFER)")
    avoid: str = knob("", "--avoid REGEX on comm: -300 badness (kill.c BADNESS_AVOID)")
    kill_wait_timeout_s: int = knob(
        10, "kill_wait(): give up waiting for the victim after this many s",
        min=1, max=MAX_KILL_WAIT_TIMEOUT_S, limit=True,
    )

    def __post_init__(self) -> None:
        validate(self)
        for name in ("prefer", "avoid"):
            try:
                re.compile(getattr(self, name))
            except re.error as e:
                raise ConfigError(name, getattr(self, name), f"is not a regular expression ({e})") from None

    @property
    def mem_kill(self) -> float:
        return self.mem_term_percent / 2 if self.mem_kill_percent < 0 else self.mem_kill_percent

    @property
    def swap_kill(self) -> float:
        return self.swap_term_percent / 2 if self.swap_kill_percent < 0 else self.swap_kill_percent

class Earlyoom(ActPolicy):
    def __init__(self, config: EarlyoomConfig) -> None:
        self.config = config
        self._prefer = re.compile(config.prefer) if config.prefer else None
        self._avoid = re.compile(config.avoid) if config.avoid else None
        #: (pid, signal sent, when): kill_wait() in progress.
        self._pending: tuple[int, int, int] | None = None
        self.kills = {"SIGTERM": 0, "SIGKILL": 0}

    # -- victim selection (kill.c) ----------------------------------------------------------------------
    def badness(self, p: ProcView) -> int:
        b = p.oom_score
        if self._prefer is not None and self._prefer.search(p.comm):
            b += BADNESS_PREFER
        if self._avoid is not None and self._avoid.search(p.comm):
            b += BADNESS_AVOID
        return b

    def victim(self, view: MemoryView) -> ProcView | None:
        best: ProcView | None = None
        best_key = (0, 0)
        for p in view.procs:
            if p.rss == 0 or p.oom_score_adj == -1000:
                continue
            key = (self.badness(p), p.rss)
            if best is None or key > best_key:
                best, best_key = p, key
        return best

    def _evidence(self, view: MemoryView, p: ProcView) -> dict[str, float | int | str | bool | None]:
        c = self.config
        return {
            "mem_available_pct": round(view.mem_available_pct, 2),
            "swap_free_pct": round(view.swap_free_pct, 2),
            "mem_term_pct": c.mem_term_percent,
            "swap_term_pct": c.swap_term_percent,
            "mem_kill_pct": c.mem_kill,
            "swap_kill_pct": c.swap_kill,
            "victim_badness": self.badness(p),
            "victim_oom_score": p.oom_score,
            "victim_rss": p.rss,
            "victim_comm": p.comm,
        }

    # -- the main loop ---------------------------------------------------------------------------------
    def _below_kill(self, view: MemoryView) -> bool:
        return view.mem_available_pct <= self.config.mem_kill and view.swap_free_pct <= self.config.swap_kill

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        if self._pending is not None:
            pid, sig, since = self._pending
            p = view.proc(pid)
            if p is None or view.now_ns - since >= self.config.kill_wait_timeout_s * NSEC_PER_SEC:
                self._pending = None  # gone (or timed out): back to the main loop
            else:
                if sig != signal.SIGKILL and self._below_kill(view):
                    self._pending = (pid, int(signal.SIGKILL), since)
                    self.kills["SIGKILL"] += 1
                    return (KillProcess(pid, int(signal.SIGKILL), "escalating to SIGKILL", self._evidence(view, p)),)
                return ()
        if self._below_kill(view):
            sig = int(signal.SIGKILL)
        elif (view.mem_available_pct <= self.config.mem_term_percent
              and view.swap_free_pct <= self.config.swap_term_percent):
            sig = int(signal.SIGTERM)
        else:
            return ()
        victim = self.victim(view)
        if victim is None:
            return ()
        self._pending = (victim.pid, sig, view.now_ns)
        self.kills[signal.Signals(sig).name] += 1
        why = "memory and swap below the SIGKILL thresholds" if sig == signal.SIGKILL else (
            "memory and swap below the SIGTERM thresholds")
        return (KillProcess(victim.pid, sig, why, self._evidence(view, victim)),)

    def next_interval_ns(self, view: MemoryView) -> int:
        if self._pending is not None:
            return KILL_WAIT_POLL_MS * NSEC_PER_MSEC
        c = self.config
        mem_headroom = max(0.0, (view.mem_available_pct - c.mem_term_percent) * view.mem_total / 100)
        swap_headroom = max(0.0, (view.swap_free_pct - c.swap_term_percent) * view.swap_total / 100)
        # KiB / (KiB per ms) as in main.c (MiB/s == KiB/ms)
        ms = int(mem_headroom / 1024 / MEM_FILL_RATE_MIB_S + swap_headroom / 1024 / SWAP_FILL_RATE_MIB_S)
        return min(MAX_SLEEP_MS, max(MIN_SLEEP_MS, ms)) * NSEC_PER_MSEC

    def metrics(self) -> dict[str, object]:
        return {"signals": dict(self.kills)}
