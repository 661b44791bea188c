"""Per-task dynamic state of the fluid machine, as a struct of numpy arrays indexed by task id.

Every running task's progress is advanced by one vectorised update per event, so what changes between
events (work left, rate, CPU share, kernel debt, CPU time) is kept column by column rather than on the task
objects. :data:`FIELDS` declares every column once — name, type, initial value, meaning — and
:class:`TaskArrays` creates and grows all of them from that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["COMPUTE", "FIELDS", "IDLE", "MEM", "Field", "TaskArrays", "grown"]

#: What a task's current phase consumes (``TaskArrays.kind``).
IDLE, MEM, COMPUTE = 0, 1, 2

_T = TypeVar("_T", bound=np.generic)


def grown(arr: npt.NDArray[_T], cap: int, fill: float) -> npt.NDArray[_T]:
    """``arr`` with room for ``cap`` rows, the new ones ``fill`` (a new array; the rows kept are copied)."""
    out = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@dataclass(frozen=True, slots=True)
class Field:
    """One column: ``per_node`` columns hold a row of ``nr_nodes`` values per task."""

    name: str
    dtype: Any
    fill: float
    doc: str
    per_node: bool = False


FIELDS: tuple[Field, ...] = (
    Field("rem", np.float64, 0.0, "work left in the current phase: bytes (Touch) or CPU ns (Compute)"),
    Field("rate", np.float64, 0.0, "progress per ns while on a CPU: bytes/ns or CPU ns/ns"),
    Field("share", np.float64, 0.0, "fair share of its CPU (weight / weight queued there)"),
    Field("debt", np.float64, 0.0, "kernel work (ns of CPU) to pay before user work goes on"),
    Field("user_ns", np.float64, 0.0, "user CPU time so far"),
    Field("sys_ns", np.float64, 0.0, "system CPU time so far"),
    Field("write", np.float64, 0.0, "write fraction of the current Touch"),
    Field("cpu_ns_per_byte", np.float64, 0.0, "computation interleaved with the current Touch"),
    Field("mlp_scale", np.float64, 1.0, "memory-level parallelism of the current Touch (1 = streaming)"),
    Field("kind", np.int8, IDLE, "IDLE, MEM (Touch) or COMPUTE"),
    Field("oncpu", np.int64, -1, "CPU whose runqueue holds the task, -1 when off every runqueue"),
    Field("weight", np.float64, 0.0, "load weight (nice_to_weight)"),
    Field("frac", np.float64, 0.0, "share of the current Touch's bytes on each node", per_node=True),
    Field("copy_left", np.float64, 0.0, "bytes of page copies (migration) still to do in the kernel"),
    Field("copy_src", np.float64, 0.0, "bytes of the pending copies read from each node", per_node=True),
    Field("copy_dst", np.float64, 0.0, "bytes of the pending copies written to each node", per_node=True),
)


class TaskArrays:
    """The columns of :data:`FIELDS`, with room for ``capacity`` tasks (grown by doubling)."""

    rem: npt.NDArray[np.float64]
    rate: npt.NDArray[np.float64]
    share: npt.NDArray[np.float64]
    debt: npt.NDArray[np.float64]
    user_ns: npt.NDArray[np.float64]
    sys_ns: npt.NDArray[np.float64]
    write: npt.NDArray[np.float64]
    cpu_ns_per_byte: npt.NDArray[np.float64]
    mlp_scale: npt.NDArray[np.float64]
    kind: npt.NDArray[np.int8]
    oncpu: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float64]
    frac: npt.NDArray[np.float64]
    copy_left: npt.NDArray[np.float64]
    copy_src: npt.NDArray[np.float64]
    copy_dst: npt.NDArray[np.float64]

    def __init__(self, nr_nodes: int, capacity: int = 16) -> None:
        self.nr_nodes = nr_nodes
        self.capacity = capacity
        for f in FIELDS:
            setattr(self, f.name, np.full(self._shape(f, capacity), f.fill, dtype=f.dtype))

    def _shape(self, f: Field, n: int) -> tuple[int, ...]:
        return (n, self.nr_nodes) if f.per_node else (n,)

    def grow(self, n: int) -> None:
        """Make room for task ids below ``n``; new rows hold each field's initial value."""
        cap = self.capacity
        if n <= cap:
            return
        new = max(n, 2 * cap)
        for f in FIELDS:
            setattr(self, f.name, grown(getattr(self, f.name), new, f.fill))
        self.capacity = new
