"""The memory cgroup controller (cgroup v1 interface): hierarchical limits, charges, and pressure events.

Models mm/memcontrol.c (3.10 interface, modern internals) as far as memory pressure needs it:

* a tree of memcgs under the root; each has a hard limit (``memory.limit_in_bytes``; unlimited by default)
  and a hierarchical usage (``page_counter``: a charge counts in the memcg and every ancestor), ``failcnt``
  and the v2-style event counts ``max``, ``oom``, ``oom_kill``;
* processes belong to one memcg (``cgroup.procs``); the pages they fault are charged to it, and each memcg
  has its own lruvec lists (``sim/mm/lru.py``) — the per-cgroup LRU accounting reclaim scans;
* the charge path (:func:`charge`, driven by ``sim/mm/reclaim.py``): when a charge would exceed a limit on the
  path to the root, reclaim that memcg's subtree (``try_to_free_mem_cgroup_pages``), retry, and when the
  retries run out invoke the memcg OOM killer — with the retry loop, the OOM path and the exit of a dying task
  of the kernel version chosen (3.10 ``__mem_cgroup_try_charge``, 5.10 ``try_charge``, 6.18
  ``try_charge_memcg``; see ``sim/mm/version.py``);
* ``memory.pressure_level`` + ``cgroup.event_control``: writing ``"<event_fd> <pressure_level fd>
  <level[,mode]>"`` registers an eventfd listener (``vmpressure_register_event``); closing the eventfd
  removes it; ``struct vmpressure`` of each memcg is a
  :class:`~memsched.pressure.accounting.MainlineVmpressure`.

Deviations from the kernel: no memsw (memory+swap) limit, soft limits, ``memory.low``/``high`` or kmem
accounting; charges are not moved when a process changes memcg (v1's ``move_charge_at_immigrate`` = 0, the
default); only ``memory.pressure_level`` events can be registered.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError, KernelError, UnsupportedError
from memsched.fdobj import OwnedFd
from memsched.pressure.accounting import (
    Listener,
    MainlineVmpressure,
    parse_event_control,
    parse_pressure_level_args,
)
from memsched.pressure.index import MainlineVmpressureConfig
from memsched.sim.eventfd import SimEventfd
from memsched.sim.mm.lru import LruVecs
from memsched.sim.mm.version import MmBehaviour

__all__ = ["ROOT_MEMCG", "Charge", "ChargeOps", "Memcg", "MemcgTree", "PressureLevelFile", "charge"]

ROOT_MEMCG = 0
_UNLIMITED = 1 << 62


class PressureLevelFile(OwnedFd):
    """An open ``memory.pressure_level`` (a real descriptor on /dev/null: only its number matters)."""

    kind = "memory.pressure_level"

    def __init__(self, memcg: int) -> None:
        super().__init__(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        self.memcg = memcg


@dataclass(eq=False)
class Memcg:
    """One memory cgroup."""

    id: int
    path: str
    parent: int | None
    vmpr: MainlineVmpressure
    children: list[int] = field(default_factory=list)
    limit: int = _UNLIMITED
    failcnt: int = 0
    events: dict[str, int] = field(default_factory=lambda: {"max": 0, "oom": 0, "oom_kill": 0})
    #: Local (non-hierarchical) reclaim counters, v2 ``memory.stat`` names.
    stat: dict[str, int] = field(
        default_factory=lambda: {"pgscan": 0, "pgsteal": 0, "pgrefill": 0, "pgactivate": 0, "pgdeactivate": 0}
    )
    listeners: list[Listener[SimEventfd]] = field(default_factory=list)
    socket_pressure_until: int = 0
    socket_pressure_events: int = 0

    @property
    def limited(self) -> bool:
        return self.limit < _UNLIMITED


class MemcgTree:
    """Every memcg of the machine, the process -> memcg map, charges and event registration."""

    def __init__(self, lru: LruVecs, config: MainlineVmpressureConfig | None = None) -> None:
        self.lru = lru
        self.config = config or MainlineVmpressureConfig()
        root = Memcg(ROOT_MEMCG, "/", None, MainlineVmpressure(self.config, is_root=True))
        self.memcgs: list[Memcg] = [root]
        self.by_path: dict[str, int] = {"/": ROOT_MEMCG}
        self.usage = np.zeros(1, dtype=np.int64)
        self._anc = np.ones((1, 1), dtype=np.int64)  # _anc[a, m] = 1 if a is m or an ancestor of m
        self.of_tgid: dict[int, int] = {}
        #: Open eventfds and pressure_level files by descriptor number (the simulated fd table).
        self.fds: dict[int, SimEventfd | PressureLevelFile] = {}

    # ---- tree --------------------------------------------------------------------------------------------
    def mkdir(self, path: str) -> Memcg:
        """``mkdir /sys/fs/cgroup/memory/<path>``: a child of the memcg named by the path's dirname."""
        norm = "/" + path.strip("/")
        if norm in self.by_path:
            raise ConfigError("cgroup", path, "must not exist yet")
        parent_path = norm.rsplit("/", 1)[0] or "/"
        if parent_path not in self.by_path:
            raise ConfigError("cgroup", path, f"needs its parent {parent_path!r} to exist")
        pid = self.by_path[parent_path]
        mid = len(self.memcgs)
        m = Memcg(mid, norm, pid, MainlineVmpressure(self.config))
        self.memcgs.append(m)
        self.memcgs[pid].children.append(mid)
        self.by_path[norm] = mid
        self.usage = np.concatenate([self.usage, [0]])
        anc = np.zeros((mid + 1, mid + 1), dtype=np.int64)
        anc[:mid, :mid] = self._anc
        anc[:, mid] = anc[:, pid]
        anc[mid, mid] = 1
        self._anc = anc
        self.lru.grow_memcgs(mid + 1)
        return m

    def get(self, ref: int | str) -> Memcg:
        if isinstance(ref, str):
            norm = "/" + ref.strip("/") if ref.strip("/") else "/"
            if norm not in self.by_path:
                raise ConfigError(
                    "cgroup", ref, "must be an existing memory cgroup: " + ", ".join(self.by_path)
                )
            return self.memcgs[self.by_path[norm]]
        return self.memcgs[ref]

    def path_to_root(self, mid: int) -> list[int]:
        out = [mid]
        while (p := self.memcgs[out[-1]].parent) is not None:
            out.append(p)
        return out

    def subtree(self, mid: int) -> list[int]:
        """The memcg and its descendants, pre-order (``mem_cgroup_iter`` order)."""
        out, stack = [], [mid]
        while stack:
            m = stack.pop()
            out.append(m)
            stack.extend(reversed(self.memcgs[m].children))
        return out

    def set_limit(self, ref: int | str, limit_bytes: int | None, page_size: int) -> None:
        """``memory.limit_in_bytes`` (None: unlimited). The new limit applies to the next charge."""
        m = self.get(ref)
        if m.id == ROOT_MEMCG:
            raise ConfigError("memory.limit_in_bytes", limit_bytes, "cannot be set on the root memcg")
        if limit_bytes is None:
            m.limit = _UNLIMITED
            return
        if limit_bytes < page_size:
            raise ConfigError(
                "memory.limit_in_bytes", limit_bytes, f"must be at least one page ({page_size} B)"
            )
        m.limit = limit_bytes // page_size

    def attach(self, tgid: int, ref: int | str) -> None:
        """Write a pid to ``cgroup.procs``: the process's later faults charge that memcg."""
        self.of_tgid[tgid] = self.get(ref).id

    def memcg_of(self, tgid: int) -> int:
        return self.of_tgid.get(tgid, ROOT_MEMCG)

    # ---- charges -----------------------------------------------------------------------------------------
    def over_limit(self, mid: int, n: int) -> int | None:
        """``page_counter_try_charge``: the first memcg from ``mid`` up that cannot take ``n`` more pages."""
        for m in self.path_to_root(mid):
            if self.usage[m] + n > self.memcgs[m].limit:
                return m
        return None

    def charge(self, mid: int, n: int) -> None:
        self.usage += self._anc[:, mid] * n

    def uncharge(self, memcg_of_page: npt.NDArray[np.int64]) -> None:
        if memcg_of_page.size:
            counts = np.bincount(memcg_of_page, minlength=len(self.memcgs))
            self.usage -= self._anc @ counts

    def margin(self, mid: int) -> int:
        """Pages that can still be charged to ``mid`` before some limit on its path is hit."""
        return int(min(self.memcgs[m].limit - self.usage[m] for m in self.path_to_root(mid)))

    def add_stat(self, mid: int, name: str, n: int) -> None:
        if n:
            self.memcgs[mid].stat[name] += n

    def hierarchical_stat(self, mid: int) -> dict[str, int]:
        """v2 ``memory.stat`` counters of ``mid`` summed over its subtree."""
        out = dict.fromkeys(self.memcgs[mid].stat, 0)
        for m in self.subtree(mid):
            for k, v in self.memcgs[m].stat.items():
                out[k] += v
        return out

    # ---- memory.pressure_level and cgroup.event_control ---------------------------------------------------
    def eventfd(self, name: str = "eventfd") -> SimEventfd:
        """``eventfd(0, 0)`` in the simulated kernel (registered in the fd table)."""
        efd = SimEventfd(name)
        self.fds[efd.fileno()] = efd
        efd.on_close(self._drop_eventfd)
        return efd

    def open_pressure_level(self, ref: int | str) -> PressureLevelFile:
        """``open("<cgroup>/memory.pressure_level")``."""
        f = PressureLevelFile(self.get(ref).id)
        self.fds[f.fileno()] = f
        return f

    def write_event_control(self, ref: int | str, text: str) -> Listener[SimEventfd]:
        """``write("<cgroup>/cgroup.event_control", "<efd> <cfd> <level[,mode]>")``."""
        m = self.get(ref)
        efd_no, cfd_no, args = parse_event_control(text)
        efd = self.fds.get(efd_no)
        if not isinstance(efd, SimEventfd) or efd.closed:
            raise KernelError(errno.EBADF, f"cgroup.event_control: {efd_no} is not an open eventfd")
        cfile = self.fds.get(cfd_no)
        if cfile is None or cfile.closed:
            raise KernelError(errno.EBADF, f"cgroup.event_control: {cfd_no} is not an open file")
        if not isinstance(cfile, PressureLevelFile):
            raise UnsupportedError("cgroup.event_control", "only memory.pressure_level events are modelled")
        if cfile.memcg != m.id:
            raise KernelError(
                errno.EINVAL, "cgroup.event_control: the control file belongs to another cgroup"
            )
        level, mode = parse_pressure_level_args(args, modes=self.config.modes)
        ev = Listener(level, mode, efd)
        m.listeners.append(ev)
        return ev

    def _drop_eventfd(self, efd: SimEventfd) -> None:
        for m in self.memcgs:
            m.listeners = [ev for ev in m.listeners if ev.target is not efd]
        self.fds = {k: v for k, v in self.fds.items() if v is not efd}

    def listeners_path(self, mid: int) -> list[list[Listener[SimEventfd]]]:
        return [self.memcgs[m].listeners for m in self.path_to_root(mid)]


