"""Run a command as a SCHED_DEADLINE task: the child sets its own reservation, then ``exec``\\ s the command.

Why the child and not the parent: a SCHED_DEADLINE task cannot ``fork()`` (``sched_fork`` in kernel/sched/core.c
returns ``-EAGAIN`` for a deadline task, since 3.14), so the reservation must be set by the process that will
become the command, after the fork and before the ``exec``. This is the ``chrt -d`` recipe, with four differences:

* the parameters are checked (``__checkparam_dl`` with this kernel's period bounds) and the command is looked
  up on ``PATH`` *before* forking, so bad input never touches the scheduler;
* the child reports a failed ``sched_setattr`` or ``exec`` to the parent through a close-on-exec pipe (the
  pattern of CPython's ``_posixsubprocess``) and ``_exit``\\ s at once: a child that could not exec dies
  immediately, so no task is ever left in SCHED_DEADLINE running something it should not; the parent then
  raises the explained error of :mod:`memsched.live.dl_explain` (EBUSY with the bandwidth figures, ...);
* a script without a ``#!`` line is run by ``/bin/sh``, as ``execvp`` and the shells do (:func:`exec_command`);
* with ``SCHED_FLAG_DL_OVERRUN`` the kernel sends SIGXCPU when the task exceeds its runtime (the default
  action terminates it); a command that dies of SIGXCPU is reported as a deadline overrun.

The parent never changes its own scheduling class. While it waits it ignores SIGINT and SIGQUIT, as a shell
does, so a Ctrl-C reaches the command (same process group) and the command's own status is reported; if the
parent is interrupted or fails while the child lives, it kills and reaps the child in ``finally``. Signals
that Python ignores (SIGPIPE, SIGXFSZ) are restored to their defaults in the child, as ``subprocess`` does.

**Ignored stays ignored.** A signal of these four that memsched's process ignores when the command starts was
ignored by whoever started memsched — ``nohup`` (SIGHUP), a shell starting a background job without job control
(SIGINT, SIGQUIT) — since neither CPython (which installs its SIGINT handler only over SIG_DFL) nor
:func:`memsched.cli.outcome.terminating_signals` replace an ignored disposition. Such a signal is neither
forwarded nor reset in the child, so the command ignores it as it would without memsched (``execve`` keeps
ignored signals ignored, POSIX; ``flush_signal_handlers`` in kernel/signal.c resets only caught ones).

**Nothing outlives memsched.** A SIGTERM or SIGHUP to memsched alone (``timeout 10 memsched rt run ...``, a
closed terminal, a service manager stopping it) is forwarded to the command, whose status is then reported
(128 + the signal); before, the default action killed memsched and left the command running in
SCHED_DEADLINE. One that comes before the command exists is sent on once it does, and the two are blocked
across the fork, so the child cannot take one with the parent's handler and lose it while it resets the
handlers. For what no handler can see — ``kill -9`` of memsched, a crash — the child asks for SIGKILL
when its parent dies (``PR_SET_PDEATHSIG``, :mod:`memsched.live.pdeathsig`) before it takes the reservation,
and gives up if the parent is already gone. (``PR_SET_PDEATHSIG`` is cleared by exec of a set-user-ID or
file-capability binary; such a command is on its own after a ``kill -9``.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memsched.admission import checkparam_dl
from memsched.errors import ConfigError, KernelError
from memsched.live.deadline import dl_sysctls
from memsched.live.dl_explain import gather_context, setattr_error
from memsched.live.oserrors import kill_and_reap
from memsched.live.pdeathsig import set_parent_death_signal
from memsched.live.roots import LiveRoots
from memsched.live.sched_attr import raw_sched_setattr
from memsched.live.sigwake import SignalWakeup
from memsched.uapi.sched import SchedAttr, SchedFlag, SchedPolicy

__all__ = ["RUN_FLAGS", "RunResult", "exec_command", "resolve_command", "run_deadline", "validate_run_attr"]

#: Flags that make sense for a command run under SCHED_DEADLINE (the KEEP_* and clamp flags do not).
RUN_FLAGS = SchedFlag.RESET_ON_FORK | SchedFlag.RECLAIM | SchedFlag.DL_OVERRUN

_STAGE_SETATTR = b"S"
_STAGE_EXEC = b"E"


@dataclass(frozen=True, slots=True)
class RunResult:
    """How the command ended. ``returncode`` follows the shell: the exit status, or 128 + signal number."""

    pid: int
    returncode: int
    signal: int | None
    overrun: bool

    def describe(self) -> str:
        if self.signal is None:
            return f"exited with status {self.returncode}"
        name = signal.Signals(self.signal).name
        if self.overrun:
            return f"deadline overrun: killed by {name} after exceeding its runtime"
        return f"killed by {name}"


def validate_run_attr(attr: SchedAttr, roots: LiveRoots | None = None) -> None:
    """Refuse what the kernel would refuse with EINVAL, and flags that do not belong to ``rt run``."""
    if attr.sched_policy != SchedPolicy.DEADLINE:
        raise ConfigError("policy", attr.sched_policy, "must be SCHED_DEADLINE")
    extra = SchedFlag(attr.sched_flags) & ~RUN_FLAGS
    if extra:
        allowed = ", ".join(str(f.name).lower().replace("_", "-") for f in RUN_FLAGS)
        raise ConfigError("--flags", str(extra.name).lower().replace("_", "-"), f"must be among: {allowed}")
    sysctls = dl_sysctls(roots)
    rule = checkparam_dl(attr, period_min_us=sysctls.period_min_us, period_max_us=sysctls.period_max_us)
    if rule is not None:
        value = f"{attr.sched_runtime}/{attr.sched_deadline}/{attr.sched_period} ns"
        raise ConfigError("--runtime/--deadline/--period", value, f"are refused by __checkparam_dl: {rule}")


def resolve_command(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The executable ``argv[0]`` names (searched on ``PATH`` unless it contains a ``/``)."""
    if not argv:
        raise ConfigError("COMMAND", "", "must name a command to run (after --)")
    name = argv[0]
    path_env = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = name if "/" in name else shutil.which(name, path=path_env)
    if found is None or not os.path.exists(found):
        raise ConfigError("COMMAND", name, "must be an executable file or a command on PATH (command not found)")
    if not os.path.isfile(found):
        raise ConfigError("COMMAND", name, "must be an executable file or a command on PATH (not a regular file)")
    if not os.access(found, os.X_OK):
        raise ConfigError("COMMAND", name, "must be an executable file or a command on PATH (not executable)")
    return found


