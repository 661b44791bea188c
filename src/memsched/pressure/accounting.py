"""Window accounting and event delivery of both flavours, as pure state machines over reclaim samples.

A reclaimer (the simulated ``vmscan`` now, a ``pgscan``/``pgsteal`` delta monitor in the live backend) calls
``vmpressure(...)`` after each shrink with the pages it scanned and reclaimed, and ``vmpressure_prio(...)``
on each priority step of direct reclaim. When a window fills, the accumulator asks its caller to schedule
the *work item* (the kernel's ``schedule_work()``; the caller decides when it runs, which is why the window
is a minimum, not an exact size); the caller later runs :meth:`work_fn`, which snapshots and zeroes the
counters and computes **one** level for the snapshot.

``RfcVmpressure`` — the RFC's global state (RFC 1/3, mm/vmpressure.c of the proposal)
    One system-wide ``atomic64_t vmpressure_sr`` holding ``scanned << 32 | reclaimed`` (per-CPU counters were
    rejected on purpose: many CPUs each scanning a little would never fill a window), ``schedule_work()``
    only ``if (!work_pending(...))``, and ``vmpressure_val`` — the last computed level, which is what every
    read returns. Reclaim on behalf of a memcg is ignored (``if (IS_BUILTIN(CONFIG_MEMCG) && memcg)
    return;``, marked "to be implemented").

``MainlineVmpressure`` — ``struct vmpressure`` of one memcg (mm/vmpressure.c, 4.5+ ``tree`` split)
    ``tree=True`` (user-visible): add to ``tree_scanned``/``tree_reclaimed``; at ``>= vmpressure_win``
    schedule the work. ``tree=False``: per-memcg counters, level computed synchronously when a window fills,
    used only for ``memcg->socket_pressure`` (1 s network back-off), never for user space; nothing for root.
    ``vmpressure_prio()``: at or below the critical priority, a forced window ``(win, 0)`` on the tree path.

Delivery: :func:`propagate` walks from the pressured memcg to the root with the kernel's mode rules (and the
3.10 rule: stop at the first memcg that signalled). :func:`parse_pressure_level_args` and
:func:`parse_event_control` parse what user space writes, byte-compatible with the kernel.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from memsched.errors import KernelError
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.uapi.pressure import MAX_VMPRESSURE_ARGS_LEN, MemcgLevel, MemcgMode, VmpressureLevel

__all__ = [
    "Listener",
    "MainlineVmpressure",
    "RfcVmpressure",
    "WindowSample",
    "parse_event_control",
    "parse_pressure_level_args",
    "propagate",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WindowSample:
    """One computed window: the snapshot the work function took, its index and its level."""

    scanned: int
    reclaimed: int
    index: int
    level: int  # VmpressureLevel (rfc2012) or MemcgLevel (mainline)


class RfcVmpressure:
    """The RFC's system-wide accounting: ``vmpressure_sr``, the work item and ``vmpressure_val``."""

    def __init__(self, config: Rfc2012VmpressureConfig | None = None) -> None:
        self.config = config or Rfc2012VmpressureConfig()
        self.scanned = 0
        self.reclaimed = 0
        self.work_pending = False
        #: ``vmpressure_val``: 0 until the first window is computed, then the last level.
        self.val = 0

    def vmpressure(self, scanned: int, reclaimed: int, *, memcg_reclaim: bool = False) -> bool:
        """The inline ``vmpressure()`` + ``__vmpressure()``; True when the caller must schedule the work."""
        if not scanned:
            return False
        if (
            memcg_reclaim
        ):  # "for per-cgroup pressure, we'll chain cgroups notifications, this is to be implemented"
            return False
        self.scanned += scanned
        self.reclaimed += reclaimed
        if self.scanned >= self.config.vmevent_window and not self.work_pending:
            self.work_pending = True
            return True
        return False

    def vmpressure_prio(self, priority: int, *, memcg_reclaim: bool = False) -> bool:
        """``vmpressure_prio()``: at or below ``vmevent_level_oom_priority``, a full window, nothing freed."""
        if not self.config.prio_forces_top_level(priority):
            return False
        return self.vmpressure(self.config.vmevent_window, 0, memcg_reclaim=memcg_reclaim)

    def work_fn(self) -> WindowSample:
        """``vmpressure_wk_fn()``: ``atomic64_xchg(&vmpressure_sr, 0)``, compute, store ``vmpressure_val``."""
        self.work_pending = False
        s, r = self.scanned, self.reclaimed
        self.scanned = self.reclaimed = 0
        index = self.config.index(s, r)
        level = self.config.level(index)
        self.val = int(level)
        return WindowSample(s, r, index, int(level))