# ---- the charge path ------------------------------------------------------------------------------------------

#: ``PAGE_ALLOC_COSTLY_ORDER``: charges of at most 1 << 3 pages retry as long as reclaim makes progress.
_COSTLY_PAGES = 8
#: ``MEM_CGROUP_MAX_RECLAIM_LOOPS`` of 3.10's ``mem_cgroup_reclaim()``.
_MAX_RECLAIM_LOOPS = 100


class ChargeOps(Protocol):
    """What the charge path asks of the rest of the memory manager (implemented by ``Reclaim``)."""

    def reclaim(self, memcg: int, nr_pages: int, at_ns: float) -> tuple[int, float]:
        """``try_to_free_mem_cgroup_pages(memcg, nr_pages)``, ``at_ns`` into the charging task's stall:
        (pages reclaimed, ns it took)."""

    def oom(self, memcg: int, at_ns: float) -> str:
        """``mem_cgroup_out_of_memory()``: ``"current"`` (the charging task was chosen: it is dying, and
        exits when the charge returns), ``"other"`` (another process was killed) or ``"none"``."""


@dataclass
class Charge:
    """What a charge came to: charged (maybe forced over the limit), the stall, whether the task is dying."""

    ok: bool
    stall_ns: float = 0.0
    dying: bool = False
    reclaims: int = 0


