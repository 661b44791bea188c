"""A NUMA run that asks for more work than the simulator can do is refused before it starts: too many tasks
(mixed's batch jobs), too much scanning (a tiny scan period), too many timeline samples; the defaults of every
workload and policy on every preset are accepted."""

from __future__ import annotations

import pytest

from memsched.errors import ConfigError
from memsched.policies.numa import registry as policies
from memsched.topology import load_topology
from memsched.workloads import base as workloads
from memsched.workloads.numa import MAX_SCAN_WORK_MB, NumaOptions, NumaRunner, scan_work_mb
from memsched.workloads.runspec import RunSpec

PRESETS = ["laptop-1n8", "opteron-4n32", "sandybridge-2n32", "westmere-ex-4n48", "x86-8n64"]


def check(workload: str, topology: str, policy: str = "none", options: NumaOptions | None = None,
          **sets: str) -> None:
    NumaRunner().check(RunSpec(workload, topology, policy, seed=0, sets=sets, options=options))


def test_mixed_with_millisecond_jobs_is_refused_up_front() -> None:
    """job_s=0.001 asks for ~1.9 million batch jobs in 120 s: refused naming job_s, before anything is built."""
    with pytest.raises(ConfigError, match=r"'job_s' makes workload mixed on sandybridge-2n32 create about "
                                          r"1,920,\d+ tasks; at most 200,000 are simulated .* \(got 0\.001\)"):
        check("mixed", "sandybridge-2n32", job_s="0.001")
    check("mixed", "sandybridge-2n32", job_s="0.1")  # 11,570 tasks: 2 s


@pytest.mark.parametrize(("workload", "topology", "policy", "sets", "key"), [
    ("numa02", "opteron-4n32", "moron", {"scan_period_ms": "1", "scan_size_mb": "999999"}, "scan_period_ms"),
    ("numa02", "opteron-4n32", "numacore", {"scan_period_ms": "1"}, "scan_period_ms"),
    ("numa01", "westmere-ex-4n48", "moron", {"scan_period_ms": "1"}, "scan_period_ms"),
    ("numa01", "westmere-ex-4n48", "mainline", {"scan_period_min_ms": "1", "scan_size_mb": "1"}, "scan_period_min_ms"),
    ("specjbb", "sandybridge-2n32", "mainline", {"migrate_check_ms": "1", "duration_s": "3600"}, "migrate_check_ms"),
    ("numa02", "opteron-4n32", "autonuma", {"scan_sleep_ms": "1", "pages_to_scan_mb": "1024"}, "scan_sleep_ms"),
])  # fmt: skip
def test_a_scan_period_too_short_for_the_run_is_refused(
    workload: str, topology: str, policy: str, sets: dict[str, str], key: str
) -> None:
    """Scanning every millisecond, or all of a big address space, over a long run: refused naming the period."""
    with pytest.raises(ConfigError, match=rf"'{key}' with policy {policy} makes the ~[\d,]+ s of workload "
                                          rf"{workload} on {topology} ask for about [\d,]+ MB of NUMA scanning"):
        check(workload, topology, policy, **sets)


def test_a_short_scan_period_that_the_run_can_afford_is_accepted() -> None:
    """MORON scanning 256 MB every millisecond of numa02 on opteron-4n32: 36 simulated s, 35 s of CPU (the
    estimate allows for 57 s): accepted, like the default numa01 under MORON on westmere-ex-4n48 (28 s); so is
    the heaviest cell of the docs/sweeps.md example."""
    check("numa02", "opteron-4n32", "moron", scan_period_ms="1")
    check("numa01", "x86-8n64", "balancenuma", scan_period_min_ms="100", scan_size_mb="1024")


def test_timeline_samples_are_bounded() -> None:
    """The shortest sample interval over the longest specjbb (an hour measured, 30 s of ramp-up) would take about
    363,000 samples: refused; over the default run it is accepted. (A NaN or sub-10 ms interval is refused by
    NumaOptions itself.)"""
    with pytest.raises(ConfigError, match=r"'sample_interval_s' gives about 36[0-9],"):
        check("specjbb", "sandybridge-2n32", options=NumaOptions(sample_interval_s=0.01), duration_s="3600")
    check("specjbb", "sandybridge-2n32", options=NumaOptions(sample_interval_s=0.01))
    with pytest.raises(ConfigError, match="'sample_interval_s' must be a finite number"):
        NumaOptions(sample_interval_s=float("nan"))


@pytest.mark.parametrize("topology", PRESETS)
def test_every_default_run_on_every_preset_is_accepted(topology: str) -> None:
    """The defaults of every workload under every policy stay within every limit, with room to spare."""
    topo = load_topology(topology)
    for wid in workloads.names():
        wl = workloads.get(wid)
        assert wl.footprint is not None, f"{wid} declares no footprint"
        fp = wl.footprint(topo, wl.default_config())
        for pid in policies.names():
            spec = policies.get(pid)
            assert scan_work_mb(spec.make(spec.make_config({})), fp) < MAX_SCAN_WORK_MB * 0.6, (wid, pid)
    check("mixed", topology)
    check("numa01", topology, "mainline")