#: The signals :func:`_take_signals` ignores or forwards while the command runs.
_TAKEN = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


def _child(
    executable: str,
    argv: Sequence[str],
    env: dict[str, str],
    attr: SchedAttr,
    report_fd: int,
    parent: int,
    ignored: frozenset[int],
    mask: set[int | signal.Signals] | None,
) -> None:
    """In the forked child: die with the parent, become SCHED_DEADLINE, then exec. Never returns. The signals in
    ``ignored`` (ignored by memsched's caller) stay ignored; the others get their default action, and then the
    signal ``mask`` from before the fork (one blocked across it and sent meanwhile acts now)."""
    code = 127
    try:
        for sig in (*_TAKEN, signal.SIGPIPE, signal.SIGXFSZ):
            if sig not in ignored:
                signal.signal(sig, signal.SIG_DFL)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if not set_parent_death_signal(signal.SIGKILL, parent):
            code = 128 + signal.SIGKILL  # memsched died before the prctl: run nothing
            return
        err, size = raw_sched_setattr(0, attr)
        if err:
            os.write(report_fd, _STAGE_SETATTR + f"{err}:{size}".encode())
            return
        try:
            exec_command(executable, argv, env)
        except OSError as e:
            os.write(report_fd, _STAGE_EXEC + str(e.errno or errno.EIO).encode())
            code = 126 if e.errno in (errno.EACCES, errno.ENOEXEC) else 127
    except BaseException:
        code = 127
    finally:
        os._exit(code)


#: The shell a file without a ``#!`` line is run with (``_PATH_BSHELL``).
_BSHELL = "/bin/sh"


def exec_command(executable: str, argv: Sequence[str], env: dict[str, str]) -> None:
    """``execve`` the command, as ``execvp`` does: a file the kernel cannot execute (``ENOEXEC``: a script
    without a ``#!`` line) is run by ``/bin/sh`` as ``/bin/sh FILE ARGS...`` (``posix/execvpe.c`` in glibc,
    ``shell_execve`` in bash). As bash does, a file that looks binary (a NUL byte on its first line, within its
    first 80 bytes) is not given to the shell, and the ``ENOEXEC`` stands. Returns only by raising ``OSError``."""
    try:
        os.execve(executable, list(argv), env)
    except OSError as e:
        if e.errno != errno.ENOEXEC or _looks_binary(executable):
            raise
    os.execve(_BSHELL, [_BSHELL, executable, *argv[1:]], env)


def _looks_binary(path: str) -> bool:
    """bash's ``check_binary_file``: a NUL byte before the first new line of the first 80 bytes (a file that
    cannot be read counts as binary, so its ``ENOEXEC`` is reported)."""
    try:
        with open(path, "rb") as f:
            head = f.read(80)
    except OSError:
        return True
    return b"\0" in head.partition(b"\n")[0]


def _read_report(fd: int, wake: SignalWakeup) -> bytes:
    chunks = []
    while chunk := wake.read(fd, 256):
        chunks.append(chunk)
    return b"".join(chunks)


