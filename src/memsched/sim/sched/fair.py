"""SCHED_OTHER in the fluid model: every runnable task on a CPU gets its weighted share of that CPU.

This is CFS's ideal (kernel/sched/fair.c): over a scheduling period each task receives
``weight / sum(weights)`` of its CPU, with weights from ``sched_prio_to_weight`` (kernel/sched/core.c).
Long NUMA runs (hundreds of simulated seconds, tens of threads) use this ideal directly instead of simulating
every slice: between two events each task progresses at its share, which is exact in the limit CFS aims for
and costs one numpy call per change instead of one event per 3 ms slice.

Deviations from the kernel: no slices, no wakeup preemption, no vruntime; the realtime scheduler
(``core.py``) simulates those exactly where latency, not throughput, is the question.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError

__all__ = ["NICE_0_LOAD", "SCHED_PRIO_TO_WEIGHT", "fluid_shares", "nice_to_weight"]

#: ``sched_prio_to_weight[40]``, nice -20 .. 19 (kernel/sched/core.c).
SCHED_PRIO_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_0_LOAD = 1024


def nice_to_weight(nice: int) -> int:
    if not -20 <= nice <= 19:
        raise ConfigError("nice", nice, "must be in -20..19")
    return SCHED_PRIO_TO_WEIGHT[nice + 20]


def fluid_shares(cpu: npt.NDArray[np.int64], weight: npt.NDArray[np.float64], nr_cpus: int) -> npt.NDArray[np.float64]:
    """CPU share of each runnable task: its weight over the total weight queued on its CPU."""
    if cpu.shape[0] == 0:
        return np.empty(0)
    per_cpu = np.bincount(cpu, weights=weight, minlength=nr_cpus)
    return weight / per_cpu[cpu]
