"""Read-only views of memory state that an action policy decides from.

One :class:`MemoryView` per sample: the meminfo/vmstat counters user space reads (``/proc/meminfo``,
``/proc/vmstat``, ``/proc/pressure/memory``), the zone watermarks lmkd computes from ``/proc/zoneinfo``, the
last vmpressure level heard, the processes and cgroups of the managed subtree and the services that accepted a
shed callback. The backend fills it: the simulator from its kernel model, the live backend from the files (in
a memory cgroup, meminfo-like figures are the cgroup's: see ``docs/act.md``). Everything is frozen; sequences
are tuples. Sizes are bytes, PSI averages percent, PSI totals microseconds, counters cumulative.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VMPRESSURE_LEVELS", "CgroupView", "MemoryView", "ProcView", "ServiceView"]

#: The vmpressure levels in order (``none``: nothing heard since the previous sample).
VMPRESSURE_LEVELS = ("none", "low", "medium", "critical")


@dataclass(frozen=True, slots=True)
class ProcView:
    """One process of the managed subtree (never the actor itself, PID 1, kernel threads or protected ones:
    the backend leaves those out of every view)."""

    pid: int
    comm: str
    cgroup: str
    rss: int
    swap: int
    #: ``/proc/<pid>/oom_score`` (0..2000 on 5.x+: badness scaled to 1000 plus oom_score_adj).
    oom_score: int
    oom_score_adj: int
    #: When the process started (ns on the view's clock): lmkd's per-adj list is in start order.
    start_ns: int = 0


@dataclass(frozen=True, slots=True)
class CgroupView:
    """One cgroup of the managed subtree, with the systemd unit settings that apply to it."""

    path: str
    memory_current: int
    swap_current: int
    psi_some_avg10: float
    psi_full_avg10: float
    #: Pages scanned for reclaim in this cgroup so far (``memory.stat`` ``pgscan``, cumulative).
    pgscan: int
    #: ``ManagedOOMMemoryPressure=kill`` on the unit: its descendants are pressure candidates.
    managed_pressure: bool = False
    #: ``ManagedOOMSwap=kill``: the cgroup may be killed for swap use.
    managed_swap: bool = False
    #: ``ManagedOOMMemoryPressureLimit=`` of the unit (percent), None: oomd.conf's default.
    pressure_limit_pct: float | None = None
    #: ``ManagedOOMPreference=`` ``none`` | ``avoid`` | ``omit``.
    preference: str = "none"
    nr_procs: int = 0


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A service that registered a shed callback: how much it could give back now."""

    name: str
    cgroup: str
    sheddable: int


@dataclass(frozen=True, slots=True)
class MemoryView:
    now_ns: int
    mem_total: int
    mem_available: int
    mem_free: int
    swap_total: int
    swap_free: int
    #: Active + inactive file LRU (lmkd's ``base_file_lru``).
    file_lru: int
    #: ``workingset_refault`` (file), in pages, cumulative.
    workingset_refault: int
    pgscan_kswapd: int
    pgscan_direct: int
    #: Free-memory watermarks (bytes), as lmkd sums them over zones (``high + lowmem_reserve`` etc.).
    wmark_min: int
    wmark_low: int
    wmark_high: int
    psi_some_avg10: float
    psi_full_avg10: float
    psi_some_total_us: int
    psi_full_total_us: int
    #: The highest vmpressure level delivered since the previous sample.
    vmpressure: str = "none"
    procs: tuple[ProcView, ...] = ()
    cgroups: tuple[CgroupView, ...] = ()
    services: tuple[ServiceView, ...] = ()

    @property
    def mem_available_pct(self) -> float:
        return 100.0 * self.mem_available / self.mem_total if self.mem_total else 0.0

    @property
    def swap_free_pct(self) -> float:
        """earlyoom's ``SwapFreePercent``: 0 when there is no swap (meminfo.c), so swap never holds it back."""
        return 100.0 * self.swap_free / self.swap_total if self.swap_total else 0.0

    def proc(self, pid: int) -> ProcView | None:
        return next((p for p in self.procs if p.pid == pid), None)

    def cgroup(self, path: str) -> CgroupView | None:
        return next((c for c in self.cgroups if c.path == path), None)
