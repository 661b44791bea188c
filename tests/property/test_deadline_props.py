"""SCHED_DEADLINE invariants of the exact scheduler (uniprocessor EDF, CBS isolation, Dhall's effect, the
Devi–Anderson tardiness bound), checked with hypothesis."""

from __future__ import annotations

import errno
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from memsched.admission import BW_SHIFT, to_ratio
from memsched.errors import KernelError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Run, Timer
from memsched.sim.sched.sched import SchedConfig, SchedTask
from memsched.uapi.sched import SchedAttr

MS = 1_000_000
US = 1_000
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def periodic(m: RtMachine, name: str, c: int, p: int, run: int | None = None) -> SchedTask:
    return m.spawn(name, (Run(run if run is not None else c), Timer(p)), attr=SchedAttr.deadline(c, p, p))


# Periods dividing 20 ms: one hyperperiod is 20 ms.
PERIODS = st.sampled_from([2 * MS, 4 * MS, 5 * MS, 10 * MS, 20 * MS])


@st.composite
def uniproc_sets(draw: st.DrawFn) -> list[tuple[int, int]]:
    n = draw(st.integers(1, 5))
    out = []
    for _ in range(n):
        p = draw(PERIODS)
        c = draw(st.integers(2, p // US)) * US // 2
        out.append((max(c, 2 * US), p))
    return out


@FAST
@given(uniproc_sets())
def test_uniprocessor_edf_misses_iff_overloaded(tasks: list[tuple[int, int]]) -> None:
    """One CPU, implicit deadlines, synchronous release: EDF misses a deadline iff U > 1."""
    m = RtMachine(1, SchedConfig.ideal())
    ts = [periodic(m, f"t{i}", c, p) for i, (c, p) in enumerate(tasks)]
    m.run(2 * 20 * MS)
    u = sum(Fraction(c, p) for c, p in tasks)
    misses = sum(t.stats.misses for t in ts)
    assert (misses == 0) == (u <= 1), (u, misses)


@FAST
@given(uniproc_sets(), st.integers(2, 6), st.integers(0, 4))
# t2's job ends at 28 ms with the last of its runtime, the instant t0's and t1's replenishment timers fire: the
# accounting they bring forward must not throttle it before its completion (it then waited for its next period
# and missed by 0.5 ms).
@example([(490000, 2000000), (7500, 2000000), (2500000, 5000000)], 2, 1)
def test_cbs_isolates_an_overrunning_task(tasks: list[tuple[int, int]], factor: int, who: int) -> None:
    """A task running `factor` x its runtime never makes a conforming task miss while Σ bw <= 1."""
    assume(sum(Fraction(c, p) for c, p in tasks) <= 1)
    m = RtMachine(1, SchedConfig.ideal(hrtick_dl=True))
    bad = who % len(tasks)
    ts = [periodic(m, f"t{i}", c, p, run=c * factor if i == bad else None) for i, (c, p) in enumerate(tasks)]
    m.run(3 * 20 * MS)
    for i, t in enumerate(ts):
        if i != bad:
            assert t.stats.misses == 0, (tasks, bad, t.name)
    assert m.core.dl_class.nr_throttled > 0  # the overrunner was throttled, not allowed to run on


@FAST
@given(
    st.integers(1, 4),
    st.lists(st.tuples(st.integers(1, 500), st.integers(1, 1000)), min_size=1, max_size=12),
    st.booleans(),
)
def test_admission_rejects_exactly_beyond_the_bound(
    cpus: int, reqs: list[tuple[int, int]], servers: bool
) -> None:
    """sched_setattr gives EBUSY exactly when Σ runtime/period would exceed cpus x 95 % (minus fair_servers)."""
    m = RtMachine(cpus, SchedConfig(rt_bandwidth="fair-server" if servers else "none"))
    limit = (to_ratio(1_000_000_000, 950_000_000) * cpus * 1024) >> 10
    total = (to_ratio(1_000_000_000, 50_000_000) * cpus) if servers else 0
    for i, (r, extra) in enumerate(reqs):
        runtime = r * 100 * US
        period = runtime + extra * 100 * US
        t = m.spawn(f"t{i}", (Run(MS),), start_ns=10**12)
        bw = (runtime << BW_SHIFT) // period
        fits = total + bw <= limit
        if fits:
            m.sched_setattr(t, SchedAttr.deadline(runtime, period, period))
            total += bw
        else:
            with pytest.raises(KernelError) as e:
                m.sched_setattr(t, SchedAttr.deadline(runtime, period, period))
            assert e.value.errno == errno.EBUSY
    assert m.core.dl_class.dl_b.total_bw == total


@FAST
@given(st.integers(2, 4), st.integers(4, 20), st.integers(10, 300))
def test_dhall_effect_under_global_edf(cpus: int, p_ms: int, eps_us: int) -> None:
    """M tasks (ε, P−1, P−1) plus one (P, P, P) on M CPUs pass admission (Σ ≤ 0.95·M) yet the heavy task misses
    under global EDF; partitioned EDF (the heavy task alone on one CPU, the light ones on another) misses nothing."""
    p = p_ms * MS
    m = RtMachine(cpus, SchedConfig.ideal(sched_rt_runtime_us=950_000))  # admission control on: all admitted
    light = [periodic(m, f"l{i}", eps_us * US, p - MS) for i in range(cpus)]
    heavy = periodic(m, "heavy", p, p)
    m.run(3 * p)
    assert heavy.stats.misses >= 1
    assert all(t.stats.misses == 0 for t in light)
    # Partitioned: one root domain per CPU (exclusive cpusets), EDF on each.
    alone = RtMachine(1, SchedConfig.ideal())
    heavy_p = periodic(alone, "heavy", p, p)
    rest = RtMachine(1, SchedConfig.ideal())
    light_p = [periodic(rest, f"l{i}", eps_us * US, p - MS) for i in range(cpus)]
    alone.run(3 * p)
    rest.run(3 * p)
    assert heavy_p.stats.jobs == 3 and heavy_p.stats.misses == 0
    assert all(t.stats.jobs >= 3 and t.stats.misses == 0 for t in light_p)


def da_bound(cs: list[int], us: list[Fraction], cpus: int) -> Fraction:
    """Devi & Anderson (2008): ((M−1)·C_max − C_min) / (M − (M−2)·U_max) + C_max."""
    cmax, cmin, umax = max(cs), min(cs), max(us)
    return Fraction((cpus - 1) * cmax - cmin) / (cpus - (cpus - 2) * umax) + cmax


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 4), st.integers(0, 10_000), st.floats(0.5, 0.95))
def test_tardiness_stays_under_devi_anderson_bound(cpus: int, seed: int, load: float) -> None:
    """Admitted sets (U <= 0.95 M) under global EDF: every job's tardiness is within the Devi–Anderson bound."""
    import numpy as np

    from memsched.workloads.rtgen import uunifast_discard

    rng = np.random.default_rng(seed)
    n = cpus + 3
    u = uunifast_discard(n, load * cpus, rng)
    periods = [int(rng.integers(5, 40)) * MS for _ in range(n)]
    pairs = [(max(50 * US, int(ui * p) // US * US), p) for ui, p in zip(u, periods, strict=True)]
    m = RtMachine(cpus, SchedConfig.ideal(sched_rt_runtime_us=950_000))
    limit = m.core.dl_class.dl_b.limit
    assert limit is not None
    assume(sum(to_ratio(p, c) for c, p in pairs) <= limit)  # rounding may push the set past admission
    ts = [periodic(m, f"t{i}", c, p) for i, (c, p) in enumerate(pairs)]
    m.run(400 * MS)
    bound = da_bound([c for c, _ in pairs], [Fraction(c, p) for c, p in pairs], cpus)
    worst = max(t.stats.max_tardiness for t in ts)
    assert worst <= bound, (pairs, worst, float(bound))
