"""Tasks and their programs.

A simulated task (a thread; ``struct task_struct``) runs a *program*: a tuple of phases, executed in order.
Phases either take time (``Touch``, ``Compute``, ``Sleep``, ``Join``, ``Wait``) or act at once
(``SetMempolicy``, ``SetAffinity``, ``Spawn``; ``Call`` acts at once unless its function returns CPU
time). Work phases progress fluidly: the machine gives every running task a rate, and a phase ends when
its work is done (``DESIGN.md``, "Fluid progress").

Workloads build programs from these values; the machine interprets them. New mechanisms add phases here
(memory pressure adds allocation and "wait for a pressure event" phases; the realtime scheduler adds
periodic jobs and locked sections).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.mm import MmStruct, Region

__all__ = [
    "Call",
    "Compute",
    "Join",
    "Phase",
    "SetAffinity",
    "SetMempolicy",
    "Sleep",
    "Spawn",
    "Task",
    "TaskState",
    "ThreadSpec",
    "Touch",
    "Wait",
    "Waitable",
]


@dataclass(frozen=True, slots=True)
class Touch:
    """Stream over ``region`` ``passes`` times (``bzero`` when ``write`` is 1.0; reads when 0.0).

    The first touch of a page allocates it under the task's memory policy on the node of the CPU it runs on.
    ``cpu_ns_per_byte`` interleaves computation with the accesses (a transaction mix rather than a pure
    stream); ``mlp_scale`` below 1 models dependent accesses (pointer chasing keeps fewer misses in flight
    than a streaming ``bzero``). With ``shared`` set, a ``shared_fraction`` of every byte goes to a second
    region walked in parallel (a thread's own data plus common data, as a SPECjbb warehouse has);
    ``passes`` counts passes over ``region``.
    """

    region: Region
    passes: int = 1
    write: float = 1.0
    cpu_ns_per_byte: float = 0.0
    mlp_scale: float = 1.0
    shared: Region | None = None
    shared_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise ConfigError("passes", self.passes, "must be >= 1")
        if not 0.0 <= self.write <= 1.0:
            raise ConfigError("write", self.write, "must be in [0, 1]")
        if self.cpu_ns_per_byte < 0:
            raise ConfigError("cpu_ns_per_byte", self.cpu_ns_per_byte, "must be >= 0")
        if not 0.0 < self.mlp_scale <= 1.0:
            raise ConfigError("mlp_scale", self.mlp_scale, "must be in (0, 1]")
        if not 0.0 <= self.shared_fraction < 1.0 or (self.shared_fraction > 0) != (self.shared is not None):
            raise ConfigError("shared_fraction", self.shared_fraction, "must be in [0, 1), and > 0 iff shared is set")
        if self.shared is not None and self.shared.mm_id != self.region.mm_id:
            raise ConfigError("shared", self.shared, "must be in the same mm as region")

    @property
    def work(self) -> float:
        return float(self.region.nbytes) * self.passes / (1.0 - self.shared_fraction)

    def sweeps(self, done: float, rate: float) -> list[tuple[Region, float, float]]:
        """(region, cursor, rate) of each region this phase walks, after ``done`` bytes at ``rate``."""
        own = 1.0 - self.shared_fraction
        out = [(self.region, (done * own) % self.region.nbytes, rate * own)]
        if self.shared is not None:
            f = self.shared_fraction
            out.append((self.shared, (done * f) % self.shared.nbytes, rate * f))
        return out


@dataclass(frozen=True, slots=True)
class Compute:
    """Burn ``ns`` nanoseconds of CPU time (progress only while on a CPU)."""

    ns: int


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep ``ns`` nanoseconds off the runqueue."""

    ns: int


@dataclass(frozen=True, slots=True)
class SetMempolicy:
    """``set_mempolicy(2)`` for the calling thread."""

    policy: Mempolicy


@dataclass(frozen=True, slots=True)
class SetAffinity:
    """``sched_setaffinity(2)`` for the calling thread; ``cpus=None`` allows every CPU."""

    cpus: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    name: str
    program: tuple[Phase, ...]
    nice: int = 0


@dataclass(frozen=True, slots=True)
class Spawn:
    """``pthread_create`` each thread (same mm, inherits policy and affinity), in order."""

    threads: tuple[ThreadSpec, ...]


@dataclass(frozen=True, slots=True)
class Join:
    """``pthread_join`` every thread this task spawned."""


# ---- memory-pressure phases (sim/mm/reclaim.py and the pressure workloads) -------------------------------
class Waitable(Protocol):
    """A kernel wait queue a task can block on (a pressure fd, an eventfd, a PSI trigger, dirty throttling).

    ``poll_ready(task)`` says whether the condition already holds (the task does not block); otherwise the
    machine parks the task and calls ``add_waiter(task, wake)``; the waitable calls ``wake(task)`` once when
    the condition becomes true, and the task continues with its next phase."""

    def poll_ready(self, task: Task) -> bool: ...

    def add_waiter(self, task: Task, wake: Callable[[Task], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class Wait:
    """Block until ``on`` is ready (``select`` on a pressure fd; ``balance_dirty_pages`` sleeping)."""

    on: Waitable


@dataclass(frozen=True, slots=True)
class Call:
    """Run the application's own logic ``fn(machine, task)`` between phases (read an event, shed a cache).

    ``fn`` returns the user CPU time, in ns, that logic costs (0 or None: none); that time is then spent like
    a ``Compute`` phase."""

    fn: Callable[[Any, Task], int | None]


Phase = Touch | Compute | Sleep | SetMempolicy | SetAffinity | Spawn | Join | Wait | Call


class TaskState(enum.Enum):
    RUNNABLE = "R"
    SLEEPING = "S"
    BLOCKED = "D"
    EXITED = "X"


@dataclass(eq=False)
class Task:
    """A simulated thread. Dynamic progress lives in the machine's arrays, indexed by ``id``."""

    id: int
    name: str
    tgid: int
    mm: MmStruct
    program: tuple[Phase, ...]
    affinity: npt.NDArray[np.bool_]
    mempolicy: Mempolicy = field(default_factory=Mempolicy)
    weight: float = 1024.0
    parent: int | None = None
    state: TaskState = TaskState.RUNNABLE
    cpu: int = -1
    pc: int = -1
    children: list[int] = field(default_factory=list)
    live_children: int = 0
    joining: bool = False
    start_ns: int = 0
    exit_ns: int | None = None
    #: Ended by a signal (the OOM killer), not by finishing its program.
    killed: bool = False

    @property
    def phase(self) -> Phase | None:
        return self.program[self.pc] if 0 <= self.pc < len(self.program) else None
