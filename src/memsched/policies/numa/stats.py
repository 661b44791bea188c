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
