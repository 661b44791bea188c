"""The ``reclaim-index`` backend: the 2012 algorithm in user space, over the kernel's reclaim counters.

The RFC computed its index inside reclaim from each shrink's ``(scanned, reclaimed)``. User space sees the
same quantities only as cumulative counters, so this monitor samples them every ``reclaim_interval_ms``
(10 ms by default), feeds the deltas to the **shared pure-layer accounting** (:class:`~memsched.pressure.
RfcVmpressure`, the ``rfc2012`` flavour: window 256 pages, MEDIUM at 60, OOM at 99; or ``mainline``), and
reports a level each time a window completes.

Counters (mm/vmscan.c ``shrink_inactive_list()``, mm/vmstat.c, mm/memcontrol.c, 6.18):

* **system-wide** (``/proc/vmstat``): ``S = pgscan_anon + pgscan_file - pgscan_proactive``, same for
  ``pgsteal``. ``pgscan_{anon,file}`` count every reclaimer; ``pgscan_{kswapd,direct,khugepaged}`` are only
  counted ``if (!cgroup_reclaim(sc))`` and miss memcg-limit reclaim entirely (observed on 6.18), so they are
  not used. Proactive reclaim (``memory.reclaim``) is excluded as mainline excludes it from vmpressure; the
  global ``*_proactive`` counters only see root-level proactive reclaim, a known gap.
* **a cgroup v2 with the memory controller** (``memory.stat``, hierarchical like the kernel's ``tree``
  accounting): ``S = pgscan_kswapd + pgscan_direct + pgscan_khugepaged`` (every source except proactive), or
  ``pgscan - pgscan_proactive`` on kernels without the split.
* **a cgroup v1 memcg**: v1 ``memory.stat`` has no scan counters, so ``S``/``R`` come from ``/proc/vmstat``
  (system-wide) and only the OOM evidence below is the cgroup's own.

OOM: the RFC's third input, the reclaim priority (``vmpressure_prio()``: priority <= 4 forces a window of
nothing reclaimed), is invisible from user space. A sample is taken as the equivalent evidence, and fed as
``vmpressure_prio(0)`` (a forced window), when any of these rose since the previous sample:

* an OOM kill: ``oom_kill`` (``/proc/vmstat``), ``oom``/``oom_kill`` (v2 ``memory.events``), ``oom_kill``
  (v1 ``memory.oom_control``, 4.13+);
* ``pgscan_direct_throttle`` (direct reclaimers throttled: system-wide only);
* allocation stalls **while nothing was scanned** — reclaim ran and found nothing to scan, which is what
  drives the priority to 0: ``allocstall_*`` (global direct reclaim), v2 ``memory.events`` ``max``, v1
  ``memory.failcnt`` (a charge hit the limit). This is how an anonymous load without swap is seen: the
  kernel reports only priority-driven critical events and the scan counters do not move (observed on 6.18
  in a 64 MiB memcg v1 without swap: every level fired, then an OOM kill, with no pgscan/pgsteal delta).

Deviations (an emulation, not a reproduction): polling merges the windows of one interval into one index,
so short bursts are averaged out at long intervals; ``pgsteal`` of a shrink can land in the sample after
its ``pgscan``, so reclaimed pages in excess of scanned ones are carried to the next sample instead of
wrapping the RFC's ``u32`` arithmetic to OOM; memcg-limit reclaim *is* counted although the RFC ignored it
(its "to be implemented"); GFP-filtered and MGLRU tree-less reclaim cannot be told apart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import KernelError
from memsched.kfile import open_kernel_file, pread_kernel_file
from memsched.live.capabilities import Capability
from memsched.live.cgroups import resolve_cgroup_dir
from memsched.live.pressure.context import BackendContext
from memsched.live.pressure.source import PressureRecord, PressureSource
from memsched.live.procfs import parse_flat_keyed, parse_int
from memsched.live.roots import LiveRoots
from memsched.pressure.accounting import MainlineVmpressure, RfcVmpressure, WindowSample
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.uapi.pressure import MemcgLevel, VmpressureLevel, memcg_to_rfc_level

__all__ = [
    "VMSTAT_KEYS",
    "CounterSample",
    "DeltaTracker",
    "ReclaimIndexSource",
    "SampleDelta",
    "check",
    "memory_stat_sample",
    "open_source",
    "vmstat_sample",
]

#: The ``/proc/vmstat`` counters the index and the OOM evidence use (looked up by name at every sample).
VMSTAT_KEYS = (
    "pgscan_anon",
    "pgscan_file",
    "pgsteal_anon",
    "pgsteal_file",
    "pgscan_proactive",
    "pgsteal_proactive",
    "pgscan_direct_throttle",
    "oom_kill",
    "allocstall_dma",
    "allocstall_dma32",
    "allocstall_normal",
    "allocstall_movable",
    "allocstall_device",
)


@dataclass(frozen=True, slots=True)
class CounterSample:
    """Cumulative counters at one instant: pages scanned and reclaimed (proactive excluded), allocation
    stalls, OOM events and direct-reclaim throttling, each from the source that applies."""

    scanned: int
    reclaimed: int
    stalls: int = 0
    ooms: int = 0
    throttled: int = 0


def _need(values: Mapping[str, int], keys: Sequence[str], source: str) -> None:
    missing = [k for k in keys if k not in values]
    if missing:
        raise KernelError(errno.ENOENT, f"{source} lacks {', '.join(missing)}")


def vmstat_sample(values: Mapping[str, int], *, source: str = "/proc/vmstat") -> CounterSample:
    """System-wide counters from ``/proc/vmstat`` values."""
    _need(values, ("pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file", "oom_kill"), source)
    scanned = values["pgscan_anon"] + values["pgscan_file"] - values.get("pgscan_proactive", 0)  # 6.x+
    reclaimed = values["pgsteal_anon"] + values["pgsteal_file"] - values.get("pgsteal_proactive", 0)
    stalls = sum(v for k, v in values.items() if k.startswith("allocstall_"))
    return CounterSample(scanned, reclaimed, stalls, values["oom_kill"], values.get("pgscan_direct_throttle", 0))


def memory_stat_sample(stat: Mapping[str, int], events: Mapping[str, int], *, source: str) -> CounterSample:
    """A cgroup v2's counters from ``memory.stat`` and ``memory.events``."""
    if "pgscan_kswapd" in stat:  # the split (5.x+); khugepaged appeared later
        _need(stat, ("pgscan_direct", "pgsteal_kswapd", "pgsteal_direct"), source)
        scanned = stat["pgscan_kswapd"] + stat["pgscan_direct"] + stat.get("pgscan_khugepaged", 0)
        reclaimed = stat["pgsteal_kswapd"] + stat["pgsteal_direct"] + stat.get("pgsteal_khugepaged", 0)
    else:
        _need(stat, ("pgscan", "pgsteal"), source)
        scanned = stat["pgscan"] - stat.get("pgscan_proactive", 0)
        reclaimed = stat["pgsteal"] - stat.get("pgsteal_proactive", 0)
    _need(events, ("max", "oom"), f"{source} (memory.events)")
    ooms = max(events["oom"], events.get("oom_kill", 0))
    return CounterSample(scanned, reclaimed, events["max"], ooms, 0)


