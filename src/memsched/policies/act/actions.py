"""What an action policy may ask for: typed, frozen actions carrying their evidence.

A policy never signals anything itself. It returns these values; the backend checks each target against
its rules (inside the managed subtree, never the actor, PID 1, a kernel thread or a protected process) and
applies it: the simulator kills or sheds in its model, the live backend sends real signals. ``evidence``
holds the readings, thresholds and victim score that made the decision; the live backend writes it to the
JSON-line action log unchanged.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from memsched.errors import ConfigError

__all__ = ["ACTION_TYPES", "Action", "ActionResult", "KillCgroup", "KillProcess", "Shed"]

SIGTERM = int(signal.SIGTERM)
SIGKILL = int(signal.SIGKILL)

Evidence = Mapping[str, "float | int | str | bool | None"]


def _check_signal(sig: int) -> None:
    if sig not in (SIGTERM, SIGKILL):
        raise ConfigError("signal", sig, f"must be SIGTERM ({SIGTERM}) or SIGKILL ({SIGKILL})")


@dataclass(frozen=True)
class KillProcess:
    """Send ``signal`` to ``pid`` (earlyoom, lmkd)."""

    pid: int
    signal: int
    reason: str
    evidence: Evidence = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pid <= 1:
            raise ConfigError("pid", self.pid, "must be > 1")
        _check_signal(self.signal)


@dataclass(frozen=True)
class KillCgroup:
    """Send ``signal`` to every process of cgroup ``path`` and its descendants (systemd-oomd)."""

    path: str
    signal: int
    reason: str
    evidence: Evidence = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigError("path", self.path, "must be a cgroup path starting with '/'")
        _check_signal(self.signal)


@dataclass(frozen=True)
class Shed:
    """Ask ``service`` to give back ``bytes`` (its shed callback; ``level`` is the pressure heard)."""

    service: str
    bytes: int
    level: str
    reason: str
    evidence: Evidence = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bytes < 0:
            raise ConfigError("bytes", self.bytes, "must be >= 0")


Action = KillProcess | KillCgroup | Shed
ACTION_TYPES: tuple[type, ...] = (KillProcess, KillCgroup, Shed)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What became of one action: ``applied``, ``dry-run``, ``skipped`` (refused by a safety rule, or the
    target was gone) or ``failed``; ``message`` says why when it was not applied."""

    action: Action
    status: str
    message: str = ""
    #: Processes signalled (pids), for the log and the tests' "nothing outside the subtree" check.
    signalled: tuple[int, ...] = ()
