"""Realtime workloads: hackbench under lazy vs full, isolation, rt-app files, task-set generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsched.errors import ConfigError
from memsched.sim.mm.slub import SlubConfig
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.sched import SchedConfig
from memsched.uapi.sched import SchedPolicy
from memsched.workloads import rt
from memsched.workloads.rtgen import randfixedsum, uunifast_discard

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rt-app"
#: 4 groups of 5 senders + 5 receivers, 100 messages per pair: big enough that the lazy/full directions hold for
#: every seed tried (0-4), small enough to run in about a second per model.
SMALL = {"groups": "4", "fds": "5", "loops": "100", "duration_ms": "2000"}


@pytest.fixture(scope="module")
def by_model() -> dict[str, dict]:
    return {
        m: rt.run_rt_scenario("hackbench+cyclictest", preempt=m, sets=SMALL)[0] for m in ("full", "lazy", "none")
    }


def test_lazy_has_fewer_switches_and_more_throughput_than_full(by_model: dict[str, dict]) -> None:
    """PREEMPT_LAZY: fewer context switches and higher hackbench throughput than FULL."""
    lz, fl = by_model["lazy"]["hackbench"], by_model["full"]["hackbench"]
    assert lz["finished"] and fl["finished"]
    assert lz["context_switches"] < fl["context_switches"]
    assert lz["throughput_msgs_per_s"] > fl["throughput_msgs_per_s"]
    assert lz["lock_contentions"] < fl["lock_contentions"]


def test_rt_latency_does_not_depend_on_the_fair_model(by_model: dict[str, dict]) -> None:
    """cyclictest latency is bounded by the same non-preemptible section under lazy and full; NONE is worse."""
    lz, fl, no = (by_model[m]["cyclictest"] for m in ("lazy", "full", "none"))
    # A FIFO wakeup waits at most for the longest preempt-disabled section, then pays one context switch. In
    # hackbench that section is SLUB's new-slab path (new_slab_ns, 2 us, preemption off); the list_lock paths
    # (<= 1.8 us) and try_to_wake_up (wakeup_ns, 0.3 us) are shorter; copy_ns is preemptible kernel work.
    bound_us = (SchedConfig().ctx_switch_ns + SlubConfig().new_slab_ns) / 1000
    assert lz["max_us"] <= bound_us and fl["max_us"] <= bound_us
    assert lz["samples"] >= 100 and fl["samples"] >= 100
    assert abs(lz["mean_us"] - fl["mean_us"]) / fl["mean_us"] < 0.01
    assert no["max_us"] > bound_us


def test_isolated_cpu_sees_less_noise_and_more_throughput() -> None:
    """A poller on an isolcpus/nohz_full/rcu_nocbs CPU loses less time and does more work than on housekeeping."""
    rec, _ = rt.run_rt_scenario("isolation", sets={"duration_ms": "1000"})
    iso = rec["isolation"]
    a, b = iso["poll-isolated"], iso["poll-housekeeping"]
    assert a["noise_us_per_s"] < b["noise_us_per_s"] / 10
    assert a["throughput"] > b["throughput"]
    assert iso["throughput_gain_pct"] > 0


def test_rt_app_file_runs() -> None:
    """An rt-app JSON file creates its threads with their policies, instances, phases and timers."""
    m = RtMachine(2)
    built = rt.load_rt_app(FIXTURES / "periodic.json", m)
    names = sorted(t.name for t in built.groups["rt-app"])
    assert names == ["dl", "fifo-0", "fifo-1", "other"]
    m.run(built.duration_ns)
    dl = next(t for t in m.tasks if t.name == "dl")
    assert dl.policy == SchedPolicy.DEADLINE and dl.dl.dl_runtime == 3_000_000
    assert dl.stats.jobs >= 95 and dl.stats.misses == 0
    fifo = next(t for t in m.tasks if t.name == "fifo-0")
    assert fifo.policy == SchedPolicy.FIFO and fifo.prio == 50 and fifo.stats.jobs > 10


def test_rt_app_rejects_unknown_events(tmp_path: Path) -> None:
    """An event the simulator does not model is a ConfigError naming it, not silently dropped."""
    p = tmp_path / "bad.json"
    p.write_text('{"tasks": {"t": {"run": 100, "mem": 10}}}')
    with pytest.raises(ConfigError, match="mem"):
        rt.load_rt_app(p, RtMachine(1))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.floats(0.05, 1.0), st.integers(0, 2**32))
def test_generators_hit_the_total_within_bounds(n: int, frac: float, seed: int) -> None:
    """UUniFast-Discard and RandFixedSum return n utilisations in [0, 1] summing to U.

    (UUniFast-Discard's rejection rate explodes near U = n; that regime is RandFixedSum's.)"""
    total = frac * n
    rng = np.random.default_rng(seed)
    for u in (
        randfixedsum(n, total, rng),
        uunifast_discard(n, total, rng) if frac <= 0.5 else randfixedsum(n, total, rng),
    ):
        assert len(u) == n
        assert u.sum() == pytest.approx(total, rel=1e-9, abs=1e-9)
        assert (u >= -1e-12).all() and (u <= 1 + 1e-12).all()


def test_guest_latency_depends_on_how_the_host_runs_the_vcpu() -> None:
    """KVM: a guest task's wakeup latency is small with a FIFO vCPU, up to a host slice with a SCHED_OTHER one."""
    lat = {}
    for pol in ("fifo", "other"):
        rec, _ = rt.run_rt_scenario("kvm", sets={"vcpu_policy": pol, "duration_ms": "300"})
        g = rec["kvm"]["guest_task"]
        assert g["jobs"] >= 140
        lat[pol] = g["latency_us"]["max"]
    assert lat["fifo"] < 10
    assert lat["other"] > 100 * lat["fifo"]


def test_rt_app_dl_runtime_on_sched_other_sets_a_custom_slice(tmp_path: Path) -> None:
    """rt-app's dl-runtime on a SCHED_OTHER thread becomes sched_runtime: an EEVDF custom slice (6.12+)."""
    p = tmp_path / "slice.json"
    p.write_text(
        '{"global": {"duration": 1}, "tasks": {'
        '"short": {"policy": "SCHED_OTHER", "dl-runtime": 300, "run": 100, "sleep": 900},'
        '"plain": {"policy": "SCHED_OTHER", "run": 100, "sleep": 900}}}'
    )
    m = RtMachine(1)
    built = rt.load_rt_app(p, m)
    short, plain = sorted(built.groups["rt-app"], key=lambda t: t.name != "short")
    assert short.se.custom_slice and short.se.slice == 300_000
    assert not plain.se.custom_slice
    m.run(50_000_000)
    assert short.se.slice == 300_000 and short.sum_exec > 0


def test_builtin_scenarios_are_registered_from_the_package_table() -> None:
    """memsched.workloads.rt registers exactly its SCENARIOS table, in order, each from its own module."""
    assert rt.names() == [s.id for s in rt.SCENARIOS]
    assert all(rt.get(s.id) is s for s in rt.SCENARIOS)
    modules = {s.build.__module__ for s in rt.SCENARIOS}
    assert len(modules) == len(rt.SCENARIOS) - 1  # dl-periodic and dl-sporadic share dlsets.py
