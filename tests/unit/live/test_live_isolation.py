"""Isolated and nohz_full CPUs from sysfs and the kernel command line."""

from __future__ import annotations

from memsched.live.isolation import cpu_isolation, isolation_boot_params
from memsched.live.roots import LiveRoots


def test_vm_has_no_isolation(vm: LiveRoots) -> None:
    """Empty isolated file and no nohz_full file (kernel without CONFIG_NO_HZ_FULL)."""
    iso = cpu_isolation(vm)
    assert iso.online == {0, 1} and iso.isolated == frozenset() and iso.nohz_full is None
    assert iso.housekeeping == {0, 1} and iso.boot_params == {}
    assert iso.describe(0) == "-"


def test_arm_isolation(arm: LiveRoots) -> None:
    """isolcpus and nohz_full CPUs, and the boot parameters that set them."""
    iso = cpu_isolation(arm)
    assert iso.isolated == {2, 3} and iso.nohz_full == {2, 3} and iso.housekeeping == {0, 1}
    assert iso.boot_params == {
        "isolcpus": "domain,managed_irq,2-3",
        "nohz_full": "2-3",
        "rcu_nocbs": "2-3",
        "irqaffinity": "0-1",
    }
    assert iso.describe(3) == "isolated,nohz_full"
    assert iso.to_dict()["nohz_full"] == "2-3"


def test_nohz_full_null_is_empty_not_missing(old: LiveRoots) -> None:
    """ "(null)" means CONFIG_NO_HZ_FULL without nohz_full=: an empty set, distinct from None."""
    assert cpu_isolation(old).nohz_full == frozenset()


def test_boot_params_stop_at_double_dash() -> None:
    """Words after "--" belong to init, not to the kernel."""
    assert isolation_boot_params("quiet nohz_full=1 -- isolcpus=3") == {"nohz_full": "1"}
