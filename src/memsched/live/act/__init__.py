"""Action policies on the running kernel: ``memsched pressure act`` and the shed-callback API.

``LiveActor`` (``actor.py``) runs any registered action policy (``memsched.policies.act``) against one cgroup
subtree (``subtree.py``) with views built from the kernel's files (``view.py``). :class:`ShedService` lets a
Python service register a callback that the same policies call with ``Shed`` actions::

    svc = ShedService("vmpressure-shed", cgroup="/myservice")
    svc.register("cache", sheddable=lambda: cache.size, shed=lambda nbytes, level: cache.drop(nbytes))
    svc.start()      # a background thread; svc.stop() ends it
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping

from memsched.errors import ConfigError
from memsched.live.act.actor import LiveActor, SampleError, ShedCallback
from memsched.live.act.subtree import Protect, Subtree, open_subtree
from memsched.policies.act.conformance import load_policy

__all__ = ["LiveActor", "Protect", "SampleError", "ShedCallback", "ShedService", "Subtree", "open_subtree"]

log = logging.getLogger(__name__)

#: How long the finalizer of a service dropped while running waits for its thread (one sample at most).
_FINALIZE_JOIN_S = 5.0


class _Runner:
    """What the background thread and the finalizer hold: the actor, the stop event, the thread and how it
    ended. Never the :class:`ShedService` itself, so that dropping the service lets the finalizer run."""

    def __init__(self, actor: LiveActor) -> None:
        self.actor = actor
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.actor.run(stop=self.stop_event)
        except Exception as e:  # a policy bug or a vanished cgroup: say so, do not die in silence
            self.error = e
            log.error("ShedService(%s) stopped: %s: %s", self.actor.policy.id, type(e).__name__, e, exc_info=e)

    def start(self) -> None:
        self.stop_event.clear()
        self.error = None
        self.actor.reopen()
        self.thread = threading.Thread(target=self.run, daemon=True, name="memsched-act")
        self.thread.start()

    def shutdown(self, timeout: float = _FINALIZE_JOIN_S) -> None:
        self.stop_event.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        self.actor.close()


class ShedService:
    """Run ``policy`` on ``cgroup`` in a background thread, calling registered shed callbacks.

    With ``kills=True`` the policy may also kill inside the subtree under the CLI's safety rules; by default
    kill actions are refused (``skipped``) and only ``Shed`` actions are carried out. Every action's result is in
    ``actor.results``; a failing ``sheddable()`` in ``actor.sample_errors`` (see :meth:`register`).

    ``start()`` (or ``with svc:``) starts the thread, ``stop()`` (or the end of the ``with`` block) ends it and
    closes the kernel registration; a stopped service can be started again. A running service that is dropped
    without ``stop()`` is stopped when it is garbage-collected (and at interpreter exit).
    """

    def __init__(self, policy: str, *, cgroup: str, sets: Mapping[str, str] | None = None,
                 kills: bool = False) -> None:
        self._services: dict[str, tuple[str, Callable[[], int], ShedCallback]] = {}
        self.subtree = open_subtree(cgroup)
        self.actor = LiveActor(load_policy(policy, sets), self.subtree, services=self._services, kills=kills)
        self._runner = _Runner(self.actor)
        self._finalizer = weakref.finalize(self, self._runner.shutdown)

    def register(self, name: str, *, sheddable: Callable[[], int], shed: ShedCallback,
                 cgroup: str | None = None) -> None:
        """Offer the policy a service that can give memory back.

        ``sheddable()`` returns how many bytes the service could free now (an int, or a finite float, >= 0); it
        is called at every sample (from the service's thread). If it raises or returns anything else, the
        service is left out of that sample (nothing is asked of it), the failure is logged (``logging``, once
        until it works again) and kept in ``actor.sample_errors``, and sampling goes on.

        ``shed(nbytes, level)`` is called with the bytes the policy asks for and the pressure level
        (``"medium"``, ``"critical"``, ...). It returns the bytes it freed, or None when it cannot tell (as
        ``dict.clear()`` returns None): both count as applied. An exception or any other return value is
        recorded as ``failed`` in ``actor.results``, with the reason.

        ``cgroup`` is the service's cgroup path (default: the monitored one). A name may be registered once.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError("name", name, "must be a non-empty string")
        if name in self._services:
            raise ConfigError("name", name, "is already registered")
        if not callable(sheddable):
            raise ConfigError("sheddable", sheddable, "must be a callable returning the bytes the service could free")
        if not callable(shed):
            raise ConfigError("shed", shed, "must be a callable shed(nbytes, level) returning the bytes freed or None")
        if cgroup is not None and not (isinstance(cgroup, str) and cgroup.startswith("/")):
            raise ConfigError("cgroup", cgroup, "must be a cgroup path starting with / (or None: the monitored one)")
        self.actor.add_service(name, cgroup or self.subtree.path, sheddable, shed)

    @property
    def running(self) -> bool:
        """The background thread is sampling."""
        return self._runner.thread is not None and self._runner.thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the background thread early (also logged), or None."""
        return self._runner.error

    def start(self) -> ShedService:
        """Start the background thread; a service that is already running is left as it is."""
        if not self.running:
            self._runner.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (waiting at most ``timeout`` s for it) and close the kernel registration."""
        self._runner.shutdown(timeout)

    def __enter__(self) -> ShedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
