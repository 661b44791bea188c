"""Float arithmetic that gives the same bits on every Python.

``sum()`` of floats adds left to right up to Python 3.11. From Python 3.12 it compensates the rounding error
(Neumaier's summation, CPython ``bltinmodule.c``, gh-100425), so one run of the simulator gave other last bits
under 3.12 than under 3.11, and where a policy's migration storms amplify them, other figures: ``memsched run
specjbb -t sandybridge-2n32 -p moron`` reported 68,991,057,919 bytes copied under 3.11 and 68,991,057,920 under
3.12. The simulators, the workloads' figures and the reports add floats with :func:`seq_sum` instead: left to
right on every Python, which is how every result recorded so far was computed. (numpy's reductions have an
order of their own, the same on every Python; ``math.fsum`` is correctly rounded everywhere.)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["seq_sum"]


def seq_sum(values: Iterable[float]) -> float:
    """The numbers of ``values`` added left to right, from the integer 0: ``sum(values)`` as Python 3.11
    computes it, the same operations in the same order (so ``0`` when empty, and a float once a float came)."""
    total: float = 0
    for v in values:
        total += v
    return total
