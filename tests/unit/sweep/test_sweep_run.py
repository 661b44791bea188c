"""Running sweeps: the pool gives the records run_one gives, failures are per cell, a killed worker costs one try,
a killed sweep resumes where it stopped, and two sweeps can share one database at the same time."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from helpers.sweeps import cli, same_content, write_spec
from memsched import results
from memsched.results.store import Outcome, ResultStore, record_digest
from memsched.sweep.cell import Cell, run_cell, topology_file
from memsched.sweep.executors import LocalPool
from memsched.sweep.plan import Machine, make_cell
from memsched.sweep.run import Progress, run_cells, run_sweep
from memsched.sweep.spec import load_spec
from memsched.workloads.numa import NumaOptions
from memsched.workloads.runner import run_one

#: Ten cells of about 0.2 s each: slow enough to stop a sweep half-way.
RESUME_SPEC = """
name = "resume"
seeds = 2
workloads = ["numa02"]
policies = ["mainline"]
topologies = ["opteron-4n32"]
[sets]
scan_size_mb = [64, 128, 256, 512]
"""


@pytest.fixture
def pool() -> Iterator[LocalPool]:
    p = LocalPool(2)
    yield p
    p.close()


def test_the_pool_gives_the_records_run_one_gives(tmp_path: Path, pool: LocalPool) -> None:
    """Every record a worker returns is byte for byte the record of run_one in this process."""
    spec = load_spec(write_spec(tmp_path))
    progress = run_sweep(spec, tmp_path / "r.duckdb", pool)
    assert (progress.ran, progress.ok, progress.failed) == (12, 12, 0)
    df = results.open(tmp_path / "r.duckdb")
    for cell in spec.cells[:4] + spec.cells[-2:]:
        run = cell.spec if cell.topology_toml is None else dataclasses.replace(
            cell.spec, topology=topology_file(cell.topology_toml))  # fmt: skip
        digest = record_digest(run_one(run).to_json())
        assert df.loc[df["key"] == cell.key, "record_sha256"].item() == digest
    again = run_sweep(spec, tmp_path / "r.duckdb", pool)
    assert (again.skipped, again.ran) == (12, 0)


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path: Path, pool: LocalPool) -> None:
    """A cell whose run raises is a failed row with the error; the other cells finish."""
    good = make_cell(Machine.named("laptop-1n8", tmp_path), "numa02", "none", 0, {}, options=NumaOptions())
    bad = dataclasses.replace(good, key="bad", spec=dataclasses.replace(good.spec, workload="no-such-workload"))
    stale = dataclasses.replace(good, key="stale", doc={**good.doc, "model_version": "1999.01-1"})
    with ResultStore(tmp_path / "r.duckdb") as store:
        progress = run_cells([bad, good, stale], store, pool)
        errors = store.failures(["bad", "stale", good.key])
    assert (progress.ok, progress.failed) == (1, 2)
    assert errors["bad"].startswith("UnknownNameError: 'workload' must be one of")
    assert "this worker runs model" in errors["stale"]
    assert run_cell(bad).error == errors["bad"]


def _kill_mid_cell(store: ResultStore, cells: Sequence[Cell], pool: LocalPool) -> Progress:
    """Run ``cells`` (fast, then slow) on one worker and SIGKILL that worker 0.2 s into the slow cell."""
    timers: list[threading.Timer] = []

    def on_progress(progress: Progress, outcomes: Sequence[Outcome]) -> None:
        if progress.ran == 1 and not timers:
            timers.append(threading.Timer(0.2, os.kill, (outcomes[0].pid, signal.SIGKILL)))
            timers[0].start()

    progress = run_cells(cells, store, pool, on_progress=on_progress)
    timers[0].join()
    return progress


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_retried_or_recorded_as_failed(tmp_path: Path) -> None:
    """SIGKILL of a worker running a cell: retried on a new worker (attempts 2), or with --retries 0 recorded as
    failed with the signal and run again by the next sweep; both databases end with the same content."""
    machine = Machine.named("x86-8n64", tmp_path)
    fast = make_cell(Machine.named("laptop-1n8", tmp_path), "numa02", "none", 0, {}, options=NumaOptions())
    # (about 1 s: the kill 0.2 s in must find it running; numa02 under mainline here now takes about 0.2 s)
    slow = make_cell(machine, "numa02", "moron", 0, {}, options=NumaOptions())
    retried, failed = tmp_path / "retried.duckdb", tmp_path / "failed.duckdb"

    pool = LocalPool(1, retries=1)
    try:
        with ResultStore(retried) as store:
            progress = _kill_mid_cell(store, [fast, slow], pool)
    finally:
        pool.close()
    assert (progress.ok, progress.failed) == (2, 0)
    df = results.open(retried).set_index("key")
    assert df.loc[slow.key, "attempts"] == 2 and df.loc[fast.key, "attempts"] == 1

    pool = LocalPool(1, retries=0)
    try:
        with ResultStore(failed) as store:
            progress = _kill_mid_cell(store, [fast, slow], pool)
            assert (progress.ok, progress.failed) == (1, 1)
            error = store.failures([slow.key])[slow.key]
            assert "killed by SIGKILL while running this cell (attempt 1 of 1)" in error
            rerun = run_cells([fast, slow], store, pool)
            assert (rerun.skipped, rerun.ran, rerun.ok) == (1, 1, 1)
    finally:
        pool.close()
    same_content(retried, failed)


def _rows(db: Path) -> int:
    try:
        return len(results.open(db))
    except Exception:  # not created yet, or its tables not yet
        return 0


@pytest.mark.slow
def test_a_sweep_killed_half_way_resumes_with_only_the_missing_cells(tmp_path: Path) -> None:
    """SIGKILL of `memsched sweep` half-way: the rerun skips what was committed, runs the rest, and the database
    ends as an uninterrupted sweep's."""
    spec = write_spec(tmp_path, RESUME_SPEC)
    db = tmp_path / "killed.duckdb"
    proc = cli("sweep", str(spec), "--db", str(db), "--jobs", "1")
    deadline = time.monotonic() + 120
    while _rows(db) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    committed = _rows(db)
    assert 3 <= committed < 10, "the sweep was not stopped half-way"

    proc = cli("sweep", str(spec), "--db", str(db), "--jobs", "2", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert (summary["cells"], summary["skipped"], summary["ran"]) == (10, committed, 10 - committed)

    whole = tmp_path / "whole.duckdb"
    pool = LocalPool(2)
    try:
        run_sweep(load_spec(spec), whole, pool)
    finally:
        pool.close()
    same_content(db, whole)


@pytest.mark.slow
def test_two_sweeps_at_once_share_one_database(tmp_path: Path) -> None:
    """Two `memsched sweep` processes writing one database at the same time both finish; every cell is written
    once, and the content is that of the two sweeps run one after the other."""
    one_seed = RESUME_SPEC.replace("seeds = 2", "seeds = 1")
    a = write_spec(tmp_path, one_seed.replace('"resume"', '"a"'), "a.toml")
    b = write_spec(tmp_path, one_seed.replace('"resume"', '"b"').replace("512", "1024"), "b.toml")
    db = tmp_path / "both.duckdb"
    procs = [cli("sweep", str(s), "--db", str(db), "--jobs", "1", "--json") for s in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    ran = sum(json.loads(out)["ran"] + json.loads(out)["done_elsewhere"] for out, _ in outs)
    assert ran >= 6  # 4 cells in common, 1 of each sweep's own: none lost
    frame = results.open(db)
    assert len(frame) == 6 and frame["key"].is_unique and set(frame["status"]) == {"ok"}
    assert set(results.sweeps(db)["missing"]) == {0}

    one_after_other = tmp_path / "seq.duckdb"
    pool = LocalPool(2)
    try:
        for s in (a, b):
            run_sweep(load_spec(s), one_after_other, pool)
    finally:
        pool.close()
    same_content(db, one_after_other)


def test_topology_files_are_never_written_in_another_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memsched-topologies-UID in a shared /tmp may have been made by someone else (or be writable by others):
    then the files go to a private directory of this process instead."""
    from memsched.sweep import cell as cell_mod

    monkeypatch.setattr(cell_mod.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cell_mod, "_PRIVATE", [])
    monkeypatch.setattr(cell_mod, "_TOPOLOGY_FILES", {})
    shared = tmp_path / f"memsched-topologies-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # (as another user's, or a careless one, would leave it)
    path = Path(topology_file("name = 'x'\n"))
    assert path.read_text() == "name = 'x'\n" and path.parent != shared and not any(shared.iterdir())
    assert path.parent.stat().st_mode & 0o077 == 0
    monkeypatch.setattr(cell_mod, "_PRIVATE", [])
    shared.chmod(0o700)
    assert Path(topology_file("name = 'y'\n")).parent == shared  # its own, private: shared by the workers


class _SharedStore:
    """What run_cells asks of a database, shared by threads that stand for processes: the finished keys are seen
    by the others at their next reread, as committed rows are."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finished: set[str] = set()
        self.runs: list[str] = []

    def finished_keys(self) -> set[str]:
        with self.lock:
            return set(self.finished)

    def commit(self, outcomes: Sequence[Outcome], *, timelines: Path | None = None) -> set[str]:
        with self.lock:
            self.runs += [o.key for o in outcomes]
            before = {o.key for o in outcomes} & self.finished
            self.finished.update(o.key for o in outcomes)
            return before

    def yield_if_contended(self) -> bool:
        return False


class _SleepyExecutor:
    """One cell at a time, each taking ``cell_s`` of wall time."""

    name, workers, capacity = "fake", 1, 1

    def __init__(self, cell_s: float) -> None:
        self.cell_s = cell_s
        self.job: tuple[str, float] | None = None

    def submit(self, cell: Cell) -> None:
        self.job = (cell.key, time.monotonic() + self.cell_s)

    def in_flight(self) -> int:
        return 0 if self.job is None else 1

    def poll(self, timeout_s: float) -> list[Outcome]:
        if self.job is None:
            return []
        key, end = self.job
        time.sleep(max(0.0, min(timeout_s, end - time.monotonic())))
        if time.monotonic() < end:
            return []
        self.job = None
        return [Outcome(key, {}, object(), None, self.cell_s, "h", 1)]  # type: ignore[arg-type]

    def close(self) -> None:
        pass


def test_two_sweeps_started_together_split_the_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes running the same cells at the same time split them: one that finds it ran a cell the other
    also ran (both start with the first cell and walk side by side), or that meets cells the other finished,
    goes on from inside the longest stretch nobody has done. Before, both walked the cells in the same order side
    by side and ran nearly all of them twice (133 runs for 72 cells, two `memsched sweep` processes)."""
    from memsched.sweep import run as run_mod

    monkeypatch.setattr(run_mod, "REFRESH_S", 0.02)
    pids = {}
    monkeypatch.setattr(run_mod.os, "getpid", lambda: pids[threading.get_ident()])
    cells = [dataclasses.make_dataclass("C", ["key"])(f"cell{i:03d}") for i in range(120)]
    store = _SharedStore()
    done: list[Progress] = []

    def process(pid: int) -> None:
        pids[threading.get_ident()] = pid
        done.append(run_cells(cells, store, _SleepyExecutor(0.005)))  # type: ignore[arg-type]

    threads = [threading.Thread(target=process, args=(pid,)) for pid in (4242, 4243)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 2 and store.finished == {c.key for c in cells}
    assert sum(p.ran for p in done) == len(store.runs)
    assert len(store.runs) <= 1.25 * len(cells), f"{len(store.runs)} runs for {len(cells)} cells"
    assert all(p.ran + p.elsewhere + p.skipped == len(cells) for p in done)
    assert all(p.ran >= len(cells) // 4 for p in done)  # both did a share


def test_processes_started_together_choose_places_far_apart() -> None:
    """Consecutive process ids (two sweeps started together) choose places far apart, one id always the same."""
    from memsched.sweep.run import start_offset

    for pid in range(1000, 1100):
        a, b = start_offset(72, pid), start_offset(72, pid + 1)
        assert 0 <= a < 72 and min(abs(a - b), 72 - abs(a - b)) >= 72 // 4
    assert start_offset(72, 5) == start_offset(72, 5) and start_offset(1, 5) == start_offset(0, 5) == 0
