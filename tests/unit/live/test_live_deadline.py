"""Deadline tasks, root domain, fair_server and admission prediction from /proc and /sys fixture trees."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.live_fixtures import ARM_TASKS, FIXTURES, VM_TASK, fake_getattr
from memsched.admission import BW_UNIT
from memsched.errors import AccessDeniedError, ConfigError, KernelError
from memsched.live.deadline import (
    DlSysctls,
    DlTask,
    deadline_tasks,
    dl_sysctls,
    dl_target,
    fair_servers,
    predict,
    predict_admission,
    root_domain,
)
from memsched.live.roots import LiveRoots
from memsched.uapi.sched import SchedAttr

VM = FIXTURES / "vm-2cpu-6.18"


# --------------------------------------------------------------------------------------------- parsers


# --------------------------------------------------------------------------------------------- readers


def test_deadline_tasks_skips_zombies_and_sugov(vm: LiveRoots) -> None:
    """Only the live deadline task is counted; the zombie and schedutil's sugov kthread are not even asked."""
    calls: list[int] = []
    tasks = deadline_tasks(vm, getattr_fn=fake_getattr({4242: VM_TASK}, calls))
    assert calls == [4242]
    assert [(t.pid, t.tid, t.comm, t.cpu, t.bw) for t in tasks] == [(4242, 4242, "cat", 1, 209715)]
    assert tasks[0].runtime_left_ns == 2_000_000


def test_deadline_tasks_skips_threads_that_vanished(vm: LiveRoots) -> None:
    """A task that exits between the /proc scan and sched_getattr (ESRCH) is skipped."""
    assert deadline_tasks(vm, getattr_fn=fake_getattr({})) == ()


def test_deadline_tasks_refuses_unreadable_reservation(vm: LiveRoots) -> None:
    """Any other sched_getattr failure stops the prediction: an unknown bandwidth cannot be assumed 0."""

    def denied(tid: int) -> SchedAttr:
        raise KernelError(errno.EPERM, "denied")

    with pytest.raises(KernelError, match="reservation of deadline task 4242") as e:
        deadline_tasks(vm, getattr_fn=denied)
    assert isinstance(e.value, AccessDeniedError) and e.value.errno == errno.EPERM


def test_root_domain_symmetric(vm: LiveRoots) -> None:
    """Two equal CPUs: the kernel's capacity is cpus << SCHED_CAPACITY_SHIFT."""
    rd = root_domain(vm)
    assert rd.cpus == (0, 1) and rd.capacities == (1024, 1024) and rd.capacity == 2048


def test_root_domain_excludes_isolated_cpus(arm: LiveRoots) -> None:
    """Housekeeping CPUs form one domain, isolated CPUs another; asymmetric capacities are summed."""
    assert root_domain(arm).cpus == (0, 1)
    assert root_domain(arm).capacities == (1024, 446)
    assert root_domain(arm, cpu=3).cpus == (2, 3)


def test_root_domain_refuses_offline_cpu(vm: LiveRoots) -> None:
    """Asking for the domain of a CPU that is not online is a ConfigError."""
    with pytest.raises(ConfigError, match="online CPU"):
        root_domain(vm, cpu=7)


def test_dl_sysctls(vm: LiveRoots, arm: LiveRoots) -> None:
    """The four sysctls are read as integers."""
    s = dl_sysctls(vm)
    assert (s.rt_runtime_us, s.rt_period_us, s.period_min_us, s.period_max_us) == (
        950000,
        1000000,
        100,
        4194304,
    )
    assert dl_sysctls(arm).period_min_us == 1000


def test_dl_sysctls_missing_bounds_use_defaults_with_a_note(tmp_path: Path) -> None:
    """Missing period bounds fall back to the kernel defaults and say so; a missing rt sysctl raises."""
    kernel = tmp_path / "proc/sys/kernel"
    kernel.mkdir(parents=True)
    roots = LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys")
    with pytest.raises(KernelError, match="sched_rt_runtime_us"):
        dl_sysctls(roots)
    (kernel / "sched_rt_runtime_us").write_text("-1\n")
    (kernel / "sched_rt_period_us").write_text("1000000\n")
    s = dl_sysctls(roots)
    assert (s.rt_runtime_us, s.period_min_us, s.period_max_us) == (-1, 100, 1 << 22)
    assert len(s.notes) == 2 and "sched_deadline_period_min_us" in s.notes[0]