def charge(
    tree: MemcgTree, mid: int, nr_pages: int, unit: int, b: MmBehaviour, ops: ChargeOps, *, at_ns: float = 0.0
) -> Charge:
    """Charge ``nr_pages`` to ``mid`` as the kernel charges them: ``unit`` pages per ``try_charge_memcg()``
    (1 for anonymous faults, a folio for the page cache). Pages that fit are charged at once; each unit beyond
    the margin goes through the version's retry loop, so reclaim runs in rounds of
    ``max(unit, SWAP_CLUSTER_MAX)`` pages. On failure — or when the OOM killer chose the charging task, which
    exits as soon as the fault returns — nothing stays charged."""
    out = Charge(ok=True, stall_ns=0.0)
    done = 0
    while done < nr_pages:
        fit = max(0, min(tree.margin(mid), nr_pages - done))
        if fit:
            tree.charge(mid, fit)
            done += fit
            continue
        step = min(unit, nr_pages - done)
        loop = {"3.10": _charge_3_10, "5.10": _charge_5_10}.get(b.charge_loop, _charge_6_18)
        r = loop(tree, mid, step, b, ops, at_ns + out.stall_ns, out.dying)
        out.stall_ns += r.stall_ns
        out.reclaims += r.reclaims
        out.dying = out.dying or r.dying
        if r.ok:
            done += step
        if not r.ok or out.dying:  # failed, or forced through for a task that exits right after the fault
            out.ok = False
            if done:
                tree.charge(mid, -done)
            return out
    return out


