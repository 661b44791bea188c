"""``struct sched_class`` for the exact scheduler: the base every scheduling class derives from.

Models the class interface of ``kernel/sched/sched.h`` (v6.13): the operations ``__schedule()``,
``try_to_wake_up()`` and ``sched_tick()`` call on a task's class, and the ``ENQUEUE_*`` / ``DEQUEUE_*``
flags passed to them. It lives in its own module, below ``core.py`` and the class modules
(``deadline.py``, ``rt.py``, ``fair.py``), so that each class can subclass it at import time while
``core.py`` instantiates the classes: the base has no import of its own back into them.

The default methods are the kernel's "optional hook absent" behaviour (``if (p->sched_class->hook)``):
``migrate_task_rq``, ``balance``, ``yield_task``, ``put_prev_task`` and ``set_next_task`` do nothing,
``select_task_rq`` keeps the previous CPU, ``pick_task`` finds nothing. Used as it is, the base is the idle
class (rank 4), which never has a queued task.

Deviations from the kernel: the flag values are this simulator's own (only their names follow
``sched.h``: ``ENQUEUE_INITIAL`` is 0x80 there); classes return a :class:`~memsched.sim.sched.preempt.Resched`
level from ``update_curr`` / ``task_tick`` / ``wakeup_preempt`` instead of calling ``resched_curr()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memsched.sim.sched.preempt import Resched

if TYPE_CHECKING:
    from memsched.sim.sched.core import Rq, SchedCore, Task

__all__ = [
    "DEQUEUE_SAVE",
    "DEQUEUE_SLEEP",
    "ENQUEUE_INITIAL",
    "ENQUEUE_MIGRATED",
    "ENQUEUE_REPLENISH",
    "ENQUEUE_WAKEUP",
    "SchedClass",
]

ENQUEUE_WAKEUP = 0x01
ENQUEUE_INITIAL = 0x02
ENQUEUE_MIGRATED = 0x04
ENQUEUE_REPLENISH = 0x08
DEQUEUE_SLEEP = 0x01
DEQUEUE_SAVE = 0x02


class SchedClass:
    """``struct sched_class``: the operations every scheduling class provides.

    ``rank`` orders the classes (stop 0 < dl 1 < rt 2 < fair 3 < idle 4; lower runs first). Accounting is
    done in :meth:`update_curr`, which may ask for a reschedule by returning a :class:`Resched` level.
    """

    rank = 4
    name = "idle"

    def __init__(self, core: SchedCore) -> None:
        self.core = core

    def enqueue_task(self, rq: Rq, p: Task, flags: int) -> None:
        raise NotImplementedError

    def dequeue_task(self, rq: Rq, p: Task, flags: int) -> None:
        raise NotImplementedError

    def pick_task(self, rq: Rq) -> Task | None:
        return None

    def put_prev_task(self, rq: Rq, p: Task) -> None:
        return None

    def set_next_task(self, rq: Rq, p: Task) -> None:
        return None

    def update_curr(self, rq: Rq, p: Task, delta: int) -> int:
        return Resched.NONE

    def task_tick(self, rq: Rq, p: Task) -> int:
        return Resched.NONE

    def wakeup_preempt(self, rq: Rq, p: Task) -> int:
        return Resched.NONE

    def select_task_rq(self, p: Task, prev_cpu: int, waker_cpu: int) -> int:
        return prev_cpu

    def yield_task(self, rq: Rq, p: Task) -> None:
        return None

    def migrate_task_rq(self, p: Task, src: Rq, dst: Rq) -> None:
        return None

    def balance(self, rq: Rq) -> None:
        """Pull work before picking (``balance`` / ``pull_*_task``); optional."""
        return None
