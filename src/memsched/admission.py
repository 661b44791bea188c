"""SCHED_DEADLINE parameter checks and admission control, shared by the simulator and the live tools.

Pure integer arithmetic, exactly as ``kernel/sched/deadline.c`` and ``kernel/sched/sched.h`` (Linux 6.x)
compute it, so that the simulator (``sim/sched/deadline.py``) and ``memsched rt admit`` on a real machine
give the kernel's answer to the last bit:

* ``__checkparam_dl()``: ``deadline != 0``; ``runtime >= 1 << DL_SCALE``; bit 63 clear in deadline and
  period; ``period = period ?: deadline``; ``runtime <= deadline <= period``; period within
  ``[sched_deadline_period_min_us, sched_deadline_period_max_us]`` (100 µs and 1<<22 µs by default).
* ``to_ratio(period, runtime) = (runtime << BW_SHIFT) / period`` with ``BW_SHIFT = 20``.
* ``__dl_overflow()``: a root domain admits a new bandwidth unless
  ``cap_scale(bw, capacity) < total_bw - old_bw + new_bw``, where ``bw = to_ratio(rt_period, rt_runtime)``
  (``sched_rt_runtime_us = -1`` disables the test) and ``capacity`` is the sum of the CPUs' capacities
  (1024 each on symmetric machines). ``total_bw`` includes the per-CPU **fair_server** deadline servers
  (50 ms every 1000 ms each by default since ~6.12), which is why a 2-CPU machine at 95 % admits 1.80 CPUs of
  deadline bandwidth, not 1.90.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from memsched.errors import ConfigError
from memsched.uapi.sched import SchedAttr, SchedPolicy

__all__ = [
    "BW_SHIFT",
    "BW_UNIT",
    "DL_SCALE",
    "DlBandwidth",
    "cap_scale",
    "checkparam_dl",
    "dl_bw_of",
    "to_ratio",
]

DL_SCALE = 10
BW_SHIFT = 20
BW_UNIT = 1 << BW_SHIFT
SCHED_CAPACITY_SHIFT = 10
SCHED_CAPACITY_SCALE = 1 << SCHED_CAPACITY_SHIFT
NSEC_PER_USEC = 1000
#: ``sysctl_sched_dl_period_min`` / ``_max`` defaults (µs).
DL_PERIOD_MIN_US = 100
DL_PERIOD_MAX_US = 1 << 22
#: ``RUNTIME_INF`` of ``sched_rt_runtime_us = -1``.
RUNTIME_INF = -1
#: ``SCHED_FLAG_SUGOV`` (kernel-internal) bypasses the parameter checks.
SCHED_FLAG_SUGOV = 0x10000000
#: fair_server defaults (``dl_server_apply_params`` in ``fair_server_init``): 50 ms per 1000 ms.
FAIR_SERVER_RUNTIME_NS = 50_000_000
FAIR_SERVER_PERIOD_NS = 1_000_000_000


def to_ratio(period: int, runtime: int) -> int:
    """``to_ratio()`` of kernel/sched/core.c: bandwidth in ``BW_UNIT`` fixed point."""
    if runtime == RUNTIME_INF:
        return BW_UNIT
    if period == 0:
        return 0
    return (runtime << BW_SHIFT) // period


def cap_scale(v: int, cap: int) -> int:
    """``cap_scale(v, s) = (v * s) >> SCHED_CAPACITY_SHIFT``."""
    return (v * cap) >> SCHED_CAPACITY_SHIFT


def checkparam_dl(
    attr: SchedAttr, *, period_min_us: int = DL_PERIOD_MIN_US, period_max_us: int = DL_PERIOD_MAX_US
) -> str | None:
    """``__checkparam_dl()``: ``None`` if the parameters are valid, else the violated rule in words."""
    if attr.sched_flags & SCHED_FLAG_SUGOV:
        return None
    if attr.sched_deadline == 0:
        return "sched_deadline must not be 0"
    if attr.sched_runtime < (1 << DL_SCALE):
        return f"sched_runtime must be >= {1 << DL_SCALE} ns (1 << DL_SCALE), got {attr.sched_runtime}"
    if attr.sched_deadline & (1 << 63) or attr.sched_period & (1 << 63):
        return "sched_deadline and sched_period must have bit 63 clear"
    period = attr.effective_period
    if period < attr.sched_deadline or attr.sched_deadline < attr.sched_runtime:
        return (
            f"must have runtime <= deadline <= period, got runtime {attr.sched_runtime}, "
            f"deadline {attr.sched_deadline}, period {period} ns"
        )
    lo, hi = period_min_us * NSEC_PER_USEC, period_max_us * NSEC_PER_USEC
    if period < lo or period > hi:
        return f"period must be within [{lo}, {hi}] ns (sched_deadline_period_min_us/max_us), got {period}"
    return None


def dl_bw_of(attr: SchedAttr) -> int:
    """The bandwidth a SCHED_DEADLINE attr asks for (``to_ratio(period ?: deadline, runtime)``)."""
    if attr.sched_policy != SchedPolicy.DEADLINE:
        return 0
    return to_ratio(attr.effective_period, attr.sched_runtime)


@dataclass
class DlBandwidth:
    """``struct dl_bw`` of one root domain: its limit and the bandwidth already admitted.

    ``capacities`` are the CPUs' capacities (1024 each on symmetric machines); ``rt_runtime_us = -1``
    disables admission control. ``servers`` counts per-CPU fair_server bandwidth already in ``total_bw``.
    """

    capacities: tuple[int, ...]
    rt_runtime_us: int = 950_000
    rt_period_us: int = 1_000_000
    total_bw: int = 0
    fair_server_bw: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.capacities:
            raise ConfigError("cpus", 0, "must be >= 1")
        if self.rt_period_us <= 0:
            raise ConfigError("sched_rt_period_us", self.rt_period_us, "must be > 0")
        if self.rt_runtime_us != RUNTIME_INF and not 0 <= self.rt_runtime_us <= self.rt_period_us:
            raise ConfigError("sched_rt_runtime_us", self.rt_runtime_us, "must be -1 or in 0..sched_rt_period_us")

    @classmethod
    def symmetric(
        cls,
        cpus: int,
        *,
        rt_runtime_us: int = 950_000,
        rt_period_us: int = 1_000_000,
        fair_server: tuple[int, int] | None = (FAIR_SERVER_RUNTIME_NS, FAIR_SERVER_PERIOD_NS),
    ) -> DlBandwidth:
        """``cpus`` full-capacity CPUs; ``fair_server=(runtime_ns, period_ns)`` per CPU, or ``None``."""
        if cpus < 1:
            raise ConfigError("cpus", cpus, "must be >= 1")
        servers = (to_ratio(fair_server[1], fair_server[0]),) * cpus if fair_server else ()
        return cls(
            capacities=(SCHED_CAPACITY_SCALE,) * cpus,
            rt_runtime_us=rt_runtime_us,
            rt_period_us=rt_period_us,
            total_bw=sum(servers),
            fair_server_bw=servers,
        )

    @property
    def bw(self) -> int:
        """``dl_b->bw`` = ``to_ratio(global_rt_period(), global_rt_runtime())``, or -1 when unlimited."""
        if self.rt_runtime_us == RUNTIME_INF:
            return -1
        return to_ratio(self.rt_period_us * NSEC_PER_USEC, self.rt_runtime_us * NSEC_PER_USEC)

    @property
    def capacity(self) -> int:
        return sum(self.capacities)

    @property
    def limit(self) -> int | None:
        """Total bandwidth the domain may hold (``cap_scale(bw, cap)``), or ``None`` when unlimited."""
        return None if self.bw == -1 else cap_scale(self.bw, self.capacity)

    @property
    def available(self) -> int | None:
        """Bandwidth a new task could still get."""
        return None if self.limit is None else self.limit - self.total_bw

    def overflow(self, old_bw: int, new_bw: int) -> bool:
        """``__dl_overflow()``."""
        return self.bw != -1 and cap_scale(self.bw, self.capacity) < self.total_bw - old_bw + new_bw

    def admits(self, attr: SchedAttr, *, old_bw: int = 0) -> bool:
        """Would ``sched_setattr(attr)`` pass ``sched_dl_overflow()`` for a task now holding ``old_bw``?"""
        if attr.sched_policy != SchedPolicy.DEADLINE:
            return True
        return not self.overflow(old_bw, dl_bw_of(attr))

    def add(self, bw: int) -> None:
        self.total_bw += bw

    def sub(self, bw: int) -> None:
        self.total_bw -= bw

    def with_tasks(self, bws: Iterable[int]) -> DlBandwidth:
        """A copy that also holds the given task bandwidths (for predictions)."""
        return DlBandwidth(
            self.capacities, self.rt_runtime_us, self.rt_period_us, self.total_bw + sum(bws), self.fair_server_bw
        )

