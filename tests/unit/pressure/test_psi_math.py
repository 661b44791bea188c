"""PSI fixed-point averages and trigger windows (kernel/sched/psi.c arithmetic)."""

from __future__ import annotations

import math

from memsched.pressure.psi import (
    EXP_10S,
    FIXED_1,
    PsiAverages,
    PsiWindow,
    TriggerState,
    calc_load,
    fixed_power_int,
    format_avg,
    psi_period_ns,
)

S = 1_000_000_000


def test_psi_period_is_2s_plus_one_jiffy() -> None:
    """PSI_FREQ = 2*HZ+1 jiffies: 2.001 s at HZ=1000, 2.004 s at HZ=250."""
    assert psi_period_ns(1000) == 2_001_000_000
    assert psi_period_ns(250) == 2_004_000_000


def test_calc_load_rounds_up_while_rising() -> None:
    """calc_load adds FIXED_1-1 before dividing when the sample is above the average."""
    assert (
        calc_load(0, EXP_10S, 100 * FIXED_1) == (100 * FIXED_1 * (FIXED_1 - EXP_10S) + FIXED_1 - 1) // FIXED_1
    )
    assert calc_load(FIXED_1, EXP_10S, 0) == EXP_10S


def test_fixed_power_int() -> None:
    """x**n in fixed point: EXP_10s**5 is about exp(-1) of FIXED_1."""
    assert fixed_power_int(EXP_10S, 11, 0) == FIXED_1
    assert fixed_power_int(EXP_10S, 11, 1) == EXP_10S
    assert abs(fixed_power_int(EXP_10S, 11, 5) / FIXED_1 - 0.3679) < 0.01


def test_full_stall_converges_to_100_and_decays() -> None:
    """Constant full stall drives avg10 toward 100%; with no stall and missed periods it decays."""
    av = PsiAverages(period_ns=2 * S)
    total = 0
    t = 0
    for _ in range(30):
        t += 2 * S
        total += 2 * S
        av.update(t, total)
    assert av.percent()[0] > 99.0
    assert av.percent()[0] > av.percent()[1] > av.percent()[2] > 0
    av.update(t + 20 * S, total)  # ten periods (20 s) of nothing at once: avg10 decays by exp(-2)
    assert abs(av.percent()[0] - 100 * math.exp(-2)) < 1.0
    assert format_avg(av.avg[2]).count(".") == 1


def test_sample_is_capped_at_the_period() -> None:
    """A sample larger than the period is clipped (the overage is carried into later periods)."""
    av = PsiAverages(period_ns=2 * S)
    av.update(2 * S, 3 * S)
    assert av.avg_total == 2 * S
    av.update(4 * S, 3 * S)
    assert av.avg_total == 3 * S


def test_window_interpolates_previous_growth() -> None:
    """Growth includes the previous window's growth scaled by the unelapsed part of the current one."""
    w = PsiWindow(size=1000, start_time=0, start_value=0)
    assert w.update(1001, 400) == 400  # elapsed > size: reset, prev_growth = 400
    assert w.update(1251, 450) == 50 + 400 * 750 // 1000


def test_trigger_fires_once_per_window_and_keeps_breaches_pending() -> None:
    """Fires on breaching the threshold, at most once per window; a breach in between fires later."""
    t = TriggerState.create(threshold_us=100_000, window_us=1_000_000, now=0, total=0)
    assert t.update(50_000_000, 50_000_000) is False  # 50 ms of stall: below 100 ms
    assert t.update(100_000_000, 150_000_000) is True  # 150 ms within the window
    assert t.update(200_000_000, 400_000_000) is False  # rate-limited: pending
    assert t.pending_event
    assert t.update(1_100_000_000, 400_000_000) is True  # window over: the pending breach fires
    assert t.update(1_200_000_000, 400_000_000) is False  # no new stall, nothing pending
