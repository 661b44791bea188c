"""Memory pressure on the simulated machine: the allocation slow path, attached as an instrument.

``machine.add_instrument(Reclaim(machine, config))`` gives a :class:`~memsched.sim.fluid.machine.FluidMachine`
watermarks, LRU lists, page reclaim (kswapd, direct, memcg-limit), writeback, memcgs, the OOM killer, both
vmpressure flavours and PSI. Without it the machine behaves exactly as before (the NUMA runs never add it).

The fault path (``before_fault``) follows ``__alloc_pages()`` and ``mem_cgroup_charge()``:

1. refaults: pages evicted earlier count ``workingset_refault_*``; swapped pages are read back
   (``pswpin``, ``pgmajfault``, ``swapin_ns`` each, and their swap slots are freed);
2. ``try_charge()``: while the charge would exceed a limit on the memcg's path, reclaim that memcg
   (``try_to_free_mem_cgroup_pages``), retry while it makes progress, up to ``MAX_RECLAIM_RETRIES`` fruitless
   rounds, then the memcg OOM killer (legacy memcg reclaim waits on pages under write-back: a fruitless
   round that met dirty pages waits for one disk batch);
3. ``get_page_from_freelist()`` with the low watermark; below it, ``wake_all_kswapds()``; then the min
   watermark (``ALLOC_WMARK_MIN``); below that, direct reclaim (``__alloc_pages_direct_reclaim``), retried
   like ``should_reclaim_retry()`` (progress resets the count; ``MAX_RECLAIM_RETRIES`` rounds without
   progress; a fruitless round while dirty + writeback pages exceed half the reclaimable ones waits
   ``HZ/10`` for I/O) and finally ``__alloc_pages_may_oom()``.

The faulting task pays its reclaim in its own context: the CPU work and writeback waits are charged as
system time and PSI sees it in a memory stall for as long. The frames the machine's page allocator handed
out are then given ``struct page`` state and put on their LRU lists (``after_fault``).

Deviations from the kernel: a batch of faults (a buffer's first touch) is one allocation request (the
kernel allocates and charges page by page), so reclaim targets the batch's deficit rather than
``SWAP_CLUSTER_MAX``; a swap-in is charged as system time rather than as a sleeping major fault; waiting for
I/O in the slow path completes, at that instant, the write-back the disk would have done during the wait
(:meth:`~memsched.sim.mm.writeback.Writeback.expedite`), and the wait is charged to the task as a stall.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.config import knob, validate
from memsched.errors import ConfigError, SimulationError
from memsched.pressure.fd import VmpressureFile
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.sim.engine import Prio
from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.psi import SimPsi
from memsched.sim.fluid.task import FluidTask, FluidTaskState, Wait
from memsched.sim.mm.lru import LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_NAMES, Frames, LruVecs
from memsched.sim.mm.memcontrol import MemcgTree
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.mm.oom_kill import OomKiller
from memsched.sim.mm.page_alloc import watermarks
from memsched.sim.mm.vmpressure import SimVmpressure
from memsched.sim.mm.vmscan import MAX_RECLAIM_RETRIES, RECLAIM_COUNTERS, ReclaimCosts, Swap, Vmscan
from memsched.sim.mm.writeback import Writeback
from memsched.units import MIB, NSEC_PER_MSEC, NSEC_PER_SEC, PAGE_SIZE_4K

__all__ = ["Reclaim", "ReclaimConfig"]

#: ``congestion_wait(BLK_RW_ASYNC, HZ/10)`` of ``should_reclaim_retry()`` when write-back is pending.
_CONGESTION_WAIT_NS = 100 * NSEC_PER_MSEC

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ReclaimConfig:
    """Sysctls and hardware figures of the memory-pressure machinery (Linux defaults or estimates)."""

    swap_bytes: int = knob(0, "swap space; 0 = no swap (the default, as on most servers)", min=0)
    min_free_kbytes: int = knob(0, "vm.min_free_kbytes; 0 = the kernel's int_sqrt(lowmem_kb * 16)", min=0)
    watermark_scale_factor: int = knob(10, "vm.watermark_scale_factor (4.6+ default 10)", min=1, max=3000)
    dirty_ratio: int = knob(20, "vm.dirty_ratio, % of dirtyable memory (default 20)", min=1, max=100)
    dirty_background_ratio: int = knob(10, "vm.dirty_background_ratio (default 10)", min=0, max=100)
    dirty_expire_centisecs: int = knob(3000, "vm.dirty_expire_centisecs (default 3000 = 30 s)", min=1)
    dirty_writeback_centisecs: int = knob(500, "vm.dirty_writeback_centisecs (default 500 = 5 s)", min=1)
    disk_write_bytes_per_s: int = knob(
        200 * MIB, "disk write bandwidth (estimate: a SATA SSD, 200 MiB/s)", min=1
    )
    flusher_tick_ns: int = knob(20 * NSEC_PER_MSEC, "granularity of the simulated disk pipeline", min=1)
    swapin_ns: int = knob(100_000, "cost of reading one page back from swap (estimate: SSD, 100 us)", min=0)
    reclaim_scan_ns: int = knob(400, "CPU ns per page isolated by reclaim (estimate)", min=0)
    reclaim_free_ns: int = knob(1_000, "CPU ns per page freed by reclaim (estimate)", min=0)
    reclaim_move_ns: int = knob(200, "CPU ns per page moved between LRU lists (estimate)", min=0)
    shrink_node_ns: int = knob(5_000, "CPU ns of fixed work per shrink_node pass (estimate)", min=0)
    kswapd_wakeup_ns: int = knob(20_000, "latency from wakeup_kswapd() to kswapd running (estimate)", min=0)
    workqueue_latency_ns: int = knob(
        10_000, "latency from schedule_work() to the work running (estimate)", min=0
    )
    max_reclaim_retries: int = knob(
        MAX_RECLAIM_RETRIES, "MAX_RECLAIM_RETRIES (4.7+: 16; 3.x memcg: 5)", min=1
    )
    psi_hz: int = knob(1000, "CONFIG_HZ for PSI_FREQ = 2*HZ+1 jiffies", min=100, max=1000)
    sample_interval_ns: int = knob(100 * NSEC_PER_MSEC, "interval of the pressure timeline samples", min=1)
    rfc: Rfc2012VmpressureConfig = field(default_factory=Rfc2012VmpressureConfig)
    mainline: MainlineVmpressureConfig = field(default_factory=MainlineVmpressureConfig)

    def __post_init__(self) -> None:
        validate(self)
        if self.dirty_background_ratio >= self.dirty_ratio:
            raise ConfigError(
                "dirty_background_ratio",
                self.dirty_background_ratio,
                f"must be < dirty_ratio ({self.dirty_ratio})",
            )


@dataclass
class _MmInfo:
    """Per-mm page-cache mapping: which page ranges are file-backed."""

    file_ranges: list[tuple[int, int]] = field(default_factory=list)


class Reclaim(Instrument):
    """The memory-pressure subsystem of one machine (add it before any page is faulted in)."""

    def __init__(self, machine: FluidMachine, config: ReclaimConfig | None = None) -> None:
        config = config or ReclaimConfig()
        if machine.instruments.find(Reclaim) is not None:
            raise ConfigError("reclaim", "add_instrument", "is already attached to this machine")
        if any(mm.rss_pages for mm in machine.mms):
            raise ConfigError("reclaim", "add_instrument", "must be attached before any page is faulted in")
        if machine.page_size != PAGE_SIZE_4K:
            raise ConfigError("thp", True, "must be off for memory-pressure runs (MachineConfig(thp=False))")
        self.machine = machine
        self.config = config
        self.engine = machine.engine
        pa = machine.page_alloc
        self.page_size = pa.page_size
        self.wmark = watermarks(
            pa.total_pages,
            pa.page_size,
            min_free_kbytes=config.min_free_kbytes or None,
            watermark_scale_factor=config.watermark_scale_factor,
        )
        self.frames = Frames(pa.total_pages)
        self.lru = LruVecs(self.frames)
        self.memcgs = MemcgTree(self.lru, config.mainline)
        self.swap = Swap(total=config.swap_bytes // self.page_size)
        self.writeback = Writeback(
            self.engine,
            self.frames,
            self.lru,
            machine.vmstat,
            page_size=self.page_size,
            dirtyable=self._dirtyable,
            dirty_ratio=config.dirty_ratio,
            dirty_background_ratio=config.dirty_background_ratio,
            dirty_expire_ns=config.dirty_expire_centisecs * 10 * NSEC_PER_MSEC,
            dirty_writeback_ns=config.dirty_writeback_centisecs * 10 * NSEC_PER_MSEC,
            disk_write_bytes_per_s=config.disk_write_bytes_per_s,
            flusher_tick_ns=config.flusher_tick_ns,
        )
        self.vmpressure = SimVmpressure(
            self.engine,
            self.memcgs,
            rfc=config.rfc,
            mainline=config.mainline,
            workqueue_latency_ns=config.workqueue_latency_ns,
        )
        costs = ReclaimCosts(
            config.reclaim_scan_ns, config.reclaim_free_ns, config.reclaim_move_ns, config.shrink_node_ns
        )
        self.vmscan = Vmscan(
            machine,
            self.frames,
            self.lru,
            self.memcgs,
            self.writeback,
            self.vmpressure,
            self.wmark,
            self.swap,
            costs,
            kswapd_wakeup_ns=config.kswapd_wakeup_ns,
        )
        self.oom = OomKiller(machine, self.frames, self.memcgs, self.swap.total)
        self.psi = SimPsi(machine, hz=config.psi_hz)
        self.vmscan.on_kswapd.append(self.psi.kswapd_changed)
        self._mm: dict[int, _MmInfo] = {}
        #: Pages given back by applications (``MADV_DONTNEED``/``munmap`` through :meth:`release`), by tgid.
        self.released_pages: dict[int, int] = {}
        #: Per task: reclaim stalls (count, ns) it suffered in its own context.
        self.stall_ns: dict[int, float] = {}
        self.stalls: dict[int, int] = {}
        self.timeline: list[dict[str, Any]] = []
        for name in RECLAIM_COUNTERS:
            machine.vmstat.inc(name, 0)
        self._sampling = True
        self.engine.at(self.engine.now, Prio.SAMPLE, self._sample)

    # ---- configuration "syscalls" --------------------------------------------------------------------------
    def map_file(self, mm: MmStruct, region: Region) -> None:
        """Declare ``region`` of ``mm`` as page cache of a file (read/written through the page cache).

        Its pages go on the file LRU, written pages become dirty, and they are never counted as RSS."""
        p0, p1 = region.page_span(self.page_size)
        self._mm.setdefault(mm.id, _MmInfo()).file_ranges.append((p0, p1))
        self.frames.ensure_mm(mm.id, mm.nr_pages)
        self.frames.mm_file[mm.id][p0:p1] = True

    def vmpressure_fd(self, config: Any = None) -> Any:
        return self.vmpressure.vmpressure_fd(config)

    def wait_pressure(self, f: VmpressureFile) -> Wait:
        """The program phase "wait for a pressure event" on ``f`` (a task blocked in ``select`` on the fd)."""
        return Wait(self.vmpressure.wait(f))

    def set_oom_score_adj(self, task: FluidTask, adj: int) -> None:
        if not -1000 <= adj <= 1000:
            raise ConfigError("oom_score_adj", adj, "must be in -1000..1000")
        self.oom.oom_score_adj[task.tgid] = adj

    def release(self, task: FluidTask, region: Region, *, clean_only: bool = False) -> int:
        """``madvise(MADV_DONTNEED)`` on ``region`` of the task's mm: its frames go back now; returns pages.

        ``clean_only``: ``posix_fadvise(POSIX_FADV_DONTNEED)`` on page cache — dirty pages and pages under
        writeback stay."""
        mm = task.mm
        self.frames.ensure_mm(mm.id, mm.nr_pages)
        p0, p1 = region.page_span(self.page_size)
        pfn = self.frames.mm_pfn[mm.id][p0:p1]
        present = pfn[pfn >= 0]
        if clean_only:
            fr = self.frames
            present = present[~fr.dirty[present] & ~fr.writeback[present]]
        if present.size:
            idx = self.frames.index[present]
            self.vmscan.free_frames(present)
            self.frames.mm_evicted[mm.id][idx] = False  # dropped by the app: a later fault is not a refault
        swapped = self.frames.mm_swapped[mm.id][p0:p1]
        if swapped.any():
            self.swap.used -= int(swapped.sum())
            swapped[:] = False
        n = int(present.size)
        self.released_pages[task.tgid] = self.released_pages.get(task.tgid, 0) + n
        return n

    # ---- instrument hooks ----------------------------------------------------------------------------------
    def touch_started(self, task: FluidTask, region: Region) -> None:
        """An access sets the young/referenced bit of every present page of the region."""
        mm = task.mm
        pfn_map = self.frames.mm_pfn.get(mm.id)
        if pfn_map is None:
            return
        p0, p1 = region.page_span(self.page_size)
        pfn = pfn_map[p0:p1]
        self.frames.referenced[pfn[pfn >= 0]] = True

    def sched_changed(self) -> None:
        self.psi.record()
        if not self._sampling and any(t.state is FluidTaskState.RUNNABLE for t in self.machine.tasks):
            self._sampling = True
            self.engine.after(self.config.sample_interval_ns, Prio.SAMPLE, self._sample)

    def mm_exit(self, mm: MmStruct) -> None:
        pfn_map = self.frames.mm_pfn.get(mm.id)
        if pfn_map is None:
            return
        present = pfn_map[pfn_map >= 0]
        self.vmscan.free_frames(present, unmap=False, count_free=False)
        pfn_map[:] = -1
        sw = self.frames.mm_swapped[mm.id]
        self.swap.used -= int(sw.sum())
        sw[:] = False

    def before_fault(self, task: FluidTask, pages: I64) -> I64:
        if task.state is FluidTaskState.EXITED:
            return np.empty(0, dtype=np.int64)
        mm = task.mm
        self.frames.ensure_mm(mm.id, mm.nr_pages)
        stall = self._refaults(task, pages)
        n = int(pages.size)
        memcg = self.memcgs.memcg_of(task.tgid)
        ok, s = self._try_charge(task, memcg, n)
        stall += s
        if ok:
            ok, s = self._alloc_slowpath(task, n)
            stall += s
            if not ok:
                self.memcgs.uncharge(np.full(n, memcg, dtype=np.int64))
        if stall > 0 and not _exited(task):
            self._stall(task, stall)
        return pages if ok else np.empty(0, dtype=np.int64)

    def after_fault(self, task: FluidTask, pages: I64, nodes: I64) -> None:
        fr = self.frames
        mm_id = task.mm.id
        memcg = self.memcgs.memcg_of(task.tgid)
        if fr.nr_nodes == 1:
            pfns = fr.take(0, int(pages.shape[0]))
        else:
            pfns = np.empty(pages.shape[0], dtype=np.int64)
            for node in np.unique(nodes):
                sel = nodes == node
                pfns[sel] = fr.take(int(node), int(sel.sum()))
        file = fr.mm_file[mm_id][pages]
        fr.mm[pfns] = mm_id
        fr.index[pfns] = pages
        fr.memcg[pfns] = memcg
        fr.anon[pfns] = ~file
        fr.referenced[pfns] = ~file  # a new anon page's PTE is young; page cache is use-once until re-read
        fr.mm_pfn[mm_id][pages] = pfns
        lrus = np.where(file, LRU_INACTIVE_FILE, LRU_ACTIVE_ANON)  # 3.x: lru_cache_add_active_or_unevictable
        self.lru.add(pfns, lrus)
        phase = task.phase
        write = getattr(phase, "write", 0.0)
        if write > 0 and file.any():
            self.writeback.mark_dirty(pfns[file])

    # ---- the slow path -------------------------------------------------------------------------------------
    def _refaults(self, task: FluidTask, pages: I64) -> float:
        fr, mm_id, vs = self.frames, task.mm.id, self.machine.vmstat
        evicted = fr.mm_evicted[mm_id][pages]
        if evicted.any():
            file = fr.mm_file[mm_id][pages]
            vs.inc("workingset_refault_file", int((evicted & file).sum()))
            vs.inc("workingset_refault_anon", int((evicted & ~file).sum()))
            fr.mm_evicted[mm_id][pages[evicted]] = False
        swapped = fr.mm_swapped[mm_id][pages]
        if not swapped.any():
            return 0.0
        k = int(swapped.sum())
        fr.mm_swapped[mm_id][pages[swapped]] = False
        self.swap.used -= k
        vs.inc("pswpin", k)
        vs.inc("pgmajfault", k)
        vs.inc("workingset_refault_anon", k)
        return float(k * self.config.swapin_ns)

    def _allowed_nodes(self, task: FluidTask) -> list[int]:
        m = self.machine
        cpu_node = int(m.cpu_node[task.cpu]) if task.cpu >= 0 else 0
        allowed = task.mempolicy.allowed(m.nr_nodes)
        return [int(n) for n in m.page_alloc.zonelists[cpu_node] if allowed[n]]

    def _try_charge(self, task: FluidTask, memcg: int, n: int) -> tuple[bool, float]:
        stall = 0.0
        fruitless = 0
        rounds = 0
        while True:
            over = self.memcgs.over_limit(memcg, n)
            if over is None:
                self.memcgs.charge(memcg, n)
                return True, stall
            m = self.memcgs.memcgs[over]
            m.failcnt += 1
            m.events["max"] += 1
            need = n - self.memcgs.margin(memcg)
            sc = self.vmscan.try_to_free_mem_cgroup_pages(over, need, t0_ns=stall)
            stall += sc.elapsed_ns
            rounds += 1
            if self.memcgs.over_limit(memcg, n) is None:
                continue
            fruitless = 0 if sc.nr_reclaimed else fruitless + 1
            if not sc.nr_reclaimed and sc.nr_dirty_seen:
                # Legacy memcg reclaim waits for the pages it tagged (wait_on_page_writeback); the rounds
                # are instantaneous here, so wait for one disk batch before scanning again.
                stall += self.writeback.expedite(self.config.flusher_tick_ns)
            if fruitless < self.config.max_reclaim_retries and rounds < 64 * self.config.max_reclaim_retries:
                continue
            victim = self.oom.out_of_memory(over, task, after_ns=stall)
            fruitless = rounds = 0
            if victim is None or task.state is FluidTaskState.EXITED:
                if victim is None and task.state is not FluidTaskState.EXITED:
                    self.machine.kill_process(task)  # nothing else to kill: the charge fails, the task dies
                return False, stall

    def _alloc_slowpath(self, task: FluidTask, n: int) -> tuple[bool, float]:
        nodes = self._allowed_nodes(task)
        free = self.machine.page_alloc.free_pages
        low = int(self.wmark.low[nodes].sum())
        if int(free[nodes].sum()) - n >= low:
            return True, 0.0
        for node in nodes:
            self.vmscan.wakeup_kswapd(node)
        stall = 0.0
        fruitless = 0
        rounds = 0
        wmin = int(self.wmark.min[nodes].sum())
        while int(free[nodes].sum()) - n < wmin:
            deficit = n + wmin - int(free[nodes].sum())
            sc = self.vmscan.try_to_free_pages(nodes, deficit, t0_ns=stall)
            stall += sc.elapsed_ns
            rounds += 1
            if int(free[nodes].sum()) - n >= wmin:
                break
            fruitless = 0 if sc.nr_reclaimed else fruitless + 1
            if not sc.nr_reclaimed and 2 * self.writeback.write_pending > self._reclaimable(nodes):
                stall += self.writeback.expedite(_CONGESTION_WAIT_NS)
            if fruitless < self.config.max_reclaim_retries and rounds < 64 * self.config.max_reclaim_retries:
                continue
            victim = self.oom.out_of_memory(None, task, after_ns=stall)
            fruitless = rounds = 0
            if victim is None:
                raise SimulationError("out of memory and no killable process (kernel panic)")
            if task.state is FluidTaskState.EXITED:
                return False, stall
        return True, stall

    def _reclaimable(self, nodes: list[int]) -> int:
        """``zone_reclaimable_pages()``: file LRU pages, and anon ones when swap has room."""
        per = self.lru.nr_pages[nodes].sum(axis=(0, 1))
        return int(per[2] + per[3]) + (int(per[0] + per[1]) if self.swap.free > 0 else 0)

    def _stall(self, task: FluidTask, ns: float) -> None:
        """The faulting task reclaimed (or waited) ``ns`` in its own context."""
        m = self.machine
        m.charge_system(task, ns)
        weights = sum(m.tasks[t].weight for t in m.sched.rq[task.cpu]) if task.cpu >= 0 else 0.0
        share = task.weight / weights if weights > 0 else 1.0
        wall = round(ns / max(share, 1e-6))
        self.psi.memstall(task, wall)
        self.stall_ns[task.id] = self.stall_ns.get(task.id, 0.0) + ns
        self.stalls[task.id] = self.stalls.get(task.id, 0) + 1

    def _dirtyable(self) -> int:
        """``global_dirtyable_memory()``: free + file LRU pages - the high watermarks (totalreserve)."""
        file = int(self.lru.nr_pages[:, :, 2:4].sum())
        return int(self.machine.page_alloc.free_pages.sum()) + file - int(self.wmark.high.sum())

    # ---- observation ---------------------------------------------------------------------------------------
    def meminfo(self) -> dict[str, int]:
        """A few /proc/meminfo-style gauges, in pages."""
        per_list = self.lru.nr_pages.sum(axis=(0, 1))
        out = {name: int(per_list[i]) for i, name in enumerate(LRU_NAMES)}
        out["free"] = int(self.machine.page_alloc.free_pages.sum())
        out["dirty"] = self.writeback.nr_dirty
        out["writeback"] = self.writeback.nr_writeback
        out["swap_used"] = self.swap.used
        return out

    def _sample(self) -> None:
        rec: dict[str, Any] = {"t_ns": self.engine.now}
        rec.update(self.meminfo())
        rec["kswapd"] = sum(k.running for k in self.vmscan.kswapd)
        rec.update(self.psi.snapshot())
        rec["memcg_usage"] = self.memcgs.usage.tolist()
        self.timeline.append(rec)
        # Sample while something runs (or before anything started); an idle machine must be able to stop.
        if any(t.state is FluidTaskState.RUNNABLE for t in self.machine.tasks) or not self.machine.tasks:
            self.engine.after(self.config.sample_interval_ns, Prio.SAMPLE, self._sample)
        else:
            self._sampling = False

    def stats(self) -> dict[str, Any]:
        """Totals for reports: vmstat reclaim counters, OOM kills, memcg events, kswapd time."""
        self.vmpressure.flush()
        vs = self.machine.vmstat
        return {
            "vmstat": {k: vs[k] for k in RECLAIM_COUNTERS},
            "oom_kills": [dataclasses.asdict(k) for k in self.oom.kills],
            "memcg": {
                m.path: {
                    "limit_pages": m.limit if m.limited else None,
                    "usage_pages": int(self.memcgs.usage[m.id]),
                    "failcnt": m.failcnt,
                    **m.events,
                    "socket_pressure_events": m.socket_pressure_events,
                }
                for m in self.memcgs.memcgs
            },
            "kswapd_busy_s": sum(k.busy_ns for k in self.vmscan.kswapd) / NSEC_PER_SEC,
        }


def _exited(task: FluidTask) -> bool:
    return task.state is FluidTaskState.EXITED
