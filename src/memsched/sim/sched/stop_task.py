"""The stop class for the exact scheduler: one FIFO queue per CPU above every other class.

Models ``stop_sched_class`` of ``kernel/sched/stop_task.c`` (v6.13): the per-CPU stopper thread that
``stop_machine()`` and migration use runs before deadline, RT and fair tasks and is never preempted.

Deviations from the kernel: the kernel has one stopper task per CPU; here any number of tasks may be
given to the class (as task programs), queued FIFO per CPU. The class exists for completeness: no
scenario uses it yet.
"""

from __future__ import annotations

from collections import deque

from memsched.sim.sched.sched import CoreOps, Rq, SchedClass, SchedTask

__all__ = ["StopClass"]


class StopClass(SchedClass):
    """``stop_sched_class``: one FIFO queue above everything, never preempted (stop_machine work)."""

    rank = 0
    name = "stop"

    def __init__(self, core: CoreOps) -> None:
        super().__init__(core)
        self.queues: dict[int, deque[SchedTask]] = {}

    def enqueue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        self.queues.setdefault(rq.cpu, deque()).append(p)

    def dequeue_task(self, rq: Rq, p: SchedTask, flags: int) -> None:
        self.queues[rq.cpu].remove(p)

    def pick_task(self, rq: Rq) -> SchedTask | None:
        q = self.queues.get(rq.cpu)
        return q[0] if q else None
