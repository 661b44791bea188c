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
        finally:
            # The thread closes the registration it used: after a stop() that timed out, the actor is closed when
            # the last sample ends, not under it.
            self.actor.close()

    def start(self) -> None:
        self.stop_event.clear()
        self.error = None
        self.actor.reopen()
        self.thread = threading.Thread(target=self.run, daemon=True, name="memsched-act")
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def shutdown(self, timeout: float = _FINALIZE_JOIN_S) -> bool:
        """Ask the thread to stop and wait at most ``timeout`` s; whether it has ended (then the actor is closed)."""
        self.stop_event.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        if self.alive():
            return False  # still inside a sample; it closes the actor itself when it ends
        self.actor.close()
        return True


class ShedService:
    """Run ``policy`` on ``cgroup`` in a background thread, calling registered shed callbacks.

    With ``kills=True`` the policy may also kill inside the subtree under the CLI's safety rules; by default
    kill actions are refused (``skipped``) and only ``Shed`` actions are carried out. Every action's result is in
    ``actor.results``; a failing ``sheddable()`` in ``actor.sample_errors`` (see :meth:`register`).

    ``start()`` (or ``with svc:``) starts the thread, ``stop()`` (or the end of the ``with`` block) ends it and
    closes the kernel registration; a stopped service can be started again. A running service that is dropped
    without ``stop()`` is stopped when it is garbage-collected (and at interpreter exit).

    The thread stops between samples: a ``stop(timeout)`` that runs out while a callback is still running returns
    False (and logs a warning), and ``start()`` raises :class:`RuntimeError` until that thread has ended.
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
        """The background thread is alive (sampling, or finishing its last sample after a ``stop()``)."""
        return self._runner.alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the background thread early (also logged), or None."""
        return self._runner.error

    def start(self) -> ShedService:
        """Start the background thread; a service that is already running is left as it is.

        After a ``stop()`` that returned False the old thread is still finishing a sample: this raises
        :class:`RuntimeError` (call ``stop()`` again, which waits, then ``start()``) rather than returning with
        a service that is about to end.
        """
        if self.running:
            if self._runner.stop_event.is_set():
                raise RuntimeError(
                    f"ShedService({self.actor.policy.id}): cannot start: the thread asked to stop has not ended "
                    "(stop() returned False; call stop() again to wait for it)"
                )
            return self
        self._runner.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread and close the kernel registration, waiting at most ``timeout`` s for the thread.

        True when the thread has ended (or was not running); False when it is still inside a sample (a slow
        ``sheddable()`` or ``shed()``) after ``timeout``: it ends, and closes the registration, when that sample
        is done; until then ``running`` is True and ``start()`` raises. A False is also logged as a warning.
        """
        if self._runner.shutdown(timeout):
            return True
        log.warning(
            "ShedService(%s): the thread did not stop within %g s (a callback is still running); it ends after "
            "its current sample",
            self.actor.policy.id,
            timeout,
        )
        return False

    def __enter__(self) -> ShedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
