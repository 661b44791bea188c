"""Running an action policy against the running kernel: sample, decide, apply under the safety rules, log.

:class:`LiveActor` builds a :class:`~memsched.policies.act.views.MemoryView` of the subtree
(``memsched.live.act.view``), calls the policy, and applies each action:

- ``KillProcess``: the pid must still be in the subtree (``/proc/<pid>/cgroup`` read again) and not
  untouchable (itself, PID 1, a kernel thread, ``--protect``); the signal goes through a pidfd
  (``pidfd_send_signal``), so a recycled pid is never hit.
- ``KillCgroup``: the cgroup must be the subtree's root or below it and hold no untouchable process (the whole
  kill is refused otherwise); every process in it and its descendants gets the signal, each through a pidfd.
- ``Shed``: the service's registered callback is called with the bytes asked for (``memsched.live.act``'s
  Python API). It returns the bytes it freed, or None when it cannot tell: both are ``applied`` (the message
  says ``freed N bytes`` or ``freed an unknown number of bytes``); an exception, or any other return value
  (a negative number, NaN, a string), is ``failed`` with the reason.

A service's ``sheddable()`` is called at every sample. An exception from it, or a value that is not a number of
bytes (an int or a finite float, 0..SIZE_MAX), leaves that service out of this sample's view (a policy sheds
nothing from it) and is recorded in :attr:`LiveActor.sample_errors` and logged (one warning when the service
starts failing, an info line when it works again); sampling goes on.

``dry_run``: nothing is signalled or called; the result is ``dry-run``. Every action, applied or not, is one
JSON line in the log with the policy's evidence, the result and the pids signalled. ``close()`` (also on
``KeyboardInterrupt``/SIGTERM through the CLI) closes the vmpressure registration and the log.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import logging
import math
import numbers
import operator
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from memsched.errors import KernelError
from memsched.live.act.subtree import Protect, Subtree
from memsched.live.act.view import build_view
from memsched.policies.act.actions import Action, ActionResult, KillCgroup, KillProcess, Shed
from memsched.policies.act.base import ActPolicy
from memsched.policies.act.views import MemoryView, ServiceView
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC, SIZE_MAX

__all__ = ["LiveActor", "SampleError", "ShedCallback", "byte_count"]

log = logging.getLogger(__name__)

#: ``shed(bytes_asked, level) -> bytes freed``, or None when the service cannot tell how much it freed.
ShedCallback = Callable[[int, str], int | None]

#: The last sheddable() failures kept in :attr:`LiveActor.sample_errors` (a service failing at every 100 ms
#: sample for a day would otherwise grow the list without bound); :attr:`LiveActor.sample_error_count` counts all.
MAX_SAMPLE_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class SampleError:
    """A registered service's ``sheddable()`` raised or returned something that is not a number of bytes."""

    monotonic_ns: int
    service: str
    message: str


