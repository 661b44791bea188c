"""Timeline samples of the fluid machine: locality, pages and tasks per node, and workload figures over time.

Every ``MachineConfig.sample_interval_ns`` the timeline records the local fraction of the memory traffic since
the previous sample (``numa_hint_faults_local``-like, but of all bytes, not of sampled faults), the resident
pages per node of the live address spaces (numastat's ``N<node>`` totals) and the runnable tasks per node,
plus what each instrument that overrides ``timeline_sample`` reports (a workload's progress, under
``"workload"``). Sampling runs at ``Prio.SAMPLE``, so it sees the state after everything else at its
instant, and stops once nothing can happen any more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memsched.sim.engine import Engine, Prio
from memsched.sim.fluid.instrument import InstrumentHooks
from memsched.sim.fluid.progress import FluidProgress
from memsched.sim.fluid.sched import FluidScheduler
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.mm import MmStruct
from memsched.units import NSEC_PER_SEC

__all__ = ["Timeline"]


class Timeline:
    """The samples of one fluid machine's run."""

    def __init__(
        self,
        engine: Engine,
        tasks: list[FluidTask],
        mms: list[MmStruct],
        progress: FluidProgress,
        sched: FluidScheduler,
        hooks: InstrumentHooks,
        *,
        interval_ns: int,
    ) -> None:
        self.engine = engine
        self.tasks = tasks
        self.mms = mms
        self.progress = progress
        self.sched = sched
        self.hooks = hooks
        self.interval_ns = interval_ns
        self.nr_nodes = progress.arrays.nr_nodes
        #: One dict per sample: ``t_s``, ``local_fraction``, ``node_pages``, ``node_tasks`` (+ ``workload``).
        self.samples: list[dict[str, Any]] = []
        self.started = False

    def start(self, progress: Callable[[int], None] | None) -> None:
        """Take the first sample now and keep sampling; ``progress(now)`` is called at every sample."""
        if not self.started:
            self.started = True
            self.engine.at(self.engine.now, Prio.SAMPLE, self._sample, progress)

    def _sample(self, progress: Callable[[int], None] | None) -> None:
        self.progress.sync()
        total, local = self.progress.take_interval_bytes()
        node_pages = np.zeros(self.nr_nodes, dtype=np.int64)
        for mm in self.mms:
            if mm.users:
                node_pages += mm.node_pages
        rq = self.sched.rq
        cpu_node = self.sched.cpu_node
        node_tasks = np.bincount(cpu_node[[c for c, q in enumerate(rq) for _ in q]], minlength=self.nr_nodes)
        samplers = self.hooks.timeline_sample
        self.samples.append(
            {
                "t_s": self.engine.now / NSEC_PER_SEC,
                "local_fraction": (local / total) if total > 0 else None,
                "node_pages": node_pages.tolist(),
                "node_tasks": node_tasks.tolist(),
                **({"workload": [h() for h in samplers]} if samplers else {}),
            }
        )
        if progress is not None:
            progress(self.engine.now)
        # Keep sampling while something can still happen: a task on a CPU, or any other pending event. With
        # neither, every live task waits for something that will never come, and the run reports it.
        busy = bool((self.progress.arrays.oncpu[: len(self.tasks)] >= 0).any())
        alive = any(t.state is not FluidTaskState.EXITED for t in self.tasks)
        if alive and (busy or self.engine.has_events(except_prio=Prio.SAMPLE)):
            self.engine.after(self.interval_ns, Prio.SAMPLE, self._sample, progress)
