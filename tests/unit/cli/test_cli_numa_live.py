"""memsched numa top / numa balance on the fixture trees: one JSON document, clear errors, dry runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from helpers.hang import no_hang
from helpers.live_fixtures import FIXTURES
from memsched.cli import main

FOUR = ["--proc-root", str(FIXTURES / "numa-4node/proc"), "--sys-root", str(FIXTURES / "numa-4node/sys")]
TWO = ["--proc-root", str(FIXTURES / "numa-2node/proc"), "--sys-root", str(FIXTURES / "numa-2node/sys")]


def test_top_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    """--json: nodes, counters and processes by remote share, nothing else on stdout."""
    assert main(["numa", "top", "--json", *FOUR]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [p["pid"] for p in doc["processes"]] == [4400, 4200, 4100, 4300]
    assert doc["processes"][2]["remote_pages"] == 192512 and doc["processes"][3]["remote_share"] == 0.0
    assert doc["vmstat"]["numa_hint_faults_local"] == 301954 and doc["vmstat_missing"] == []
    assert doc["nodes"][3] == {"id": 3, "cpus": "6-7,14-15", "total_bytes": 16 << 30, "free_bytes": 15 << 30}
    assert doc["capabilities"]["numa_nodes"]["available"] is True
    assert err == ""


def test_top_text_names_unknown_counters(capsys: pytest.CaptureFixture[str]) -> None:
    """Counters the kernel lacks show as unknown, with one warning line on stderr."""
    assert main(["numa", "top", "--count", "1", *TWO]) == 0
    out, err = capsys.readouterr()
    assert "numa_hint_faults" in out and "unknown" in out and "cache (v2)" in out
    assert err.count("\n") == 1 and err.startswith("memsched: warning: ") and "CONFIG_NUMA_BALANCING" in err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["numa", "top", "--json", "--count", "2", *FOUR], "'--count'"),
        (["numa", "top", "--interval", "2", *FOUR], "'--interval'"),
        (["numa", "top", "--proc-root", "/nonexistent"], "'--proc-root'"),
        (["numa", "top", "--json", "--proc-root", str(FIXTURES / "numa-4node/sys")], "'--proc-root' must be a copy"),
        (["numa", "top", "--json", "--sys-root", str(FIXTURES / "numa-4node/proc")], "'--sys-root' must be a copy"),
        (["numa", "balance", "--dry-run", "--proc-root", str(FIXTURES)], "'--proc-root' must be a copy of /proc"),
        (["numa", "balance", "--policy", "homenode", "--count", "1", *FOUR], "'--dry-run'"),
        (["numa", "balance", "--policy", "nope", "--dry-run", *FOUR], "'policy'"),
        (["numa", "balance", "--policy", "numad", "--set", "cpu_threshold=-1", "--dry-run", *FOUR], "'cpu_threshold'"),
        (["numa", "balance", "--policy", "numad", "--count", "0", "--dry-run", *FOUR], "'--count'"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], field: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad value is refused before any work, naming the option, with nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("memsched: error: ") and field in err


def test_balance_dry_run_json_on_the_four_node_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    """homenode --dry-run: the first pass only records faults (placement runs at the end of a pass, before
    its faults count); the second proposes moving the misplaced processes' threads and their memory."""
    argv = ["numa", "balance", "--policy", "homenode", "--dry-run", "--json", "--count", "2", "--interval", "1ms"]
    assert main([*argv, "--set", "scan_size_mb=1024", *FOUR]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["policy"] == "homenode" and doc["dry_run"] is True and len(doc["samples"]) == 2
    actions = [(a["sample"], a["action"], a["target"], a["status"]) for s in doc["samples"] for a in s["actions"]]
    assert not [a for a in actions if a[0] == 1]
    assert (2, "MigrateTask", "pid 4100 (stream)", "dry-run") in actions
    assert (2, "MigratePages", "pid 4100 (stream)", "dry-run") in actions
    assert (2, "MigratePages", "pid 4200 (worker pool)", "dry-run") in actions
    assert err == ""


def test_balance_dry_run_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Text output: a header on stderr, one line per sample and per action on stdout."""
    argv = ["numa", "balance", "--policy", "numad", "--dry-run", "--count", "2", "--interval", "1ms"]
    assert main([*argv, "--set", "min_interval_s=1", *TWO]) == 0
    out, err = capsys.readouterr()
    assert "policy numad: hooks on_tick" in err and "mode: dry run" in err
    assert "note: not balanced: pid 960 (rootd) belongs to uid 0" in out
    assert out.splitlines()[1].startswith("[1] t=") and "balanced: 900 (db), 950 (cache (v2))" in out


@pytest.mark.parametrize("pid", ["999999", "-5", "0"])
def test_balance_pid_not_there_exits_2(pid: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--pid naming no process of the tree read is bad input (as rt admit --pid): one line, exit 2, no sample."""
    assert main(["numa", "balance", "--policy", "numad", "--dry-run", "--pid", pid, *FOUR]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "'--pid'" in err and pid in err


def test_balance_pid_of_a_zombie_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--pid naming a zombie (state Z) is refused like a pid that is not there; it was exit 0 with a note."""
    tree = tmp_path / "numa-4node"
    shutil.copytree(FIXTURES / "numa-4node", tree, symlinks=True)
    stat = tree / "proc/4100/stat"
    stat.write_text(stat.read_text().replace("(stream) R ", "(stream) Z ", 1))
    roots = ["--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys")]
    assert main(["numa", "balance", "--policy", "numad", "--dry-run", "--pid", "4100", *roots]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "'--pid' must be a running process (it has exited: a zombie" in err and "4100" in err


@pytest.mark.skipif(not os.path.exists("/proc/self/numa_maps"), reason="this kernel has no numa_maps (CONFIG_NUMA)")
def test_balance_pid_of_a_real_zombie_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A child of this test that exited and is not reaped yet, on the running kernel: refused, exit 2."""
    child = subprocess.Popen(["true"])  # not waited for until the end: a zombie once it exits
    pid = child.pid
    try:
        deadline = time.monotonic() + 30
        while _state(pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(pid) == "Z"
        argv = ["numa", "balance", "--policy", "numad", "--dry-run", "--count", "1", "--interval", "1ms"]
        assert main([*argv, "--pid", str(pid)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "zombie" in err
    finally:
        child.wait(timeout=30)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def test_balance_pid_whose_memory_map_may_not_be_read_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one process asked for, that this user may not read (PID 1 in a container, even for root): exit 2 before
    any sample, not exit 0 with "not balanced" and "balanced: none"."""
    import errno

    from memsched.errors import AccessDeniedError
    from memsched.live import procfs

    def denied(roots: object, pid: int) -> object:
        raise AccessDeniedError(errno.EACCES, f"cannot read /proc/{pid}/numa_maps: Permission denied")

    monkeypatch.setattr(procfs, "read_numa_maps", denied)
    assert main(["numa", "balance", "--policy", "numad", "--dry-run", "--pid", "4100", *FOUR]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "'--pid' must be a process this user may read the memory map of (cannot read /proc/4100/numa_maps" in err


def _no_action_lines(policy: str, count: int, capsys: pytest.CaptureFixture[str]) -> list[str]:
    argv = ["numa", "balance", "--policy", policy, "--dry-run", "--count", str(count), "--interval", "1ms"]
    assert main([*argv, "--set", "scan_size_mb=1024" if policy == "homenode" else "min_interval_s=1", *FOUR]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if "no action from this sample" in line]


def test_balance_scan_pass_hint_only_where_true(capsys: pytest.CaptureFixture[str]) -> None:
    """The "places tasks when a scan pass ends" hint is for such policies only: with samples to come it says a
    later sample acts; on the last sample of a run without an action it asks for more; numad never gets it."""
    assert _no_action_lines("homenode", 2, capsys) == [
        "[1] no action from this sample (homenode places tasks when a scan pass ends: it acts from a later sample)"
    ]
    (last,) = _no_action_lines("homenode", 1, capsys)
    assert last.startswith("[1] no action") and "--count" in last
    assert _no_action_lines("numad", 2, capsys) == ["[1] no action from this sample", "[2] no action from this sample"]


# ------------------------------------------------------------------------------------------------ broken trees


def _broken(case: str, tmp_path: Path) -> tuple[list[str], str]:
    """A copy of the 2-node fixture made bad in one way, inside ``tmp_path``: its --proc-root/--sys-root
    arguments and the file the error must name."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "numa-2node", tree, symlinks=True)
    proc = tree / "proc"
    roots = ["--proc-root", str(proc), "--sys-root", str(tree / "sys")]
    secret = tmp_path / "secret"
    secret.write_text("root:TOPSECRET:20228:0:99999:7:::\n")
    numa_maps, vmstat, stat = proc / "900" / "numa_maps", proc / "vmstat", proc / "900" / "task" / "901" / "stat"
    if case == "vmstat is /dev/zero":
        vmstat.unlink()
        vmstat.symlink_to("/dev/zero")
        return roots, "vmstat"
    if case == "vmstat is a FIFO":
        vmstat.unlink()
        os.mkfifo(vmstat)
        return roots, "vmstat"
    if case == "vmstat is a 4 GiB sparse file":
        with vmstat.open("r+b") as f:
            f.truncate(4 << 30)
        return roots, "vmstat"
    if case == "numa_maps past the 64 MiB cap":
        with numa_maps.open("r+b") as f:
            f.truncate(65 << 20)
        return roots, "numa_maps"
    if case == "numa_maps leads out of the tree":
        numa_maps.unlink()
        numa_maps.symlink_to(secret)
        return roots, "numa_maps"
    if case == "a pid directory leads out of the tree":
        shutil.rmtree(proc / "950")
        (proc / "950").symlink_to(tmp_path)  # holds "secret" and the tree itself
        (tmp_path / "task").mkdir()
        (tmp_path / "task" / "950").symlink_to(proc / "900" / "task" / "900")
        return roots, "950"
    if case == "numa_maps has garbage bytes":
        numa_maps.write_bytes(b"\x00\xff garbage\n" * 5000)
        return roots, "numa_maps"
    if case == "numa_maps has a number too large":
        numa_maps.write_text("7f5000000000 default anon=99999999999999999999 N0=1 kernelpagesize_kB=4\n")
        return roots, "numa_maps"
    if case == "numa_maps names a node the machine lacks":
        numa_maps.write_text("7f5000000000 default anon=65536 N0=1 N5=65535 kernelpagesize_kB=4\n")
        return roots, "numa_maps"
    if case == "a sysfs file leads out of the tree":
        distance = tree / "sys" / "devices" / "system" / "node" / "node1" / "distance"
        distance.unlink()
        distance.symlink_to(secret)
        return roots, "node1/distance"
    if case == "a stat line is short":
        stat.write_text("901 (db) S 1\n")
        return roots, "901/stat"
    assert case == "vmstat has a number that is not one"
    vmstat.write_text("numa_hit nan\n")
    return roots, "vmstat"


BROKEN = [
    "vmstat is /dev/zero",
    "vmstat is a FIFO",
    "vmstat is a 4 GiB sparse file",
    "numa_maps past the 64 MiB cap",
    "numa_maps leads out of the tree",
    "a pid directory leads out of the tree",
    "numa_maps has garbage bytes",
    "numa_maps has a number too large",
    "numa_maps names a node the machine lacks",
    "a sysfs file leads out of the tree",
    "a stat line is short",
    "vmstat has a number that is not one",
]


@pytest.mark.parametrize("command", [["numa", "top", "--json"], ["numa", "balance", "--dry-run", "--json"]])
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_tree_exits_2_naming_the_file(
    case: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever a copied tree holds (a device, a FIFO, a huge or sparse file, a symlink out of the tree, bad bytes,
    numbers too large, a node the machine lacks, a short stat line), the command neither blocks nor reads it
    whole nor prints it: one line naming the file, exit 2, and at most a short excerpt of the contents."""
    roots, file = _broken(case, tmp_path)
    tracemalloc.start()
    try:
        with no_hang():
            status = main([*command, *roots])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("memsched: error: ") and file in err, err
    assert "TOPSECRET" not in err and "internal error" not in err and len(err) < 400
    assert peak < 200 << 20  # the 64 MiB cap at most, never the 4 GiB file


def test_a_node_beyond_the_machine_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """N5= on a 2-node machine: the error names the node and the machine's nodes (the pages are not dropped)."""
    roots, _ = _broken("numa_maps names a node the machine lacks", tmp_path)
    assert main(["numa", "top", "--json", *roots]) == 2
    assert "pages on node 5 (N5=), but the machine has nodes 0..1" in capsys.readouterr().err


def test_a_process_name_with_escape_sequences_reaches_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any process may name itself with control characters (PR_SET_NAME): numa top's table and numa balance's
    lines print them as \\xNN, so nothing of someone else's name is interpreted by the terminal."""
    tree = tmp_path / "numa-4node"
    shutil.copytree(FIXTURES / "numa-4node", tree, symlinks=True)
    stat = tree / "proc/4100/stat"
    stat.write_text(stat.read_text().replace("(stream)", "(\x1b]0;x\x07\x1b[2J)", 1))
    for sub in (tree / "proc/4100/task").iterdir():
        tstat = sub / "stat"
        if tstat.is_file():
            tstat.write_text(tstat.read_text().replace("(stream)", "(\x1b]0;x\x07\x1b[2J)", 1))
    roots = ["--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys")]
    for argv in (["numa", "top", *roots], ["numa", "balance", "--policy", "numad", "--dry-run", *roots]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert "\x1b" not in out + err and "\x07" not in out + err
        assert "\\x1b" in out, out


def _rename(tree: Path, pid: int, old: bytes, new: bytes) -> None:
    """Give ``pid`` and its threads the name ``new`` in every stat and status of a copied tree."""
    proc = tree / "proc" / str(pid)
    files = [proc / "stat", proc / "status", *(proc / "task").glob("*/stat"), *(proc / "task").glob("*/status")]
    for f in files:
        data = f.read_bytes().replace(b"(" + old + b")", b"(" + new + b")", 1)
        f.write_bytes(data.replace(b"Name:\t" + old, b"Name:\t" + new, 1))


def test_a_process_name_that_is_not_utf8_is_escaped_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A comm of bytes that are not UTF-8 is shown as \\xNN in the table and the balance lines, and --json holds
    that text, never lone surrogates (which strict UTF-8 consumers refuse); a right-to-left override in a name
    is escaped in text so it cannot reorder the line."""
    tree = tmp_path / "numa-2node"
    shutil.copytree(FIXTURES / "numa-2node", tree, symlinks=True)
    _rename(tree, 900, b"db", b"db\xff\xfe")
    _rename(tree, 950, b"cache (v2)", "cache\u202e2v".encode())
    roots = ["--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys")]
    for argv in (["numa", "top", "--count", "1", *roots], ["numa", "balance", "--dry-run", *roots]):
        assert main(argv) == 0
        out, _ = capsys.readouterr()
        assert "db\\xff\\xfe" in out and "cache\\u202e2v" in out, out
        assert "\u202e" not in out
        out.encode("utf-8")  # no lone surrogate: strict UTF-8 encodes it
    for argv in (["numa", "top", "--json", *roots], ["numa", "balance", "--dry-run", "--json", *roots]):
        assert main(argv) == 0
        out, _ = capsys.readouterr()
        doc = json.loads(out)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # strict: raises on a lone surrogate
        assert "\\udc" not in out and '"db\\\\xff\\\\xfe"' in out, out


@pytest.mark.parametrize(("stop", "status", "name"), [(KeyboardInterrupt(), 130, "SIGINT"), (None, 143, "SIGTERM")])
def test_balance_json_ended_by_a_signal_still_prints_its_samples(
    stop: KeyboardInterrupt | None,
    status: int,
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --count, Ctrl-C (or SIGTERM) is how `numa balance --json` ends: the samples taken so far are
    printed, the document says which signal ended it, and the status is still the signal's (it printed
    nothing at all)."""
    import signal

    from memsched.errors import Terminated
    from memsched.live.numa.balance import LiveBalancer

    real_run = LiveBalancer.run
    raised = stop if stop is not None else Terminated(signal.SIGTERM)

    def two_then_stopped(self: LiveBalancer, count: int | None, **kw: object) -> object:
        real_run(self, 2, **kw)  # type: ignore[arg-type]
        raise raised

    monkeypatch.setattr(LiveBalancer, "run", two_then_stopped)
    argv = ["numa", "balance", "--policy", "numad", "--dry-run", "--json", "--count", "5", "--interval", "1ms"]
    assert main([*argv, "--set", "min_interval_s=1", *TWO]) == status
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert len(doc["samples"]) == 2 and doc["interrupted"] == name
    assert err.strip().splitlines()[-1] in ("memsched: interrupted", f"memsched: terminated by {name}")
