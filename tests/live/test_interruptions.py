"""Interrupted live commands leave nothing behind: ``rt run`` killed or terminated (its SCHED_DEADLINE command goes
with it; what its caller ignored stays ignored), ``rt noise`` interrupted, terminated or killed (its measuring
children go with it), the test cgroup helper terminated or killed, ``pressure serve`` killed (its stale socket is
replaced by the next start). ``benchmarks/signal_trials.py`` runs the same interruptions 20 times each."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.kernel_helpers import own_deadline_tids
from memsched.live.cgroups import MemcgV1Child, cgroup_mounts
from memsched.live.noise import measure_noise
from memsched.live.rt_run import run_deadline
from memsched.uapi.sched import SchedAttr

pytestmark = pytest.mark.live

MEMSCHED = [sys.executable, "-m", "memsched"]
SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"


def _command_pid(proc: subprocess.Popen[str]) -> int:
    """The pid the SLEEPER command under `rt run` prints first; a skip when the deadline bandwidth was taken by
    another program since dl_bandwidth() looked (EBUSY)."""
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        err = proc.stderr.read()
        if "(EBUSY)" in err:
            pytest.skip(f"deadline bandwidth taken meanwhile: {err.strip()[:200]}")
        raise AssertionError(err or line)
    return int(line)


def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie waiting for its new parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def rt_run(dl_bandwidth: Callable[..., None]) -> Iterator[Callable[[], tuple[subprocess.Popen[str], int]]]:
    """Start ``memsched rt run`` (1 ms / 10 ms) over a sleeper; yield (memsched, the command's pid)."""
    dl_bandwidth(0.1)
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], int]:
        argv = [*MEMSCHED, "rt", "run", "--runtime", "1ms", "--deadline", "10ms", "--", sys.executable, "-c", SLEEPER]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc, _command_pid(proc)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminating_rt_run_ends_its_deadline_command(
    rt_run: Callable[[], tuple[subprocess.Popen[str], int]], sig: signal.Signals
) -> None:
    """SIGTERM/SIGHUP to memsched alone reach the command; memsched reports it and exits 128 + N."""
    proc, child = rt_run()
    assert child in own_deadline_tids()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert f"killed by {sig.name}" in err
    assert gone(child) and child not in own_deadline_tids()


def test_killing_rt_run_kills_its_deadline_command(rt_run: Callable[[], tuple[subprocess.Popen[str], int]]) -> None:
    """kill -9 of memsched: the command dies too (PR_SET_PDEATHSIG), no reservation is left running."""
    proc, child = rt_run()
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_until(lambda: gone(child)), f"the command {child} outlived memsched"
    assert child not in own_deadline_tids()


#: Runs argv[1:] with SIGHUP, SIGINT and SIGQUIT ignored, as ``nohup CMD &`` in a script starts CMD.
NOHUP_IN_BACKGROUND = [
    sys.executable,
    "-c",
    "import os, signal, sys\n"
    "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_IGN)\n"
    "os.execv(sys.argv[1], sys.argv[1:])",
]


