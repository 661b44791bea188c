"""``memsched … | head -1``: a reader that goes away is not an error of memsched's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["rt", "admit", "--runtime", "1ms", "--deadline", "10ms", "--period", "10ms"],
        ["list", "settings", "--policy", "mainline"],
    ],
)
def test_a_reader_that_closed_the_pipe_is_not_an_internal_error(args: list[str]) -> None:
    """The pipe's reader is gone before the first write: exit quietly, with no "internal error" on stderr."""
    for _ in range(3):
        r, w = os.pipe()
        os.close(r)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "memsched", *args],
                stdout=w,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            os.close(w)
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 1), done.stderr