def test_fair_servers_default_when_debugfs_not_mounted(vm: LiveRoots) -> None:
    """No debugfs on a 6.18 kernel: the 50 ms / 1000 ms defaults, and the reason says debugfs is missing."""
    fs = fair_servers((0, 1), vm)
    assert fs.source == "default" and "not mounted" in fs.reason
    assert fs.params == ((0, 50_000_000, 1_000_000_000), (1, 50_000_000, 1_000_000_000))
    assert fs.bws == (52428, 52428)


def test_fair_servers_read_from_debugfs(arm: LiveRoots) -> None:
    """Readable debugfs values win over the defaults (cpu0 runs a 100 ms server here)."""
    fs = fair_servers((0, 1, 2, 3), arm)
    assert fs.source == "debugfs"
    assert fs.bws == (104857, 52428, 52428, 0)


def test_fair_servers_absent_on_kernel_without_them(old: LiveRoots) -> None:
    """debugfs mounted without sched/fair_server: no deadline servers at all."""
    fs = fair_servers((0, 1), old)
    assert fs.source == "none" and fs.params == ()


def test_fair_servers_old_kernel_without_debugfs(tmp_path: Path) -> None:
    """Without debugfs, a kernel older than 6.12 is assumed to have no fair_server."""
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.8.0\n")
    fs = fair_servers((0,), LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"))
    assert fs.source == "none" and "6.8.0" in fs.reason


def test_fair_servers_unreadable_debugfs_falls_back_with_reason(tmp_path: Path) -> None:
    """debugfs mounted but the files refuse reads (as on the project's VM): defaults, naming the failure."""
    cpu0 = tmp_path / "sys/kernel/debug/sched/fair_server/cpu0"
    (cpu0 / "runtime").mkdir(parents=True)  # reading a directory fails like an EPERM read
    (cpu0 / "period").write_text("1000000000\n")
    fs = fair_servers((0,), LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"))
    assert fs.source == "default" and "reading" in fs.reason and "runtime" in fs.reason


# --------------------------------------------------------------------------------------------- prediction


def test_prediction_on_the_vm(vm: LiveRoots) -> None:
    """Limit 95 % of 2 CPUs, minus two 5 % fair_servers and the 0.2-CPU task: 1677723 BW_UNIT left."""
    p = predict_admission(
        SchedAttr.deadline(1_000_000, 10_000_000), roots=vm, getattr_fn=fake_getattr({4242: VM_TASK})
    )
    assert p.limit_bw == (996147 * 2048) >> 10 == 1992294
    assert (p.servers_bw, p.tasks_bw) == (2 * 52428, 209715)
    assert p.total_bw == 104856 + 209715
    assert p.available_bw == 1992294 - 104856 - 209715
    assert p.requested_bw == 104857 and p.admitted and p.expected_errno == 0


def test_prediction_reproduces_the_measured_1_80_cpu_limit(vm: LiveRoots) -> None:
    """The fair_servers (5 % per CPU, kernel/sched/deadline.c 6.18) against the 95 % limit on 6.18: 0.9 + 0.9
    admitted, then 0.011 more refused with EBUSY."""
    admitted: list[DlTask] = []
    answers = []
    for runtime in (9_000_000, 9_000_000, 110_000):
        attr = SchedAttr.deadline(runtime, 10_000_000)
        p = predict(
            attr,
            tasks=admitted,
            servers=fair_servers((0, 1), vm),
            domain=root_domain(vm),
            sysctls=dl_sysctls(vm),
        )
        answers.append(p.expected_errno)
        if p.admitted:
            admitted.append(_task(len(admitted), attr))
    assert answers == [0, 0, errno.EBUSY]


def _task(tid: int, attr: SchedAttr) -> DlTask:
    return DlTask(pid=tid, tid=tid, comm="t", cpu=0, attr=attr)


def test_prediction_of_invalid_parameters(vm: LiveRoots) -> None:
    """Parameters that break __checkparam_dl are predicted as EINVAL with the rule in the reason."""
    p = predict_admission(
        SchedAttr.deadline(5_000_000, 1_000_000), roots=vm, getattr_fn=fake_getattr({4242: VM_TASK})
    )
    assert p.verdict == "invalid" and p.expected_errno == errno.EINVAL and "runtime <= deadline" in p.reason


def test_prediction_uses_the_kernels_period_bounds(arm: LiveRoots) -> None:
    """sched_deadline_period_min_us = 1000 on the arm tree refuses a 500 us period."""
    p = predict_admission(SchedAttr.deadline(100_000, 500_000), roots=arm, getattr_fn=fake_getattr(ARM_TASKS))
    assert p.verdict == "invalid" and "period must be within [1000000" in p.reason


def test_prediction_changing_an_existing_reservation(vm: LiveRoots) -> None:
    """For a task that already is SCHED_DEADLINE, its bandwidth is replaced (old_bw), not added."""
    getattr_fn = fake_getattr({4242: VM_TASK})
    same = predict_admission(VM_TASK, roots=vm, pid=4242, getattr_fn=getattr_fn)
    assert same.admitted and same.old_bw == 209715 and same.tasks == ()
    assert same.target is not None and same.to_dict()["target"]["reservation"]["tid"] == 4242
    # 1.80 CPUs minus nothing else: a 0.95-CPU reservation fits only because the old 0.2 is given back.
    bigger = predict_admission(
        SchedAttr.deadline(9_500_000, 10_000_000), roots=vm, pid=4242, getattr_fn=getattr_fn
    )
    assert bigger.available_bw == 1992294 - 104856 and bigger.admitted


def test_prediction_refuses_a_target_pinned_inside_its_root_domain(vm: LiveRoots) -> None:
    """A `taskset -c 0 sleep` on the 2-CPU domain: EPERM (__sched_setscheduler's affinity rule), naming its
    affinity and the span; the target is described, not the caller."""
    p = predict_admission(VM_TASK, roots=vm, pid=4500, getattr_fn=fake_getattr({4242: VM_TASK}))
    assert p.verdict == "narrow-affinity" and p.expected_errno == errno.EPERM and not p.admitted
    assert "affinity 0 does not cover its root domain 0-1" in p.reason
    target = p.to_dict()["target"]
    assert target == {
        "pid": 4500,
        "comm": "sleep",
        "cpu": 0,
        "policy": "SCHED_NORMAL",
        "rt_priority": 0,
        "affinity": "0",
        "affinity_note": None,
        "bw": 0,
        "reservation": None,
    }
    # the other deadline task stays counted: only a deadline target's own reservation is taken out
    assert p.old_bw == 0 and [t.tid for t in p.tasks] == [4242]


def test_prediction_checks_the_span_of_the_targets_own_root_domain(arm: LiveRoots) -> None:
    """On isolated CPU 3 the span is 2-3: affinity 2-3 passes (and its old reservation is released), affinity 3
    alone is refused; neither is compared with the housekeeping domain 0-1."""
    wide = predict_admission(
        SchedAttr.deadline(1_000_000, 2_000_000), roots=arm, pid=600, getattr_fn=fake_getattr(ARM_TASKS)
    )
    assert wide.domain.cpus == (2, 3) and wide.admitted and wide.old_bw == 524288 and wide.tasks == ()
    narrow = predict_admission(VM_TASK, roots=arm, pid=700, getattr_fn=fake_getattr(ARM_TASKS))
    assert narrow.verdict == "narrow-affinity" and "affinity 3 does not cover its root domain 2-3" in narrow.reason


def test_affinity_rule_is_off_without_a_bandwidth_limit(vm: LiveRoots) -> None:
    """sched_rt_runtime_us = -1: dl_bandwidth_enabled() is false and the kernel skips the affinity rule."""
    target = dl_target(vm, 4500)
    p = predict(
        VM_TASK, tasks=(), servers=_VM_SERVERS, domain=_VM_DOMAIN, sysctls=DlSysctls(-1, 1_000_000), target=target
    )
    assert p.admitted


def test_unknown_target_affinity_is_a_note_not_a_pass(vm: LiveRoots) -> None:
    """Without a readable Cpus_allowed_list the rule is not predicted, and the notes say so."""
    p = predict_admission(VM_TASK, roots=vm, pid=4242, getattr_fn=fake_getattr({4242: VM_TASK}))
    assert p.target is not None and p.target.affinity is None
    assert any("affinity rule was not checked" in n for n in p.notes)
    assert p.to_dict()["notes"] == list(p.notes)


def test_held_bandwidth_of_a_deadline_target_adds_up(vm: LiveRoots) -> None:
    """total_bw (dl_b->total_bw) = fair_servers + other tasks + the target's own reservation; the request may use
    what is free plus what sched_dl_overflow releases (__dl_sub of p->dl.dl_bw)."""
    p = predict_admission(
        SchedAttr.deadline(9_000_000, 10_000_000), roots=vm, pid=4242, getattr_fn=fake_getattr({4242: VM_TASK})
    )
    assert p.total_bw == p.servers_bw + p.tasks_bw + p.old_bw == 104856 + 0 + 209715
    assert p.free_bw == 1992294 - 314571 and p.available_bw == p.free_bw + p.old_bw
    doc = p.to_dict()
    assert doc["total_bw"] == doc["servers_bw"] + doc["tasks_bw"] + doc["old_bw"]
    assert doc["available_bw"] == doc["free_bw"] + doc["old_bw"]


def test_prediction_on_asymmetric_isolated_machine(arm: LiveRoots) -> None:
    """Housekeeping domain: capacity 1024 + 446, debugfs servers of CPUs 0-1, isolated CPU's task excluded."""
    p = predict_admission(
        SchedAttr.deadline(1_000_000, 10_000_000), roots=arm, getattr_fn=fake_getattr(ARM_TASKS)
    )
    assert p.domain.cpus == (0, 1)
    assert p.limit_bw == (943718 * 1470) >> 10
    assert p.servers_bw == 104857 + 52428
    assert [t.tid for t in p.tasks] == [500] and p.tasks_bw == 314572


def test_prediction_without_bandwidth_or_limit(vm: LiveRoots) -> None:
    """sched_rt_runtime_us = 0 predicts EPERM; -1 admits anything (no limit)."""
    servers, domain = fair_servers((0, 1), vm), root_domain(vm)
    zero = predict(VM_TASK, tasks=(), servers=servers, domain=domain, sysctls=DlSysctls(0, 1_000_000))
    assert zero.verdict == "no-bandwidth" and zero.expected_errno == errno.EPERM
    unlimited = predict(VM_TASK, tasks=(), servers=servers, domain=domain, sysctls=DlSysctls(-1, 1_000_000))
    assert unlimited.admitted and unlimited.limit_bw is None and unlimited.available_bw is None


def test_prediction_json_document(vm: LiveRoots) -> None:
    """The --json document carries total and requested bandwidth and the boolean verdict, and is JSON."""
    doc = predict_admission(VM_TASK, roots=vm, getattr_fn=fake_getattr({4242: VM_TASK})).to_dict()
    json.dumps(doc)
    assert doc["admitted"] is True and doc["requested_bw"] == 209715 and doc["total_bw"] == 104856 + 209715
    assert doc["fair_server"]["source"] == "default" and doc["tasks"][0]["tid"] == 4242
    assert doc["bw_unit"] == BW_UNIT


@settings(max_examples=200, deadline=None)
@given(
    period=st.integers(min_value=100_000, max_value=4_194_304_000),
    runtime_frac=st.floats(min_value=0.0, max_value=1.0),
    deadline_frac=st.floats(min_value=0.0, max_value=1.0),
)
def test_prediction_admits_iff_request_fits(period: int, runtime_frac: float, deadline_frac: float) -> None:
    """For every valid reservation: admitted exactly when its bandwidth is <= the bandwidth available."""
    runtime = max(1024, int(period * runtime_frac))
    if runtime > period:
        return
    deadline = runtime + int((period - runtime) * deadline_frac)
    attr = SchedAttr.deadline(runtime, deadline, period)
    p = predict(attr, tasks=(_task(1, VM_TASK),), servers=_VM_SERVERS, domain=_VM_DOMAIN, sysctls=_VM_SYSCTLS)
    assert p.verdict in ("admitted", "overflow")
    assert p.admitted == (p.requested_bw <= (p.available_bw or 0))


_VM_ROOTS = LiveRoots(proc_root=VM / "proc", sys_root=VM / "sys")
_VM_SERVERS = fair_servers((0, 1), _VM_ROOTS)
_VM_DOMAIN = root_domain(_VM_ROOTS)
_VM_SYSCTLS = dl_sysctls(_VM_ROOTS)