def ignored_signals(pid: int) -> set[int]:
    """The signals ``pid`` ignores (the SigIgn mask of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    return {sig for sig in range(1, 65) if mask >> (sig - 1) & 1}


def test_rt_run_leaves_the_callers_ignored_signals_ignored(dl_bandwidth: Callable[..., None]) -> None:
    """Under nohup in a background job: the command inherits SIGHUP/SIGINT/SIGQUIT ignored, and a SIGHUP to
    memsched is not forwarded (the command lives on); SIGTERM, not ignored, still is."""
    dl_bandwidth(0.02)
    argv = [*NOHUP_IN_BACKGROUND, *MEMSCHED, "rt", "run", "--runtime", "200us", "--deadline", "10ms", "--"]
    argv += [sys.executable, "-c", SLEEPER]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child = _command_pid(proc)
        assert {signal.SIGHUP, signal.SIGINT, signal.SIGQUIT} <= ignored_signals(child)
        proc.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
        assert not gone(child)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert gone(child)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


#: Runs argv[1:] with SIGINT at its default, as an interactive shell starts a foreground command: a test run in
#: the background of a script inherits SIGINT ignored, and memsched rightly keeps it ignored then.
DEFAULT_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
]


def proc_state(pid: int) -> str:
    """The one-letter state of a process (field 3 of /proc/<pid>/stat); "X" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return "X"


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (field 4 of /proc/<pid>/stat)."""
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        out.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return out


@pytest.fixture
def rt_noise() -> Iterator[Callable[[], tuple[subprocess.Popen[str], set[int]]]]:
    """Start ``memsched rt noise --duration 60s`` in its own session; yield (memsched, its measuring children)
    once every allowed CPU has its child."""
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        pytest.skip("rt noise measures a single allowed CPU in its own process: there are no children to end")
    started: list[tuple[subprocess.Popen[str], set[int]]] = []

    def start() -> tuple[subprocess.Popen[str], set[int]]:
        argv = [*DEFAULT_SIGINT, *MEMSCHED, "rt", "noise", "--duration", "60s"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        kids: set[int] = set()
        started.append((proc, kids))
        found = wait_until(lambda: len(kids.union(children_of(proc.pid))) >= cpus or proc.poll() is not None, 60)
        kids.update(children_of(proc.pid))
        assert found and len(kids) == cpus, f"expected {cpus} measuring children, found {sorted(kids)}"
        # Signal memsched once it sleeps in read(), as a user's Ctrl-C finds it (a signal just before it blocks
        # is test_rt_noise_sees_a_sigterm_that_does_not_interrupt_its_read's case).
        assert wait_until(lambda: proc_state(proc.pid) == "S", 60), f"memsched is {proc_state(proc.pid)}"
        return proc, kids

    yield start
    for proc, kids in started:
        for pid in [proc.pid, *kids]:  # after a failure: nothing may spin on for the rest of the minute
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, False)],
    ids=["ctrl-c-to-group", "sigint", "sigterm", "sighup"],
)
def test_interrupting_rt_noise_ends_it_and_its_children_at_once(
    rt_noise: Callable[[], tuple[subprocess.Popen[str], set[int]]], sig: signal.Signals, to_group: bool
) -> None:
    """A Ctrl-C, or SIGINT/SIGTERM/SIGHUP to memsched alone, ends rt noise within seconds (not at the end of
    its 60 s) with 128 + N and its one line; no measuring child is left."""
    proc, kids = rt_noise()
    started = time.monotonic()
    if to_group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=45)
    elapsed = time.monotonic() - started
    assert proc.returncode == 128 + sig, err
    assert ("memsched: interrupted" if sig == signal.SIGINT else f"memsched: terminated by {sig.name}") in err
    assert elapsed < 20, f"rt noise took {elapsed:.1f} s to end"
    assert all(gone(k) for k in kids), f"measuring children outlived memsched: {sorted(k for k in kids if not gone(k))}"


def test_killing_rt_noise_kills_its_measuring_children(
    rt_noise: Callable[[], tuple[subprocess.Popen[str], set[int]]],
) -> None:
    """kill -9 of memsched: the measuring children die too (PR_SET_PDEATHSIG) instead of spinning on."""
    proc, kids = rt_noise()
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_until(lambda: all(gone(k) for k in kids)), f"measuring children outlived memsched: {sorted(kids)}"


CGROUP_OWNER = """
import sys, time
from memsched.live.cgroups import MemcgV1Child
with MemcgV1Child(sys.argv[1], limit_bytes=64 << 20) as cg:
    child = cg.run([sys.executable, "-c", "import time; time.sleep(60)"])
    while not cg.pids():
        time.sleep(0.01)
    print(child.pid, flush=True)
    time.sleep(60)
"""


@pytest.fixture
def v1_memory() -> Path:
    if os.geteuid() != 0:
        pytest.skip("creating memory cgroups needs root")
    mounts = cgroup_mounts()
    if mounts.v1_memory is None:
        pytest.skip("the cgroup v1 memory controller is not mounted")
    return mounts.v1_memory


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_the_test_cgroup_goes_with_its_owner(v1_memory: Path, sig: signal.Signals) -> None:
    """SIGTERM/SIGHUP: the cgroup and its child are removed; SIGKILL: the child dies with its owner and the
    next use of the same name removes the empty leftover instead of failing with "File exists"."""
    name = f"memsched-test-signal-{os.getpid()}-{int(sig)}"
    owner = subprocess.Popen([sys.executable, "-c", CGROUP_OWNER, name], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        owner.send_signal(sig)
        owner.communicate(timeout=30)
        assert wait_until(lambda: gone(child)), "the cgroup's child outlived its owner"
        if sig != signal.SIGKILL:
            assert not (v1_memory / name).exists()
        with MemcgV1Child(name, limit_bytes=64 << 20) as cg:
            assert cg.pids() == []
        assert not (v1_memory / name).exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()
        if (v1_memory / name).exists():
            (v1_memory / name).rmdir()


def test_a_killed_daemons_socket_is_replaced_by_the_next_start(tmp_path: Path) -> None:
    """kill -9 cannot remove the socket; the next ``pressure serve`` on the path replaces the stale one."""
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    path = tmp_path / "run" / "p.sock"
    argv = [*MEMSCHED, "pressure", "serve", "--socket", str(path), "--backend", "fifo", "--set", f"fifo_path={fifo}"]
    first = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(path.exists, 60)
        first.kill()
        first.communicate(timeout=30)
        assert path.exists()  # stale: nobody listens
        with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as second:
            try:
                assert second.stderr is not None
                lines = [second.stderr.readline() for _ in range(2)]  # "replacing ...", "listening on ..."
                second.send_signal(signal.SIGTERM)
                _, err = second.communicate(timeout=30)
            finally:
                if second.poll() is None:
                    second.kill()
        err = "".join(lines) + err
        assert second.returncode == 0, err
        assert "replacing stale socket" in lines[0] and "listening on" in lines[1], err
        assert not path.exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()


class _StopError(Exception):
    """What the tests' SIGTERM handler raises in the main thread."""


