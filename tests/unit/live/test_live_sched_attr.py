"""sched_setattr/sched_getattr ABI numbers (live.sched_attr) and errno -> explained error mapping (live.dl_explain)."""

from __future__ import annotations

import errno
import platform

import pytest

from helpers.live_fixtures import ARM_TASKS, VM_TASK, fake_getattr
from memsched.errors import AccessDeniedError, KernelError, ProcessGoneError, UnsupportedError
from memsched.live.deadline import predict_admission
from memsched.live.dl_explain import (
    SetattrContext,
    caller_permission,
    deadline_privilege,
    describe_attr,
    format_bw,
    gather_context,
    setattr_error,
    target_permission,
)
from memsched.live.roots import LiveRoots
from memsched.live.sched_attr import SYSCALL_NUMBERS, syscall_abi
from memsched.uapi.sched import SCHED_ATTR_SIZE_VER0, SchedAttr, SchedFlag


@pytest.mark.parametrize(
    ("machine", "bits", "multiarch", "numbers"),
    [
        ("x86_64", 64, "x86_64-linux-gnu", (314, 315)),
        ("x86_64", 32, "i386-linux-gnu", (351, 352)),
        ("i686", 32, "", (351, 352)),
        ("aarch64", 64, "aarch64-linux-gnu", (274, 275)),
        ("aarch64", 32, "arm-linux-gnueabihf", (380, 381)),
        ("armv7l", 32, "arm-linux-gnueabihf", (380, 381)),
        ("ppc64le", 64, "powerpc64le-linux-gnu", (355, 356)),
        ("ppc", 32, "", (355, 356)),
        ("s390x", 64, "s390x-linux-gnu", (345, 346)),
        ("riscv64", 64, "riscv64-linux-gnu", (274, 275)),
        ("loongarch64", 64, "", (274, 275)),
    ],
)
def test_syscall_numbers_per_abi(machine: str, bits: int, multiarch: str, numbers: tuple[int, int]) -> None:
    """Each ABI maps to the numbers in its kernel syscall table (a 32-bit process uses the 32-bit table)."""
    assert SYSCALL_NUMBERS[syscall_abi(machine, bits, multiarch)] == numbers


@pytest.mark.parametrize(("machine", "multiarch"), [("mips64", ""), ("x86_64", "x86_64-linux-gnux32")])
def test_unknown_abi_is_unsupported(machine: str, multiarch: str) -> None:
    """An ABI whose numbers are not in the table is refused, not guessed."""
    with pytest.raises(UnsupportedError):
        syscall_abi(machine, 64, multiarch)


@pytest.mark.skipif(platform.system() != "Linux", reason="sched_setattr is Linux-only")
def test_running_abi_is_known() -> None:
    """The machine running the tests resolves to a known table."""
    assert (
        syscall_abi(platform.machine(), 64 if platform.architecture()[0] == "64bit" else 32)
        in SYSCALL_NUMBERS
    )


def test_describe_attr() -> None:
    """A deadline reservation is described with its times, bandwidth and flags."""
    text = describe_attr(SchedAttr.deadline(2_000_000, 8_000_000, 10_000_000, SchedFlag.DL_OVERRUN))
    assert text == (
        "SCHED_DEADLINE runtime 2.00 ms / deadline 8.00 ms / period 10.00 ms, 0.200 CPUs, flags dl-overrun"
    )
    assert describe_attr(SchedAttr()) == "SCHED_NORMAL"
    assert format_bw(524288) == "0.500 CPUs (524288/1048576 BW_UNIT)"


def test_einval_names_the_violated_rule() -> None:
    """EINVAL on a reservation that breaks __checkparam_dl says which rule."""
    err = setattr_error(errno.EINVAL, 7, SchedAttr.deadline(5_000_000, 1_000_000), SetattrContext())
    assert isinstance(err, KernelError) and err.errno == errno.EINVAL
    assert "runtime <= deadline <= period" in str(err) and "pid 7" in str(err)


def test_einval_uses_the_kernels_period_bounds() -> None:
    """The rule is checked against this kernel's sched_deadline_period_min_us, not the default."""
    attr = SchedAttr.deadline(100_000, 500_000)
    assert "period must be within [1000000" in str(
        setattr_error(errno.EINVAL, 1, attr, SetattrContext(period_min_us=1000))
    )
    assert "pass __checkparam_dl" in str(setattr_error(errno.EINVAL, 1, attr, SetattrContext()))


