"""Action policies on the running kernel: ``memsched pressure act`` and the shed-callback API.

``LiveActor`` (``actor.py``) runs any registered action policy (``memsched.policies.act``) against one cgroup
subtree (``subtree.py``) with views built from the kernel's files (``view.py``). :class:`ShedService` lets a
Python service register a callback that the same policies call with ``Shed`` actions::

    svc = ShedService("vmpressure-shed", cgroup="/myservice")
    svc.register("cache", sheddable=lambda: cache.size, shed=lambda nbytes, level: cache.drop(nbytes))
    svc.start()      # a background thread; svc.stop() ends it
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from memsched.live.act.actor import LiveActor, ShedCallback
from memsched.live.act.subtree import Protect, Subtree, open_subtree
from memsched.policies.act.conformance import load_policy

__all__ = ["LiveActor", "Protect", "ShedCallback", "ShedService", "Subtree", "open_subtree"]


class ShedService:
    """Run ``policy`` on ``cgroup`` in a background thread, calling registered shed callbacks.

    With ``kills=True`` the policy may also kill inside the subtree under the CLI's safety rules; by default
    kill actions are refused (``skipped``) and only ``Shed`` actions are carried out.
    """

    def __init__(self, policy: str, *, cgroup: str, sets: Mapping[str, str] | None = None,
                 kills: bool = False) -> None:
        self._services: dict[str, tuple[str, Callable[[], int], ShedCallback]] = {}
        self.subtree = open_subtree(cgroup)
        self.actor = LiveActor(load_policy(policy, sets), self.subtree, services=self._services, kills=kills)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, name: str, *, sheddable: Callable[[], int], shed: ShedCallback,
                 cgroup: str | None = None) -> None:
        self._services[name] = (cgroup or self.subtree.path, sheddable, shed)

    def start(self) -> ShedService:
        self._thread = threading.Thread(target=self.actor.run, kwargs={"stop": self._stop}, daemon=True,
                                        name="memsched-act")
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.actor.close()

    def __enter__(self) -> ShedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
