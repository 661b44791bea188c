"""PSI arithmetic shared by the simulated kernel and the live backends: averages and trigger windows.

From kernel/sched/psi.c (6.x; the averaging and window code is unchanged since 5.2) and
include/linux/sched/loadavg.h:

* ``avg10/avg60/avg300`` are fixed-point (11 fractional bits) exponential averages updated once per
  ``psi_period`` = ``PSI_FREQ`` = ``2*HZ+1`` jiffies (2.001 s at HZ=1000) with the load-average kernel
  ``calc_load(load, exp, active)``; ``EXP_10s`` = 1677, ``EXP_60s`` = 1981, ``EXP_300s`` = 2034
  (``FIXED_1 / exp(2s / Ns)``). Missed periods decay the averages with ``calc_load_n`` (``fixed_power_int``).
  A period's sample is the stall time in it, capped at the period length (overage is carried over).
* Triggers track stall growth over a *sliding window* approximated by ``window_update()``: growth since the
  window start plus the previous window's growth scaled by the unelapsed fraction. An event fires when the
  growth reaches the threshold, **at most once per window** (``last_event_time + win.size``); a breach
  during the rate-limit interval stays pending and fires when the interval ends.

Deviation: the kernel's ``last_event_time`` starts at 0 on a clock that started at boot; our clocks start at
0 with the run, so "no event yet" is kept as ``None`` rather than letting the first window rate-limit the
first event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "EXP_10S",
    "EXP_60S",
    "EXP_300S",
    "FIXED_1",
    "FSHIFT",
    "PsiAverages",
    "PsiWindow",
    "TriggerState",
    "calc_load",
    "calc_load_n",
    "fixed_power_int",
    "format_avg",
    "psi_period_ns",
]

FSHIFT = 11
FIXED_1 = 1 << FSHIFT
EXP_10S = 1677
EXP_60S = 1981
EXP_300S = 2034
_EXPS = (EXP_10S, EXP_60S, EXP_300S)


def psi_period_ns(hz: int = 1000) -> int:
    """``jiffies_to_nsecs(PSI_FREQ)`` with ``PSI_FREQ = 2*HZ+1``."""
    return (2 * hz + 1) * (1_000_000_000 // hz)


def calc_load(load: int, exp: int, active: int) -> int:
    """``calc_load()`` of include/linux/sched/loadavg.h (rounds up while rising)."""
    newload = load * exp + active * (FIXED_1 - exp)
    if active >= load:
        newload += FIXED_1 - 1
    return newload // FIXED_1


def fixed_power_int(x: int, frac_bits: int, n: int) -> int:
    """``fixed_power_int()``: ``x**n`` in fixed point with ``frac_bits`` fractional bits, rounded per step."""
    result = 1 << frac_bits
    if n:
        while True:
            if n & 1:
                result = (result * x + (1 << (frac_bits - 1))) >> frac_bits
            n >>= 1
            if not n:
                break
            x = (x * x + (1 << (frac_bits - 1))) >> frac_bits
    return result


def calc_load_n(load: int, exp: int, active: int, n: int) -> int:
    return calc_load(load, fixed_power_int(exp, FSHIFT, n), active)


def format_avg(avg: int) -> str:
    """``LOAD_INT(x).LOAD_FRAC(x)`` as ``psi_show()`` prints it (``"12.34"``)."""
    integer = avg >> FSHIFT
    frac = ((avg & (FIXED_1 - 1)) * 100) >> FSHIFT
    return f"{integer}.{frac:02d}"


@dataclass(slots=True)
class PsiAverages:
    """One state's running averages and the group clock of ``update_averages()``."""

    period_ns: int
    avg: list[int] = field(default_factory=lambda: [0, 0, 0])
    avg_total: int = 0
    avg_last_update: int = 0
    avg_next_update: int = 0

    def __post_init__(self) -> None:
        self.avg_next_update = self.avg_last_update + self.period_ns

    def update(self, now: int, total: int) -> int:
        """``update_averages()`` for one state given its cumulative stall ``total`` (ns); returns the next
        update time. Call when ``now >= avg_next_update``."""
        missed = 0
        expires = self.avg_next_update
        if now - expires >= self.period_ns:
            missed = (now - expires) // self.period_ns
        next_update = expires + (1 + missed) * self.period_ns
        period = now - (self.avg_last_update + missed * self.period_ns)
        self.avg_last_update = now
        sample = total - self.avg_total
        sample = min(sample, period)
        self.avg_total += sample
        if missed:
            self.avg = [calc_load_n(a, e, 0, missed) for a, e in zip(self.avg, _EXPS, strict=True)]
        pct = (sample * 100 // period) * FIXED_1 if period > 0 else 0
        self.avg = [calc_load(a, e, pct) for a, e in zip(self.avg, _EXPS, strict=True)]
        self.avg_next_update = next_update
        return next_update

    def percent(self) -> tuple[float, float, float]:
        """avg10/avg60/avg300 as floats (what the file shows, to two decimals)."""
        return tuple(float(format_avg(a)) for a in self.avg)  # type: ignore[return-value]


@dataclass(slots=True)
class PsiWindow:
    """``struct psi_window``."""

    size: int
    start_time: int = 0
    start_value: int = 0
    prev_growth: int = 0

    def reset(self, now: int, value: int, prev_growth: int) -> None:
        self.start_time = now
        self.start_value = value
        self.prev_growth = prev_growth

    def update(self, now: int, value: int) -> int:
        """``window_update()``: growth over the (approximated) sliding window ending now."""
        elapsed = now - self.start_time
        growth = value - self.start_value
        if elapsed > self.size:
            self.reset(now, value, growth)
        else:
            remaining = self.size - elapsed
            growth += self.prev_growth * remaining // self.size
        return growth


@dataclass(slots=True)
class TriggerState:
    """The evaluation state of one ``struct psi_trigger`` (threshold and window in ns)."""

    threshold: int
    win: PsiWindow
    last_total: int = 0
    last_event_time: int | None = None
    pending_event: bool = False
    #: ``t->event``: set when fired, cleared by a ``poll`` that reports ``POLLPRI``.
    event: bool = False

    @classmethod
    def create(cls, threshold_us: int, window_us: int, now: int, total: int) -> TriggerState:
        return cls(threshold_us * 1000, PsiWindow(window_us * 1000, now, total, 0), last_total=total)

    def update(self, now: int, total: int) -> bool:
        """One trigger's part of ``update_triggers()``; returns True if it generated an event now."""
        new_stall = total != self.last_total
        self.last_total = total
        if not new_stall and not self.pending_event:
            return False
        if new_stall:
            growth = self.win.update(now, total)
            if not self.pending_event:
                if growth < self.threshold:
                    return False
                self.pending_event = True
        if self.last_event_time is not None and now < self.last_event_time + self.win.size:
            return False
        self.event = True
        self.last_event_time = now
        self.pending_event = False
        return True
