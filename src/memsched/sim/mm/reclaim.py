"""Memory pressure on the simulated machine: the allocation slow path, attached as an instrument.

``machine.add_instrument(Reclaim(machine, config))`` gives a :class:`~memsched.sim.fluid.machine.FluidMachine`
watermarks, LRU lists, page reclaim (kswapd, direct, memcg-limit), writeback, memcgs, the OOM killer, both
vmpressure flavours and PSI. Without it the machine behaves exactly as before (the NUMA runs never add it).

The fault path (``before_fault``) follows ``__alloc_pages()`` and ``mem_cgroup_charge()``:

1. refaults: swapped pages are read back (``pswpin``, ``pgmajfault``, ``swapin_ns`` each, and their swap
   slots are freed);
2. the memcg charge (``sim/mm/memcontrol.py`` :func:`~memsched.sim.mm.memcontrol.charge`): anonymous pages
   one at a time, page-cache pages a folio at a time; beyond the limit, reclaim that memcg
   (``try_to_free_mem_cgroup_pages``) in the retry loop of the kernel version chosen (``kernel``: 3.10, 5.10
   or 6.18, ``sim/mm/version.py``) and then the memcg OOM killer. When the killer chooses the charging task
   itself, the task keeps retrying as its kernel does and exits when the charge gives up;
3. ``get_page_from_freelist()`` with the low watermark; below it, ``wake_all_kswapds()``; then the min
   watermark (``ALLOC_WMARK_MIN``); below that, direct reclaim (``__alloc_pages_direct_reclaim``), retried
   like ``should_reclaim_retry()`` (progress resets the count; ``MAX_RECLAIM_RETRIES`` rounds without
   progress; a fruitless round while dirty + writeback pages exceed half the reclaimable ones waits
   ``HZ/10`` for I/O) and finally ``__alloc_pages_may_oom()``.

Page cache (``sim/mm/filemap.py``) belongs to files: :meth:`Reclaim.map_file` opens a window of a process onto
a file (the buffer of its ``read()``/``write()`` calls, or an ``mmap()``). A page found in the cache is shown
to the process without a charge (``filemap_get_folio()``, ``mark_page_accessed()``: a second access
activates it); a missing one is charged to the process's memcg, read from disk if it has data there
(``disk_read_bytes_per_s``, a refault if reclaim evicted it), and put on the inactive file list. Written pages
are dirty. Pages stay cached, and charged, when the process exits.

The faulting task pays its reclaim in its own context: the CPU work and writeback waits are charged as
system time and PSI sees it in a memory stall for as long. The frames the machine's page allocator handed
out for anonymous pages are then given ``struct page`` state and put on their LRU lists (``after_fault``).

Deviations from the kernel: a batch of faults (a buffer's first touch) is one request; its anonymous pages
are charged one by one and allocated together, so global direct reclaim targets the batch's deficit rather
than ``SWAP_CLUSTER_MAX``; a swap-in, a page entering the page cache (``page_fault_ns``) and a disk read are
charged as system time (the read is not a memory stall); waiting for I/O in the slow path completes, at that
instant, the write-back the disk would have done during the wait
(:meth:`~memsched.sim.mm.writeback.Writeback.expedite`), and the wait is charged to the task as a stall.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError, SimulationError
from memsched.numeric import seq_sum
from memsched.pressure.fd import VmpressureFile
from memsched.sim.engine import Prio
from memsched.sim.fluid.instrument import Instrument
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.psi import SimPsi
from memsched.sim.fluid.task import FluidTask, FluidTaskState, Wait
from memsched.sim.mm.filemap import AddressSpace, FileAccess, FileWindow, PageCache
from memsched.sim.mm.lru import LRU_ACTIVE_ANON, LRU_NAMES, Frames, LruVecs
from memsched.sim.mm.memcontrol import MemcgTree, charge
from memsched.sim.mm.mm import MmStruct, Region
from memsched.sim.mm.oom_kill import OomKiller
from memsched.sim.mm.page_alloc import watermarks
from memsched.sim.mm.sysctl import ReclaimConfig
from memsched.sim.mm.version import behaviour
from memsched.sim.mm.vmpressure import SimVmpressure, base_slice_ns
from memsched.sim.mm.vmscan import RECLAIM_COUNTERS, ReclaimCosts, Swap, Vmscan
from memsched.sim.mm.writeback import Writeback
from memsched.units import NSEC_PER_MSEC, NSEC_PER_SEC, PAGE_SIZE_4K

__all__ = ["Reclaim", "ReclaimConfig"]

#: ``congestion_wait(BLK_RW_ASYNC, HZ/10)`` of ``should_reclaim_retry()`` when write-back is pending.
_CONGESTION_WAIT_NS = 100 * NSEC_PER_MSEC

I64 = npt.NDArray[np.int64]


class ChargeOps:
    """The memcg charge path's view of the machine, for one charging task."""

    def __init__(self, r: Reclaim, task: FluidTask) -> None:
        self.r = r
        self.task = task

    def reclaim(self, memcg: int, nr_pages: int, at_ns: float) -> tuple[int, float]:
        r = self.r
        sc = r.vmscan.try_to_free_mem_cgroup_pages(memcg, nr_pages, t0_ns=at_ns)
        ns = sc.elapsed_ns
        if not sc.nr_reclaimed and sc.nr_dirty_seen and not r.vmscan.b.v1_writeback_throttle:
            # Before 5.16 legacy memcg reclaim waits for the pages it tagged (wait_on_page_writeback); the rounds
            # are instantaneous here, so wait for one disk batch before scanning again.
            w = r.writeback.expedite(r.config.flusher_tick_ns)
            r.kernel_sleep(at_ns + ns, w)
            ns += w
        return sc.nr_reclaimed, ns

    def oom(self, memcg: int, at_ns: float) -> str:
        victim = self.r.oom.out_of_memory(memcg, self.task, after_ns=at_ns, kill_current=False)
        if victim is None:
            return "none"
        return "current" if victim.tgid == self.task.tgid else "other"


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
        self.behaviour = behaviour(config.kernel)
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
        self.cache = PageCache()
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
            rotate_active=self.behaviour.dirty_file_activate,
        )
        self.vmpressure = SimVmpressure(
            self.engine,
            self.memcgs,
            rfc=config.rfc,
            mainline=config.mainline,
            workqueue_latency_ns=config.workqueue_latency_ns,
            kworker_run_ns=config.kworker_run_ns,
            eevdf=self.behaviour.eevdf,
            tick_ns=NSEC_PER_SEC // config.sched_hz,
            slice_ns=config.sched_base_slice_ns or base_slice_ns(machine.nr_cpus),
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
            cache=self.cache,
            behaviour=self.behaviour,
            cgroup_v2=config.cgroup_v2,
            file_folio=config.folio_pages(256),
        )
        self.oom = OomKiller(machine, self.frames, self.memcgs, self.swap.total, self.cache)
        self.files = FileAccess(self)
        self.psi = SimPsi(machine, hz=config.psi_hz)
        self.vmscan.on_kswapd.append(self.psi.kswapd_changed)
        self.vmscan.on_sleep = self.kernel_sleep
        self.writeback.on_task_sleep.append(self._task_sleeps)
        #: While a task faults: ns it sleeps in this fault (reclaim waits, counted in its stall; disk reads).
        self._asleep: list[float] | None = None
        #: Pages given back by applications (``MADV_DONTNEED``/``munmap`` through :meth:`release`), by tgid.
        self.released_pages: dict[int, int] = {}
        #: Per task: reclaim stalls (count, ns) it suffered in its own context.
        self.stall_ns: dict[int, float] = {}
        self.stalls: dict[int, int] = {}
        #: When memory first got tight (ns): an allocation found free memory at its low watermark (and woke
        #: kswapd, ``get_page_from_freelist()`` failing the low mark), or a task first stalled in reclaim
        #: (``psi_memstall_enter()``); ``None`` while neither happened. Exact, where the timeline's samples see it
        #: only at the next sample (or not at all, when a kill frees the memory before it).
        self.first_trouble_ns: int | None = None
        self.timeline: list[dict[str, Any]] = []
        for name in RECLAIM_COUNTERS:
            machine.vmstat.inc(name, 0)
        self._sampling = True
        self.engine.at(self.engine.now, Prio.SAMPLE, self._sample)

    # ---- configuration "syscalls" --------------------------------------------------------------------------
    def map_file(
        self,
        mm: MmStruct,
        region: Region,
        *,
        file: str | None = None,
        offset: int = 0,
        mapped: bool = False,
        exists: bool = False,
    ) -> AddressSpace:
        """Make ``region`` of ``mm`` a window onto the page cache of ``file`` from byte ``offset`` (a file of
        its own when ``file`` is None): the buffer of ``read()``/``write()`` calls, or an ``mmap()`` of the file
        with ``mapped`` (its pages then count in the process's RSS). ``exists``: the file is already on disk.

        Its pages go on the file LRU, written pages become dirty, and they outlive the process."""
        p0, p1 = region.page_span(self.page_size)
        if offset % self.page_size:
            raise ConfigError("offset", offset, f"must be a multiple of the page size ({self.page_size})")
        name = file if file is not None else f"{mm.name}@{mm.id}:{p0}"
        pgoff = offset // self.page_size
        f = self.cache.open(name, pgoff + (p1 - p0), exists=exists)
        self.cache.add_window(FileWindow(mm.id, p0, p1 - p0, f.id, pgoff, mapped))
        self.frames.ensure_mm(mm.id, mm.nr_pages)
        return f

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

        A page-cache window: ``posix_fadvise(POSIX_FADV_DONTNEED)`` on its pages — with ``clean_only``, dirty
        pages and pages under writeback stay."""
        mm = task.mm
        self.frames.ensure_mm(mm.id, mm.nr_pages)
        p0, p1 = region.page_span(self.page_size)
        pfn = self.frames.mm_pfn[mm.id][p0:p1]
        present = pfn[pfn >= 0]
        if clean_only:
            fr = self.frames
            present = present[~fr.dirty[present] & ~fr.writeback[present]]
        if present.size:
            self.vmscan.free_frames(present, shadow=False)  # dropped by the app: a later fault is not a refault
        swapped = self.frames.mm_swapped[mm.id][p0:p1]
        if swapped.any():
            self.swap.used -= int(swapped.sum())
            swapped[:] = False
        n = int(present.size)
        self.released_pages[task.tgid] = self.released_pages.get(task.tgid, 0) + n
        return n

    # ---- instrument hooks ----------------------------------------------------------------------------------
    def touch_started(self, task: FluidTask, region: Region) -> None:
        """An access sets the young/referenced bit of every present page of the region; a page-cache page
        read or written again is ``mark_page_accessed()``: referenced, and activated if it already was."""
        mm = task.mm
        pfn_map = self.frames.mm_pfn.get(mm.id)
        if pfn_map is None:
            return
        p0, p1 = region.page_span(self.page_size)
        pfn = pfn_map[p0:p1]
        self.files.mark_accessed(pfn[pfn >= 0])

    def sched_changed(self) -> None:
        self.psi.record()
        if not self._sampling and any(t.state is FluidTaskState.RUNNABLE for t in self.machine.tasks):
            self._sampling = True
            self.engine.after(self.config.sample_interval_ns, Prio.SAMPLE, self._sample)

    def _task_sleeps(self, task: FluidTask) -> None:  # balance_dirty_pages(): its CPU's kworker runs
        if task.cpu >= 0:
            self.vmpressure.sleep(self.engine.now, 0, cpu=task.cpu)

    def mm_exit(self, mm: MmStruct) -> None:
        """``exit_mmap()``: anonymous pages are freed (the machine returns their frames); page-cache pages
        stay in their files' caches, still charged, and leave the process's view before the machine frees
        what the view still shows. The exiting task's CPU schedules (``do_task_dead()``): its kworker runs."""
        for t in self.machine.tasks:
            if t.mm is mm and t.exit_ns == self.engine.now and t.cpu >= 0:
                self.vmpressure.sleep(self.engine.now, 0, cpu=t.cpu)
        self.cache.close_mm(self.frames, mm)
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
        fids, offs = self.cache.lookup(mm.id, pages)
        in_file = fids >= 0
        stall, dying, ok = 0.0, False, True
        self._asleep = asleep = [0.0, 0.0]
        self.vmpressure.current_cpu = task.cpu
        try:
            if in_file.any():
                ok, stall, dying = self.files.fault(task, pages[in_file], fids[in_file], offs[in_file])
                pages = pages[~in_file]
            ok, stall, dying, pages = self._fault_anon(task, pages, ok, stall, dying)
        finally:
            self.vmpressure.current_cpu = -1
            self._asleep = None
        if not _exited(task):
            if stall > 0:
                self._stall(task, stall, asleep[0])
            slept = asleep[0] + asleep[1]
            if slept > 0 and not self.machine.lifecycle.block_for(task, slept):
                self.machine.charge_system(task, slept)  # not on a CPU to leave: the wait delays it all the same
            if dying:  # chosen by the memcg OOM killer: it exits when its charge gives up
                self.engine.after(max(1, round(stall)), Prio.WAKEUP, self._oom_exit, task)
        return pages if ok else np.empty(0, dtype=np.int64)

    def kernel_sleep(self, at_ns: float, ns: float, *, in_stall: bool = True) -> None:
        """The faulting task sleeps ``ns`` at ``at_ns`` into its fault (``in_stall``: a reclaim wait, else a
        disk read): it leaves its CPU, whose kworker runs then."""
        if ns <= 0 or self._asleep is None:
            return
        self._asleep[0 if in_stall else 1] += ns
        self.vmpressure.sleep(self.engine.now + round(at_ns), ns)

    def _fault_anon(
        self, task: FluidTask, pages: I64, ok: bool, stall: float, dying: bool
    ) -> tuple[bool, float, bool, I64]:
        """The anonymous part of a fault batch: refaults, the memcg charge and the page allocator."""
        if ok and pages.size:
            stall += self._refaults(task, pages)
            memcg = self.memcgs.memcg_of(task.tgid)
            c = charge(self.memcgs, memcg, int(pages.size), 1, self.behaviour, ChargeOps(self, task), at_ns=stall)
            stall += c.stall_ns
            ok, dying = c.ok, c.dying
            if ok:
                ok, s = self.alloc_slowpath(task, int(pages.size))
                stall += s
                if not ok:
                    self.memcgs.charge(memcg, -int(pages.size))
        return ok, stall, dying, pages

    def charge_ops(self, task: FluidTask) -> ChargeOps:
        """What the memcg charge path of ``task`` asks of the machine."""
        return ChargeOps(self, task)

    def _oom_exit(self, task: FluidTask) -> None:
        if not _exited(task):
            self.machine.kill_process(task)

    def after_fault(self, task: FluidTask, pages: I64, nodes: I64) -> None:
        """Anonymous pages got frames (page-cache pages are handled in :meth:`before_fault`)."""
        fr = self.frames
        pfns = self.take_frames(nodes)
        fr.mm[pfns] = task.mm.id
        fr.index[pfns] = pages
        fr.memcg[pfns] = self.memcgs.memcg_of(task.tgid)
        fr.anon[pfns] = True
        fr.referenced[pfns] = True  # a new anon page's PTE is young
        fr.mm_pfn[task.mm.id][pages] = pfns
        self.lru.add(pfns, LRU_ACTIVE_ANON)  # 3.x: lru_cache_add_active_or_unevictable

    def take_frames(self, nodes: I64) -> I64:
        fr = self.frames
        if fr.nr_nodes == 1:
            return fr.take(0, int(nodes.shape[0]))
        pfns = np.empty(nodes.shape[0], dtype=np.int64)
        for node in np.unique(nodes):
            sel = nodes == node
            pfns[sel] = fr.take(int(node), int(sel.sum()))
        return pfns

    # ---- the slow path -------------------------------------------------------------------------------------
    def _refaults(self, task: FluidTask, pages: I64) -> float:
        """Anonymous pages that live in swap are read back."""
        fr, mm_id, vs = self.frames, task.mm.id, self.machine.vmstat
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

    def alloc_slowpath(self, task: FluidTask, n: int) -> tuple[bool, float]:
        nodes = self._allowed_nodes(task)
        free = self.machine.page_alloc.free_pages
        low = int(self.wmark.low[nodes].sum())
        if int(free[nodes].sum()) - n >= low:
            return True, 0.0
        if self.first_trouble_ns is None:
            self.first_trouble_ns = self.engine.now
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
                w = self.writeback.expedite(_CONGESTION_WAIT_NS)
                self.kernel_sleep(stall, w)
                stall += w
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

    def _stall(self, task: FluidTask, ns: float, asleep: float = 0.0) -> None:
        """The faulting task reclaimed ``ns`` in its own context, ``asleep`` of them asleep off its CPU."""
        m = self.machine
        m.charge_system(task, ns - asleep)
        weights = sum(m.tasks[t].weight for t in m.sched.rq[task.cpu]) if task.cpu >= 0 else 0.0
        share = task.weight / weights if weights > 0 else 1.0
        wall = round((ns - asleep) / max(share, 1e-6) + asleep)
        if wall > 0 and self.first_trouble_ns is None:
            self.first_trouble_ns = self.engine.now
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
            "kswapd_busy_s": seq_sum(k.busy_ns for k in self.vmscan.kswapd) / NSEC_PER_SEC,
        }


def _exited(task: FluidTask) -> bool:
    return task.state is FluidTaskState.EXITED
