"""Per-task fault counters the policies keep (``task->numa_faults`` and friends), growable by task id."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["NodeCounters"]


class NodeCounters:
    """A (task x slot) array of counts that grows as task ids appear; ``slots`` is nodes (x2 for priv)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.data = np.zeros((0, slots), dtype=np.float64)

    def _grow(self, max_id: int) -> None:
        if max_id >= self.data.shape[0]:
            extra = max(max_id + 1 - self.data.shape[0], self.data.shape[0])
            self.data = np.vstack([self.data, np.zeros((extra, self.slots))])

    def add(
        self, ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64], amount: float | npt.NDArray[np.float64]
    ) -> None:
        if ids.shape[0] == 0:
            return
        self._grow(int(ids.max()))
        np.add.at(self.data, (ids, slots), amount)

    def add_whole(
        self, ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64], amount: float
    ) -> npt.NDArray[np.int64]:
        """``add(ids, slots, amount)`` for counters that only ever hold non-negative whole numbers (below 2**53)
        and a whole ``amount``; returns the number of records of each id ``0..max(ids)``.

        Same bits as ``add``: every partial sum of whole numbers below 2**53 is exact, so one add of ``count *
        amount`` per cell equals ``np.add.at``'s one add per record, and ``x + 0.0`` is ``x`` for the cells no
        record names (no counter is ``-0.0``)."""
        if ids.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        top = int(ids.max())
        self._grow(top)
        counts = np.bincount(ids * self.slots + slots, minlength=(top + 1) * self.slots).reshape(top + 1, self.slots)
        self.data[: top + 1] += counts * amount
        per_id: npt.NDArray[np.int64] = counts.sum(axis=1)
        return per_id

    def row(self, task: int) -> npt.NDArray[np.float64]:
        self._grow(task)
        row: npt.NDArray[np.float64] = self.data[task]
        return row

    def scale(self, task: int, factor: float) -> None:
        self._grow(task)
        self.data[task] *= factor

    def floor_halve(self, task: int) -> None:
        """``>>= 1`` on integer counters."""
        self._grow(task)
        self.data[task] = np.floor(self.data[task] / 2)
