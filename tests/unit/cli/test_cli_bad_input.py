"""The command line on bad input and interruption: one line naming the file and the key, exit 2 for the
user's errors, output paths checked before the run, output files with the caller's umask, no traceback for a
Ctrl-C at start-up, and a runaway allocation stopped with a line instead of the OOM killer."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memsched.cli import main
from memsched.cli.common import write_atomic
from memsched.live import capabilities

MEMSCHED = [sys.executable, "-m", "memsched"]


def _status(pid: int, key: str) -> str:
    """A field of /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1]
    raise KeyError(key)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("memsched: error: "), err
    return err


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_output_files_respect_the_umask(tmp_path: Path, umask_027: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Reports and traces get 0666 less the umask (mkstemp's 0600 before)."""
    write_atomic(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o640
    rc, _, err = run(capsys, "rt", "sim", "grub", "--trace", str(tmp_path / "t.json"), "--json")
    assert rc == 0, err
    assert stat.S_IMODE(os.stat(tmp_path / "t.json").st_mode) == 0o640


@pytest.mark.parametrize(
    "argv",
    [
        ["rt", "sim", "grub", "--trace", "{dir}"],
        ["run", "numa02", "--trace", "{dir}"],
        ["compare", "--workloads", "numa02", "--policies", "none", "--report", "{dir}"],
        ["pressure", "sim", "--designs", "none", "--report", "{dir}"],
        ["rt", "sim", "grub", "--trace", "/dev/null"],
    ],
)
def test_output_paths_are_checked_before_the_run(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory (or a device) as --trace/--report is refused at once, not after the whole run."""
    started = time.monotonic()
    rc, out, err = run(capsys, *(a.replace("{dir}", str(tmp_path)) for a in argv))
    assert rc == 2 and out == "" and ("directory" in one_line_error(err) or "regular file" in err)
    assert time.monotonic() - started < 10  # nothing was simulated


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "numa02", "--trace", "{folder}/t.json"],
        ["rt", "sim", "grub", "--trace", "{folder}/t.json"],
        ["pressure", "sim", "--designs", "none", "--report", "{folder}/x.html"],
        ["compare", "--workloads", "numa02", "--policies", "none", "--report", "{folder}/x.html"],
        ["results", "export", "--db", "{tmp}/r.duckdb", "--csv", "{folder}/x.csv"],
        ["tune", "--policy", "mainline", "--workloads", "numa02", "--trials", "1", "--db", "{folder}/t.duckdb"],
    ],
)
def test_output_paths_where_no_file_can_be_made_are_refused_before_the_run(
    folder: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc and /sys pass access(W_OK) for root, yet no file can be made there: exit 2 naming the option."""
    if not os.path.ismount(folder):
        pytest.skip(f"{folder} is not mounted here")
    args = [a.replace("{folder}", folder).replace("{tmp}", str(tmp_path)) for a in argv]
    rc, out, err = run(capsys, *args)
    assert rc == 2 and out == "", err
    assert f"'{argv[-2]}' must be in a writable directory" in one_line_error(err) and f"'{args[-1]}'" in err


def test_a_full_stdout_is_one_line_not_an_internal_error() -> None:
    """`memsched ... > /dev/full`: exit 1 with 'cannot write the output', no traceback, no 'internal error'."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    for args in (["list", "policies"], ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--period", "10ms"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "memsched", *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                check=False,
            )  # fmt: skip
        assert proc.returncode == 1
        assert proc.stderr == "memsched: error: cannot write the output: No space left on device\n"


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "settings", "--json"], ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms"],
     ["rt", "sim", "dhall", "--json"], ["--version"]],
    ids=" ".join,
)  # fmt: skip
def test_a_closed_stdout_is_one_line_not_an_internal_error(args: list[str]) -> None:
    """`memsched ... >&-` (Python starts with sys.stdout None): exit 1, 'standard output is closed', no
    'internal error' (it was an AttributeError on None, or an ImportError of out_console)."""
    proc = subprocess.run(
        ["sh", "-c", 'exec "$0" -m memsched "$@" >&-', sys.executable, *args], stderr=subprocess.PIPE, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.endswith("memsched: error: cannot write the output: standard output is closed\n"), proc.stderr
    assert "internal error" not in proc.stderr


def test_an_error_line_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    """A path the user gave or the system holds can carry a new line or an escape sequence: the error is still
    one line, with them written as \\xNN (`pressure act --cgroup $'/no\\nexist'` printed two lines, and an
    escape sequence in a fifo_path reached the terminal)."""
    from memsched.cli.outcome import exit_status
    from memsched.errors import ConfigError, KernelError

    for error, status in (
        (ConfigError("--cgroup", "/x", "is not a cgroup (/sys/fs/cgroup/memory/no\nexist/cgroup.procs)"), 2),
        (KernelError(2, "fifo_path /tmp/no\x1b[31mfifo does not exist"), 1),
        (RuntimeError("bad\rthing"), 1),
    ):
        assert exit_status(error, debug=False) == status
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "\x1b" not in err and "\r" not in err, err
        assert "\\x0a" in err or "\\x1b" in err or "\\x0d" in err, err


def test_a_file_that_fails_while_it_is_written_is_named(tmp_path: Path) -> None:
    """write_atomic turns a failure of the system into a KernelError naming the file, and leaves no temp file."""
    from memsched.errors import KernelError

    with pytest.raises(KernelError, match=re.escape("cannot write /proc/x.json: No such file or directory")):
        write_atomic(Path("/proc/x.json"), "{}")
    target = tmp_path / "gone" / "x.json"
    with pytest.raises(KernelError, match=re.escape(f"cannot write {target}: ")):
        write_atomic(target, "{}")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compare", "--workloads", "numa02,numa02", "--policies", "none"], "'--workloads' names 'numa02' twice"),
        (["compare", "--workloads", "numa02", "--policies", "none,moron,none"], "'--policies' names 'none' twice"),
        (["run", "numa02", "--policy", "mainline", "--set", "group_active_in=nan"], "finite"),
        (["run", "specjbb", "--set", "txn_cpu_us=nan"], "finite"),
        (["run", "specjbb", "--set", "warehouses=100000"], "<= 1024"),
        (["rt", "sim", "--cpus", "100000"], "'--cpus' must be in 1..1024"),
        (["rt", "sim", "--cpus", "0-3"], "'--cpus': must be a whole number written in digits (got '0-3')"),
        (["run", "numa02", "--seed", "3.0"], "'--seed': must be a whole number written in digits"),
        (["numa", "balance", "--pid", "00-1", "--count", "1"], "'--pid': must be a whole number"),
        (["compare", "--jobs", "9" * 20], f"'-j': must be a whole number in {-(2**63)}..{2**63 - 1}"),
        (["compare", "--jobs", str(2**63)], f"in {-(2**63)}..{2**63 - 1} (got '{2**63}')"),
        (["run", "numa02", "--seed", str(2**63)], f"'--seed': must be in 0..{2**32 - 1} (got '{2**63}')"),
        (["rt", "sim", "--cpus", "9" * 5000], "'--cpus': must be a whole number in"),
        (["rt", "sim", "hackbench", "--set", "groups=100000"], "<= 64"),
        (["rt", "noise", "--cpus", "0-99999999999", "--duration", "1ms"], "'--cpus'"),
        (["rt", "noise", "--duration", "9" * 400 + "s"], "'--duration'"),
        (["pressure", "watch", "--level", "²", "--duration", "1s"], "'--level'"),
        (["pressure", "watch", "--backend", "fifo", "--duration", "1s"], "fifo_path"),
        (["pressure", "watch", "--cgroup", "/memsched-no-such-cgroup", "--duration", "1s"], "'--cgroup'"),
        (["pressure", "serve", "--socket", "/tmp/x.sock", "--max-clients-per-uid", "5000"], "--max-clients-per-uid"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each is the user's error: one line naming the option or key, exit 2, nothing on stdout."""
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and needle in one_line_error(err), err


def test_file_errors_name_the_file_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rt-app and topology errors say which file and which key (they did not)."""
    app = tmp_path / "app.json"
    app.write_text('{"tasks": {"t": {"policy": "SCHED_FIFO", "priority": 100, "run": 10}}}')
    rc, _, err = run(capsys, "rt", "sim", "--rt-app", str(app))
    assert rc == 2 and f"{app}: 'tasks.t.priority'" in one_line_error(err)
    topo = tmp_path / "t.toml"
    topo.write_text('name = "t"\nsockets = 1\ncores_per_socket = 2\nnode_memory = "1 banana"\n')
    rc, _, err = run(capsys, "run", "numa02", "--topology", str(topo))
    assert rc == 2 and f"{topo}: 'node_memory'" in one_line_error(err)


def test_the_simulated_machine_running_out_of_memory_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workload that needs more memory than the described machine is the input's fault."""
    topo = tmp_path / "small.toml"
    topo.write_text(
        'name = "small"\nsockets = 1\ncores_per_socket = 4\nnode_memory = "1GiB"\ncontroller_gibps = 9\n'
        "latency_local_ns = 100\ncore_mlp_bytes = 640\n"
    )
    rc, out, err = run(capsys, "run", "numa01", "--topology", str(topo), "--json")
    assert rc == 2 and out == "" and "out of memory" in one_line_error(err)


def test_a_runaway_allocation_stops_with_a_line_not_the_oom_killer() -> None:
    """Under MEMSCHED_MEMORY_LIMIT (normally 3/4 of what is available) the run fails with MemoryError: exit 2."""
    env = {**os.environ, "MEMSCHED_MEMORY_LIMIT": "8MiB"}
    proc = subprocess.run(
        [*MEMSCHED, "pressure", "sim", "--designs", "none", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "out of memory: the simulation needed more than its limit of 8.00 MiB" in one_line_error(proc.stderr)


@pytest.mark.skipif(not capabilities().sched_deadline.available, reason="SCHED_DEADLINE unavailable")
def test_rt_admit_for_a_pid_that_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    """It said ADMITTED; the task does not exist, so sched_setattr would fail with ESRCH."""
    rc, out, err = run(capsys, "rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--pid", "4194303")
    assert rc == 2 and out == "" and "no such process" in one_line_error(err)


def test_json_output_never_contains_nan(capsys: pytest.CaptureFixture[str]) -> None:
    """--json is JSON: the document parses with NaN refused."""
    rc, out, _ = run(capsys, "rt", "sim", "grub", "--json")
    assert rc == 0
    json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))


def test_a_closed_stdout_is_not_an_error_message(tmp_path: Path) -> None:
    """`memsched ... | head -c 10`: the reader went away; no traceback, no 'internal error'."""
    proc = subprocess.run(
        f"{sys.executable} -m memsched list policies --json | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("loaded", ["zlib", "_decimal", "numpy"])
def test_ctrl_c_during_start_up_prints_no_traceback(loaded: str) -> None:
    """SIGINT while the command line loads ends with "memsched: interrupted" and 130, never a traceback.

    The signal is sent once the process has mapped ``loaded`` (early, middle and late in the import of
    memsched.cli), not after a fixed delay: on a loaded machine a delay can land in the interpreter's own
    start-up, before any of memsched's code runs, where Python itself prints the KeyboardInterrupt."""
    proc = subprocess.Popen(
        [*MEMSCHED, "rt", "sim", "hackbench"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    give_up = time.monotonic() + 60
    while loaded not in Path(f"/proc/{proc.pid}/maps").read_text():
        assert proc.poll() is None and time.monotonic() < give_up, f"{loaded} never loaded"
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode == 130 and err.strip().endswith("memsched: interrupted"), err


def test_an_interrupted_import_of_the_command_line_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deterministically: a KeyboardInterrupt while memsched.cli is imported gives 130 and one line."""
    import importlib.abc

    import memsched.__main__ as entry

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object, target: object = None) -> None:
            if name == "memsched.cli":
                raise KeyboardInterrupt

    saved = {k: v for k, v in sys.modules.items() if k == "memsched.cli" or k.startswith("memsched.cli.")}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert entry.run() == 130
    assert capsys.readouterr().err == "memsched: interrupted\n"


def test_sigterm_ends_a_simulation_through_its_cleanup() -> None:
    """SIGTERM to a running simulation: 'terminated by SIGTERM', exit 143, no partial --trace file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "t.json"
        proc = subprocess.Popen(
            [*MEMSCHED, "rt", "sim", "dl-periodic", "--set", "duration_ms=60000", "--trace", str(trace)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        give_up = time.monotonic() + 60
        while not int(_status(proc.pid, "SigCgt"), 16) & 1 << (signal.SIGTERM - 1):  # memsched's handler is in
            assert proc.poll() is None and time.monotonic() < give_up, "the SIGTERM handler was never installed"
            time.sleep(0.01)
        time.sleep(1)  # into the simulation
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143 and err.strip().endswith("memsched: terminated by SIGTERM"), err
        assert os.listdir(tmp) == []
