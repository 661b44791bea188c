"""rt run's checks before it forks: parameters, flags and the command."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from memsched.errors import ConfigError
from memsched.live.roots import LiveRoots
from memsched.live.rt_run import RunResult, resolve_command, run_deadline, validate_run_attr
from memsched.uapi.sched import SchedAttr, SchedFlag


def child_pids() -> set[int]:
    """This process's children (ppid, field 4 of /proc/<pid>/stat)."""
    me, out = os.getpid(), set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == me:
                        out.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return out


def test_validate_refuses_keep_and_clamp_flags(vm: LiveRoots) -> None:
    """Only reclaim, dl-overrun and reset-on-fork make sense for a command."""
    validate_run_attr(
        SchedAttr.deadline(1_000_000, 10_000_000, flags=SchedFlag.RECLAIM | SchedFlag.DL_OVERRUN), vm
    )
    with pytest.raises(ConfigError, match="--flags"):
        validate_run_attr(SchedAttr.deadline(1_000_000, 10_000_000, flags=SchedFlag.KEEP_POLICY), vm)


def test_validate_applies_the_kernels_period_bounds(vm: LiveRoots, arm: LiveRoots) -> None:
    """A 500 us period passes the default bounds but not the arm tree's 1000 us minimum."""
    attr = SchedAttr.deadline(100_000, 500_000)
    validate_run_attr(attr, vm)
    with pytest.raises(ConfigError, match="period must be within"):
        validate_run_attr(attr, arm)


def test_resolve_command(tmp_path: Path) -> None:
    """Commands are found on PATH; unknown names and non-executable paths are refused."""
    assert os.path.basename(resolve_command(["sh", "-c", "true"])) == "sh"
    with pytest.raises(ConfigError, match="command not found"):
        resolve_command(["memsched-no-such-command"])
    plain = tmp_path / "plain"
    plain.write_text("data")
    with pytest.raises(ConfigError, match=r"'COMMAND' .*\(not executable\)"):  # (it exists: not "not found")
        resolve_command([str(plain)])
    with pytest.raises(ConfigError, match=r"'COMMAND' .*\(not a regular file\)"):
        resolve_command([str(tmp_path)])
    with pytest.raises(ConfigError, match="command not found"):
        resolve_command([str(tmp_path / "gone")])
    with pytest.raises(ConfigError, match="must name a command"):
        resolve_command([])


def test_bad_input_starts_nothing(vm: LiveRoots) -> None:
    """Bad parameters or an unknown command fail before fork: no child process is ever created."""
    before = child_pids()
    with pytest.raises(ConfigError, match="runtime <= deadline"):
        run_deadline(["true"], SchedAttr.deadline(5_000_000, 1_000_000), roots=vm)
    with pytest.raises(ConfigError, match="command not found"):
        run_deadline(["memsched-no-such-command"], SchedAttr.deadline(1_000_000, 10_000_000), roots=vm)
    assert child_pids() == before


def test_run_result_describe() -> None:
    """Exit status, plain signals and overruns are told apart."""
    assert RunResult(1, 3, None, False).describe() == "exited with status 3"
    assert RunResult(1, 143, signal.SIGTERM, False).describe() == "killed by SIGTERM"
    assert "deadline overrun" in RunResult(1, 152, signal.SIGXCPU, True).describe()


def test_the_raw_calls_and_the_parsers_import_without_numpy() -> None:
    """A program run under SCHED_DEADLINE may import sched_attr (and with it the live package and procfs): that
    must not load numpy, whose BLAS threads a deadline task cannot create (clone fails with EAGAIN)."""
    code = (
        "import sys, memsched.live.sched_attr, memsched.live.procfs, memsched.live.dl_explain\n"
        "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('numpy.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _exec_command(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A Python process that becomes ``path`` through :func:`exec_command` (its OSError goes to stderr)."""
    code = (
        "import os, sys\n"
        "from memsched.live.rt_run import exec_command\n"
        "try:\n"
        "    exec_command(sys.argv[1], sys.argv[1:], dict(os.environ))\n"
        "except OSError as e:\n"
        "    print('errno', e.errno, file=sys.stderr)\n"
        "    sys.exit(99)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_script_without_shebang_runs_with_bin_sh_as_execvp_would(tmp_path: Path) -> None:
    """A script with no #! line failed with ENOEXEC; execvp and the shells run it with /bin/sh, argv kept."""
    script = tmp_path / "no shebang"
    script.write_text('printf "%s|" "$0" "$@"\nexit 3\n')
    script.chmod(0o755)
    done = _exec_command(script, "a b", "")
    assert (done.returncode, done.stdout, done.stderr) == (3, f"{script}|a b||", "")


def test_a_binary_the_kernel_cannot_execute_is_not_given_to_the_shell(tmp_path: Path) -> None:
    """A file with a NUL byte on its first line is binary (bash's rule): its ENOEXEC is reported, not run by sh."""
    bogus = tmp_path / "not-a-program"
    bogus.write_bytes(b"\x00\x01\x02 not an executable format\necho ran\n")
    bogus.chmod(0o755)
    done = _exec_command(bogus)
    assert (done.returncode, done.stdout, done.stderr.strip()) == (99, "", f"errno {errno.ENOEXEC}")