@dataclass(slots=True)
class MainlineVmpressure:
    """``struct vmpressure`` of one memcg."""

    config: MainlineVmpressureConfig = field(default_factory=MainlineVmpressureConfig)
    is_root: bool = False
    tree_scanned: int = 0
    tree_reclaimed: int = 0
    scanned: int = 0
    reclaimed: int = 0
    work_pending: bool = False

    def vmpressure(
        self, scanned: int, reclaimed: int, *, tree: bool, gfp_counts: bool = True
    ) -> bool | MemcgLevel:
        """``vmpressure(gfp, memcg, tree, scanned, reclaimed)``.

        Tree path: returns True when the caller must ``schedule_work()`` (False if the work is already
        pending: the running work will see the counts). Non-tree path: returns the level when a window was
        completed (for socket pressure), else False. ``gfp_counts`` is the ``__GFP_HIGHMEM | __GFP_MOVABLE |
        __GFP_IO | __GFP_FS`` test (kswapd's GFP_KERNEL counts).
        """
        if not gfp_counts or not scanned:
            return False
        if tree:
            self.tree_scanned += scanned
            self.tree_reclaimed += reclaimed
            if self.tree_scanned < self.config.vmpressure_win:
                return False
            if self.work_pending:
                return False
            self.work_pending = True
            return True
        if self.is_root:  # "For now, no users for root-level efficiency"
            return False
        self.scanned += scanned
        self.reclaimed += reclaimed
        if self.scanned < self.config.vmpressure_win:
            return False
        s, r = self.scanned, self.reclaimed
        self.scanned = self.reclaimed = 0
        return self.config.level(self.config.index(s, r))

    def vmpressure_prio(self, priority: int, *, gfp_counts: bool = True) -> bool:
        """``vmpressure_prio()``: a forced critical window on the tree path at or below the critical prio."""
        if not self.config.prio_forces_top_level(priority):
            return False
        return bool(self.vmpressure(self.config.vmpressure_win, 0, tree=True, gfp_counts=gfp_counts))

    def work_fn(self) -> WindowSample | None:
        """``vmpressure_work_fn()``: snapshot and zero the tree counters, one level for the snapshot.

        Returns None when ``tree_scanned`` is 0 (the work was re-queued before the previous run cleared the
        counters)."""
        self.work_pending = False
        s = self.tree_scanned
        if not s:
            return None
        r = self.tree_reclaimed
        self.tree_scanned = self.tree_reclaimed = 0
        index = self.config.index(s, r)
        return WindowSample(s, r, index, int(self.config.level(index)))


@dataclass(frozen=True, slots=True)
class Listener(Generic[T]):
    """A registered ``memory.pressure_level`` event: its level, mode and the thing to signal (an eventfd)."""

    level: MemcgLevel
    mode: MemcgMode
    target: T