@contextlib.contextmanager
def _sigterm_from_another_thread(after_s: float) -> Iterator[threading.Thread]:
    """SIGTERM raises :class:`_StopError`; after ``after_s`` a helper thread sends SIGTERM to itself. The kernel
    then runs the handler's C part in that thread, and the main thread's blocking system call is not interrupted
    (no EINTR): as when the signal lands in the instant before the main thread blocks, only a wakeup fd tells it."""

    def raise_stop(signum: int, frame: object) -> None:
        raise _StopError(signum)

    def send() -> None:
        time.sleep(after_s)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    helper = threading.Thread(target=send)
    previous = signal.signal(signal.SIGTERM, raise_stop)
    try:
        helper.start()
        yield helper
    finally:
        helper.join()
        with contextlib.suppress(_StopError):  # a handler still pending runs here, not under the restored default
            time.sleep(0.05)
        signal.signal(signal.SIGTERM, previous)


def test_rt_run_sees_a_sigterm_that_does_not_interrupt_its_waitpid(dl_bandwidth: Callable[..., None]) -> None:
    """A SIGTERM the main thread's waitpid() does not see is forwarded to the command at once, not when the
    command ends by itself 30 s later."""
    dl_bandwidth(0.1)
    started = time.monotonic()
    with _sigterm_from_another_thread(1.0):
        result = run_deadline(
            [sys.executable, "-c", "import time; time.sleep(30)"], SchedAttr.deadline(1_000_000, 10_000_000)
        )
    elapsed = time.monotonic() - started
    assert (result.returncode, result.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    assert elapsed < 20, f"rt run forwarded SIGTERM after {elapsed:.1f} s"


def test_rt_run_forwards_a_sigterm_that_came_before_its_fork(
    dl_bandwidth: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM after rt run took the signals but before the command existed is sent on to the command once it
    does: the run ends at once with the command's 128 + SIGTERM, instead of the command running its 30 s."""
    dl_bandwidth(0.1)
    real_fork = os.fork
    calls: list[int] = []

    def fork_after_sigterm() -> int:
        if not calls:
            calls.append(1)
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs here, before the real fork
        return real_fork()

    monkeypatch.setattr(os, "fork", fork_after_sigterm)
    started = time.monotonic()
    result = run_deadline(
        [sys.executable, "-c", "import time; time.sleep(30)"], SchedAttr.deadline(1_000_000, 10_000_000)
    )
    elapsed = time.monotonic() - started
    assert calls == [1]
    assert result.returncode == 128 + signal.SIGTERM
    assert elapsed < 20, f"the SIGTERM from before the fork reached the command after {elapsed:.1f} s"


def test_rt_noise_sees_a_sigterm_that_does_not_interrupt_its_read() -> None:
    """A SIGTERM the main thread's read() of a measuring child's pipe does not see stops rt noise at once (and
    kills the children), not when the 30 s measurement ends."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("rt noise measures a single allowed CPU in its own process: there is no child to wait for")
    me = os.getpid()
    before = children_of(me)  # (a forkserver or resource tracker of an earlier test in this process may be one)
    started = time.monotonic()
    with pytest.raises(_StopError), _sigterm_from_another_thread(1.0):
        measure_noise(cpus[:2], duration_ns=30_000_000_000)
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"rt noise stopped after {elapsed:.1f} s"
    assert not children_of(me) - before, "measuring children outlived the interruption"