def byte_count(value: object) -> int:
    """``value`` as a number of bytes: an int, or a finite float (truncated), in 0..SIZE_MAX.

    Raises ``ValueError`` naming what was wrong (a bool, NaN, a negative or huge number, a non-number).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"returned {value!r}, not a number of bytes")
    if isinstance(value, numbers.Integral):
        n = operator.index(value)
    elif math.isfinite(f := float(value)):
        n = int(f)
    else:
        raise ValueError(f"returned {value!r}, not a finite number of bytes")
    if not 0 <= n <= SIZE_MAX:
        raise ValueError(f"returned {value!r}, outside 0..{SIZE_MAX} bytes")
    return n

_KIND = {KillProcess: "kill-process", KillCgroup: "kill-cgroup", Shed: "shed"}


class _Vmpressure:
    """The kernel's own levels on the subtree's v1 memcg (hierarchy mode), read without blocking."""

    def __init__(self, sub: Subtree) -> None:
        self.source: Any = None
        if not sub.v1:
            return
        from memsched.live.pressure.memcg_v1 import MemcgV1Source
        from memsched.uapi.pressure import MemcgLevel, MemcgMode

        with contextlib.suppress(KernelError):
            self.source = MemcgV1Source(sub.directory, list(MemcgLevel), MemcgMode.HIERARCHY)

    def level(self, now_ns: int) -> str:
        if self.source is None:
            return "none"
        fds = self.source.fds()
        try:
            records = self.source.on_ready(fds[0][0], 0, now_ns) if fds else []
        except Exception:  # the cgroup went away: no more levels
            return "none"
        names = {1 << 10: "low", 1 << 20: "medium", 1 << 30: "critical"}
        best = max((int(r.level) for r in records), default=0)
        return names.get(best, "none")

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


class LiveActor:
    def __init__(
        self,
        policy: ActPolicy,
        subtree: Subtree,
        *,
        protect: Protect | None = None,
        dry_run: bool = False,
        log: IO[str] | None = None,
        services: dict[str, tuple[str, Callable[[], int], ShedCallback]] | None = None,
        kills: bool = True,
    ) -> None:
        self.policy = policy
        self.subtree = subtree
        self.protect = protect or Protect(frozenset(), frozenset())
        self.dry_run = dry_run
        self.log = log
        #: name -> (cgroup, sheddable(), shed(bytes, level) -> freed)
        self.services = services if services is not None else {}
        #: False: kill actions are refused (a service that only wants its shed callbacks called)
        self.kills = kills
        self.results: list[ActionResult] = []
        self.samples = 0
        #: The last MAX_SAMPLE_ERRORS failures of a service's sheddable(); sample_error_count counts every one.
        self.sample_errors: collections.deque[SampleError] = collections.deque(maxlen=MAX_SAMPLE_ERRORS)
        self.sample_error_count = 0
        self._failing: set[str] = set()
        self._vmp = _Vmpressure(subtree)
        self._lock = threading.Lock()
        self._services_lock = threading.Lock()

    def add_service(self, name: str, cgroup: str, sheddable: Callable[[], int], shed: ShedCallback) -> None:
        """Register a service (also while :meth:`run` goes on in another thread)."""
        with self._services_lock:
            self.services[name] = (cgroup, sheddable, shed)

    def reopen(self) -> None:
        """After :meth:`close`: open the vmpressure registration again (a service started a second time)."""
        if self._vmp.source is None:
            self._vmp = _Vmpressure(self.subtree)

    # -- one pass ----------------------------------------------------------------------------------------
    def sample(self) -> MemoryView:
        """One view of the subtree. A subtree whose cgroup was removed ends the run with
        :class:`~memsched.errors.KernelError` (as ``pressure watch`` ends when its cgroup goes): nothing is
        left to act on, and a view of it would be an empty cgroup that never comes under pressure."""
        if not (self.subtree.directory / "cgroup.procs").exists():
            raise KernelError(errno.ENODEV, f"{self.subtree.directory} was removed (the cgroup acted in)")
        now = time.monotonic_ns()
        return build_view(self.subtree, self.protect, now, vmpressure=self._vmp.level(now),
                          services=self._service_views(now))

    def _service_views(self, now_ns: int) -> tuple[ServiceView, ...]:
        """Each service's ``sheddable()`` now; a service whose call fails is left out of this sample."""
        with self._services_lock:
            services = sorted(self.services.items())
        views = []
        for name, (cgroup, size, _) in services:
            try:
                value = size()
            except Exception as e:
                self._sample_failed(SampleError(now_ns, name, f"{name}: sheddable() raised {type(e).__name__}: {e}"))
                continue
            try:
                views.append(ServiceView(name, cgroup, byte_count(value)))
            except ValueError as e:
                self._sample_failed(SampleError(now_ns, name, f"{name}: sheddable() {e}"))
                continue
            if name in self._failing:
                self._failing.discard(name)
                log.info("%s: sheddable() works again", name)
        return tuple(views)

    def _sample_failed(self, error: SampleError) -> None:
        self.sample_errors.append(error)
        self.sample_error_count += 1
        if error.service not in self._failing:  # once per run of failures: a failing service must not flood
            self._failing.add(error.service)
            log.warning("%s; left out of the samples until it works again", error.message)
        else:
            log.debug("%s", error.message)

    def step(self) -> tuple[MemoryView, list[ActionResult]]:
        view = self.sample()
        self.samples += 1
        actions: Sequence[Action] = self.policy.on_sample(view)
        out = [self.apply(a, view) for a in actions]
        return view, out

    def run(self, *, duration_s: float | None = None, stop: threading.Event | None = None,
            until: Callable[[list[ActionResult]], bool] | None = None) -> None:
        end = None if duration_s is None else time.monotonic() + duration_s
        stop = stop or threading.Event()
        while not stop.is_set() and (end is None or time.monotonic() < end):
            view, _ = self.step()
            if until is not None and until(self.results):
                return
            wait_ns = min(NSEC_PER_SEC, max(NSEC_PER_MSEC, self.policy.next_interval_ns(view)))
            stop.wait(wait_ns / NSEC_PER_SEC)

    def close(self) -> None:
        self._vmp.close()
        if self.log is not None:
            with contextlib.suppress(OSError, ValueError):
                self.log.flush()

    # -- applying ----------------------------------------------------------------------------------------
    def _signal(self, pid: int, sig: int) -> bool:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        try:
            # the pid was checked before the pidfd was opened; check again through it (same process now)
            if self.subtree.untouchable(pid, self.protect) is not None or not self.subtree.contains(
                self.subtree.cgroup_of(pid)
            ):
                return False
            signal.pidfd_send_signal(fd, sig)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(fd)

    def apply(self, action: Action, view: MemoryView) -> ActionResult:
        with self._lock:
            result = self._apply(action)
            self.results.append(result)
            self._log(action, result, view)
            return result

    def _apply(self, a: Action) -> ActionResult:
        sub, protect = self.subtree, self.protect
        if isinstance(a, (KillProcess, KillCgroup)) and not self.kills:
            return ActionResult(a, "skipped", "kills are disabled (shed callbacks only)")
        if isinstance(a, KillProcess):
            why = sub.untouchable(a.pid, protect)
            if why is None and not sub.contains(sub.cgroup_of(a.pid)):
                why = f"it is not inside {sub.path}"
            if why is not None:
                return ActionResult(a, "skipped", f"pid {a.pid}: {why}")
            if self.dry_run:
                return ActionResult(a, "dry-run", f"would send {signal.Signals(a.signal).name} to pid {a.pid}")
            if self._signal(a.pid, a.signal):
                return ActionResult(a, "applied", "", (a.pid,))
            return ActionResult(a, "skipped", f"pid {a.pid} is gone")
        if isinstance(a, KillCgroup):
            d = sub.dir_of(a.path)
            if d is None or not d.is_dir():
                return ActionResult(a, "skipped", f"{a.path} is not a cgroup inside {sub.path}")
            pids = sub.pids_of(d, recursive=True)
            for pid in pids:
                why = sub.untouchable(pid, protect)
                if why is not None and why != "it is gone":
                    return ActionResult(a, "skipped", f"{a.path} holds pid {pid}: {why}")
            if self.dry_run:
                name = signal.Signals(a.signal).name
                return ActionResult(a, "dry-run", f"would send {name} to {len(pids)} processes")
            sent = tuple(p for p in pids if self._signal(p, a.signal))
            return ActionResult(a, "applied" if sent else "skipped", "" if sent else "no process left", sent)
        entry = self.services.get(a.service)
        if entry is None:
            return ActionResult(a, "skipped", f"no service {a.service!r} registered")
        if self.dry_run:
            return ActionResult(a, "dry-run", f"would ask {a.service} to shed {a.bytes} bytes")
        try:
            returned = entry[2](a.bytes, a.level)
        except Exception as e:
            return ActionResult(a, "failed", f"the shed callback of {a.service} raised {type(e).__name__}: {e}")
        if returned is None:  # the service shed but cannot tell how much (a cache's clear() returns None)
            return ActionResult(a, "applied", "freed an unknown number of bytes")
        try:
            freed = byte_count(returned)
        except ValueError as e:
            return ActionResult(a, "failed", f"the shed callback of {a.service} {e} (must be the bytes freed, "
                                             "an int >= 0, or None)")
        return ActionResult(a, "applied", f"freed {freed} bytes")

    def _log(self, a: Action, r: ActionResult, view: MemoryView) -> None:
        if self.log is None:
            return
        target: dict[str, object]
        if isinstance(a, KillProcess):
            p = view.proc(a.pid)
            target = {"pid": a.pid, "comm": p.comm if p else None, "cgroup": p.cgroup if p else None,
                      "signal": signal.Signals(a.signal).name}
        elif isinstance(a, KillCgroup):
            target = {"cgroup": a.path, "signal": signal.Signals(a.signal).name}
        else:
            target = {"service": a.service, "bytes": a.bytes, "level": a.level}
        secs, ns = divmod(time.time_ns(), NSEC_PER_SEC)
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z",
            "monotonic_ns": view.now_ns, "policy": self.policy.id, "action": _KIND[type(a)], **target,
            "reason": a.reason, "evidence": dict(a.evidence), "status": r.status, "message": r.message,
            "signalled": list(r.signalled), "dry_run": self.dry_run,
        }
        self.log.write(json.dumps(line) + "\n")
        self.log.flush()
