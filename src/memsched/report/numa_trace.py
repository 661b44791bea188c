"""The NUMA trace (``memsched run --trace``): what each task and each node did, in Perfetto's trace-event JSON.

:class:`NumaTraceRecorder` is an observer :class:`~memsched.sim.fluid.instrument.Instrument` attached to a
fluid machine before it runs (``NumaOptions(trace=True)``); it changes nothing the machine computes (a test
checks the run's figures are the same with and without it). It records:

* per task (pid = the simulated process, tid = the thread: ``TASK_ID_BASE`` + tgid / task id): one
  complete ("X") slice per stretch the task was queued on one CPU, named ``node N``, with the CPU and node
  in its args, from the runqueue changes (the ``sched_changed`` hook, ``psi_task_change()``'s call sites);
* instant ("i") events on the task's track for each cross-node move of the load balancer, and for each
  NUMA balancing action the policy asked for (``migrate_task``, ``swap_tasks``, ``migrate_pages`` batches,
  ``migrate_mm_nodes``), with its result, through the action driver's actuator;
* counters ("C") per node on the machine process (pid 1): resident pages (numastat's ``N<node>``),
  NUMA hinting faults taken by tasks on that node (cumulative; ``numa_hint_faults``) and the memory bandwidth
  the node's controller serves (GB/s at the sample instant: each streaming task's rate times the share of
  its bytes on that node), every timeline interval.

Deviations from a kernel trace: the fluid machine shares a CPU among its queued tasks instead of
switching them, so a slice means "queued on this CPU", not "running"; timestamps are simulated
microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memsched.policies.numa.actions import MigrateMmNodes, MigratePages, MigrateTask, SwapTasks
from memsched.policies.numa.driver import ActionResult
from memsched.policies.numa.views import FaultBatch
from memsched.sim.engine import Prio
from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.state import MEM
from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.numa.balancing import NumaBalancing

__all__ = ["MACHINE_PID", "TASK_ID_BASE", "NumaTraceRecorder"]

#: The machine's own track (the node counters).
MACHINE_PID = 1
#: Simulated tgids and task ids are offset by this in the trace, apart from the machine's pid.
TASK_ID_BASE = 100


def _us(ns: int) -> float:
    return ns / 1000


class NumaTraceRecorder(Instrument):
    """Records task placement, balancing actions and node counters of one fluid machine run."""

    def __init__(self, machine: FluidMachine, interval_ns: int) -> None:
        self.machine = machine
        self.interval_ns = interval_ns
        self.events: list[dict[str, Any]] = []
        #: Per task id: (cpu, since ns) of the open slice, or None while not queued.
        self._open: dict[int, tuple[int, int] | None] = {}
        self._faults = np.zeros(machine.nr_nodes, dtype=np.int64)
        #: Tasks an action moved at this instant (their node change is not the load balancer's).
        self._action_moved: tuple[int, set[int]] = (-1, set())
        self._finished = False

    # ---- attaching ------------------------------------------------------------------------------------------
    def attach_balancing(self, balancing: NumaBalancing) -> None:
        """See every action the NUMA policy's driver applies and every fault batch it is given (so every batch
        goes to the driver: :meth:`NumaBalancing.use_hooks`)."""
        balancing.use_hooks()
        driver: Any = balancing.driver
        apply_inner: Callable[[Any], ActionResult] = driver.actuator.apply
        faults_inner: Callable[[FaultBatch], list[ActionResult]] = driver.faults

        class _Recording:
            def apply(inner_self, action: Any) -> ActionResult:  # noqa: N805 - a closure over the recorder
                res = apply_inner(action)
                self._action(action, res)
                return res

        def faults(batch: FaultBatch) -> list[ActionResult]:
            if batch.size:  # (a record stands for nr_faults hinting faults: a run of 4 KiB pages, or one)
                self._faults += np.bincount(batch.cpu_node, minlength=self.machine.nr_nodes) * batch.nr_faults
            return faults_inner(batch)

        driver.actuator = _Recording()
        driver.faults = faults

    def start(self) -> None:
        """Take the first counter sample now and keep sampling as the timeline does."""
        self.machine.engine.at(self.machine.engine.now, Prio.SAMPLE, self._sample)

    # ---- hooks ---------------------------------------------------------------------------------------------
    def task_created(self, task: FluidTask) -> None:
        self._open[task.id] = None

    def sched_changed(self) -> None:
        now = self.machine.engine.now
        node_of = self.machine.cpu_node
        for t in self.machine.tasks:
            cur = self._open.get(t.id)
            cpu = t.cpu if t.state is FluidTaskState.RUNNABLE and t.cpu >= 0 else -1
            if cur is not None and cur[0] == cpu:
                continue
            if cur is None and cpu < 0:
                continue
            if cur is not None:
                self._slice(t.id, cur[0], cur[1], now)
                if cpu >= 0 and node_of[cur[0]] != node_of[cpu] and not self._moved_by_action(t.id, now):
                    self._instant(t.id, now, "load-balance move", {"from_node": int(node_of[cur[0]]),
                                                                  "to_node": int(node_of[cpu]), "cpu": cpu})
            self._open[t.id] = (cpu, now) if cpu >= 0 else None

    # ---- recording -----------------------------------------------------------------------------------------
    def _ids(self, task: int) -> tuple[int, int]:
        """(pid, tid) of a simulated task (its tgid is read when needed: a leader's is set after creation)."""
        return TASK_ID_BASE + self.machine.tasks[task].tgid, TASK_ID_BASE + task

    def _slice(self, task: int, cpu: int, start: int, end: int) -> None:
        if end <= start:
            return
        pid, tid = self._ids(task)
        node = int(self.machine.cpu_node[cpu])
        self.events.append(
            {"name": f"node {node}", "cat": "placement", "ph": "X", "pid": pid, "tid": tid, "ts": _us(start),
             "dur": _us(end - start), "args": {"cpu": cpu, "node": node}}
        )

    def _instant(self, task: int, now: int, name: str, args: dict[str, Any]) -> None:
        pid, tid = self._ids(task)
        self.events.append(
            {"name": name, "cat": "numa", "ph": "i", "s": "t", "pid": pid, "tid": tid, "ts": _us(now), "args": args}
        )

    def _moved_by_action(self, task: int, now: int) -> bool:
        when, tasks = self._action_moved
        return when == now and task in tasks

    def _note_moved(self, now: int, *tasks: int) -> None:
        when, moved = self._action_moved
        if when != now:
            moved = set()
            self._action_moved = (now, moved)
        moved.update(tasks)

    def _action(self, action: Any, res: ActionResult) -> None:
        now = self.machine.engine.now
        base = {"status": res.status, "detail": res.detail, **({"message": res.message} if res.message else {})}
        if isinstance(action, MigrateTask):
            self._note_moved(now, action.task)
            self._instant(action.task, now, "numa migrate_task", {"dst_cpu": action.dst_cpu, **base})
        elif isinstance(action, SwapTasks):
            self._note_moved(now, action.a, action.b)
            for me, other in ((action.a, action.b), (action.b, action.a)):
                self._instant(me, now, "numa swap_tasks", {"with_tid": self._ids(other)[1], **base})
        elif isinstance(action, MigratePages):
            pages = len(action.pages)
            moved = 0 if res.moved_pages is None else len(res.moved_pages)
            self.events.append(
                {"name": f"migrate_pages ({action.mode})", "cat": "numa", "ph": "i", "s": "p",
                 "pid": self._mm_pid(action.mm), "tid": self._mm_tid(action.mm), "ts": _us(now),
                 "args": {"pages": pages, "moved": moved,
                          "to_nodes": sorted({int(n) for n in np.unique(action.dst)}), **base}}
            )
        elif isinstance(action, MigrateMmNodes):
            self.events.append(
                {"name": "migrate_mm_nodes", "cat": "numa", "ph": "i", "s": "p", "pid": self._mm_pid(action.mm),
                 "tid": self._mm_tid(action.mm), "ts": _us(now),
                 "args": {"from_nodes": list(action.from_nodes), "to_nodes": list(action.to_nodes), **base}}
            )

    def _mm_task(self, mm: int) -> int:
        for t in self.machine.tasks:
            if t.mm.id == mm:
                return t.id
        return 0

    def _mm_pid(self, mm: int) -> int:
        return self._ids(self._mm_task(mm))[0]

    def _mm_tid(self, mm: int) -> int:
        return self._ids(self._mm_task(mm))[1]

    def _sample(self) -> None:
        self._sample_counters()
        m = self.machine
        a = m.progress.arrays
        n = len(m.tasks)
        busy = bool((a.oncpu[:n] >= 0).any())
        alive = any(t.state is not FluidTaskState.EXITED for t in m.tasks)
        if alive and (busy or m.engine.has_events(except_prio=Prio.SAMPLE)):
            m.engine.after(self.interval_ns, Prio.SAMPLE, self._sample)

    def _sample_counters(self) -> None:
        m = self.machine
        now = m.engine.now
        ts = _us(now)
        pages = np.zeros(m.nr_nodes, dtype=np.int64)
        for mm in m.mms:
            if mm.users:
                pages += mm.node_pages
        a = m.progress.arrays
        n = len(m.tasks)
        mem = (a.oncpu[:n] >= 0) & (a.kind[:n] == MEM)
        bw = (a.rate[:n][mem][:, None] * a.frac[:n][mem]).sum(axis=0) if mem.any() else np.zeros(m.nr_nodes)
        for name, values in (("pages", pages), ("hint faults", self._faults), ("bandwidth GB/s", bw)):
            self.events.append(
                {"name": name, "cat": "node", "ph": "C", "pid": MACHINE_PID, "tid": 0, "ts": ts,
                 "args": {f"node{i}": float(v) if name == "bandwidth GB/s" else int(v) for i, v in enumerate(values)}}
            )

    # ---- the document --------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Close the slices still open when the run ended, and take a last counter sample (faults taken after
        the last periodic sample count in the run's totals, so the trace ends with them)."""
        if self._finished:
            return
        self._finished = True
        now = self.machine.engine.now
        self._sample_counters()
        for tid, cur in self._open.items():
            if cur is not None:
                self._slice(tid, cur[0], cur[1], now)
                self._open[tid] = None

    def document(self, title: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """The trace-event JSON document: metadata events naming every process and thread, then the events."""
        self.finish()
        meta: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": MACHINE_PID, "tid": 0, "args": {"name": f"machine: {title}"}}
        ]
        seen: set[int] = set()
        tasks = self.machine.tasks
        for t in tasks:
            pid, tid = self._ids(t.id)
            if pid not in seen:
                seen.add(pid)
                leader = tasks[t.tgid].name if 0 <= t.tgid < len(tasks) else t.name
                meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": pid, "args": {"name": leader}})
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": t.name}})
        events = sorted(self.events, key=lambda e: e["ts"])
        return {"traceEvents": meta + events, "displayTimeUnit": "ms", "metadata": metadata}
