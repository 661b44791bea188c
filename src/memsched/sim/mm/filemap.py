"""The page cache: pages belong to files (``struct address_space``), and processes look at them through windows.

Models the part of mm/filemap.c and mm/workingset.c (Linux 3.x-6.x) that memory pressure depends on:

* every file has an :class:`AddressSpace`: for each page offset, the frame caching it (or -1) and a *shadow
  entry* left when reclaim evicted it (``workingset_eviction()``), so that reading it again counts as a refault
  (``workingset_refault()``, ``workingset_refault_file``);
* a page-cache page is owned by its file, not by the process that read or wrote it: it stays cached, and
  charged to the memcg that first brought it in (``filemap_add_folio()`` -> ``mem_cgroup_charge()``), after
  that process exits, until reclaim or truncation removes it;
* a process reaches a file through a :class:`FileWindow` over a range of its address space: either the buffer
  of ``read()``/``write()`` calls (``mapped=False``: the pages are not in its page tables and not in its RSS)
  or an ``mmap()`` of the file (``mapped=True``: its interpreter and libraries; the pages count in
  ``MM_FILEPAGES``, so in the OOM killer's RSS). A window page is *present* in the process's view
  (``MmStruct.page_node``) once the process has touched it, and loses it when the page leaves the cache;
* a page has data on disk once it was written (or the file pre-existed): reading it back after eviction costs
  a disk read; writing a whole page never reads.

Deviations from the kernel: a window maps one contiguous range of one file; no truncation, no shared anonymous
or shmem pages; a present page of a ``read()`` window stays in the process's view until it is evicted (the
view only decides whether touching it again faults, it is not a mapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.sim.mm.lru import LRU_ACTIVE_FILE, LRU_INACTIVE_FILE
from memsched.sim.mm.memcontrol import charge
from memsched.units import NSEC_PER_SEC

if TYPE_CHECKING:
    from memsched.sim.engine import Engine
    from memsched.sim.fluid.machine import FluidMachine
    from memsched.sim.fluid.task import FluidTask
    from memsched.sim.mm.lru import Frames, LruVecs
    from memsched.sim.mm.memcontrol import ChargeOps, MemcgTree
    from memsched.sim.mm.mm import MmStruct
    from memsched.sim.mm.sysctl import ReclaimConfig
    from memsched.sim.mm.version import MmBehaviour
    from memsched.sim.mm.writeback import Writeback

__all__ = ["AddressSpace", "FileAccess", "FileWindow", "PageCache", "unview"]

I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@dataclass(eq=False)
class AddressSpace:
    """One file's page cache (``struct address_space``)."""

    id: int
    name: str
    nr_pages: int
    #: Frame caching each page offset, -1 when the page is not cached.
    pfn: I64 = field(init=False)
    #: Shadow entries: evicted by reclaim (a later read is a refault).
    shadow: Bool = field(init=False)
    #: The page has data on disk (written back once, or the file existed): a miss reads it.
    on_disk: Bool = field(init=False)

    def __post_init__(self) -> None:
        self.pfn = np.full(self.nr_pages, -1, dtype=np.int64)
        self.shadow = np.zeros(self.nr_pages, dtype=bool)
        self.on_disk = np.zeros(self.nr_pages, dtype=bool)

    @property
    def nr_cached(self) -> int:
        return int(np.count_nonzero(self.pfn >= 0))


@dataclass(frozen=True, slots=True)
class FileWindow:
    """Pages ``[mm_page, mm_page + nr)`` of mm ``mm_id`` show pages ``[pgoff, pgoff + nr)`` of ``file``."""

    mm_id: int
    mm_page: int
    nr: int
    file: int
    pgoff: int
    mapped: bool


