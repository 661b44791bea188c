"""What the whole suite needs before any test runs."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background of a non-interactive shell (``nohup``, ``cmd &``) inherits SIGINT
    ignored, and an ignored signal stays ignored across ``exec``: the commands the interruption tests start would
    never see their Ctrl-C (exit 0 instead of 130). A handler does not survive ``exec``, so installing Python's
    own here makes every child start with the default disposition, as under a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _fresh_jit_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with a fresh ``MEMSCHED_JIT`` gate (no rate solves counted, no kernels loaded): whether a
    test's simulation switches to the numba kernels then depends on that test alone, not on the tests run before
    it in the same process (``auto`` switches after a number of solves per process)."""
    from memsched.sim.fluid import jit

    monkeypatch.setattr(jit, "_gate", jit._Gate())