def run_deadline(
    argv: Sequence[str],
    attr: SchedAttr,
    *,
    roots: LiveRoots | None = None,
    env: dict[str, str] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``argv`` as a SCHED_DEADLINE task with ``attr``; wait for it and return how it ended.

    ``on_start(pid)`` is called once the command runs under its reservation (tests read it back with
    ``sched_getattr``). Raises :class:`ConfigError` for bad parameters or an unknown command (nothing was
    started) and :class:`KernelError` when the kernel refuses the reservation or the exec (the child is gone).
    """
    roots = roots or LiveRoots()
    validate_run_attr(attr, roots)
    env = dict(os.environ if env is None else env)
    executable = resolve_command(argv, env)

    # Ignore SIGINT/SIGQUIT and forward SIGTERM/SIGHUP from before the fork (the child restores the defaults),
    # so that a signal at any moment reaches the command and never leaves the parent half-way with a child it
    # has not reaped.
    parent = os.getpid()
    child: list[int] = []
    early: list[int] = []  # forwarded signals that came before the command existed
    ignored = _ignored_signals()
    old_handlers = _take_signals(parent, child, ignored, early)
    # The forwarded signals are blocked across the fork: the child would otherwise catch one the parent sends at
    # once with the inherited handler and lose it when it resets that handler (CPython's C-level handler takes
    # the signal; the Python one never runs). The child unblocks them after its reset, so one sent meanwhile
    # acts then, with its default action; the parent, once it knows the child, so one that came meanwhile is
    # forwarded.
    forwarded = {signal.SIGTERM, signal.SIGHUP} & old_handlers.keys()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded) if forwarded else None
    pid = -1
    reaped = False
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with SignalWakeup() as wake:  # a SIGTERM just before a wait below is seen at once (live/sigwake.py)
        try:
            try:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child execs or _exits
                    os.close(read_fd)
                    _child(executable, argv, env, attr, write_fd, parent, ignored, mask)
                child.append(pid)
                # A SIGTERM/SIGHUP from before the fork reaches the command now (later ones go straight to it).
                for signum in early:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
            finally:
                if mask is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(write_fd)
            write_fd = -1
            report = _read_report(read_fd, wake)
            if report:
                wake.waitpid(pid)
                reaped = True
                raise _child_failure(report, pid, attr, argv, roots)
            if on_start is not None:
                on_start(pid)
            status = wake.waitpid(pid)
            reaped = True
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            if pid > 0 and not reaped:
                kill_and_reap(pid)
            if pid < 0:  # the fork failed: a signal taken for the command is memsched's again, under its own handler
                for signum in early:
                    os.kill(parent, signum)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        overrun = sig == signal.SIGXCPU and bool(attr.sched_flags & SchedFlag.DL_OVERRUN)
        return RunResult(pid, 128 + sig, sig, overrun)
    return RunResult(pid, os.waitstatus_to_exitcode(status), None, False)


def _ignored_signals() -> frozenset[int]:
    """Those of :data:`_TAKEN` this process ignores now: ignored since memsched started (see the module
    docstring)."""
    return frozenset(sig for sig in _TAKEN if signal.getsignal(sig) == signal.SIG_IGN)


def _take_signals(
    parent: int, child: list[int], ignored: frozenset[int], early: list[int]
) -> dict[int, signal.Handlers | int | Callable[..., object] | None]:
    """While the command runs: ignore SIGINT and SIGQUIT, as a shell does (the terminal sends them to the
    command too), and forward SIGTERM and SIGHUP, which are usually sent to memsched alone, unless they are
    ``ignored`` (then they stay so). One that comes before the fork is kept in ``early`` for the caller to send
    on once the command exists. Only the main thread may; from another thread the signals keep their
    handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def forward(signum: int, frame: object) -> None:
        if os.getpid() != parent:  # the child, between fork and its own reset: die as the signal would
            os._exit(128 + signum)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child[0], signum)
        else:
            early.append(signum)

    old: dict[int, signal.Handlers | int | Callable[..., object] | None] = {
        signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGQUIT)
    }
    old.update(
        {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGHUP) if signum not in ignored}
    )
    return old


def _child_failure(report: bytes, pid: int, attr: SchedAttr, argv: Sequence[str], roots: LiveRoots) -> Exception:
    stage, payload = report[:1], report[1:].decode()
    if stage == _STAGE_SETATTR:
        err_text, _, size_text = payload.partition(":")
        err, size = int(err_text), int(size_text or 0)
        # Explain from the parent: the child is gone, but it had the parent's affinity, credentials and CPU.
        ctx = gather_context(err, 0, attr, roots, size)
        return setattr_error(err, pid, attr, ctx)
    err = int(payload)
    return KernelError(err, f"cannot execute {argv[0]!r}: {os.strerror(err)} (nothing was left running)")
