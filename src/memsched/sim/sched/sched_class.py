"""``struct sched_class`` for the exact scheduler: the base every scheduling class derives from.

Models the class interface of ``kernel/sched/sched.h`` (v6.13): the operations ``__schedule()``,
``try_to_wake_up()`` and ``sched_tick()`` call on a task's class, and the ``ENQUEUE_*`` / ``DEQUEUE_*``
flags passed to them. It lives in its own module, below ``core.py`` and the class modules
(``deadline.py``, ``rt.py``, ``fair.py``), so that each class can subclass it at import time while
``core.py`` instantiates the classes: the base has no import of its own back into them.

The default methods are the kernel's "optional hook absent" behaviour (``if (p->sched_class->hook)``):
``migrate_task_rq``, ``yield_task``, ``put_prev_task``, ``set_next_task`` and ``task_woken`` do nothing,
``balance`` finds nothing to pull (so ``prev_balance()`` goes on to the next class), ``select_task_rq``
keeps the previous CPU, ``pick_task`` finds nothing. Used as it is, the base is the idle class (rank 4),
which never has a queued task. ``div_s64`` (C division, truncating toward zero) is shared by the classes'
fixed-point arithmetic.

Deviations from the kernel: the flag values are this simulator's own (only their names follow
``sched.h``: ``ENQUEUE_INITIAL`` is 0x80 there); ``ENQUEUE_RESTORE`` / ``DEQUEUE_SAVE`` mark the
dequeue/enqueue pair around a ``sched_setattr()`` change (``__sched_setscheduler``); classes return a
:class:`~memsched.sim.sched.preempt.Resched` level from ``update_curr`` / ``task_tick`` / ``wakeup_preempt``
instead of calling ``resched_curr()``.
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
    "ENQUEUE_RESTORE",
    "ENQUEUE_WAKEUP",
    "NO_DEADLINE",
    "SchedClass",
    "div_s64",
]

ENQUEUE_WAKEUP = 0x01
ENQUEUE_INITIAL = 0x02
ENQUEUE_MIGRATED = 0x04
ENQUEUE_REPLENISH = 0x08
ENQUEUE_RESTORE = 0x10
DEQUEUE_SLEEP = 0x01
DEQUEUE_SAVE = 0x02
#: The absolute deadline of a DL entity that never had one. The kernel's is 0, long before ``rq_clock()``
#: (which counts from boot), and so is its "next period" ``0 - dl_deadline + dl_period``; simulated time starts
#: at 0, so "long before" has to be spelt out.
NO_DEADLINE = -(1 << 62)


def div_s64(a: int, b: int) -> int:
    """``div_s64()``: C division of a signed dividend truncates toward zero (Python's ``//`` floors)."""
    q = abs(a) // b
    return q if a >= 0 else -q


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

    def balance(self, rq: Rq, prev: Task) -> bool:
        """``class->balance(rq, prev)`` in ``prev_balance()``: pull work before picking.

        Returns True when a task of this class or a higher one is runnable, which ends the balance pass
        (the kernel walks the classes from ``prev``'s down to idle and stops at the first True).
        """
        return False

    def task_woken(self, rq: Rq, p: Task) -> None:
        """``class->task_woken``: after a wakeup that did not make ``p`` run, push work away; optional."""
        return None

    def post_switch(self, rq: Rq) -> None:
        """The balance callback ``set_next_task`` queues when ``p`` is switched in (push); optional."""
        return None
