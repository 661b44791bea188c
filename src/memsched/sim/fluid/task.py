"""Tasks of the fluid machine and their programs: phases that run themselves, and the interpreter.

A simulated task (a thread; ``struct task_struct`` as far as the fluid model needs one) runs a *program*: a
tuple of phases, executed in order. Its identity, address space, policies and program position live on the
:class:`FluidTask`; its dynamic progress (work left, rate, CPU share, kernel-time debt, CPU time) lives in the
machine's struct of arrays (``sim/fluid/state.py``), indexed by ``id``, so one numpy operation advances
every task.

Phases either take time (``Touch``, ``Compute``, ``Sleep``, ``Join``, ``Wait``) or act at once
(``SetMempolicy``, ``SchedSetaffinity``, ``Spawn``; ``Call`` acts at once unless its function returns CPU
time). Work phases progress fluidly (``sim/fluid/progress.py``): the machine gives every running task a
rate, and a phase ends when its work is done.

Each phase carries its own behaviour: ``phase.run(host, task)`` does what the phase means through the
:class:`ProgramHost` operations (``sim/fluid/lifecycle.py`` implements them) and returns whether the task
now waits (for its work, a timer or a wakeup). :func:`run_program` steps a task through its instantaneous
phases until one takes time, and exits the task at the end of its program. A workload or a mechanism adds
a phase by writing a class with a ``run`` method; the interpreter does not change.
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
    "FluidTask",
    "FluidTaskState",
    "Join",
    "Phase",
    "ProgramHost",
    "SchedSetaffinity",
    "SetMempolicy",
    "Sleep",
    "Spawn",
    "ThreadSpec",
    "Touch",
    "Wait",
    "Waitable",
    "run_program",
]


class ProgramHost(Protocol):
    """What phases ask of the machine (implemented by ``sim/fluid/lifecycle.py``'s ``Lifecycle``)."""

    def begin_touch(self, task: FluidTask, phase: Touch) -> None: ...
    def begin_compute(self, task: FluidTask, ns: float) -> None: ...
    def sleep(self, task: FluidTask, ns: int) -> None: ...
    def set_mempolicy(self, task: FluidTask, policy: Mempolicy) -> None: ...
    def set_affinity(self, task: FluidTask, cpus: tuple[int, ...] | None) -> None: ...
    def spawn_thread(self, parent: FluidTask, spec: ThreadSpec) -> FluidTask: ...
    def join(self, task: FluidTask) -> bool: ...
    def wait(self, task: FluidTask, on: Waitable) -> bool: ...
    def call(self, task: FluidTask, fn: Callable[[Any, FluidTask], int | None]) -> bool: ...
    def exit(self, task: FluidTask) -> None: ...
    def mark_dirty(self) -> None: ...


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
        if self.shared is None:  # the whole walk in one region (x * 1.0 == x: the general form's floats)
            return [(self.region, done % self.region.nbytes, rate)]
        own = 1.0 - self.shared_fraction
        f = self.shared_fraction
        return [
            (self.region, (done * own) % self.region.nbytes, rate * own),
            (self.shared, (done * f) % self.shared.nbytes, rate * f),
        ]

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        host.begin_touch(task, self)
        return True


@dataclass(frozen=True, slots=True)
class Compute:
    """Burn ``ns`` nanoseconds of CPU time (progress only while on a CPU)."""

    ns: int

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        host.begin_compute(task, float(self.ns))
        return True


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep ``ns`` nanoseconds off the runqueue."""

    ns: int

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        host.sleep(task, self.ns)
        return True


@dataclass(frozen=True, slots=True)
class SetMempolicy:
    """``set_mempolicy(2)`` for the calling thread."""

    policy: Mempolicy

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        host.set_mempolicy(task, self.policy)
        return False


@dataclass(frozen=True, slots=True)
class SchedSetaffinity:
    """``sched_setaffinity(2)`` for the calling thread; ``cpus=None`` allows every CPU."""

    cpus: tuple[int, ...] | None

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        host.set_affinity(task, self.cpus)
        return False


@dataclass(frozen=True, slots=True)
class Spawn:
    """``pthread_create`` each thread (same mm, inherits policy and affinity), in order."""

    threads: tuple[ThreadSpec, ...]

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        for spec in self.threads:
            host.spawn_thread(task, spec)
        return False


@dataclass(frozen=True, slots=True)
class Join:
    """``pthread_join`` every thread this task spawned."""

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        return host.join(task)


class Waitable(Protocol):
    """A kernel wait queue a task can block on (a pressure fd, an eventfd, a PSI trigger, dirty throttling).

    ``poll_ready(task)`` says whether the condition already holds (the task does not block); otherwise the
    machine parks the task and calls ``add_waiter(task, wake)``; the waitable calls ``wake(task)`` once when
    the condition becomes true, and the task continues with its next phase."""

    def poll_ready(self, task: FluidTask) -> bool: ...

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class Wait:
    """Block until ``on`` is ready (``select`` on a pressure fd; ``balance_dirty_pages`` sleeping)."""

    on: Waitable

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        return host.wait(task, self.on)


@dataclass(frozen=True, slots=True)
class Call:
    """Run the application's own logic ``fn(machine, task)`` between phases (read an event, shed a cache).

    ``fn`` returns the user CPU time, in ns, that logic costs (0 or None: none); that time is then spent like
    a ``Compute`` phase."""

    fn: Callable[[Any, FluidTask], int | None]

    def run(self, host: ProgramHost, task: FluidTask) -> bool:
        return host.call(task, self.fn)


Phase = Touch | Compute | Sleep | SetMempolicy | SchedSetaffinity | Spawn | Join | Wait | Call


class FluidTaskState(enum.Enum):
    RUNNABLE = "R"
    SLEEPING = "S"
    BLOCKED = "D"
    EXITED = "X"


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    """What ``pthread_create`` starts: a name, a program and a nice value."""

    name: str
    program: tuple[Phase, ...]
    nice: int = 0


@dataclass(eq=False)
class FluidTask:
    """A simulated thread of the fluid machine. Dynamic progress lives in the machine's arrays, indexed by ``id``."""

    id: int
    name: str
    tgid: int
    mm: MmStruct
    program: tuple[Phase, ...]
    affinity: npt.NDArray[np.bool_]
    mempolicy: Mempolicy = field(default_factory=Mempolicy)
    weight: float = 1024.0
    parent: int | None = None
    state: FluidTaskState = FluidTaskState.RUNNABLE
    cpu: int = -1
    pc: int = -1
    children: list[int] = field(default_factory=list)
    live_children: int = 0
    joining: bool = False
    start_ns: int = 0
    exit_ns: int | None = None
    #: Ended by a signal (the OOM killer), not by finishing its program.
    killed: bool = False
    #: Asleep on a kernel lock in the middle of a phase (``Lifecycle.block_for``).
    kblocked: bool = False

    @property
    def phase(self) -> Phase | None:
        return self.program[self.pc] if 0 <= self.pc < len(self.program) else None


def run_program(host: ProgramHost, task: FluidTask) -> None:
    """Advance ``task`` to its next phase that takes time, running instantaneous ones on the way; a task
    at the end of its program exits."""
    host.mark_dirty()
    while True:
        task.pc += 1
        phase = task.phase
        if phase is None:
            host.exit(task)
            return
        if phase.run(host, task):
            return
