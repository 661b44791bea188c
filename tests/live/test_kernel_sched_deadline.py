"""SCHED_DEADLINE on the running kernel: admission parity, rt run, overruns and failure paths.

Every test uses the ``deadline_machine`` fixture: it skips with the kernel's reason when SCHED_DEADLINE is
missing or not permitted, and fails the test if a SCHED_DEADLINE task is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.kernel_helpers import child_pids, foreign_deadline_tids
from memsched.admission import dl_bw_of
from memsched.errors import ConfigError, KernelError
from memsched.live.dl_explain import sched_setattr
from memsched.live.parity import admission_parity
from memsched.live.rt_run import run_deadline
from memsched.live.sched_attr import raw_sched_setattr, sched_getattr
from memsched.uapi.sched import SchedAttr, SchedFlag, SchedPolicy

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("deadline_machine")]

MEMSCHED = [sys.executable, "-m", "memsched"]


def cli_admit(attr: SchedAttr) -> bool:
    """``memsched rt admit --json`` in a subprocess: the CLI's verdict for a new task."""
    argv = [*MEMSCHED, "rt", "admit", "--json", "--runtime", f"{attr.sched_runtime}ns"]
    argv += ["--deadline", f"{attr.sched_deadline}ns"]
    if attr.sched_period:
        argv += ["--period", f"{attr.sched_period}ns"]
    if attr.sched_flags & SchedFlag.RECLAIM:
        argv += ["--flags", "reclaim"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 2:  # invalid parameters: refused before any prediction, nothing on stdout
        assert proc.stdout == "" and "must" in proc.stderr
        return False
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["admitted"] == (proc.returncode == 0)
    return bool(doc["admitted"])


def test_admission_parity_with_the_kernel(dl_bandwidth: Callable[..., None]) -> None:
    """rt admit's prediction equals the kernel's answer for every attempt, up to the exact bandwidth unit."""
    dl_bandwidth(1.0, idle=True)  # exact boundaries: another program's reservation coming or going moves them
    seen: set[int] = set()  # other programs' deadline tasks during the run (other sessions on a shared machine)
    done = threading.Event()

    def watch_others() -> None:
        while not done.wait(0.02):
            seen.update(foreign_deadline_tids())

    watcher = threading.Thread(target=watch_others, daemon=True)
    watcher.start()
    try:
        report = admission_parity(seed=20121105, rounds=4, cli=cli_admit, cli_every=12)
    finally:
        done.set()
        watcher.join()
    print(report.summary())  # shown with -rP: the attempts and agreement of this run
    if report.disagreements and seen:
        pytest.skip(f"other programs ran {len(seen)} SCHED_DEADLINE task(s) during the run: the boundaries moved")
    bad = [
        (a.kind, a.attr, a.requested_bw, a.available_bw, a.predicted_errno, a.kernel_errno, a.cli_admitted)
        for a in report.disagreements
    ]
    assert not bad, f"{report.summary()}; disagreements: {bad}"
    assert len(report.attempts) >= 4 * 3
    assert report.count(errno.EBUSY) >= 4  # each round ended with a refusal (plus the over-boundary probes)
    assert report.count(0) >= 4
    assert sum(a.kind == "at-boundary" and a.kernel_errno == 0 for a in report.attempts) >= 1
    assert sum(a.cli_admitted is not None for a in report.attempts) >= 4


@pytest.fixture
def helpers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Idle child processes a test may make SCHED_DEADLINE; killed and reaped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
        if p.stdin:
            p.stdin.close()


def hold(procs: list[subprocess.Popen[bytes]], attr: SchedAttr) -> int:
    p = subprocess.Popen([sys.executable, "-S", "-c", "import os; os.read(0, 1)"], stdin=subprocess.PIPE)
    procs.append(p)
    sched_setattr(p.pid, attr)
    return p.pid


def test_rt_run_sets_the_reservation_the_kernel_reports(dl_bandwidth: Callable[..., None]) -> None:
    """The command runs with exactly the requested runtime, deadline, period and flags (via sched_getattr)."""
    dl_bandwidth(0.15)
    attr = SchedAttr.deadline(3_000_000, 8_000_000, 20_000_000, SchedFlag.RECLAIM | SchedFlag.RESET_ON_FORK)
    seen: list[SchedAttr] = []
    result = run_deadline(
        [sys.executable, "-S", "-c", "import time; time.sleep(0.2)"],
        attr,
        on_start=lambda pid: seen.append(sched_getattr(pid)),
    )
    assert result.returncode == 0 and result.signal is None
    got = seen[0]
    assert (got.sched_policy, got.sched_runtime, got.sched_deadline, got.sched_period) == (
        SchedPolicy.DEADLINE,
        3_000_000,
        8_000_000,
        20_000_000,
    )
    assert (
        got.sched_flags & (SchedFlag.RECLAIM | SchedFlag.RESET_ON_FORK)
        == SchedFlag.RECLAIM | SchedFlag.RESET_ON_FORK
    )


def test_rt_run_cli_command_sees_its_own_reservation(dl_bandwidth: Callable[..., None]) -> None:
    """Through the CLI, the command reads its own attributes back and memsched returns its exit status."""
    dl_bandwidth(0.25)
    code = (
        "from memsched.live.sched_attr import sched_getattr as g; a = g(0); "
        "print(a.sched_policy, a.sched_runtime, a.sched_deadline, a.sched_period); raise SystemExit(7)"
    )
    proc = subprocess.run(
        [
            *MEMSCHED,
            "rt",
            "run",
            "--runtime",
            "5ms",
            "--deadline",
            "10ms",
            "--period",
            "20ms",
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.split() == ["6", "5000000", "10000000", "20000000"]


def test_overrun_with_dl_overrun_gets_sigxcpu(dl_bandwidth: Callable[..., None]) -> None:
    """A command that exceeds its runtime with dl-overrun is killed by SIGXCPU and reported as an overrun."""
    dl_bandwidth(0.1)
    attr = SchedAttr.deadline(1_000_000, 10_000_000, flags=SchedFlag.DL_OVERRUN)
    watchdog: list[threading.Timer] = []

    def arm(pid: int) -> None:  # a failed delivery must not hang the suite: SIGKILL after 20 s
        watchdog.append(threading.Timer(20, os.kill, (pid, signal.SIGKILL)))
        watchdog[0].start()

    try:
        result = run_deadline(["sh", "-c", "ulimit -c 0; while :; do :; done"], attr, on_start=arm)
    finally:
        for t in watchdog:
            t.cancel()
    assert result.signal == signal.SIGXCPU and result.overrun and result.returncode == 128 + signal.SIGXCPU


def test_overrun_without_dl_overrun_is_only_throttled(dl_bandwidth: Callable[..., None]) -> None:
    """Without dl-overrun the same command is throttled, not signalled: it is still running when stopped."""
    dl_bandwidth(0.1)
    attr = SchedAttr.deadline(1_000_000, 10_000_000)
    timers: list[threading.Timer] = []

    def stop_later(pid: int) -> None:
        timers.append(threading.Timer(0.5, os.kill, (pid, signal.SIGTERM)))
        timers[0].start()

    try:
        result = run_deadline(["sh", "-c", "while :; do :; done"], attr, on_start=stop_later)
    finally:
        for t in timers:
            t.cancel()
    assert result.signal == signal.SIGTERM and not result.overrun


def test_oversubscription_is_refused_with_the_bandwidth_figures(
    helpers: list[subprocess.Popen[bytes]], dl_bandwidth: Callable[..., None]
) -> None:
    """With 1.75 CPUs held, a 0.5-CPU command is refused (EBUSY) with requested and available bandwidth."""
    dl_bandwidth(1.80, idle=True)
    hold(helpers, SchedAttr.deadline(9_000_000, 10_000_000))
    hold(helpers, SchedAttr.deadline(8_500_000, 10_000_000))
    with pytest.raises(KernelError) as info:
        run_deadline(["true"], SchedAttr.deadline(5_000_000, 10_000_000))
    text = str(info.value)
    assert info.value.errno == errno.EBUSY and "admission control (EBUSY)" in text
    assert "requested 0.500 CPUs (524288/1048576 BW_UNIT)" in text
    assert "2 deadline task(s)" in text and "available 0.050 CPUs" in text
    proc = subprocess.run(
        [*MEMSCHED, "rt", "run", "--runtime", "5ms", "--deadline", "10ms", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "EBUSY" in proc.stderr


def test_exec_failure_after_setattr_leaves_nothing(tmp_path: Path, dl_bandwidth: Callable[..., None]) -> None:
    """A command the kernel cannot exec fails after the child became SCHED_DEADLINE; the child is gone."""
    dl_bandwidth(0.1)
    bogus = tmp_path / "not-a-program"
    bogus.write_bytes(b"\x00\x01\x02 not an executable format\n")
    bogus.chmod(0o755)
    before = child_pids()
    with pytest.raises(KernelError, match="cannot execute") as info:
        run_deadline([str(bogus)], SchedAttr.deadline(1_000_000, 10_000_000))
    assert info.value.errno == errno.ENOEXEC
    assert child_pids() == before  # the child was reaped: not even a zombie remains


def test_a_script_without_shebang_runs_under_its_reservation(tmp_path: Path, dl_bandwidth: Callable[..., None]) -> None:
    """A script with no #! line is run by /bin/sh as execvp would (it failed with ENOEXEC), arguments and exit
    status kept, under the reservation."""
    dl_bandwidth(0.1)
    script = tmp_path / "no-shebang"
    script.write_text(f'printf "%s|" "$0" "$@" > {shlex.quote(str(tmp_path / "out"))}\nexit 3\n')
    script.chmod(0o755)
    seen: list[SchedAttr] = []
    result = run_deadline(
        [str(script), "a b"],
        SchedAttr.deadline(1_000_000, 10_000_000),
        on_start=lambda pid: seen.append(sched_getattr(pid)),
    )
    assert (result.returncode, result.signal) == (3, None)
    assert (tmp_path / "out").read_text() == f"{script}|a b|"
    assert seen[0].sched_policy == SchedPolicy.DEADLINE


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to narrow the affinity")
def test_narrow_affinity_is_refused_with_eperm() -> None:
    """A task pinned to fewer CPUs than its root domain cannot become SCHED_DEADLINE; the error says why."""
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(old)})
        with pytest.raises(KernelError) as info:
            run_deadline(["true"], SchedAttr.deadline(1_000_000, 10_000_000))
    finally:
        os.sched_setaffinity(0, old)
    assert info.value.errno == errno.EPERM and "smaller than its root domain" in str(info.value)


def admit_json(pid: int, runtime: str) -> tuple[int, dict[str, Any]]:
    """``memsched rt admit --pid PID --json`` in a subprocess: its exit status and document."""
    argv = [*MEMSCHED, "rt", "admit", "--runtime", runtime, "--deadline", "10ms", "--pid", str(pid), "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to narrow the affinity")
def test_rt_admit_pid_of_a_pinned_task_predicts_the_kernels_eperm(
    helpers: list[subprocess.Popen[bytes]],
) -> None:
    """--pid of a task pinned to one CPU of its root domain: refused (EPERM) naming the target's affinity, as
    the kernel then refuses it; the caller's own affinity does not enter."""
    p = subprocess.Popen([sys.executable, "-S", "-c", "import os; os.read(0, 1)"], stdin=subprocess.PIPE)
    helpers.append(p)
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(p.pid, {cpu})
    status, doc = admit_json(p.pid, "1ms")
    assert doc["target"]["pid"] == p.pid and doc["target"]["affinity"] == str(cpu)
    assert status == 1 and doc["verdict"] == "narrow-affinity" and doc["expected_errno"] == "EPERM"
    assert f"affinity {cpu} does not cover" in str(doc["reason"])
    permitted = doc["permitted"]
    assert permitted["target"]["available"] is False
    assert permitted["caller"]["available"] is True and permitted["available"] is False
    err, _ = raw_sched_setattr(p.pid, SchedAttr.deadline(1_000_000, 10_000_000))
    assert err == errno.EPERM


def test_rt_admit_pid_of_a_deadline_task_counts_its_release(
    helpers: list[subprocess.Popen[bytes]], dl_bandwidth: Callable[..., None]
) -> None:
    """--pid of a deadline task: held = servers + others + its own reservation, which the request may reuse;
    the kernel then accepts the change the prediction admits."""
    dl_bandwidth(0.4)
    old = SchedAttr.deadline(2_000_000, 10_000_000)
    pid = hold(helpers, old)
    status, doc = admit_json(pid, "3ms")
    assert doc["old_bw"] == dl_bw_of(old) and doc["target"]["reservation"]["tid"] == pid
    assert doc["total_bw"] == doc["servers_bw"] + doc["tasks_bw"] + doc["old_bw"]
    if doc["available_bw"] is not None:
        assert doc["available_bw"] == doc["free_bw"] + doc["old_bw"]
    assert status == 0 and doc["verdict"] == "admitted", doc["reason"]
    sched_setattr(pid, SchedAttr.deadline(3_000_000, 10_000_000))
    assert sched_getattr(pid).sched_runtime == 3_000_000


@pytest.mark.skipif(shutil.which("capsh") is None, reason="capsh (libcap) is needed to drop CAP_SYS_NICE")
def test_missing_cap_sys_nice_is_named() -> None:
    """Without CAP_SYS_NICE, rt run fails (EPERM) naming the capability and rt admit reports it."""
    run = [*MEMSCHED, "rt", "run", "--runtime", "1ms", "--deadline", "10ms", "--", "true"]
    admit = [*MEMSCHED, "rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--json"]
    out = {}
    for name, argv in (("run", run), ("admit", admit)):
        out[name] = subprocess.run(
            ["capsh", "--drop=cap_sys_nice", "--", "-c", shlex.join(argv)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out["run"].returncode == 1 and "(EPERM)" in out["run"].stderr
    assert "lacks CAP_SYS_NICE" in out["run"].stderr and "RLIMIT_RTPRIO" in out["run"].stderr
    permitted = json.loads(out["admit"].stdout)["permitted"]
    assert permitted["available"] is False and "CAP_SYS_NICE" in permitted["reason"]


def test_parent_failure_kills_the_deadline_child(dl_bandwidth: Callable[..., None]) -> None:
    """If memsched fails while the command runs, the command is killed and reaped, not left running."""
    dl_bandwidth(0.1)
    started: list[int] = []

    def fail(pid: int) -> None:
        started.append(pid)
        raise RuntimeError("parent failed")

    with pytest.raises(RuntimeError, match="parent failed"):
        run_deadline(
            [sys.executable, "-S", "-c", "import time; time.sleep(30)"],
            SchedAttr.deadline(1_000_000, 10_000_000),
            on_start=fail,
        )
    assert not os.path.exists(f"/proc/{started[0]}")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--runtime", "5ms", "--deadline", "1ms", "--", "true"], "runtime <= deadline"),
        (["--runtime", "1ms", "--deadline", "10ms", "--", "memsched-no-such-command"], "command not found"),
    ],
)
def test_cli_failures_exit_2_and_start_nothing(argv: list[str], needle: str) -> None:
    """Bad parameters and unknown commands: one line, exit 2, and (fixture) no deadline task."""
    proc = subprocess.run(
        [*MEMSCHED, "rt", "run", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2 and proc.stdout == "" and needle in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_library_refuses_bad_parameters_before_fork() -> None:
    """run_deadline raises ConfigError naming the rule for parameters __checkparam_dl refuses."""
    with pytest.raises(ConfigError, match="runtime <= deadline"):
        run_deadline(["true"], SchedAttr.deadline(5_000_000, 1_000_000))