@dataclass(frozen=True, slots=True)
class SampleDelta:
    """What one sampling interval contributes: pages for the window, and OOM evidence (empty if none)."""

    scanned: int
    reclaimed: int
    evidence: tuple[str, ...]


class DeltaTracker:
    """Turns successive :class:`CounterSample` s into :class:`SampleDelta` s (see the module docstring)."""

    def __init__(self, first: CounterSample, *, stall_name: str = "allocstall") -> None:
        self.prev = first
        self.carry = 0
        self.stall_name = stall_name

    def update(self, cur: CounterSample) -> SampleDelta:
        prev, self.prev = self.prev, cur
        ds = max(0, cur.scanned - prev.scanned)  # a counter never goes back; guard against a reset anyway
        dr = max(0, cur.reclaimed - prev.reclaimed) + self.carry
        r = min(dr, ds)
        self.carry = dr - r
        evidence = []
        if cur.ooms > prev.ooms:
            evidence.append(f"oom +{cur.ooms - prev.ooms}")
        if cur.throttled > prev.throttled:
            evidence.append(f"pgscan_direct_throttle +{cur.throttled - prev.throttled}")
        if cur.stalls > prev.stalls and ds == 0:
            evidence.append(f"{self.stall_name} +{cur.stalls - prev.stalls} with nothing scanned")
        return SampleDelta(ds, r, tuple(evidence))


