"""What the real side listens to during a run, on one thread: vmpressure eventfds (cgroup v1), PSI triggers on a
cgroup's ``memory.pressure`` (v2), and samples of the cgroup's stall totals and memcg event counters.

* **v1**: one eventfd per level on ``memory.pressure_level``, registered through ``cgroup.event_control`` in the
  default mode, as ``memsched pressure watch --backend memcg-v1`` registers them (mm/memcontrol-v1.c
  ``memcg_write_event_control()``, mm/vmpressure.c ``vmpressure_register_event()``, 6.18). A critical window
  signals the low, medium and critical eventfds together: the counts are cumulative.
* **v2**: a PSI trigger per level on its own descriptor (``O_RDWR | O_NONBLOCK``, the trigger written with its
  NUL; events are ``POLLPRI``, ``POLLERR`` when the cgroup is gone; kernel/sched/psi.c ``psi_write()``,
  ``psi_trigger_poll()``, 6.18). Without ``CAP_SYS_RESOURCE`` a window must be a multiple of 2 s
  (:meth:`memsched.uapi.pressure.PsiTrigger.check_privilege`), and such triggers are evaluated by the 2 s
  averaging work, not the rtpoll worker.
* **samples**, every ``sample_ms``: the ``some``/``full`` totals of ``memory.pressure`` (reading it runs
  ``psi_show()``, which folds the per-CPU times into the totals first, so a sample is current) and the event
  counters: v2 ``memory.events`` (``low high max oom oom_kill``: mm/memcontrol.c ``memcg_memory_event()``),
  or v1 ``failcnt`` (failed ``page_counter_try_charge()`` calls, one per try of the charge loop, as ``max``
  counts them in v2) and ``oom_kill`` of ``memory.oom_control``. With swap accounting the v1 charge tries the
  ``memsw`` counter first and the memory counter only when that passed (mm/memcontrol.c ``try_charge_memcg()``,
  6.18), so with equal limits the failures land in ``memory.memsw.failcnt``: ``failcnt`` is the sum of both.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from memsched.live.procfs import parse_flat_keyed, parse_psi
from memsched.live.roots import try_read_text
from memsched.uapi.pressure import PsiTrigger
from memsched.workloads.pressure.vskernel.describe import LEVELS

__all__ = ["PSI_TRIGGERS", "Watcher", "read_counters"]

#: The v2 side's triggers, valid with and without CAP_SYS_RESOURCE (2 s windows); the names are the levels
#: a ``[psi]`` scenario table gives them (GLib's defaults for MEDIUM and CRITICAL, gio/gmemorymonitorpsi.c).
PSI_TRIGGERS = {"medium": PsiTrigger("some", 100_000, 2_000_000), "critical": PsiTrigger("full", 100_000, 2_000_000)}

_GONE = select.POLLERR | select.POLLNVAL | select.POLLHUP


def read_counters(directory: Path) -> dict[str, int]:
    """The memcg event counters of ``directory``: v2 ``memory.events``, else v1 failcnt + oom_kill ({} if none)."""
    text, _ = try_read_text(directory / "memory.events")
    if text is not None:
        return parse_flat_keyed(text, source=str(directory / "memory.events"))
    out: dict[str, int] = {}
    for name in ("memory.failcnt", "memory.memsw.failcnt"):
        text, _ = try_read_text(directory / name)
        if text is not None and text.strip():
            out["failcnt"] = out.get("failcnt", 0) + int(text)
    text, _ = try_read_text(directory / "memory.oom_control")
    if text is not None:
        out["oom_kill"] = parse_flat_keyed(text, source=str(directory / "memory.oom_control")).get("oom_kill", 0)
    return out


class Watcher:
    """Listens and samples on a thread from construction to :meth:`close`; times are ns from ``t0``
    (``time.monotonic_ns()``). ``vmpressure``: the v1 memcg to register eventfds on; ``psi``: the v2 cgroup
    whose ``memory.pressure`` gets ``triggers`` (level -> trigger; ``{}`` samples only) and is sampled unless
    ``samples`` names another cgroup to sample (reading a PSI file delays its group's trigger updates: see
    :mod:`~memsched.workloads.pressure.vskernel.real`);
    ``counters``: the cgroup whose event counters are sampled (:func:`read_counters`)."""

    def __init__(
        self,
        t0: int,
        *,
        vmpressure: Path | None = None,
        psi: Path | None = None,
        privileged: bool = False,
        triggers: Mapping[str, PsiTrigger] = PSI_TRIGGERS,
        samples: Path | None = None,
        counters: Path | None = None,
        sample_ms: float = 10.0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.t0 = t0
        self.clock = clock
        self.signals: list[tuple[int, str, int]] = []
        self.psi: list[tuple[int, int, int]] = []
        self.counters: list[tuple[int, dict[str, int]]] = []
        self.gone = False
        sampled = samples if samples is not None else psi
        self._psi_file = sampled / "memory.pressure" if sampled is not None else None
        self._counter_dir = counters
        self._sample_ns = round(sample_ms * 1e6)
        self._stop = threading.Event()
        self._fds: dict[int, tuple[str, int]] = {}  # fd -> (level, poll event)
        self._extra: list[int] = []
        try:
            if vmpressure is not None:
                self._arm_vmpressure(vmpressure)
            if psi is not None:
                for trig in triggers.values():
                    trig.check_privilege(privileged)  # all checked before any is written
                for level, trig in triggers.items():
                    fd = os.open(psi / "memory.pressure", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                    self._fds[fd] = (level, select.POLLPRI)
                    os.write(fd, trig.encode())
        except BaseException:
            self._close_fds()
            raise
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="vs-kernel-watcher", daemon=True)
        self._thread.start()

    def _arm_vmpressure(self, directory: Path) -> None:
        level_fd = os.open(directory / "memory.pressure_level", os.O_RDONLY | os.O_CLOEXEC)
        self._extra.append(level_fd)
        control = os.open(directory / "cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
        try:
            for level in LEVELS:
                efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                self._fds[efd] = (level, select.POLLIN)
                os.write(control, f"{efd} {level_fd} {level}".encode())
        finally:
            os.close(control)

    def _sample(self) -> None:
        now = self.clock() - self.t0
        if self._psi_file is not None:
            text, _ = try_read_text(self._psi_file)
            if text is not None:
                stats = parse_psi(text, source=str(self._psi_file))
                self.psi.append((now, stats.some.total_us, stats.full.total_us if stats.full else 0))
        if self._counter_dir is not None:
            self.counters.append((now, read_counters(self._counter_dir)))

    def _loop(self) -> None:
        poll = select.poll()
        for fd, (_, ev) in self._fds.items():
            poll.register(fd, ev)
        next_sample = self.clock() + self._sample_ns
        while not self._stop.is_set():
            wait_ms = max(0, (next_sample - self.clock()) // 1_000_000)
            ready = poll.poll(wait_ms)  # with nothing registered, a plain sleep
            now = self.clock() - self.t0
            for fd, revents in sorted(ready):  # eventfds in creation order: low first
                level, ev = self._fds[fd]
                if revents & _GONE and not revents & ev:
                    poll.unregister(fd)
                    self.gone = True
                elif ev == select.POLLIN:
                    with contextlib.suppress(BlockingIOError):
                        self.signals.append((now, level, os.eventfd_read(fd)))
                else:
                    self.signals.append((now, level, 1))
            if self.clock() >= next_sample:
                self._sample()
                next_sample += self._sample_ns

    def _close_fds(self) -> None:
        for fd in [*self._fds, *self._extra]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._extra.clear()

    def close(self) -> None:
        """Stop, take a last sample, close every descriptor (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()
        self._close_fds()
