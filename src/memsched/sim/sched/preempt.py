"""Preemption models: when a pending reschedule request actually switches tasks.

The scheduling classes only say *how urgently* the current task should give up its CPU
(:class:`Resched`: ``NONE``, ``LAZY`` or ``NOW``); this module alone decides *when* that happens, for each
preemption model, at each kind of preemption point (:class:`Point`). Lazy preemption therefore lives in one
place, as in the kernel, where the classes call ``resched_curr()`` or ``resched_curr_lazy()`` and the
model decides what the flag means.

Kernel sources (checked with the search tool): ``kernel/sched/core.c`` v6.13 (``__resched_curr``,
``resched_curr_lazy``: the lazy bit ``TIF_NEED_RESCHED_LAZY`` is set without a reschedule IPI;
``sched_tick``: ``if (dynamic_preempt_lazy() && tif_test_bit(TIF_NEED_RESCHED_LAZY)) resched_curr(rq)``;
the PREEMPT_DYNAMIC table: NONE keeps ``cond_resched``, VOLUNTARY adds ``might_resched``, FULL and LAZY
make both no-ops and preempt at ``preempt_enable`` / IRQ exit), ``kernel/entry/common.c``
(``exit_to_user_mode_loop`` honours both bits), ``kernel/Kconfig.preempt`` v6.13, and the 2012 -rt patch
"sched: Add support for lazy preemption" (Thomas Gleixner, 26 Oct 2012): a lazy request
waits while the current task's ``preempt_lazy_count`` is raised (sleeping spinlocks, migrate_disable) and
is honoured as soon as it drops to zero, an IPI being sent as usual.

=============  =====================================  ======================================
model          ``LAZY`` (fair wakeup / slice expiry)  ``NOW`` (RT/DL wakeup, class change)
=============  =====================================  ======================================
``none``       same as NOW                             return to user, blocking, ``cond_resched``;
                                                       an IPI to a CPU in user mode
``voluntary``  same as NOW                             ``none`` + ``might_sleep`` points
``full``       same as NOW                             anywhere outside ``preempt_disable``
``lazy``       next tick (upgraded to NOW), return     anywhere outside ``preempt_disable``
               to user, any IRQ exit to user; no IPI
``rt-lazy``    anywhere with ``preempt_lazy_count``    anywhere outside ``preempt_disable``
               = 0 (i.e. outside sleeping locks)
=============  =====================================  ======================================

Deviations from the kernel: preemption points are the phase boundaries of a task program
(``program.py``); kernel code between two such points is atomic for the models that rely on
``cond_resched`` (``none``, ``voluntary``), which is what ``cond_resched`` placement means in practice.
"""

from __future__ import annotations

import enum
from typing import Final

from memsched.errors import UnknownNameError

__all__ = ["MODELS", "Point", "PreemptModel", "Resched", "parse_model"]


class Resched:
    """How urgently the current task should be rescheduled (``TIF_NEED_RESCHED{,_LAZY}``).

    Plain ``int`` constants, like :class:`~memsched.sim.engine.Prio`: they are read on every accounting update
    and tick, where an ``IntEnum`` member lookup would cost several times an attribute read. ``Final``, so that
    the compiled build (mypyc, ``setup.py``) inlines them.
    """

    NONE: Final = 0
    LAZY: Final = 1
    NOW: Final = 2


class Point:
    """Kinds of places where a pending reschedule may be honoured (plain ``int`` constants, as :class:`Resched`)."""

    #: A reschedule IPI (or the local ``preempt_enable()`` after a wakeup) while the task runs.
    ASYNC: Final = 0
    #: Exit from an interrupt (tick, timer, noise) back to the interrupted context.
    IRQ_EXIT: Final = 1
    #: Return from a system call to user space (``exit_to_user_mode_loop``).
    RET_USER: Final = 2
    #: ``preempt_enable()`` that drops the preempt count to zero.
    PREEMPT_ENABLE: Final = 3
    #: An explicit ``cond_resched()`` in a kernel loop (end of a kernel-mode phase).
    COND_RESCHED: Final = 4
    #: ``might_sleep()`` (mutex acquisition, sleeping allocation): a point only under VOLUNTARY.
    MIGHT_SLEEP: Final = 5
    #: Release of a sleeping lock: drops ``preempt_lazy_count`` under the 2012 RT-lazy model.
    UNLOCK: Final = 6
    #: Any other instruction boundary in kernel mode (preemptible kernels only).
    KERNEL: Final = 7


class PreemptModel(enum.Enum):
    NONE = "none"
    VOLUNTARY = "voluntary"
    FULL = "full"
    LAZY = "lazy"
    RT_LAZY = "rt-lazy"

    @property
    def lazy_bit(self) -> bool:
        """Does a LAZY request stay lazy (instead of being a plain ``TIF_NEED_RESCHED``)?"""
        return self in (PreemptModel.LAZY, PreemptModel.RT_LAZY)

    @property
    def kernel_preemptible(self) -> bool:
        return self in _KERNEL_PREEMPTIBLE

    def level(self, requested: int) -> int:
        """The flag a class request sets: LAZY becomes NOW unless the model has a lazy bit."""
        if requested == Resched.LAZY and not self.lazy_bit:
            return Resched.NOW
        return requested

    def sends_ipi(self, level: int) -> bool:
        """``__resched_curr``: only TIF_NEED_RESCHED sends the IPI in 6.13; the -rt patch always sent it."""
        return level == Resched.NOW or self is PreemptModel.RT_LAZY

    def allows(self, level: int, point: int, user_mode: bool, preempt_count: int, lazy_count: int) -> bool:
        """May a pending request of ``level`` switch tasks at ``point``?"""
        if level == Resched.NONE or preempt_count:
            return False
        if point == Point.RET_USER:
            return True
        rt_lazy = self is _RT_LAZY
        if user_mode and point in (Point.IRQ_EXIT, Point.ASYNC):
            # Interrupt exit to user mode runs exit_to_user_mode_loop: both bits count, in every model.
            return level == Resched.NOW or point == Point.IRQ_EXIT or rt_lazy
        if self in _KERNEL_PREEMPTIBLE:
            if level == Resched.NOW:
                return True
            if rt_lazy:
                return lazy_count == 0
            return False  # LAZY model: a lazy request waits for the tick or the return to user
        if point == Point.COND_RESCHED:
            return True
        return point == Point.MIGHT_SLEEP and self is _VOLUNTARY


# The members allows() compares with, bound once: an Enum member lookup costs ~0.1 µs on every call.
_RT_LAZY = PreemptModel.RT_LAZY
_VOLUNTARY = PreemptModel.VOLUNTARY
_KERNEL_PREEMPTIBLE = (PreemptModel.FULL, PreemptModel.LAZY, PreemptModel.RT_LAZY)


MODELS: tuple[str, ...] = tuple(m.value for m in PreemptModel)


def parse_model(name: str) -> PreemptModel:
    try:
        return PreemptModel(name)
    except ValueError:
        raise UnknownNameError("preempt", name, MODELS) from None