# --------------------------------------------------------------------------------------------- readers


class _File:
    """A counter file kept open and re-read with ``pread`` (cheap at 100 Hz; ``ENODEV`` once removed)."""

    def __init__(self, path: Path, roots: LiveRoots) -> None:
        self.path = path
        try:
            self.fd = open_kernel_file(path, root=roots.tree_of(path))  # a regular file, never a FIFO
        except KernelError:
            raise
        except OSError as e:
            code = e.errno or errno.EIO
            raise KernelError(code, f"reclaim-index: cannot open {path}: {os.strerror(code)}") from e

    def read(self) -> bytes:
        return pread_kernel_file(self.fd, self.path)  # bounded

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


@dataclass(frozen=True, slots=True)
class _Scope:
    kind: str  # "system", "cgroup-v2", "cgroup-v1"
    directory: Path | None
    description: str


def _scope(ctx: BackendContext) -> _Scope:
    if ctx.cgroup is None:
        own = ctx.own
        if own.v2 is not None and own.v2_path not in (None, "/") and (own.v2 / "memory.stat").exists():
            return _Scope("cgroup-v2", own.v2, f"the caller's cgroup {own.v2_path}")
        return _Scope("system", None, "system-wide")
    # The hierarchy is the mount the directory is under (resolve_cgroup_dir), not the files it has: a v1
    # memcg has a memory.stat too.
    if ctx.mounts.v2 is not None:
        with contextlib.suppress(KernelError):
            d = resolve_cgroup_dir(ctx.cgroup, ctx.mounts.v2, ctx.mounts)
            if (d / "memory.stat").exists():
                return _Scope("cgroup-v2", d, f"cgroup v2 {d}")
    if ctx.mounts.v1_memory is not None:
        with contextlib.suppress(KernelError):
            d = resolve_cgroup_dir(ctx.cgroup, ctx.mounts.v1_memory, ctx.mounts)
            if (d / "memory.failcnt").exists():
                return _Scope("cgroup-v1", d, f"memcg v1 {d} (scan counters system-wide)")
    raise KernelError(
        errno.ENOENT,
        f"cgroup {ctx.cgroup!s} has neither a v2 memory.stat nor a v1 memory.failcnt under the mounted hierarchies",
    )


