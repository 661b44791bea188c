"""``lmkd``: Android's low memory killer daemon in PSI mode (AOSP system/memory/lmkd, lmkd.cpp, Android 11:
``init_psi_monitors()``, ``mp_event_psi()``, ``find_and_kill_process()``).

What is modelled, with the source's defaults (``ro.lmk.*`` properties, non-low-RAM device):

- **PSI triggers** on ``/proc/pressure/memory`` with a 1 s window (``PSI_WINDOW_SIZE_MS``): MEDIUM =
  ``some`` stall of ``psi_partial_stall_ms`` (``DEF_PARTIAL_STALL`` 70 ms), CRITICAL = ``full`` stall of
  ``psi_complete_stall_ms`` (``DEF_COMPLETE_STALL`` 700 ms); the new strategy registers no LOW trigger. After
  an event lmkd polls for one window, every ``PSI_POLL_PERIOD_SHORT_MS`` (10 ms) when swap is low or a kill is
  in progress, else ``PSI_POLL_PERIOD_LONG_MS`` (100 ms); polling is extended while in direct reclaim.
- **Rules** (``mp_event_psi()``, in order; nothing unless the system is reclaiming, i.e. ``pgscan_direct`` or
  ``pgscan_kswapd`` rose): after a kill with free memory below the min watermark (PRESSURE_AFTER_KILL); a
  CRITICAL event (NOT_RESPONDING); swap low (``swap_free_low_percentage``, ``DEF_LOW_SWAP`` 10 %) and
  thrashing above ``thrashing_limit`` (``DEF_THRASHING`` 100 %) (LOW_SWAP_AND_THRASHING); swap low and free
  memory below the low watermark (LOW_MEM_AND_SWAP); free memory below the low watermark and thrashing
  (LOW_MEM_AND_THRASHING, not below ``PERCEPTIBLE_APP_ADJ`` 200); direct reclaim and thrashing
  (DIRECT_RECL_AND_THRASHING, idem). Thrashing = file refaults since the reclaim cycle began, in percent of
  the file LRU then; each thrashing kill cuts the limit by ``thrashing_limit_decay`` (``DEF_THRASHING_DECAY``
  10 %).
- **Victim** (``find_and_kill_process()``): from ``oom_score_adj`` 1000 down to the rule's minimum, the first
  bucket with a process; in it the least recently added process, or the heaviest (``kill_heaviest_task``,
  always from ``PERCEPTIBLE_APP_ADJ`` down); SIGKILL; no new kill while the victim still exists
  (``is_kill_pending()``).

Deviations: processes need not register through ActivityManager (every process of the managed subtree is in
its bucket); PSI triggers are emulated from the cumulative stall totals of consecutive samples (an event is
seen at the first sample whose last-window growth passes the threshold, at most once per window); watermarks
come from the view (the live backend uses fractions of a memory cgroup's limit, ``docs/act.md``).
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.errors import ConfigError
from memsched.policies.act.actions import Action, KillProcess
from memsched.policies.act.base import MAX_INTERVAL_MS, ActPolicy
from memsched.policies.act.views import MemoryView, ProcView
from memsched.uapi.pressure import PSI_WINDOW_MAX_US
from memsched.units import NSEC_PER_MSEC, NSEC_PER_USEC

__all__ = ["PERCEPTIBLE_APP_ADJ", "PSI_WINDOW_MAX_MS", "Lmkd", "LmkdConfig"]

#: frameworks ProcessList.PERCEPTIBLE_APP_ADJ, mirrored in lmkd.cpp.
PERCEPTIBLE_APP_ADJ = 200
OOM_SCORE_ADJ_MAX = 1000
PSI_POLL_PERIOD_SHORT_MS = 10
PSI_POLL_PERIOD_LONG_MS = 100
PAGE = 4096
#: The kernel's limits on lmkd's PSI triggers: a window of at most ``WINDOW_MAX_US`` (10 s, kernel/sched/psi.c), and
#: ``psi_trigger_create()`` refuses a stall threshold above the window (EINVAL), after which lmkd's
#: ``init_psi_monitors()`` fails.
PSI_WINDOW_MAX_MS = PSI_WINDOW_MAX_US // 1000
#: ``ro.lmk.thrashing_limit`` is read with ``property_get_int32()`` and only floored at 0 (lmkd.cpp ``main()``).
INT32_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class LmkdConfig:
    psi_partial_stall_ms: int = knob(
        70, "ro.lmk.psi_partial_stall_ms (DEF_PARTIAL_STALL 70; low-RAM 200)", min=1, max=PSI_WINDOW_MAX_MS, limit=True
    )
    psi_complete_stall_ms: int = knob(
        700, "ro.lmk.psi_complete_stall_ms (DEF_COMPLETE_STALL 700)", min=1, max=PSI_WINDOW_MAX_MS, limit=True
    )
    psi_window_ms: int = knob(1000, "PSI_WINDOW_SIZE_MS", min=1, max=PSI_WINDOW_MAX_MS, limit=True)
    swap_free_low_percentage: int = knob(10, "ro.lmk.swap_free_low_percentage (DEF_LOW_SWAP 10)", min=0, max=100)
    thrashing_limit_pct: int = knob(
        100, "ro.lmk.thrashing_limit (DEF_THRASHING 100; low-RAM 30)", min=0, max=INT32_MAX, limit=True
    )
    thrashing_limit_decay_pct: int = knob(10, "ro.lmk.thrashing_limit_decay (DEF_THRASHING_DECAY 10)", min=0, max=100)
    kill_heaviest_task: bool = knob(False, "ro.lmk.kill_heaviest_task (default false: least recently added)")
    idle_interval_ms: int = knob(
        20, "sampling period while no event is pending (the trigger emulation's resolution)",
        min=1, max=MAX_INTERVAL_MS, limit=True,
    )

    def __post_init__(self) -> None:
        validate(self)
        for name in ("psi_partial_stall_ms", "psi_complete_stall_ms"):
            if getattr(self, name) > self.psi_window_ms:
                raise ConfigError(
                    name, getattr(self, name), f"must be <= psi_window_ms ({self.psi_window_ms}): the kernel refuses "
                    "a PSI trigger whose stall threshold exceeds its window",
                )


class Lmkd(ActPolicy):
    def __init__(self, config: LmkdConfig) -> None:
        self.config = config
        self.interval_ns = config.idle_interval_ms * NSEC_PER_MSEC
        self._hist: deque[tuple[int, int, int]] = deque()
        self._last_event = {"medium": -(1 << 62), "critical": -(1 << 62)}
        self._poll_until = -1
        self._poll_level = "medium"
        self._poll_ms = PSI_POLL_PERIOD_LONG_MS
        self._pending: int | None = None
        self._killing = False
        self._in_reclaim = False
        self._init_pgscan_direct = 0
        self._init_pgscan_kswapd = 0
        self._init_refault = 0
        self._base_file_lru = 0
        self._thrashing_limit = config.thrashing_limit_pct
        self.kills: dict[str, int] = {}

    # -- PSI trigger emulation -------------------------------------------------------------------------
    def _events(self, view: MemoryView) -> str | None:
        window = self.config.psi_window_ms * NSEC_PER_MSEC
        self._hist.append((view.now_ns, view.psi_some_total_us, view.psi_full_total_us))
        while len(self._hist) > 1 and view.now_ns - self._hist[1][0] >= window:
            self._hist.popleft()
        _, some0, full0 = self._hist[0]
        level = None
        for name, grown, threshold in (
            ("critical", view.psi_full_total_us - full0, self.config.psi_complete_stall_ms),
            ("medium", view.psi_some_total_us - some0, self.config.psi_partial_stall_ms),
        ):
            if grown * NSEC_PER_USEC >= threshold * NSEC_PER_MSEC and view.now_ns - self._last_event[name] >= window:
                self._last_event[name] = view.now_ns
                level = level or name
        return level

    # -- find_and_kill_process() -----------------------------------------------------------------------
    def victim(self, view: MemoryView, min_score_adj: int) -> ProcView | None:
        heaviest = self.config.kill_heaviest_task
        buckets: dict[int, list[ProcView]] = {}
        for p in view.procs:
            if p.oom_score_adj >= min_score_adj and p.rss > 0:
                buckets.setdefault(p.oom_score_adj, []).append(p)
        for adj in sorted(buckets, reverse=True):
            if adj > OOM_SCORE_ADJ_MAX:
                continue
            procs = buckets[adj]
            if heaviest or adj <= PERCEPTIBLE_APP_ADJ:
                return max(procs, key=lambda p: (p.rss, -p.pid))
            return min(procs, key=lambda p: (p.start_ns, p.pid))
        return None

    def on_sample(self, view: MemoryView) -> Sequence[Action]:
        c = self.config
        event = self._events(view)
        if event is not None:
            if view.now_ns > self._poll_until or event == "critical":
                self._poll_level = event
            self._poll_until = view.now_ns + c.psi_window_ms * NSEC_PER_MSEC
        elif view.now_ns > self._poll_until:
            return ()  # no trigger fired and not polling: lmkd sleeps in epoll_wait()
        if self._pending is not None:
            if view.proc(self._pending) is not None:  # is_kill_pending()
                self._poll_ms = PSI_POLL_PERIOD_SHORT_MS
                return ()
            self._pending = None
        level = event or self._poll_level
        cycle_after_kill = False
        if self._killing:
            self._killing = False
            cycle_after_kill = True
            self._base_file_lru = view.file_lru // PAGE
            self._init_refault = view.workingset_refault
        swap_low_threshold = view.swap_total * c.swap_free_low_percentage // 100
        swap_is_low = c.swap_free_low_percentage > 0 and view.swap_free < swap_low_threshold
        if view.pgscan_direct > self._init_pgscan_direct:
            self._init_pgscan_direct, self._init_pgscan_kswapd = view.pgscan_direct, view.pgscan_kswapd
            reclaim = "direct"
        elif view.pgscan_kswapd > self._init_pgscan_kswapd:
            self._init_pgscan_kswapd = view.pgscan_kswapd
            reclaim = "kswapd"
        else:
            self._in_reclaim = False
            self._poll_ms = PSI_POLL_PERIOD_SHORT_MS if swap_is_low else PSI_POLL_PERIOD_LONG_MS
            return ()
        thrashing = 0
        if not self._in_reclaim:
            self._base_file_lru = view.file_lru // PAGE
            self._init_refault = view.workingset_refault
            self._thrashing_limit = c.thrashing_limit_pct
        else:
            thrashing = (view.workingset_refault - self._init_refault) * 100 // max(1, self._base_file_lru)
        self._in_reclaim = True
        free = view.mem_free
        wmark = 0 if free < view.wmark_min else 1 if free < view.wmark_low else 2 if free < view.wmark_high else 3
        reason = None
        min_adj = 0
        cut = False
        if cycle_after_kill and wmark < 1:
            reason = "PRESSURE_AFTER_KILL"
        elif level == "critical" and event is not None:
            reason = "NOT_RESPONDING"
        elif swap_is_low and thrashing > c.thrashing_limit_pct:
            reason = "LOW_SWAP_AND_THRASHING"
        elif swap_is_low and wmark < 2:
            reason = "LOW_MEM_AND_SWAP"
        elif wmark < 2 and thrashing > self._thrashing_limit:
            reason, min_adj, cut = "LOW_MEM_AND_THRASHING", PERCEPTIBLE_APP_ADJ, True
        elif reclaim == "direct" and thrashing > self._thrashing_limit:
            reason, min_adj, cut = "DIRECT_RECL_AND_THRASHING", PERCEPTIBLE_APP_ADJ, True
        out: list[Action] = []
        if reason is not None:
            v = self.victim(view, min_adj)
            if v is not None:
                self._killing = True
                self._pending = v.pid
                self.kills[reason] = self.kills.get(reason, 0) + 1
                out.append(KillProcess(v.pid, int(signal.SIGKILL), reason, {
                    "psi_event": event or "poll", "level": level, "reclaim": reclaim, "thrashing_pct": int(thrashing),
                    "thrashing_limit_pct": self._thrashing_limit, "swap_free": view.swap_free,
                    "swap_low_threshold": swap_low_threshold, "mem_free": free,
                    "wmark": ("min", "low", "high", "none")[wmark], "min_score_adj": min_adj,
                    "victim_oom_score_adj": v.oom_score_adj, "victim_rss": v.rss, "victim_comm": v.comm}))
                if cut:
                    self._thrashing_limit = self._thrashing_limit * (100 - c.thrashing_limit_decay_pct) // 100
        if event is not None or self._killing or reclaim == "direct":
            self._poll_until = max(self._poll_until, view.now_ns + c.psi_window_ms * NSEC_PER_MSEC)
        self._poll_ms = PSI_POLL_PERIOD_SHORT_MS if (swap_is_low or self._killing) else PSI_POLL_PERIOD_LONG_MS
        return out

    def next_interval_ns(self, view: MemoryView) -> int:
        if view.now_ns <= self._poll_until:
            return min(self._poll_ms * NSEC_PER_MSEC, self.interval_ns)
        return self.interval_ns

    def metrics(self) -> dict[str, object]:
        return {"kills": dict(self.kills)}