def test_einval_unknown_flags() -> None:
    """EINVAL with a flag the kernel does not know names the flag bits."""
    attr = SchedAttr.deadline(1_000_000, 10_000_000, flags=0x100)
    assert "unknown sched_flags 0x100" in str(setattr_error(errno.EINVAL, 1, attr, SetattrContext()))


def test_ebusy_reports_requested_and_available_bandwidth(vm: LiveRoots) -> None:
    """EBUSY says admission control refused and by how much: requested and available in CPUs and BW_UNIT."""
    attr = SchedAttr.deadline(9_000_000, 10_000_000)
    prediction = predict_admission(attr, roots=vm, getattr_fn=fake_getattr({4242: VM_TASK}))
    text = str(setattr_error(errno.EBUSY, 9, attr, SetattrContext(prediction=prediction)))
    assert "admission control (EBUSY)" in text
    assert "requested 0.900 CPUs (943718/1048576 BW_UNIT)" in text
    assert f"available 1.600 CPUs ({1992294 - 104856 - 209715}/1048576 BW_UNIT)" in text
    assert "1 deadline task(s)" in text and "fair_servers [default]" in text
    # the prediction admitted it, so the message explains the only invisible holder of bandwidth
    assert "0-lag" in text


def test_ebusy_without_a_prediction() -> None:
    """EBUSY without facts still says it was admission control."""
    text = str(setattr_error(errno.EBUSY, 1, VM_TASK, SetattrContext()))
    assert "refused by deadline admission control (EBUSY)" in text


def test_eperm_names_cap_sys_nice() -> None:
    """EPERM without CAP_SYS_NICE names it, and says RLIMIT_RTPRIO does not help SCHED_DEADLINE."""
    text = str(
        setattr_error(errno.EPERM, 1, VM_TASK, SetattrContext(has_cap_sys_nice=False, rlimit_rtprio=95))
    )
    assert "lacks CAP_SYS_NICE" in text
    assert isinstance(
        setattr_error(errno.EPERM, 1, VM_TASK, SetattrContext(has_cap_sys_nice=False)), AccessDeniedError
    )
    assert (
        "RLIMIT_RTPRIO (95 here) only lets unprivileged users use SCHED_FIFO/SCHED_RR, not SCHED_DEADLINE"
        in text
    )


def test_eperm_names_affinity_and_bandwidth_causes() -> None:
    """EPERM from a too-narrow affinity or no bandwidth names that cause and no other."""
    ctx = SetattrContext(
        has_cap_sys_nice=True, affinity=frozenset({0}), domain_cpus=frozenset({0, 1}), rt_runtime_us=0
    )
    text = str(setattr_error(errno.EPERM, 1, VM_TASK, ctx))
    assert "affinity 0 is smaller than its root domain 0-1" in text
    assert "sched_rt_runtime_us is 0" in text and "CAP_SYS_NICE" not in text


def test_eperm_with_no_known_cause() -> None:
    """EPERM with every known rule satisfied points at security modules."""
    ctx = SetattrContext(has_cap_sys_nice=True, affinity=frozenset({0, 1}), domain_cpus=frozenset({0, 1}))
    assert "security module" in str(setattr_error(errno.EPERM, 1, VM_TASK, ctx))


def test_gather_context_for_eperm_reads_the_fixture(arm: LiveRoots) -> None:
    """The EPERM facts come from /proc/self/status and /proc/self/limits (the caller) and the root domain."""
    ctx = gather_context(errno.EPERM, 0, VM_TASK, arm, 56)
    assert ctx.has_cap_sys_nice is False and ctx.rlimit_rtprio == 0
    assert ctx.affinity == frozenset({0}) and ctx.domain_cpus == frozenset({0, 1})
    assert ctx.period_min_us == 1000 and ctx.rt_runtime_us == 900000
    text = str(setattr_error(errno.EPERM, 0, VM_TASK, ctx))
    assert "CAP_SYS_NICE" in text and "affinity 0 is smaller" in text


