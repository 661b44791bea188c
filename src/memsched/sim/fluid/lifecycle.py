"""Fork, exit, wakeup and kill on the fluid machine, and the operations task programs run through.

:class:`Lifecycle` is the :class:`~memsched.sim.fluid.task.ProgramHost` of the fluid machine: the phases of a
task's program call it to start work, sleep, block, spawn threads or run application logic, and it steps
tasks through their programs with :func:`~memsched.sim.fluid.task.run_program`.

Kernel counterparts: ``kernel/fork.c`` (``copy_process()``: a thread shares its parent's mm and inherits its
memory policy and CPU affinity; ``wake_up_new_task()`` places it), ``kernel/exit.c`` (``do_exit()``: the
mm is released with its last user, ``exit_mmap()`` frees its frames; a joining parent is woken),
``kernel/sched/core.c`` (``try_to_wake_up()``), ``kernel/signal.c`` (a SIGKILL to a thread group, as the OOM
killer sends it, ends every thread at once).

Deviations from the kernel: no zombie state (an exited task is reaped at once); a thread's exit wakes a parent
blocked in ``Join`` only when it was the parent's last live child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memsched.errors import SimulationError
from memsched.sim.engine import Engine, Prio
from memsched.sim.fluid.instrument import InstrumentHooks
from memsched.sim.fluid.progress import FluidProgress
from memsched.sim.fluid.sched import FluidScheduler
from memsched.sim.fluid.task import (
    FluidTask,
    FluidTaskState,
    Phase,
    ThreadSpec,
    Touch,
    Waitable,
    run_program,
)
from memsched.sim.mm.memory import Memory
from memsched.sim.mm.mempolicy import Mempolicy
from memsched.sim.mm.mm import MmStruct
from memsched.sim.mm.page_alloc import PageAllocator
from memsched.sim.sched.sched import nice_to_weight

__all__ = ["Lifecycle"]


class Lifecycle:
    """Task creation, programs, blocking, waking and exit of one fluid machine."""

    def __init__(
        self,
        engine: Engine,
        tasks: list[FluidTask],
        mms: list[MmStruct],
        page_alloc: PageAllocator,
        progress: FluidProgress,
        sched: FluidScheduler,
        memory: Memory,
        hooks: InstrumentHooks,
        *,
        machine: Any,
    ) -> None:
        self.engine = engine
        self.tasks = tasks
        self.mms = mms
        self.page_alloc = page_alloc
        self.progress = progress
        self.sched = sched
        self.memory = memory
        self.hooks = hooks
        #: What ``Call`` phases receive as their first argument (the machine, for the application's logic).
        self.machine = machine
        self.nr_cpus = sched.nr_cpus
        self.nr_nodes = sched.topology.nr_nodes
        #: Tasks that have exited so far (lets per-mm task lists be rebuilt only when one exits).
        self.nr_exited = 0
        #: Moves on whenever a task's memory policy is set (a cache of the tasks' policies keys on it).
        self.mempolicy_version = 0

    # ---- fork ----------------------------------------------------------------------------------------------
    def new_task(
        self, name: str, program: tuple[Phase, ...], mm: MmStruct, *, tgid: int, nice: int, parent: FluidTask | None
    ) -> FluidTask:
        tid = len(self.tasks)
        affinity = parent.affinity.copy() if parent else np.ones(self.nr_cpus, dtype=bool)
        policy = parent.mempolicy if parent else Mempolicy()
        task = FluidTask(
            id=tid,
            name=name,
            tgid=tgid,
            mm=mm,
            program=program,
            affinity=affinity,
            mempolicy=policy,
            weight=float(nice_to_weight(nice)),
            parent=parent.id if parent else None,
            start_ns=self.engine.now,
        )
        mm.users += 1
        self.tasks.append(task)
        self.progress.new_task(task)
        for hook in self.hooks.task_created:
            hook(task)
        return task

    def start(self, task: FluidTask, parent_cpu: int) -> None:
        """``wake_up_new_task()``: place the new task on a CPU and run its program."""
        self.sched.enqueue(task, self.sched.fork_cpu(task, parent_cpu))
        self.next_phase(task)

    def spawn_thread(self, parent: FluidTask, spec: ThreadSpec) -> FluidTask:
        thread = self.new_task(spec.name, spec.program, parent.mm, tgid=parent.tgid, nice=spec.nice, parent=parent)
        parent.children.append(thread.id)
        parent.live_children += 1
        self.start(thread, parent.cpu if parent.cpu >= 0 else 0)
        return thread

    # ---- programs ------------------------------------------------------------------------------------------
    def next_phase(self, task: FluidTask) -> None:
        run_program(self, task)

    def mark_dirty(self) -> None:
        self.progress.dirty = True

    def begin_touch(self, task: FluidTask, phase: Touch) -> None:
        if phase.region.mm_id != task.mm.id:
            raise SimulationError(f"{task.name} touches a region of another mm")
        self.progress.begin_touch(task, phase)
        for hook in self.hooks.touch_started:
            hook(task, phase.region)
        self.memory.touch(task, phase.region)
        if phase.shared is not None:
            self.memory.touch(task, phase.shared)

    def begin_compute(self, task: FluidTask, ns: float) -> None:
        self.progress.begin_compute(task, ns)

    def sleep(self, task: FluidTask, ns: int) -> None:
        self.progress.stop(task)
        self.sched.dequeue(task, FluidTaskState.SLEEPING)
        self.engine.after(ns, Prio.WAKEUP, self.wake_and_continue, task)

    def set_mempolicy(self, task: FluidTask, policy: Mempolicy) -> None:
        policy.validate_nodes(self.nr_nodes)
        task.mempolicy = policy
        self.mempolicy_version += 1

    def set_affinity(self, task: FluidTask, cpus: tuple[int, ...] | None) -> None:
        self.sched.set_affinity(task, cpus)

    def join(self, task: FluidTask) -> bool:
        if task.live_children == 0:
            return False
        self.progress.stop(task)
        task.joining = True
        self.sched.dequeue(task, FluidTaskState.BLOCKED)
        return True

    def wait(self, task: FluidTask, on: Waitable) -> bool:
        if on.poll_ready(task):
            return False
        self.progress.stop(task)
        self.sched.dequeue(task, FluidTaskState.BLOCKED)
        on.add_waiter(task, self.wake_task)
        return True

    def call(self, task: FluidTask, fn: Callable[[Any, FluidTask], int | None]) -> bool:
        ns = fn(self.machine, task)
        if task.state is FluidTaskState.EXITED:
            return True
        if ns:
            self.progress.begin_compute(task, float(ns))
            return True
        return False

    def block_for(self, task: FluidTask, ns: float, waker_cpu: int | None = None) -> bool:
        """The task sleeps ``ns`` in the kernel in the middle of its phase (a sleeping lock), then is woken from
        ``waker_cpu`` through the wake-up path; its phase resumes where it stopped. False if it is not running."""
        if task.state is not FluidTaskState.RUNNABLE or task.cpu < 0 or ns <= 0:
            return False
        task.kblocked = True
        self.sched.dequeue(task, FluidTaskState.BLOCKED)
        self.engine.after(max(1, round(ns)), Prio.WAKEUP, self._kernel_wake, task, waker_cpu)
        return True

    def _kernel_wake(self, task: FluidTask, waker_cpu: int | None) -> None:
        if task.state is FluidTaskState.EXITED or not task.kblocked:
            return
        task.kblocked = False
        self.sched.wake(task, waker_cpu)

    # ---- waking --------------------------------------------------------------------------------------------
    def wake_and_continue(self, task: FluidTask) -> None:
        if task.state is FluidTaskState.EXITED:  # killed while asleep or blocked
            return
        self.sched.wake(task)
        self.next_phase(task)

    def wake_task(self, task: FluidTask) -> None:
        """Wake a task blocked in a ``Wait`` phase; it continues with its next phase (once, however many of
        its wait queues fire)."""
        if task.state is FluidTaskState.BLOCKED and not task.joining:
            self.engine.at(self.engine.now, Prio.WAKEUP, self._wake_waiter, task)

    def _wake_waiter(self, task: FluidTask) -> None:
        if task.state is FluidTaskState.BLOCKED and not task.joining:
            self.wake_and_continue(task)

    # ---- exit ----------------------------------------------------------------------------------------------
    def exit(self, task: FluidTask) -> None:
        if task.state is not FluidTaskState.EXITED:
            self.nr_exited += 1
        self.progress.stop(task)
        self.sched.dequeue(task, FluidTaskState.EXITED)
        task.exit_ns = self.engine.now
        mm = task.mm
        mm.users -= 1
        if mm.users == 0:
            for hook in self.hooks.mm_exit:
                hook(mm)
            present = mm.page_node >= 0
            self.page_alloc.free(mm.page_node[present].astype(np.int64))
            mm.final_node_pages = mm.node_pages.copy()
        if task.parent is not None:
            parent = self.tasks[task.parent]
            parent.live_children -= 1
            if parent.joining and parent.live_children == 0:
                parent.joining = False
                self.engine.at(self.engine.now, Prio.WAKEUP, self.wake_and_continue, parent)

    def kill_process(self, task: FluidTask) -> list[FluidTask]:
        """SIGKILL to ``task``'s thread group: every thread exits now, and the address space is freed when
        its last user is gone. Returns the threads killed."""
        victims = [t for t in self.tasks if t.tgid == task.tgid and t.state is not FluidTaskState.EXITED]
        self.progress.sync()
        for t in victims:
            t.killed = True
            self.exit(t)
        return victims
