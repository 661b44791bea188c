"""Which backend serves a request: by name, or ``auto`` in a fixed order of preference, with the reasons.

``auto`` tries, in order, and takes the first that is available **and** opens:

1. ``psi`` — only when ``$MEMORY_PRESSURE_WATCH`` is set and no cgroup was named: the service manager said
   what to watch (systemd's protocol), so that wins;
2. ``memcg-v1`` — the kernel's own vmpressure levels, exactly the 2012 semantics (needs the v1 memory
   controller and a writable ``cgroup.event_control``: root or a delegated cgroup);
3. ``daemon`` — a running ``memsched pressure serve`` (no cgroup named): the unprivileged route to the
   privileged registrations;
4. ``psi`` — PSI triggers (stall time, not reclaim efficiency; unprivileged with 2 s windows on 6.5+);
5. ``reclaim-index`` — the user-space emulation over ``/proc/vmstat``, available almost everywhere but polling.

``fifo`` is never chosen automatically (it carries only what someone writes), nor is ``dbus`` (the owner of
``org.freedesktop.LowMemoryMonitor`` may be memsched's own D-Bus service, fed by this very choice). Every
backend not used gets a one-line reason, so ``memsched pressure watch`` can say why it is on, say, PSI and
not memcg v1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memsched.errors import ConfigError, KernelError, UnknownNameError, UnsupportedError
from memsched.live.capabilities import Capability
from memsched.live.cgroups import check_cgroup_inside
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.daemon_client import check as daemon_check
from memsched.live.pressure.daemon_client import open_source as daemon_open
from memsched.live.pressure.dbus_client import check as dbus_check
from memsched.live.pressure.dbus_client import open_source as dbus_open
from memsched.live.pressure.fifo import check as fifo_check
from memsched.live.pressure.fifo import open_source as fifo_open
from memsched.live.pressure.memcg_v1 import check as memcg_v1_check
from memsched.live.pressure.memcg_v1 import open_source as memcg_v1_open
from memsched.live.pressure.psi import check as psi_check
from memsched.live.pressure.psi import open_source as psi_open
from memsched.live.pressure.reclaim_index import check as reclaim_index_check
from memsched.live.pressure.reclaim_index import open_source as reclaim_index_open
from memsched.live.pressure.source import PressureSource

__all__ = ["AUTO_ORDER", "BACKENDS", "BackendChoice", "check_backend", "open_backend"]

#: Backend ids, as ``--backend`` takes them.
BACKENDS = ("psi", "memcg-v1", "reclaim-index", "fifo", "daemon", "dbus")
#: The order ``auto`` tries (after a systemd ``$MEMORY_PRESSURE_WATCH``, which puts ``psi`` first).
AUTO_ORDER = ("memcg-v1", "daemon", "psi", "reclaim-index")

_CHECK: dict[str, Callable[[BackendContext], Capability]] = {
    "psi": psi_check,
    "memcg-v1": memcg_v1_check,
    "reclaim-index": reclaim_index_check,
    "fifo": fifo_check,
    "daemon": daemon_check,
    "dbus": dbus_check,
}
_OPEN: dict[str, Callable[[BackendContext], PressureSource]] = {
    "psi": psi_open,
    "memcg-v1": memcg_v1_open,
    "reclaim-index": reclaim_index_open,
    "fifo": fifo_open,
    "daemon": daemon_open,
    "dbus": dbus_open,
}


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """The backend in use and why, and for every other backend why it is not the one in use."""

    name: str
    reason: str
    others: tuple[tuple[str, str], ...]

    def explain(self) -> str:
        lines = [f"backend {self.name}: {self.reason}"]
        lines += [f"  not {name}: {why}" for name, why in self.others]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.name, "reason": self.reason, "others": dict(self.others)}


def check_backend(name: str, ctx: BackendContext) -> Capability:
    if name not in _CHECK:
        raise UnknownNameError("backend", name, ("auto", *BACKENDS))
    return _CHECK[name](ctx)


def _order(ctx: BackendContext) -> tuple[str, ...]:
    if ctx.cgroup is None and ctx.environ.get("MEMORY_PRESSURE_WATCH"):
        return ("psi", *(b for b in AUTO_ORDER if b != "psi"))
    return AUTO_ORDER


def open_backend(name: str, ctx: BackendContext) -> tuple[PressureSource, BackendChoice]:
    """Open the named backend (or the ``auto`` choice); :class:`UnsupportedError` says why none could. A
    cgroup outside the mounted hierarchies is :class:`ConfigError` first, whichever backend would look."""
    if name != "auto" and name not in _OPEN:
        raise UnknownNameError("backend", name, ("auto", *BACKENDS))
    if ctx.cgroup is not None:
        check_cgroup_inside(ctx.cgroup, ctx.mounts)
    if name != "auto":
        cap = check_backend(name, ctx)
        if not cap.available:
            raise UnsupportedError(f"the {name} backend", cap.reason)
        source = _OPEN[name](ctx)
        others = []
        for other in BACKENDS:
            if other != name:
                oc = check_backend(other, ctx)
                others.append((other, "not requested (it is available)" if oc.available else oc.reason))
        return source, BackendChoice(name, cap.reason, tuple(others))
    tried: list[tuple[str, str]] = []
    order = _order(ctx)
    for i, candidate in enumerate(order):
        cap = check_backend(candidate, ctx)
        if not cap.available:
            tried.append((candidate, cap.reason))
            continue
        try:
            source = _OPEN[candidate](ctx)
        except (KernelError, UnsupportedError, ConfigError) as e:
            tried.append((candidate, f"available but failed to open: {e}"))
            continue
        for later in order[i + 1 :]:
            lc = check_backend(later, ctx)
            tried.append((later, f"lower priority than {candidate}" if lc.available else lc.reason))
        tried.append(("fifo", "never chosen automatically (use --backend fifo with fifo_path)"))
        tried.append(("dbus", "never chosen automatically (use --backend dbus)"))
        return source, BackendChoice(candidate, cap.reason, tuple(tried))
    raise UnsupportedError("memory-pressure notification", "; ".join(f"{n}: {why}" for n, why in tried))
