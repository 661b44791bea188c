"""Third-party NUMA policies for the plug-in tests: one that conforms, two that do not.

They are importable as ``helpers.numa_plugins:Class``, as an installed plug-in's entry point would be.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from memsched.config import knob, validate
from memsched.policies.numa import registry
from memsched.policies.numa.actions import Action, MigratePages
from memsched.policies.numa.base import NumaPolicy, TaskWorkScan
from memsched.policies.numa.spec import PolicySpec
from memsched.policies.numa.views import FaultBatch, PolicyContext


@dataclass(frozen=True)
class GreedyConfig:
    scan_delay_ms: int = knob(100, "first scan after this delay", min=0)

    def __post_init__(self) -> None:
        validate(self)


class Greedy(NumaPolicy):
    """Migrate every misplaced page to the faulting CPU's node (a well-behaved plug-in)."""

    def __init__(self, config: GreedyConfig) -> None:
        self.config = config
        self.scan = TaskWorkScan(scan_delay_ms=config.scan_delay_ms)

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        misplaced = batch.page_node != batch.cpu_node
        if not misplaced.any():
            return ()
        return (
            MigratePages(batch.mm, batch.page[misplaced], batch.cpu_node[misplaced], payer=batch.task[misplaced]),
        )


class Chatty(NumaPolicy):
    """Returns words instead of actions from a hook (a plug-in bug the checker must catch)."""

    def __init__(self, config: GreedyConfig) -> None:
        self.scan = TaskWorkScan(scan_delay_ms=config.scan_delay_ms)

    def on_placement(self, ctx: PolicyContext, task: int) -> Sequence[Action]:
        return ["migrate please"]  # type: ignore[list-item]


class Unannotated(NumaPolicy):
    """Names no config class: an entry point cannot say how to configure it."""

    def __init__(self, config) -> None:  # type: ignore[no-untyped-def]
        self.config = config


@contextmanager
def chatty_registered() -> Iterator[str]:
    """:class:`Chatty` registered as the third-party policy ``test-chatty`` for the duration."""
    registry.register(
        PolicySpec(
            id="test-chatty",
            entry_point="helpers.numa_plugins:Chatty",
            config_entry_point="helpers.numa_plugins:GreedyConfig",
            description="chatty",
            models="a test",
        )
    )
    try:
        yield "test-chatty"
    finally:
        registry.unregister("test-chatty")
