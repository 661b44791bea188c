"""pytest fixtures: the committed /proc and /sys trees under tests/fixtures/live."""

from __future__ import annotations

import pytest

from helpers.live_fixtures import tree
from memsched.live.roots import LiveRoots


@pytest.fixture
def vm() -> LiveRoots:
    """The project's 2-CPU 6.18 VM, debugfs not mounted, one deadline task (tid 4242)."""
    return tree("vm-2cpu-6.18")


@pytest.fixture
def arm() -> LiveRoots:
    """4-CPU big.LITTLE, CPUs 2-3 isolated, debugfs readable, caller unprivileged and pinned to CPU 0."""
    return tree("arm64-4cpu-isolated-6.17")


@pytest.fixture
def old() -> LiveRoots:
    """6.8 kernel, debugfs mounted, no fair_server."""
    return tree("x86-2cpu-6.8-debugfs")