def propagate(
    level: MemcgLevel, path: Sequence[Sequence[Listener[T]]], *, modes: bool = True
) -> list[Listener[T]]:
    """The listeners that ``vmpressure_work_fn()`` signals for one event.

    ``path[0]`` holds the listeners of the memcg under pressure, ``path[i]`` those of its i-th ancestor, up to
    the root. Modern rules (``vmpressure_event()``): skip LOCAL listeners of ancestors; skip DEFAULT listeners
    once some listener lower on the path fired; skip listeners whose level is above the event's. A memcg at
    which any listener fired sets ``signalled`` for the memcgs above it. 3.10 (``modes=False``): every
    listener of the first memcg with a listener at or below the level fires, and the walk stops there.
    """
    fired: list[Listener[T]] = []
    if not modes:
        for listeners in path:
            hit = [ev for ev in listeners if level >= ev.level]
            if hit:
                fired += hit
                break
        return fired
    ancestor = signalled = False
    for listeners in path:
        ret = False
        for ev in listeners:
            if ancestor and ev.mode is MemcgMode.LOCAL:
                continue
            if signalled and ev.mode is MemcgMode.DEFAULT:
                continue
            if level < ev.level:
                continue
            fired.append(ev)
            ret = True
        if ret:
            signalled = True
        ancestor = True
    return fired


def parse_pressure_level_args(args: str, *, modes: bool = True) -> tuple[MemcgLevel, MemcgMode]:
    """``vmpressure_register_event()``'s parsing of ``"<level>[,<mode>]"``; unknown strings are ``EINVAL``.

    Modern: ``kstrndup(args, MAX_VMPRESSURE_ARGS_LEN)``, ``strsep(",")`` twice, ``match_string()`` each token
    (anything after a second comma is ignored). 3.10 (``modes=False``): ``strcmp`` of the whole string
    against the level names.
    """
    if not modes:
        for level in MemcgLevel:
            if args == level.text:
                return level, MemcgMode.DEFAULT
        raise KernelError(
            errno.EINVAL, f"memory.pressure_level: unknown level {args!r} (low, medium, critical)"
        )
    spec = args[:MAX_VMPRESSURE_ARGS_LEN]
    token, comma, rest = spec.partition(",")
    try:
        level = MemcgLevel.parse(token)
    except ValueError:
        raise KernelError(
            errno.EINVAL, f"memory.pressure_level: unknown level {token!r} (low, medium, critical)"
        ) from None
    mode = MemcgMode.DEFAULT
    if comma:
        token = rest.partition(",")[0]
        try:
            mode = MemcgMode.parse(token)
        except ValueError:
            raise KernelError(
                errno.EINVAL, f"memory.pressure_level: unknown mode {token!r} (default, hierarchy, local)"
            ) from None
    return level, mode


def _strtoul(text: str) -> tuple[int, str]:
    """``simple_strtoul(buf, &endp, 10)``: leading digits (none -> 0), and the rest."""
    i = 0
    while i < len(text) and text[i].isdigit():
        i += 1
    return (int(text[:i]) if i else 0), text[i:]


def parse_event_control(text: str) -> tuple[int, int, str]:
    """``memcg_write_event_control()``: ``"<event_fd> <control fd> <args>"`` -> ``(efd, cfd, args)``.

    The kernel strips surrounding blanks (``strstrip``), reads two decimal numbers each followed by a space
    (the second may end the string), and hands the rest to the control file's ``register_event``.
    """
    buf = text.strip()
    efd, rest = _strtoul(buf)
    if not rest.startswith(" "):
        raise KernelError(
            errno.EINVAL, f"cgroup.event_control: {text!r} must be '<event_fd> <control_fd> <args>'"
        )
    cfd, rest = _strtoul(rest[1:])
    if rest and not rest.startswith(" "):
        raise KernelError(
            errno.EINVAL, f"cgroup.event_control: {text!r} must be '<event_fd> <control_fd> <args>'"
        )
    return efd, cfd, rest[1:]


def rfc_level_name(level: int) -> str:
    """``"low"``/``"medium"``/``"oom"`` for an RFC level value (reports)."""
    return VmpressureLevel(level).name.lower()
