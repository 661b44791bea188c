"""The Ray executor on a local Ray instance: the same cells give the same records as on the local pool, and a
Ray worker killed mid-cell costs one try of that cell."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.sweeps import same_content, write_spec
from memsched import results
from memsched.results.store import ResultStore
from memsched.sweep.executors import LocalPool, RayPool
from memsched.sweep.plan import Machine, make_cell
from memsched.sweep.run import run_cells, run_sweep
from memsched.sweep.spec import load_spec
from memsched.workloads.numa import NumaOptions

ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra: pip install 'memsched[ray]'")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_ray_and_the_local_pool_write_identical_records(tmp_path: Path, local_ray: None) -> None:
    """A 12-cell sweep on Ray and on the local pool: the same rows, record for record (execution columns aside)."""
    spec = load_spec(write_spec(tmp_path))
    assert len(spec.cells) == 12
    on_ray, on_pool = tmp_path / "ray.duckdb", tmp_path / "pool.duckdb"
    executor = RayPool("auto")  # the instance this test started
    try:
        assert executor.workers == 2
        progress = run_sweep(spec, on_ray, executor)
    finally:
        executor.close()
    assert ray.is_initialized()  # an instance the executor did not start is left running
    assert (progress.ran, progress.ok) == (12, 12)
    pool = LocalPool(2)
    try:
        run_sweep(spec, on_pool, pool)
    finally:
        pool.close()
    same_content(on_ray, on_pool)
    ray_rows = results.open(on_ray)
    assert set(ray_rows["executor"]) == {"ray"} and set(results.open(on_pool)["executor"]) == {"local"}
    assert ray_rows["record_sha256"].is_unique


def _kill_the_task(killed: list[int], timeout_s: float = 120.0) -> None:
    """SIGKILL the Ray worker process running run_cell (Ray titles it ``ray::run_cell`` while the task runs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                running = entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::run_cell")
            except OSError:
                continue
            if running:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.02)


def test_a_ray_worker_killed_mid_cell_is_retried_or_recorded_as_failed(tmp_path: Path, local_ray: None) -> None:
    """SIGKILL of the Ray worker running a cell (a lost worker or node looks the same to the driver): retried
    (attempts 2), or with retries=0 a failed row naming the loss that the next sweep runs again; both databases
    end with the same content."""
    cell = make_cell(Machine.named("sandybridge-2n32", tmp_path), "numa02", "mainline", 0, {}, options=NumaOptions())
    dbs = {}
    for retries in (1, 0):
        dbs[retries] = db = tmp_path / f"retries{retries}.duckdb"
        killed: list[int] = []
        killer = threading.Thread(target=_kill_the_task, args=(killed,), daemon=True)
        executor = RayPool("auto", retries=retries)
        try:
            with ResultStore(db) as store:
                killer.start()
                progress = run_cells([cell], store, executor)
                killer.join()
                assert killed, "no Ray task titled ray::run_cell was seen"
                if retries:
                    assert (progress.ok, progress.failed) == (1, 0)
                else:
                    assert (progress.ok, progress.failed) == (0, 1)
                    error = store.failures([cell.key])[cell.key]
                    assert error.startswith("Ray lost the task (WorkerCrashedError) while running this cell")
                    rerun = run_cells([cell], store, executor)
                    assert (rerun.ran, rerun.ok) == (1, 1)
        finally:
            executor.close()
    assert results.open(dbs[1])["attempts"].tolist() == [2]
    same_content(dbs[1], dbs[0])
