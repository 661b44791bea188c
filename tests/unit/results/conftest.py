"""Fixtures of the results database tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsched.results.store import ResultStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A new, empty results database (its tables made)."""
    path = tmp_path / "r.duckdb"
    with ResultStore(path) as store:
        store.connection()
    return path
