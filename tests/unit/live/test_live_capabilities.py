"""live.capabilities(): one answer with a reason per capability, from fixture trees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from helpers.live_fixtures import ARM_TASKS, VM_TASK, fake_getattr, tree
from memsched.errors import UnsupportedError
from memsched.live import capabilities
from memsched.live.capabilities import _PROBES, Capabilities, probe
from memsched.live.dl_explain import deadline_privilege
from memsched.live.roots import LiveRoots
from memsched.uapi.sched import SchedAttr


def test_every_capability_has_exactly_one_probe() -> None:
    """Adding a field without a probe (or a probe without a field) is caught here."""
    assert list(_PROBES) == [f.name for f in dataclasses.fields(Capabilities)]


def test_one_probe_is_that_field_of_capabilities(vm: LiveRoots, arm: LiveRoots) -> None:
    """probe(name) (what `rt admit` asks) answers as capabilities() does, field by field; an unknown name is
    refused with the list."""
    for roots, tasks in ((vm, {0: SchedAttr(), 4242: VM_TASK}), (arm, {0: SchedAttr(), **ARM_TASKS})):
        caps = capabilities(roots, getattr_fn=fake_getattr(tasks))
        for name in _PROBES:
            assert probe(name, roots, getattr_fn=fake_getattr(tasks)) == getattr(caps, name), name
    with pytest.raises(ValueError, match=r"no capability 'deadline'.*sched_deadline_permitted"):
        probe("deadline", vm)


def test_vm_capabilities(vm: LiveRoots) -> None:
    """On the VM tree: deadline available and permitted; fair_server assumed; no nohz_full, no isolation."""
    caps = capabilities(vm, getattr_fn=fake_getattr({0: SchedAttr(), 4242: VM_TASK}))
    assert caps.sched_deadline.available and "6.18.44" in caps.sched_deadline.reason
    assert caps.sched_deadline_permitted.available
    assert "CAP_SYS_NICE held; affinity 0-1 covers root domain 0-1" in caps.sched_deadline_permitted.reason
    assert "1.900 CPUs" in caps.sched_deadline_permitted.reason
    assert not caps.fair_server_params.available and "not mounted" in caps.fair_server_params.reason
    assert not caps.nohz_full.available and "CONFIG_NO_HZ_FULL" in caps.nohz_full.reason
    assert not caps.isolated_cpus.available and "empty" in caps.isolated_cpus.reason


def test_arm_capabilities(arm: LiveRoots) -> None:
    """Arm tree: not permitted (no CAP_SYS_NICE, pinned to CPU 0); debugfs readable; CPUs 2-3 isolated."""
    caps = capabilities(arm, getattr_fn=fake_getattr({0: SchedAttr(), **ARM_TASKS}))
    assert caps.sched_deadline.available
    reason = caps.sched_deadline_permitted.reason
    assert not caps.sched_deadline_permitted.available
    assert "lacks CAP_SYS_NICE" in reason and "affinity 0 is smaller than its root domain 0-1" in reason
    assert caps.fair_server_params.available
    assert caps.nohz_full.available and caps.nohz_full.reason == "nohz_full CPUs: 2-3"
    assert caps.isolated_cpus.available and caps.isolated_cpus.reason == "isolated CPUs: 2-3"
    with pytest.raises(UnsupportedError, match="lacks CAP_SYS_NICE"):
        caps.require("sched_deadline_permitted")
    # one capability on its own (what ``rt admit`` probes): the same error, named the same way
    with pytest.raises(UnsupportedError, match=r"sched deadline permitted.*lacks CAP_SYS_NICE"):
        caps.sched_deadline_permitted.require("sched_deadline_permitted")
    caps.sched_deadline.require("sched_deadline")  # available: no error


def test_nohz_full_built_but_unused(old: LiveRoots) -> None:
    """nohz_full printing "(null)" means the kernel supports it but no CPU uses it."""
    caps = capabilities(old, getattr_fn=fake_getattr({0: SchedAttr()}))
    assert not caps.nohz_full.available and "lists no CPU" in caps.nohz_full.reason


def test_kernel_without_sched_deadline(vm: LiveRoots) -> None:
    """sched_getattr missing: deadline unavailable and not permitted, with the same reason."""

    def enosys(pid: int) -> SchedAttr:
        raise UnsupportedError(
            "sched_getattr", "this kernel has no sched_getattr system call (added in 3.14)"
        )

    caps = capabilities(vm, getattr_fn=enosys)
    assert not caps.sched_deadline.available and "3.14" in caps.sched_deadline.reason
    assert caps.sched_deadline_permitted == caps.sched_deadline


def test_empty_tree_never_raises(tmp_path: Path) -> None:
    """Probes answer "no" with a reason when nothing is there; they do not raise."""
    caps = capabilities(
        LiveRoots(proc_root=tmp_path, sys_root=tmp_path), getattr_fn=fake_getattr({0: SchedAttr()})
    )
    for name, cap in caps.to_dict().items():
        assert cap["reason"], name
    assert not caps.isolated_cpus.available and "probe failed" in caps.isolated_cpus.reason


def test_deadline_privilege_of_another_task(arm: LiveRoots) -> None:
    """The caller's capabilities, but the target task's affinity (its /proc/<pid>/status)."""
    priv = deadline_privilege(arm, pid=500)
    assert priv.has_cap_sys_nice is False
    assert priv.affinity is None  # the fixture has no status for task 500: unknown, not assumed
    assert "affinity" not in " ".join(priv.problems())


def test_numa_capabilities_of_the_fixtures() -> None:
    """4-node tree: several nodes, numa_maps, kernel balancing on; 2-node: no numa_balancing sysctl; the VM
    tree has no node directory at all."""
    four = capabilities(tree("numa-4node"), getattr_fn=fake_getattr({0: SchedAttr()}))
    assert four.numa_nodes.available and four.numa_nodes.reason == "4 NUMA nodes online (0-3)"
    assert four.numa_maps.available
    assert four.numa_balancing.available and "NUMA_BALANCING_NORMAL" in four.numa_balancing.reason
    two = capabilities(tree("numa-2node"), getattr_fn=fake_getattr({0: SchedAttr()}))
    assert two.numa_nodes.available and not two.numa_balancing.available
    assert "CONFIG_NUMA_BALANCING" in two.numa_balancing.reason
    vm = capabilities(tree("vm-2cpu-6.18"), getattr_fn=fake_getattr({0: SchedAttr(), 4242: VM_TASK}))
    assert not vm.numa_nodes.available and "CONFIG_NUMA" in vm.numa_nodes.reason


def test_one_node_and_balancing_off(tmp_path: Path) -> None:
    """One online node: nothing to balance; numa_balancing 0: the kernel's balancing is off."""
    (tmp_path / "sys/devices/system/node").mkdir(parents=True)
    (tmp_path / "sys/devices/system/node/online").write_text("0\n")
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/numa_balancing").write_text("0\n")
    caps = capabilities(
        LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"), getattr_fn=fake_getattr({0: SchedAttr()})
    )
    assert not caps.numa_nodes.available and "moves are no-ops" in caps.numa_nodes.reason
    assert not caps.numa_balancing.available and "is 0" in caps.numa_balancing.reason
