"""A guard for tests of reads that must never block: a hang becomes a failure instead of a stuck suite."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def no_hang(seconds: int = 10) -> Iterator[None]:
    """Fail (``AssertionError``) if the block has not finished after ``seconds``; a guard, not a time limit."""

    def fail(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