def _over(tree: MemcgTree, mid: int, n: int) -> int | None:
    over = tree.over_limit(mid, n)
    if over is not None:
        m = tree.memcgs[over]
        m.failcnt += 1
        m.events["max"] += 1
    return over


def _charge_6_18(
    tree: MemcgTree, mid: int, n: int, b: MmBehaviour, ops: ChargeOps, at: float, dying: bool
) -> Charge:
    """``try_charge_memcg()`` (5.16+): reclaim, drain, retry on progress, ``MAX_RECLAIM_RETRIES`` fruitless
    rounds, then the OOM killer; a kill resets the retries (``passed_oom``); a dying task fails only when they
    run out again."""
    out = Charge(ok=False)
    retries, passed_oom, drained = b.memcg_retries, False, False
    while True:
        over = _over(tree, mid, n)
        if over is None:
            tree.charge(mid, n)
            out.ok = True
            return out
        reclaimed, ns = ops.reclaim(over, n, at + out.stall_ns)
        out.stall_ns += ns
        out.reclaims += 1
        if tree.over_limit(mid, n) is None:
            continue
        if not drained:  # drain_all_stock()
            drained = True
            continue
        if reclaimed and n <= _COSTLY_PAGES:
            continue
        if retries > 0:
            retries -= 1
            continue
        if passed_oom and (dying or out.dying):
            return out  # -ENOMEM: the dying task leaves the fault and exits
        killed = ops.oom(over, at + out.stall_ns)
        if killed == "none":
            return out
        passed_oom = True
        retries = b.memcg_retries
        out.dying = out.dying or killed == "current"


def _charge_5_10(
    tree: MemcgTree, mid: int, n: int, b: MmBehaviour, ops: ChargeOps, at: float, dying: bool
) -> Charge:
    """``try_charge()`` (5.9-5.15): as 6.18 up to the OOM kill, but a dying task's charge is forced through
    (``should_force_charge()``), and so is one the OOM killer could not help (``OOM_FAILED``)."""
    out = Charge(ok=False)
    retries, drained = b.memcg_retries, False
    while True:
        over = _over(tree, mid, n)
        if over is None:
            tree.charge(mid, n)
            out.ok = True
            return out
        if dying or out.dying:  # should_force_charge(): over the limit, so that the task can exit
            tree.charge(mid, n)
            out.ok = True
            return out
        reclaimed, ns = ops.reclaim(over, n, at + out.stall_ns)
        out.stall_ns += ns
        out.reclaims += 1
        if tree.over_limit(mid, n) is None:
            continue
        if not drained:
            drained = True
            continue
        if reclaimed and n <= _COSTLY_PAGES:
            continue
        if retries > 0:
            retries -= 1
            continue
        killed = ops.oom(over, at + out.stall_ns)
        if killed == "none":
            tree.charge(mid, n)  # OOM_FAILED: force
            out.ok = True
            return out
        retries = b.memcg_retries
        out.dying = out.dying or killed == "current"


def _charge_3_10(
    tree: MemcgTree, mid: int, n: int, b: MmBehaviour, ops: ChargeOps, at: float, dying: bool
) -> Charge:
    """``__mem_cgroup_try_charge()`` (3.10): ``mem_cgroup_do_charge()`` reclaims through
    ``mem_cgroup_reclaim()`` (a second call when the first freed nothing); ``MEM_CGROUP_RECLAIM_RETRIES``
    fruitless attempts, then one with ``oom_check`` that invokes ``mem_cgroup_handle_oom()``; a dying task
    bypasses the limit."""
    out = Charge(ok=False)
    oom_retries = b.memcg_retries
    while True:
        if dying or out.dying:  # TIF_MEMDIE / fatal_signal_pending(): bypass (charged to the root)
            tree.charge(mid, n)
            out.ok = True
            return out
        oom_check = oom_retries == 0
        if oom_check:
            oom_retries = b.memcg_retries
        over = _over(tree, mid, n)
        if over is None:
            tree.charge(mid, n)
            out.ok = True
            return out
        total = 0
        for loop in range(_MAX_RECLAIM_LOOPS):
            reclaimed, ns = ops.reclaim(over, n, at + out.stall_ns)
            out.stall_ns += ns
            out.reclaims += 1
            total += reclaimed
            if tree.margin(over) > 0 or (loop and not total):
                break
        if tree.over_limit(mid, n) is None or (n == 1 and total):
            continue  # CHARGE_RETRY
        if not oom_check:
            oom_retries -= 1  # CHARGE_NOMEM
            continue
        killed = ops.oom(over, at + out.stall_ns)
        if killed == "none":
            return out
        out.dying = out.dying or killed == "current"  # CHARGE_OOM_DIE -> bypass; else CHARGE_RETRY