class ReclaimIndexSource(PressureSource):
    """Samples the counters on a timer and runs the pure-layer window accounting."""

    backend = "reclaim-index"

    def __init__(self, ctx: BackendContext) -> None:
        self.scope = _scope(ctx)
        self.interval_ns = ctx.options.reclaim_interval_ms * 1_000_000
        self.flavour = ctx.options.reclaim_flavour
        self.acc: RfcVmpressure | MainlineVmpressure
        if self.flavour == "rfc2012":
            self.acc = RfcVmpressure(Rfc2012VmpressureConfig())
            self.window = self.acc.config.vmevent_window
        else:
            self.acc = MainlineVmpressure(MainlineVmpressureConfig())
            self.window = self.acc.config.vmpressure_win
        self.description = f"reclaim index of {self.scope.description} every {ctx.options.reclaim_interval_ms} ms"
        self._files: dict[str, _File] = {}
        self.samples = 0
        self.last_window: WindowSample | None = None
        try:
            if self.scope.kind == "cgroup-v2":
                assert self.scope.directory is not None
                self._files["stat"] = _File(self.scope.directory / "memory.stat", ctx.roots)
                self._files["events"] = _File(self.scope.directory / "memory.events", ctx.roots)
                stall_name = "memory.events max"
            else:
                self._files["vmstat"] = _File(ctx.roots.proc("vmstat"), ctx.roots)
                stall_name = "allocstall"
                if self.scope.kind == "cgroup-v1":
                    assert self.scope.directory is not None
                    self._files["failcnt"] = _File(self.scope.directory / "memory.failcnt", ctx.roots)
                    self._files["oom_control"] = _File(self.scope.directory / "memory.oom_control", ctx.roots)
                    stall_name = "memory.failcnt"
            self.tracker = DeltaTracker(self.sample(), stall_name=stall_name)
        except BaseException:
            self.close()
            raise
        self._next = time.monotonic_ns() + self.interval_ns

    def _read(self, name: str) -> bytes:
        f = self._files[name]
        try:
            return f.read()
        except OSError as e:
            if self.scope.kind != "system" and e.errno in (errno.ENODEV, errno.ENOENT):
                raise self.gone(f"{self.scope.directory} was removed") from e
            raise

    def sample(self) -> CounterSample:
        """Read the counters now."""
        kind = self.scope.kind
        if kind == "cgroup-v2":
            stat_path = str(self._files["stat"].path)
            stat = parse_flat_keyed(self._read("stat"), source=stat_path)
            events = parse_flat_keyed(self._read("events"), source=str(self._files["events"].path))
            return memory_stat_sample(stat, events, source=stat_path)
        vmstat_path = str(self._files["vmstat"].path)
        values = parse_flat_keyed(self._read("vmstat"), source=vmstat_path, keys=VMSTAT_KEYS)
        system = vmstat_sample(values, source=vmstat_path)
        if kind == "system":
            return system
        failcnt = parse_int(self._read("failcnt").decode(), source=str(self._files["failcnt"].path))
        oom = parse_flat_keyed(self._read("oom_control"), source=str(self._files["oom_control"].path))
        ooms = oom.get("oom_kill", oom.get("under_oom", 0))  # oom_kill: 4.13+
        return CounterSample(system.scanned, system.reclaimed, failcnt, ooms, 0)

    def next_wakeup_ns(self) -> int | None:
        return self._next

    def _level(self, ws: WindowSample) -> VmpressureLevel:
        if self.flavour == "rfc2012":
            return VmpressureLevel(ws.level)
        return memcg_to_rfc_level(MemcgLevel(ws.level))

    def on_timer(self, now_ns: int) -> list[PressureRecord]:
        # Keep a steady cadence; after a stall (suspend, a long GC) skip the missed ticks instead of bursting.
        self._next += self.interval_ns
        if self._next <= now_ns:
            self._next = now_ns + self.interval_ns
        delta = self.tracker.update(self.sample())
        self.samples += 1
        windows: list[tuple[WindowSample, list[str]]] = []
        if delta.scanned and self._account(delta.scanned, delta.reclaimed):
            windows += [(ws, []) for ws in self._work()]
        if delta.evidence and self._prio():
            windows += [(ws, list(delta.evidence)) for ws in self._work()]
        records = []
        for ws, evidence in windows:
            self.last_window = ws
            records.append(
                self.record(
                    self._level(ws),
                    now_ns,
                    scanned=ws.scanned,
                    reclaimed=ws.reclaimed,
                    index=ws.index,
                    window=self.window,
                    flavour=self.flavour,
                    evidence=evidence,
                    scope=self.scope.description,
                )
            )
        return records

    def _account(self, scanned: int, reclaimed: int) -> bool:
        if isinstance(self.acc, RfcVmpressure):
            return self.acc.vmpressure(scanned, reclaimed)
        return bool(self.acc.vmpressure(scanned, reclaimed, tree=True))

    def _prio(self) -> bool:
        return bool(self.acc.vmpressure_prio(0))

    def _work(self) -> list[WindowSample]:
        ws = self.acc.work_fn()
        return [ws] if ws is not None else []

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "scope": self.scope.description,
            "interval_ms": self.interval_ns // 1_000_000,
            "flavour": self.flavour,
            "window": self.window,
            "files": [str(f.path) for f in self._files.values()],
        }

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def check(ctx: BackendContext) -> Capability:
    try:
        scope = _scope(ctx)
    except KernelError as e:
        return Capability(False, str(e))
    if scope.kind == "cgroup-v2":
        return Capability(True, f"pgscan/pgsteal of {scope.description} every {ctx.options.reclaim_interval_ms} ms")
    cap = ctx.caps.reclaim_counters
    if not cap.available:
        return cap
    return Capability(
        True, f"/proc/vmstat scan/steal counters ({scope.description}) every {ctx.options.reclaim_interval_ms} ms"
    )


def open_source(ctx: BackendContext) -> PressureSource:
    return ReclaimIndexSource(ctx)