class PageCache:
    """Every file of the machine and the windows processes have onto them."""

    def __init__(self) -> None:
        self.files: list[AddressSpace] = []
        self.by_name: dict[str, int] = {}
        self.windows: dict[int, list[FileWindow]] = {}

    def open(self, name: str, nr_pages: int, *, exists: bool = False) -> AddressSpace:
        """The file ``name`` (created with ``nr_pages`` pages if new; an existing one grows to that size).
        ``exists``: the file is already on disk (a reader's input nobody wrote here)."""
        if nr_pages <= 0:
            raise ConfigError("file", name, f"must have at least one page (got {nr_pages})")
        fid = self.by_name.get(name)
        if fid is None:
            f = AddressSpace(len(self.files), name, nr_pages)
            self.files.append(f)
            self.by_name[name] = f.id
        else:
            f = self.files[fid]
            if nr_pages > f.nr_pages:
                grow = nr_pages - f.nr_pages
                f.pfn = np.concatenate([f.pfn, np.full(grow, -1, dtype=np.int64)])
                f.shadow = np.concatenate([f.shadow, np.zeros(grow, dtype=bool)])
                f.on_disk = np.concatenate([f.on_disk, np.zeros(grow, dtype=bool)])
                f.nr_pages = nr_pages
        if exists:
            f.on_disk[:nr_pages] = True
        return f

    def add_window(self, w: FileWindow) -> None:
        f = self.files[w.file]
        if w.nr <= 0 or w.pgoff < 0 or w.pgoff + w.nr > f.nr_pages:
            raise ConfigError("window", (w.pgoff, w.nr), f"must lie inside file {f.name} ({f.nr_pages} pages)")
        for other in self.windows.get(w.mm_id, []):
            if w.mm_page < other.mm_page + other.nr and other.mm_page < w.mm_page + w.nr:
                raise ConfigError("window", w.mm_page, "overlaps another file window of the same mm")
        self.windows.setdefault(w.mm_id, []).append(w)

    def lookup(self, mm_id: int, pages: I64) -> tuple[I64, I64]:
        """(file id, page offset) of each mm page; file id -1 for a page outside every window (anonymous)."""
        fid = np.full(pages.shape, -1, dtype=np.int64)
        off = np.zeros(pages.shape, dtype=np.int64)
        for w in self.windows.get(mm_id, ()):
            sel = (pages >= w.mm_page) & (pages < w.mm_page + w.nr)
            if sel.any():
                fid[sel] = w.file
                off[sel] = pages[sel] - w.mm_page + w.pgoff
        return fid, off

    def cached(self, fids: I64, pgoffs: I64) -> I64:
        """The frame caching each (file, page offset), -1 where the page is not cached."""
        out = np.full(fids.shape, -1, dtype=np.int64)
        for fid in np.unique(fids).tolist():
            sel = fids == fid
            out[sel] = self.files[int(fid)].pfn[pgoffs[sel]]
        return out

    def mapped_mask(self, mm_id: int, nr_pages: int) -> Bool:
        """Pages of the mm inside an ``mmap()`` window (they count in the process's RSS)."""
        out = np.zeros(nr_pages, dtype=bool)
        for w in self.windows.get(mm_id, ()):
            if w.mapped:
                out[w.mm_page : w.mm_page + w.nr] = True
        return out

    def file_mask(self, mm_id: int, nr_pages: int) -> Bool:
        """Pages of the mm inside any file window."""
        out = np.zeros(nr_pages, dtype=bool)
        for w in self.windows.get(mm_id, ()):
            out[w.mm_page : w.mm_page + w.nr] = True
        return out

    def viewers(self, fid: int, pgoffs: I64) -> list[tuple[int, I64, I64]]:
        """Windows showing some of ``pgoffs`` of file ``fid``: (mm id, mm pages, index into ``pgoffs``)."""
        out = []
        for mm_id, ws in self.windows.items():
            for w in ws:
                if w.file != fid:
                    continue
                sel = np.flatnonzero((pgoffs >= w.pgoff) & (pgoffs < w.pgoff + w.nr))
                if sel.size:
                    out.append((mm_id, pgoffs[sel] - w.pgoff + w.mm_page, sel))
        return out

    def drop_windows(self, mm_id: int) -> list[FileWindow]:
        """The mm is gone (``exit_mmap()``): its windows close; the pages stay in the cache."""
        return self.windows.pop(mm_id, [])

    # ---- frames entering and leaving the cache ------------------------------------------------------------
    def insert(self, fr: Frames, f: AddressSpace, pgoffs: I64, pfns: I64) -> None:
        """``filemap_add_folio()``: the new frames cache ``pgoffs`` of ``f``."""
        f.pfn[pgoffs] = pfns
        fr.file[pfns] = f.id
        fr.pgoff[pfns] = pgoffs
        fr.mm[pfns] = -1

    def remove(self, fr: Frames, mms: list[MmStruct], pfns: I64, *, shadow: bool) -> None:
        """``__filemap_remove_folio()``: the frames leave their files' caches (with a shadow entry when reclaim
        evicted them) and every process view showing them loses the page."""
        fids = fr.file[pfns]
        for fid in np.unique(fids).tolist():
            sel = pfns[fids == fid]
            offs = fr.pgoff[sel]
            f = self.files[int(fid)]
            f.pfn[offs] = -1
            f.shadow[offs] = shadow
            for mm_id, mm_pages, idx in self.viewers(int(fid), offs):
                view = fr.mm_pfn.get(mm_id)
                if view is None:
                    continue
                shown = view[mm_pages] == sel[idx]
                if shown.any():
                    unview(mms[mm_id], view, mm_pages[shown])

    def close_mm(self, fr: Frames, mm: MmStruct) -> None:
        """``exit_mmap()``: the mm's windows close and its views of cached pages go (the pages stay)."""
        view = fr.mm_pfn.get(mm.id)
        for w in self.drop_windows(mm.id):
            if view is None:
                continue
            pages = np.arange(w.mm_page, w.mm_page + w.nr, dtype=np.int64)
            present = pages[view[pages] >= 0]
            if present.size:
                unview(mm, view, present)


