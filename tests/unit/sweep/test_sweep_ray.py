"""The Ray executor on a local Ray instance: the same cells give the same records as on the local pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.sweeps import same_content, write_spec
from memsched import results
from memsched.sweep.executors import LocalPool, RayPool
from memsched.sweep.run import run_sweep
from memsched.sweep.spec import load_spec

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
