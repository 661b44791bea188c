"""PSI memory pressure of the fluid machine: per-CPU stall states, totals, averages and triggers.

It lives with the fluid machine's scheduler, as kernel/sched/psi.c lives in kernel/sched: it tracks tasks on
runqueues; reclaim (``sim/mm/reclaim.py``) tells it when a task stalls.

Models kernel/sched/psi.c (6.5+; averaging and windows unchanged since 5.2) for the memory resource of the
system-wide group (``/proc/pressure/memory``):

* per CPU, task counts ``NR_RUNNING``, ``NR_MEMSTALL`` and ``NR_MEMSTALL_RUNNING``; the states
  ``SOME = memstall``, ``FULL = memstall && running == memstall_running`` (nobody productive) and
  ``NONIDLE``; ``record_times()`` adds the time since the last change to each active state;
* a task is in memstall while it reclaims in its own context (direct reclaim and memcg-limit reclaim:
  ``psi_memstall_enter`` in ``__perform_reclaim`` and ``try_to_free_mem_cgroup_pages``), and kswapd is a
  memstalled running task on its node's last CPU while it works (``balance_pgdat`` enters memstall);
* aggregation (``collect_percpu_times``) weights each CPU's state times by its non-idle time in jiffies;
  ``total`` is cumulative in ns (printed in us); ``avg10/60/300`` are updated every ``PSI_FREQ``
  (:mod:`memsched.pressure.psi`);
* triggers: ``"<some|full> <stall us> <window us>"`` written to an open ``/proc/pressure/memory``
  (:class:`PsiFile`), one per file (``EBUSY``), validated like ``psi_trigger_create()`` (2 s multiples for
  unprivileged openers); privileged triggers are evaluated by the rtpoll worker every ``window / 10`` while
  memory states change (and for one window after), unprivileged ones by the 2 s averaging work; each fires at
  most once per window. A trigger's window starts from ``total[PSI_POLL]`` for both kinds, as
  ``psi_trigger_create()`` does — so an unprivileged trigger created after stall has accumulated (while no
  privileged trigger kept the POLL total current) sees all of it as growth on its first update.

The file's readiness is a real eventfd: ``select`` sees it *readable* (``POLLIN``) where the kernel reports
``POLLPRI``; :meth:`PsiFile.poll` reports and clears the event like ``psi_trigger_poll()``.

Deviations from the kernel: no per-cgroup (v2) PSI groups, no CPU/IO resources; refault and thrashing stalls
(``workingset_refault`` in ``folio_wait_bit``) are not counted; a reclaim stall's end is taken from the task's
CPU share when it starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.errors import KernelError
from memsched.fdobj import OwnedFd, new_eventfd
from memsched.pressure.psi import PsiAverages, TriggerState, format_avg, psi_period_ns
from memsched.sim.engine import Event, Prio
from memsched.sim.fluid.task import FluidTaskState
from memsched.uapi.pressure import PsiTrigger

if TYPE_CHECKING:
    from memsched.sim.fluid.machine import FluidMachine
    from memsched.sim.fluid.task import FluidTask
    from memsched.sim.mm.vmscan import Kswapd

__all__ = ["PsiFile", "SimPsi"]

SOME, FULL, NONIDLE = 0, 1, 2
AVGS, POLL = 0, 1
UPDATES_PER_WINDOW = 10


@dataclass(eq=False)
class _Trigger:
    file: PsiFile
    spec: PsiTrigger
    state_idx: int
    privileged: bool
    ts: TriggerState

    @property
    def aggregator(self) -> int:
        return POLL if self.privileged else AVGS


class PsiFile(OwnedFd):
    """An open ``/proc/pressure/memory``: write one trigger, then wait for it (``POLLPRI``)."""

    kind = "PSI file"

    def __init__(self, psi: SimPsi, *, privileged: bool, name: str = "/proc/pressure/memory") -> None:
        self.psi = psi
        self.privileged = privileged
        self.name = name
        self.trigger: _Trigger | None = None
        self.events = 0
        super().__init__(new_eventfd())
        self._waiters: list[tuple[FluidTask, Callable[[FluidTask], None]]] = []

    def read(self) -> str:
        """``psi_show()``: the two-line ``some``/``full`` text."""
        return self.psi.show()

    def write(self, buf: bytes) -> int:
        """``psi_write()``: create this file's trigger; ``EBUSY`` if it already has one, ``EINVAL`` if bad."""
        if self._closed:
            raise KernelError(errno.EBADF, f"{self.name} is closed")
        if self.trigger is not None:
            raise KernelError(errno.EBUSY, f"{self.name}: this file already has a trigger")
        spec = PsiTrigger.parse_write(buf, privileged=self.privileged)
        self.trigger = self.psi._create_trigger(self, spec)
        return len(buf)

    def _notify(self) -> None:
        if not self._closed:
            os.eventfd_write(self._fd, 1)
            waiters, self._waiters = self._waiters, []
            for task, wake in waiters:
                wake(task)

    def poll(self) -> bool:
        """``psi_trigger_poll()``: True (``POLLPRI``) if the trigger fired since the last poll; clears it."""
        t = self.trigger
        if t is None or not t.ts.event:
            return False
        t.ts.event = False
        self.events += 1
        with contextlib.suppress(BlockingIOError):  # the eventfd is written whenever the flag is set
            os.eventfd_read(self._fd)
        return True

    # Waitable: a task blocked in poll() for POLLPRI.
    def poll_ready(self, task: FluidTask) -> bool:
        return self.poll()

    def add_waiter(self, task: FluidTask, wake: Callable[[FluidTask], None]) -> None:
        self._waiters.append((task, wake))

    def close(self) -> None:
        """``psi_fop_release()``: destroy the trigger."""
        if self._closed:
            return
        if self.trigger is not None:
            self.psi._destroy_trigger(self.trigger)
        self._release_fd()