def test_eperm_facts_use_the_root_domain_of_the_targets_cpu(arm: LiveRoots) -> None:
    """Task 700 runs on isolated CPU 3 pinned to it: the kernel compares its affinity with the span 2-3 of its own
    rq->rd, not with the housekeeping domain 0-1."""
    priv = deadline_privilege(arm, pid=700)
    assert priv.affinity == frozenset({3}) and priv.domain_cpus == frozenset({2, 3})
    assert any("affinity 3 is smaller than its root domain 2-3" in c for c in priv.problems())
    assert deadline_privilege(arm, pid=600).domain_cpus == frozenset({2, 3})


def test_caller_and_target_permission_are_told_apart(vm: LiveRoots, arm: LiveRoots) -> None:
    """The caller side is CAP_SYS_NICE only (user_check_sched_setscheduler); the target side is its affinity
    against its root domain, known or not."""
    assert caller_permission(vm)[0] is True and "holds CAP_SYS_NICE" in caller_permission(vm)[1]
    ok, why = caller_permission(arm)  # unprivileged and pinned to CPU 0: only the capability counts here
    assert ok is False and "lacks CAP_SYS_NICE" in why and "affinity" not in why
    pinned = predict_admission(VM_TASK, roots=vm, pid=4500, getattr_fn=fake_getattr({4242: VM_TASK}))
    assert target_permission(pinned) == (False, pinned.reason)
    unknown = predict_admission(VM_TASK, roots=vm, pid=4242, getattr_fn=fake_getattr({4242: VM_TASK}))
    assert target_permission(unknown)[0] is None
    wide = predict_admission(VM_TASK, roots=arm, pid=600, getattr_fn=fake_getattr(ARM_TASKS))
    assert target_permission(wide) == (
        True,
        "pid 600's affinity 2-3 covers its root domain 2-3; deadline limit 1.292 CPUs",
    )


def test_gather_context_for_ebusy_predicts(arm: LiveRoots, monkeypatch: pytest.MonkeyPatch) -> None:
    """The EBUSY facts are a prediction for the same task (here with the fixture's deadline tasks)."""
    monkeypatch.setattr("memsched.live.deadline.sched_getattr", fake_getattr(ARM_TASKS))
    ctx = gather_context(errno.EBUSY, 0, VM_TASK, arm, 56)
    assert ctx.prediction is not None and [t.tid for t in ctx.prediction.tasks] == [500]


def test_e2big_esrch_enosys() -> None:
    """E2BIG reports both sizes, ESRCH the pid, ENOSYS that the kernel lacks the call."""
    attr = SchedAttr.deadline(1_000_000, 10_000_000)
    assert "we sent 56 bytes, the kernel's struct sched_attr is 48 bytes" in str(
        setattr_error(errno.E2BIG, 1, attr, SetattrContext(kernel_size=SCHED_ATTR_SIZE_VER0))
    )
    assert "no task with pid 99" in str(setattr_error(errno.ESRCH, 99, attr, SetattrContext()))
    assert isinstance(setattr_error(errno.ESRCH, 99, attr, SetattrContext()), ProcessGoneError)
    assert isinstance(setattr_error(errno.ENOSYS, 1, attr, SetattrContext()), UnsupportedError)


@pytest.mark.parametrize(
    ("field", "value"), [("sched_runtime", 2e6), ("sched_period", "10000000"), ("sched_priority", True)]
)
def test_a_sched_attr_field_that_is_not_an_integer_is_refused_at_once(field: str, value: object) -> None:
    """Not later in pack() (struct.error) or checkparam_dl (TypeError): at construction, naming the field."""
    import numpy as np

    from memsched.errors import ConfigError
    from memsched.uapi.sched import SchedPolicy

    with pytest.raises(ConfigError, match=f"'{field}' must be an integer( number of nanoseconds)? \\(got"):
        SchedAttr(**{"sched_policy": SchedPolicy.DEADLINE, "sched_runtime": 2_000_000, field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^'size' must be an integer \(got 56.0\)"):  # (not "nanoseconds")
        SchedAttr(size=56.0)  # type: ignore[arg-type]
    numpy_int = SchedAttr.deadline(np.int64(2_000_000), 10_000_000)  # type: ignore[arg-type]
    assert numpy_int.pack() == SchedAttr.deadline(2_000_000, 10_000_000).pack()