def unview(mm: MmStruct, view: I64, pages: I64) -> None:
    """Pages of ``mm`` stop showing a frame: absent again for the process (a later touch faults)."""
    old = mm.page_node[pages].astype(np.int64)
    present = old >= 0
    if present.any():
        mm.node_pages -= np.bincount(old[present], minlength=mm.nr_nodes)
    mm.page_node[pages] = -1
    mm.placement_version += 1
    view[pages] = -1


class MemoryManager(Protocol):
    """What the page-cache path uses of the memory manager (``sim/mm/reclaim.py``'s ``Reclaim``)."""

    engine: Engine
    machine: FluidMachine
    frames: Frames
    lru: LruVecs
    cache: PageCache
    memcgs: MemcgTree
    writeback: Writeback
    config: ReclaimConfig
    behaviour: MmBehaviour
    page_size: int

    def charge_ops(self, task: FluidTask) -> ChargeOps: ...

    def alloc_slowpath(self, task: FluidTask, n: int) -> tuple[bool, float]: ...

    def take_frames(self, nodes: I64) -> I64: ...

    def kernel_sleep(self, at_ns: float, ns: float, *, in_stall: bool = True) -> None: ...


class FileAccess:
    """A process reaching the page cache through its windows — ``generic_perform_write()``,
    ``filemap_read()``, ``filemap_fault()`` — as far as memory pressure sees them: a hit is shown to the
    process and marked accessed; a miss is charged to its memcg, allocated, read from disk if it has data
    there, put on the inactive file list and into the cache."""

    def __init__(self, r: MemoryManager) -> None:
        self.r = r
        #: Pages found in the cache, and pages brought in.
        self.hits = 0
        self.misses = 0
        #: When each reading task's background readahead window is in memory (ns).
        self.readahead: dict[int, float] = {}

    def mark_accessed(self, pfns: I64) -> None:
        """Accesses to present pages: a young PTE for anonymous and mapped pages; ``folio_mark_accessed()``
        for ``read()``/``write()`` page cache — referenced, and activated if it already was."""
        r = self.r
        fr = r.frames
        io = pfns[(fr.file[pfns] >= 0) & ~fr.mapped[pfns]]
        again = io[fr.referenced[io] & (fr.lru[io] == LRU_INACTIVE_FILE)]
        fr.referenced[pfns] = True
        if again.size:  # folio_activate(), folio_clear_referenced()
            r.lru.remove(again)
            r.lru.add(again, LRU_ACTIVE_FILE)
            r.machine.vmstat.inc("pgactivate", int(again.size))
            fr.referenced[again] = False

    def fault(self, task: FluidTask, pages: I64, fids: I64, offs: I64) -> tuple[bool, float, bool]:
        """``task`` touches page-cache ``pages`` of its mm (``fids``/``offs``: file and offset of each).
        Returns (all present now, stall ns, chosen by the OOM killer)."""
        r = self.r
        fr, mm = r.frames, task.mm
        write = getattr(task.phase, "write", 0.0) > 0
        memcg = r.memcgs.memcg_of(task.tgid)
        folio = r.config.folio_pages(int(pages.size))
        stall, dying = 0.0, False
        cached = r.cache.cached(fids, offs)
        for _ in range(3):  # our own reclaim may evict pages just found or filled: charge those too
            miss = cached < 0
            n = int(miss.sum())
            if not n:
                break
            c = charge(r.memcgs, memcg, n, folio, r.behaviour, r.charge_ops(task), at_ns=stall)
            stall += c.stall_ns
            dying = dying or c.dying
            if not c.ok:
                return False, stall, dying
            ok, s = r.alloc_slowpath(task, n)
            stall += s
            if not ok:
                r.memcgs.charge(memcg, -n)
                return False, stall, dying
            self._fill(task, pages[miss], fids[miss], offs[miss], memcg, write, at_ns=stall)
            self.misses += n
            cached = r.cache.cached(fids, offs)
        view = fr.mm_pfn[mm.id]
        show = (cached >= 0) & (view[pages] != cached)
        if show.any():
            hp, hpfn = pages[show], cached[show]
            view[hp] = hpfn
            mm.set_nodes(hp, fr.node[hpfn])
            fr.mapped[hpfn[r.cache.mapped_mask(mm.id, mm.nr_pages)[hp]]] = True
            self.hits += int(hp.size)
            self.mark_accessed(hpfn)
            if write:
                r.writeback.mark_dirty(hpfn)
        return True, stall, dying

    def _fill(
        self, task: FluidTask, pages: I64, fids: I64, offs: I64, memcg: int, write: bool, *, at_ns: float = 0.0
    ) -> None:
        """``filemap_add_folio()`` for charged misses: frames, the cache, the file LRU, the process's view.
        A read waits for the disk ``at_ns`` into the fault, asleep (``filemap_read()`` →
        ``filemap_get_pages()`` → ``folio_wait_locked()`` on a folio under read I/O, mm/filemap.c)."""
        r = self.r
        fr, mm, m = r.frames, task.mm, r.machine
        vs = m.vmstat
        cpu_node = int(m.cpu_node[task.cpu]) if task.cpu >= 0 else 0
        target = task.mempolicy.target_nodes(cpu_node, offs, m.page_alloc.zonelists[cpu_node])
        nodes = m.page_alloc.alloc(
            target, task.mempolicy.allowed(m.nr_nodes), np.full(pages.shape[0], cpu_node, dtype=np.int64)
        )
        pfns = r.take_frames(nodes)
        read = np.zeros(pages.shape[0], dtype=bool)
        for fid in np.unique(fids).tolist():
            sel = fids == fid
            f = r.cache.files[int(fid)]
            o = offs[sel]
            refault = f.shadow[o]
            if refault.any():  # workingset_refault()
                vs.inc("workingset_refault_file", int(refault.sum()))
                f.shadow[o] = False
            read[sel] = f.on_disk[o] & (not write)
            if write:
                f.on_disk[o] = True
            r.cache.insert(fr, f, o, pfns[sel])
        fr.memcg[pfns] = memcg
        fr.anon[pfns] = False
        mapped = r.cache.mapped_mask(mm.id, mm.nr_pages)[pages]
        fr.mapped[pfns] = mapped
        fr.referenced[pfns] = mapped  # a mapped fault leaves a young PTE; read()/write() pages are use-once
        r.lru.add(pfns, LRU_INACTIVE_FILE)
        fr.mm_pfn[mm.id][pages] = pfns
        mm.set_nodes(pages, nodes)
        if write:
            r.writeback.mark_dirty(pfns)
        n_read = int(read.sum())
        if mapped.any():
            vs.inc("pgfault", int(mapped.sum()))
            vs.inc("pgmajfault", int((mapped & read).sum()))
        # Entering the page cache costs about a fault (allocation, charge, LRU); a read waits for the disk.
        m.charge_system(task, pages.shape[0] * m.config.page_fault_ns)
        r.kernel_sleep(at_ns, self._read_wait(task, n_read), in_stall=False)

    def _read_wait(self, task: FluidTask, n_read: int) -> float:
        """ns ``task`` waits for ``n_read`` pages from disk. Sequential readahead (``page_cache_async_ra()``):
        the first read is synchronous; each read also starts the next window of the same size in the
        background, so a reader slower than the disk waits only for what the disk has not finished yet."""
        if not n_read:
            return 0.0
        r = self.r
        now = r.engine.now
        io_ns = n_read * r.page_size * NSEC_PER_SEC / r.config.disk_read_bytes_per_s
        ready = self.readahead.get(task.id)
        wait = io_ns if ready is None else max(0.0, ready - now)
        self.readahead[task.id] = now + wait + io_ns
        return wait