class SimPsi:
    """The system PSI group, memory resource."""

    def __init__(self, machine: FluidMachine, *, hz: int = 1000) -> None:
        self.machine = machine
        self.engine = machine.engine
        self.ncpu = machine.nr_cpus
        self.jiffy_ns = 1_000_000_000 // hz
        self.period_ns = psi_period_ns(hz)
        self.mask = np.zeros((self.ncpu, 3), dtype=bool)
        self.times = np.zeros((self.ncpu, 3), dtype=np.int64)
        self._times_prev = [np.zeros((self.ncpu, 3), dtype=np.int64) for _ in (AVGS, POLL)]
        self.total = [[0, 0], [0, 0]]  # [aggregator][SOME/FULL], ns
        self.avgs = [PsiAverages(self.period_ns), PsiAverages(self.period_ns)]
        self._last = self.engine.now
        self.memstall_until: dict[int, int] = {}
        self.kswapd_cpus: dict[int, int] = {}
        self.triggers: list[_Trigger] = []
        self._rtpoll_event: Event | None = None
        self._rtpoll_until = -1
        self._rtpoll_next = 0
        self.stall_intervals = 0
        self._avgs_event: Event | None = self.engine.after(self.period_ns, Prio.TICK, self._avgs_work)

    # ---- state ---------------------------------------------------------------------------------------------
    def _counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        m = self.machine
        running = np.array([len(q) for q in m.sched.rq], dtype=np.int64)
        memstall = np.zeros(self.ncpu, dtype=np.int64)
        ms_running = np.zeros(self.ncpu, dtype=np.int64)
        for tid in self.memstall_until:
            t = m.tasks[tid]
            if t.state is FluidTaskState.EXITED or t.cpu < 0:
                continue
            memstall[t.cpu] += 1
            if t.state is FluidTaskState.RUNNABLE:
                ms_running[t.cpu] += 1
        for cpu in self.kswapd_cpus.values():
            running[cpu] += 1
            memstall[cpu] += 1
            ms_running[cpu] += 1
        return running, memstall, ms_running

    def record(self) -> None:
        """``record_times()`` on every CPU up to now, then the new state masks (``psi_group_change``)."""
        now = self.engine.now
        dt = now - self._last
        if dt > 0:
            self.times += self.mask * dt
            self._last = now
        running, memstall, ms_running = self._counts()
        old_some_full = self.mask[:, :2].copy()
        self.mask[:, SOME] = memstall > 0
        self.mask[:, FULL] = (memstall > 0) & (running == ms_running)
        self.mask[:, NONIDLE] = (running > 0) | (memstall > 0)
        if self._poll_states() and (self.mask[:, :2] != old_some_full).any():
            self._schedule_rtpoll(self.jiffy_ns, force=False)
        if self._avgs_event is None and self.mask[:, NONIDLE].any():  # the averaging clock restarts
            nxt = max(self.avgs[SOME].avg_next_update, now + self.jiffy_ns)
            self._avgs_event = self.engine.at(nxt, Prio.TICK, self._avgs_work)

    def memstall(self, task: FluidTask, duration_ns: int) -> None:
        """``psi_memstall_enter()`` now and ``psi_memstall_leave()`` after ``duration_ns``."""
        if duration_ns <= 0:
            return
        end = self.engine.now + duration_ns
        self.memstall_until[task.id] = max(self.memstall_until.get(task.id, 0), end)
        self.stall_intervals += 1
        self.record()
        self.engine.at(end, Prio.TIMER, self._memstall_end, task.id, end)

    def _memstall_end(self, tid: int, end: int) -> None:
        if self.memstall_until.get(tid) == end:
            del self.memstall_until[tid]
            self.record()

    def kswapd_changed(self, k: Kswapd, running: bool) -> None:
        if running:
            self.kswapd_cpus[k.node] = k.cpu
        else:
            self.kswapd_cpus.pop(k.node, None)
        self.record()

    # ---- aggregation ---------------------------------------------------------------------------------------
    def _collect(self, agg: int) -> int:
        """``collect_percpu_times()``: fold per-CPU times into ``total[agg]``; returns the changed states."""
        self.record()
        delta = self.times - self._times_prev[agg]
        self._times_prev[agg] = self.times.copy()
        nonidle = delta[:, NONIDLE] // self.jiffy_ns
        nonidle_total = max(int(nonidle.sum()), 1)
        changed = 0
        for s in (SOME, FULL):
            self.total[agg][s] += int((delta[:, s] * nonidle).sum()) // nonidle_total
            if delta[:, s].any():
                changed |= 1 << s
        return changed

    def _avgs_work(self) -> None:
        now = self.engine.now
        self._collect(AVGS)
        if now >= self.avgs[SOME].avg_next_update:
            self._update_triggers(AVGS, now)
            for s in (SOME, FULL):
                self.avgs[s].update(now, self.total[AVGS][s])
        # psi_avgs_work() stops the clock when nothing is going on (it catches up on missed periods when
        # it restarts); it must, or its timer alone would keep an idle simulation running forever.
        if self.mask[:, NONIDLE].any():
            nxt = self.avgs[SOME].avg_next_update
            self._avgs_event = self.engine.at(max(nxt, now + self.jiffy_ns), Prio.TICK, self._avgs_work)
        else:
            self._avgs_event = None

    def _update_triggers(self, agg: int, now: int) -> None:
        for t in self.triggers:
            if t.aggregator == agg and t.ts.update(now, self.total[agg][t.state_idx]):
                t.file._notify()

    # ---- rtpoll (privileged triggers) ----------------------------------------------------------------------
    def _poll_states(self) -> int:
        states = 0
        for t in self.triggers:
            if t.privileged:
                states |= 1 << t.state_idx
        return states

    def _min_period(self) -> int:
        return min(t.ts.win.size for t in self.triggers if t.privileged) // UPDATES_PER_WINDOW

    def _schedule_rtpoll(self, delay: int, *, force: bool) -> None:
        if self._rtpoll_event is not None and not force:
            return
        if self._rtpoll_event is not None:
            self._rtpoll_event.cancel()
        self._rtpoll_event = self.engine.after(delay, Prio.TICK, self._rtpoll_work)

    def _rtpoll_work(self) -> None:
        self._rtpoll_event = None
        poll_states = self._poll_states()
        if not poll_states:
            return
        now = self.engine.now
        force = now <= self._rtpoll_until
        changed = self._collect(POLL)
        min_period = self._min_period()
        if changed & poll_states:
            if now > self._rtpoll_until:  # init_rtpoll_triggers()
                for t in self.triggers:
                    if t.privileged:
                        t.ts.win.reset(now, self.total[POLL][t.state_idx], 0)
                        t.ts.last_total = self.total[POLL][t.state_idx]
                self._rtpoll_next = now + min_period
            self._rtpoll_until = now + min_period * UPDATES_PER_WINDOW
        if now > self._rtpoll_until:
            return
        if now >= self._rtpoll_next:
            if changed & poll_states:
                self._update_triggers(POLL, now)
            self._rtpoll_next = now + min_period
        self._schedule_rtpoll(max(self._rtpoll_next - now, 0) + self.jiffy_ns, force=force)

    # ---- files ---------------------------------------------------------------------------------------------
    def open(self, *, privileged: bool = False, name: str = "/proc/pressure/memory") -> PsiFile:
        """``open("/proc/pressure/memory", O_RDWR | O_NONBLOCK)``; ``privileged`` = ``CAP_SYS_RESOURCE``."""
        return PsiFile(self, privileged=privileged, name=name)

    def _create_trigger(self, f: PsiFile, spec: PsiTrigger) -> _Trigger:
        if self._poll_states():
            self._collect(POLL)
        idx = SOME if spec.kind == "some" else FULL
        ts = TriggerState.create(spec.threshold_us, spec.window_us, self.engine.now, self.total[POLL][idx])
        ts.last_total = self.total[POLL if f.privileged else AVGS][idx]
        t = _Trigger(f, spec, idx, f.privileged, ts)
        self.triggers.append(t)
        if f.privileged:
            self.record()
            self._schedule_rtpoll(self.jiffy_ns, force=False)
        return t

    def _destroy_trigger(self, t: _Trigger) -> None:
        self.triggers.remove(t)

    def show(self) -> str:
        """``/proc/pressure/memory`` contents, averages updated first (``psi_show``)."""
        now = self.engine.now
        self._collect(AVGS)
        if now >= self.avgs[SOME].avg_next_update:
            for s in (SOME, FULL):
                self.avgs[s].update(now, self.total[AVGS][s])
        lines = []
        for name, s in (("some", SOME), ("full", FULL)):
            a = self.avgs[s].avg
            lines.append(
                f"{name} avg10={format_avg(a[0])} avg60={format_avg(a[1])} avg300={format_avg(a[2])} "
                f"total={self.total[AVGS][s] // 1000}"
            )
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict[str, float | int]:
        """Averages (percent) and totals (us) without touching the averaging clock."""
        some, full = self.avgs[SOME].percent(), self.avgs[FULL].percent()
        return {
            "some_avg10": some[0],
            "some_avg60": some[1],
            "full_avg10": full[0],
            "full_avg60": full[1],
            "some_total_us": self.total[AVGS][SOME] // 1000,
            "full_total_us": self.total[AVGS][FULL] // 1000,
        }
