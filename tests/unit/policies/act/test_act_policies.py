"""One documented behaviour per modelled tool, reproduced on hand-built views (memsched.policies.act)."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from memsched.errors import ConfigError, UnknownNameError
from memsched.policies.act import registry
from memsched.policies.act.actions import KillCgroup, KillProcess, Shed
from memsched.policies.act.conformance import check_act_policy
from memsched.policies.act.earlyoom import Earlyoom, EarlyoomConfig
from memsched.policies.act.lmkd import Lmkd, LmkdConfig
from memsched.policies.act.systemd_oomd import SystemdOomd, SystemdOomdConfig
from memsched.policies.act.views import CgroupView, MemoryView, ProcView, ServiceView
from memsched.policies.act.vmpressure_shed import VmpressureShed, VmpressureShedConfig

MIB = 1 << 20
SEC = 1_000_000_000
MS = 1_000_000


def view(
    t_ns: int = 0, *, avail_pct: float = 50.0, swap_total: int = 0, swap_free: int = 0, **kw: object
) -> MemoryView:
    total = 1024 * MIB
    base = dict(
        now_ns=t_ns, mem_total=total, mem_available=int(total * avail_pct / 100), mem_free=int(total * avail_pct / 100),
        swap_total=swap_total, swap_free=swap_free, file_lru=100 * MIB, workingset_refault=0, pgscan_kswapd=0,
        pgscan_direct=0, wmark_min=16 * MIB, wmark_low=20 * MIB, wmark_high=24 * MIB, psi_some_avg10=0.0,
        psi_full_avg10=0.0, psi_some_total_us=0, psi_full_total_us=0,
    )
    base.update(kw)
    return MemoryView(**base)  # type: ignore[arg-type]


PROCS = (
    ProcView(100, "firefox", "/u/ff", 400 * MIB, 0, 400, 0, 1),
    ProcView(200, "Xorg", "/u/x", 100 * MIB, 0, 600, 0, 2),
    ProcView(300, "sshd", "/s/ssh", 500 * MIB, 0, 900, -1000, 3),
)


# ---------------------------------------------------------------------------------------- earlyoom


def test_earlyoom_terms_highest_oom_score_at_10_percent_then_kills_at_5() -> None:
    """earlyoom(1): "If both memory and swap are below 10%, it will kill the largest process (highest
    oom_score)"; kill_wait() escalates to SIGKILL below the kill thresholds (half: 5 %). No swap: SwapFree% is
    0 (meminfo.c), so memory alone decides. oom_score_adj -1000 is skipped."""
    p = Earlyoom(EarlyoomConfig())
    assert not p.on_sample(view(0, avail_pct=10.5, procs=PROCS))
    (a,) = p.on_sample(view(100 * MS, avail_pct=9.9, procs=PROCS))
    assert isinstance(a, KillProcess) and a.pid == 200 and a.signal == signal.SIGTERM  # sshd has -1000
    assert a.evidence["victim_oom_score"] == 600 and a.evidence["mem_term_pct"] == 10.0
    assert p.next_interval_ns(view(100 * MS, avail_pct=9.9, procs=PROCS)) == 100 * MS  # kill_wait() polls
    assert not p.on_sample(view(200 * MS, avail_pct=6, procs=PROCS))  # waiting, above 5 %
    (b,) = p.on_sample(view(300 * MS, avail_pct=4.9, procs=PROCS))
    assert b.pid == 200 and b.signal == signal.SIGKILL
    # victim gone: back to the main loop, next victim by oom_score
    rest = PROCS[:1] + PROCS[2:]
    assert not p.on_sample(view(400 * MS, avail_pct=30, procs=rest))
    (c,) = p.on_sample(view(500 * MS, avail_pct=4, procs=rest))
    assert c.pid == 100 and c.signal == signal.SIGKILL


def test_earlyoom_swap_must_be_low_too_and_prefer_avoid_shift_badness_by_300() -> None:
    p = Earlyoom(EarlyoomConfig(prefer="^firefox$", avoid="^Xorg$"))
    swap = 1024 * MIB
    assert not p.on_sample(view(avail_pct=1, swap_total=swap, swap_free=swap // 5, procs=PROCS))
    (a,) = p.on_sample(view(SEC, avail_pct=1, swap_total=swap, swap_free=swap // 20, procs=PROCS))
    assert a.pid == 100 and a.evidence["victim_badness"] == 700  # 400 + 300 beats 600 - 300


def test_earlyoom_adaptive_sleep_is_clamped_100_to_1000_ms() -> None:
    p = Earlyoom(EarlyoomConfig())
    # headroom above 10 %: 80 % of 1 GiB = 838,860 KiB at 6000 KiB/ms
    assert p.next_interval_ns(view(avail_pct=90)) == 139 * MS
    big = dataclasses.replace(view(avail_pct=90), mem_total=64 << 30, mem_available=int((64 << 30) * 0.9))
    assert p.next_interval_ns(big) == 1000 * MS
    assert p.next_interval_ns(view(avail_pct=11)) == 100 * MS


def test_earlyoom_bad_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prefer"):
        EarlyoomConfig(prefer="(")


# ---------------------------------------------------------------------------------------- systemd-oomd


def _oomd_views(spike_s: int, *, until_s: int = 60) -> list[KillCgroup]:
    """PSI full avg10 at 80 % for ``spike_s`` seconds on a ManagedOOMMemoryPressure=kill slice, reclaim going on."""
    p = SystemdOomd(SystemdOomdConfig())
    kills = []
    t = 0
    while t <= until_s * SEC:
        psi = 80.0 if t < spike_s * SEC else 0.0
        groups = (
            CgroupView("/user.slice", 900 * MIB, 0, psi, psi, t // MS, managed_pressure=True),
            CgroupView("/user.slice/app-a.scope", 200 * MIB, 0, psi, psi, t // MS // 10, nr_procs=3),
            CgroupView("/user.slice/app-b.scope", 600 * MIB, 0, psi, psi, t // MS, nr_procs=1),
            CgroupView("/system.slice/db.service", 900 * MIB, 0, psi, psi, t // MS * 5, nr_procs=1),
        )
        v = view(t, cgroups=groups)
        kills += [a for a in p.on_sample(v) if isinstance(a, KillCgroup)]
        t += p.next_interval_ns(v)
    return kills


def test_systemd_oomd_default_60_percent_for_30s_survives_a_20s_spike_not_a_40s_one() -> None:
    """oomd.conf(5): DefaultMemoryPressureLimit=60%, DefaultMemoryPressureDurationSec=30s."""
    assert _oomd_views(20) == []
    kills = _oomd_views(40)
    assert len(kills) == 1  # then POST_ACTION_DELAY and the pressure dropping
    k = kills[0]
    # the candidate under the monitored slice reclaiming most (not the bigger db outside it), as a whole cgroup
    assert k.path == "/user.slice/app-b.scope" and k.signal == signal.SIGKILL
    assert 30.0 <= k.evidence["above_for_s"] <= 31.0


def test_systemd_oomd_swap_kills_largest_opted_in_swap_user_above_90_percent() -> None:
    p = SystemdOomd(SystemdOomdConfig())
    swap = 1024 * MIB
    groups = (
        CgroupView("/", 0, 0, 0, 0, 0, managed_swap=True),
        CgroupView("/a", 100 * MIB, 300 * MIB, 0, 0, 0, nr_procs=1),
        CgroupView("/b", 100 * MIB, 600 * MIB, 0, 0, 0, nr_procs=1, preference="omit"),
        CgroupView("/c", 100 * MIB, 20 * MIB, 0, 0, 0, nr_procs=1),
    )
    assert not p.on_sample(view(swap_total=swap, swap_free=swap // 5, cgroups=groups))
    (k,) = p.on_sample(view(150 * MS, swap_total=swap, swap_free=swap // 20, cgroups=groups))
    assert isinstance(k, KillCgroup) and k.path == "/a"


# ---------------------------------------------------------------------------------------- lmkd


def _lmkd_run(full_ms_per_s: int, some_ms_per_s: int, *, procs: tuple[ProcView, ...], free: int) -> list[KillProcess]:
    p = Lmkd(LmkdConfig())
    out: list[KillProcess] = []
    t = 0
    while t <= 3 * SEC:
        v = view(t, mem_free=free, mem_available=free, psi_full_total_us=t * full_ms_per_s // SEC * 1000,
                 psi_some_total_us=t * some_ms_per_s // SEC * 1000, pgscan_kswapd=t // MS, procs=procs)
        out += [a for a in p.on_sample(v) if isinstance(a, KillProcess)]
        t += p.next_interval_ns(v)
    return out


APPS = (
    ProcView(10, "home", "/a", 50 * MIB, 0, 0, 600, 0),
    ProcView(11, "cached-old", "/a", 20 * MIB, 0, 0, 900, 1),
    ProcView(12, "cached-new", "/a", 90 * MIB, 0, 0, 900, 2),
    ProcView(13, "foreground", "/a", 300 * MIB, 0, 0, 0, 3),
    ProcView(14, "system", "/a", 300 * MIB, 0, 0, -900, 4),
)


def test_lmkd_complete_stall_of_700ms_per_second_kills_least_recent_of_highest_adj() -> None:
    """lmkd.cpp: a CRITICAL PSI event (full stall 700 ms in 1 s) is NOT_RESPONDING; find_and_kill_process()
    walks oom_score_adj from 1000 down and takes the least recently added process of the first bucket."""
    kills = _lmkd_run(800, 900, procs=APPS, free=500 * MIB)
    assert kills and kills[0].pid == 11 and kills[0].reason == "NOT_RESPONDING"
    assert kills[0].evidence["psi_event"] == "critical"


def test_lmkd_partial_stall_alone_with_free_memory_kills_nothing() -> None:
    """A MEDIUM event (some >= 70 ms) with free memory above the watermarks, swap not low and no thrashing
    matches no rule in mp_event_psi()."""
    assert _lmkd_run(0, 300, procs=APPS, free=500 * MIB) == []


def test_lmkd_thrashing_spares_perceptible_apps() -> None:
    """LOW_MEM_AND_THRASHING uses min_score_adj = PERCEPTIBLE_APP_ADJ (200): never the foreground app."""
    p = Lmkd(LmkdConfig())
    fg = (APPS[3], APPS[4])
    kills: list[KillProcess] = []
    t = 0
    while t <= 3 * SEC:
        v = view(t, mem_free=10 * MIB, psi_some_total_us=t // 1000 // 5, pgscan_kswapd=t // MS,
                 workingset_refault=t // MS * 100, file_lru=40 * MIB, procs=fg)
        kills += [a for a in p.on_sample(v) if isinstance(a, KillProcess)]
        t += p.next_interval_ns(v)
    assert kills == []
    with_cached = (*fg, APPS[1])
    p = Lmkd(LmkdConfig())
    t = 0
    while t <= 3 * SEC and not kills:
        v = view(t, mem_free=10 * MIB, psi_some_total_us=t // 1000 // 5, pgscan_kswapd=t // MS,
                 workingset_refault=t // MS * 100, file_lru=40 * MIB, procs=with_cached)
        kills += [a for a in p.on_sample(v) if isinstance(a, KillProcess)]
        t += p.next_interval_ns(v)
    assert kills and kills[0].pid == 11 and kills[0].reason == "LOW_MEM_AND_THRASHING"


# ---------------------------------------------------------------------------------------- vmpressure-shed, kernel-oom


def test_vmpressure_shed_gives_a_quarter_on_medium_everything_on_critical_with_cooldown() -> None:
    p = VmpressureShed(VmpressureShedConfig())
    svc = (ServiceView("cache", "/c", 400 * MIB),)
    assert not p.on_sample(view(0, vmpressure="low", services=svc))
    (a,) = p.on_sample(view(SEC, vmpressure="medium", services=svc))
    assert isinstance(a, Shed) and a.bytes == 100 * MIB
    assert not p.on_sample(view(SEC + 500 * MS, vmpressure="critical", services=svc))  # 1 s cool-down
    (b,) = p.on_sample(view(2 * SEC, vmpressure="critical", services=svc))
    assert b.bytes == 400 * MIB


def test_kernel_oom_never_acts() -> None:
    p = registry.get("kernel-oom").make()
    assert not p.on_sample(view(avail_pct=0, procs=PROCS, vmpressure="critical", psi_full_avg10=100.0))


# ---------------------------------------------------------------------------------------- registry and checker


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_policy_passes_the_checker(name: str) -> None:
    report = check_act_policy(name)
    assert report.ok, report.problems
    assert report.samples > 10


def test_registry_versions_and_unknown_names() -> None:
    assert registry.get("earlyoom").versioned_id == "earlyoom-v1"
    assert registry.get("earlyoom-v1") is registry.get("earlyoom")
    with pytest.raises(UnknownNameError):
        registry.get("oomd-classic")


def test_checker_catches_a_policy_that_kills_outside_its_view() -> None:
    from memsched.policies.act.base import ActPolicy

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        pass

    class Rogue(ActPolicy):
        def __init__(self, config: Cfg) -> None:
            pass

        def on_sample(self, v: MemoryView) -> tuple[KillProcess, ...]:
            return (KillProcess(4242, int(signal.SIGKILL), "rogue"),)

    registry.register(
        registry.ActPolicySpec(id="rogue", entry_point=Rogue, config_entry_point=Cfg, description="x", models="x")
    )
    try:
        report = check_act_policy("rogue")
        assert not report.ok and "4242" in report.problems[0]
    finally:
        registry.unregister("rogue")


# ---------------------------------------------------------------------------------------- nohang


def test_nohang_terms_at_5_percent_kills_at_2_and_ignores_psi_by_default() -> None:
    """nohang.conf: soft_threshold_min_mem 5 %, hard 2 %; psi_checking_enabled = False."""
    from memsched.policies.act.nohang import Nohang, NohangConfig

    p = Nohang(NohangConfig())
    assert not p.on_sample(view(0, avail_pct=6, procs=PROCS, psi_full_avg10=99.0))
    (a,) = p.on_sample(view(SEC, avail_pct=4.5, procs=PROCS))
    assert a.pid == 200 and a.signal == signal.SIGTERM
    (b,) = p.on_sample(view(SEC + 100 * MS, avail_pct=1.5, procs=PROCS))
    assert b.pid == 200 and b.signal == signal.SIGKILL


def test_nohang_psi_40_for_30s_when_enabled() -> None:
    from memsched.policies.act.nohang import Nohang, NohangConfig

    p = Nohang(NohangConfig(psi_checking_enabled=True))
    kills = []
    t = 0
    while t <= 45 * SEC:
        v = view(t, avail_pct=50, procs=PROCS, psi_full_avg10=50.0)
        kills += [(t, a) for a in p.on_sample(v)]
        t += p.next_interval_ns(v)
    (t_kill, a), *_ = kills
    assert a.signal == signal.SIGTERM and a.reason == "PSI above the threshold"
    assert 30 * SEC <= t_kill <= 33 * SEC  # 40 exceeded for psi_excess_duration, polled at most every 3 s
