"""The page cache belongs to files: cached pages outlive their writer, stay charged, are reclaimed by later
pressure, and a reader of the same file finds them."""

from __future__ import annotations

import numpy as np

from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Compute, Phase, Touch, Wait
from memsched.sim.mm.reclaim import Reclaim
from memsched.units import MIB, ms, s


def _io(m: FluidMachine, r: Reclaim, name: str, file: str, total_mib: int, *, write: bool) -> None:
    """A process that writes (or reads) ``file`` through the page cache in 1 MiB calls, then exits."""
    mm = m.new_mm(name)
    reg = mm.mmap(total_mib * MIB, f"{name}:io", header=0)
    r.map_file(mm, reg, file=file)
    prog: list[Phase] = []
    for i in range(total_mib):
        prog.append(Touch(reg.sub(i * MIB, MIB), write=1.0 if write else 0.0))
        if write:
            prog.append(Wait(r.writeback.throttle))
    m.spawn_process(name, tuple(prog), mm=mm)


def _cached(r: Reclaim, file: str) -> int:
    return r.cache.files[r.cache.by_name[file]].nr_cached


def test_cache_survives_the_writer_and_is_reclaimed_later(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A writer fills 24 MiB of a 32 MiB memcg with page cache and exits: the pages stay cached and charged.
    An allocator in the same memcg then needs the room: reclaim takes the dead writer's cache (pgsteal),
    leaves shadow entries, and a later reader refaults the evicted pages and hits the ones still cached."""
    m, r = pressure_machine(256)
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 32 * MIB, m.page_size)
    box = r.memcgs.get("/box").id
    _io(m, r, "writer", "data", 24, write=True)
    r.memcgs.attach(m.tasks[-1].tgid, "/box")
    m.run(until=s(1))
    writer = m.tasks[-1]
    assert writer.exit_ns is not None and not writer.killed
    pages = 24 * MIB // m.page_size
    assert _cached(r, "data") == pages
    assert int(r.memcgs.usage[box]) == pages  # still charged to the memcg after the exit
    assert writer.mm.rss_pages == 0  # nothing of it in the dead process
    on_lru = int(r.lru.nr_pages[0, box, 2:4].sum())
    assert on_lru == pages

    mm = m.new_mm("alloc")
    heap = mm.mmap(20 * MIB, "alloc:heap", header=0)
    alloc = m.spawn_process("alloc", (Touch(heap), Compute(s(5))), mm=mm)
    r.memcgs.attach(alloc.tgid, "/box")
    m.run(until=s(2))
    left = _cached(r, "data")
    assert 0 < left <= (32 - 20) * MIB // m.page_size
    assert r.memcgs.memcgs[box].stat["pgsteal"] >= pages - left
    f = r.cache.files[r.cache.by_name["data"]]
    assert int(f.shadow.sum()) == pages - left  # evicted by reclaim: shadow entries

    hits0, refaults0 = r.files.hits, m.vmstat["workingset_refault_file"]
    _io(m, r, "reader", "data", 24, write=False)
    r.memcgs.attach(m.tasks[-1].tgid, "/box")
    m.run(until=s(3))
    assert r.files.hits - hits0 >= 1  # re-read pages found in the cache
    assert m.vmstat["workingset_refault_file"] - refaults0 >= pages - left - 1
    assert int(r.memcgs.usage[box]) <= 32 * MIB // m.page_size


def test_fadvise_drops_only_clean_cache_without_shadows(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """POSIX_FADV_DONTNEED (release on a page-cache window) frees clean pages, leaves dirty ones, and a page
    the application dropped is not a refault when read again."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=1 * MIB)  # the disk barely writes anything
    _io(m, r, "writer", "data", 4, write=True)
    m.run(until=ms(200))
    writer = m.tasks[-1]
    f = r.cache.files[r.cache.by_name["data"]]
    dirty_before = int(np.count_nonzero(r.frames.dirty[f.pfn[f.pfn >= 0]]))
    assert dirty_before > 0
    # a new process with a window on the same file drops it
    mm = m.new_mm("dropper")
    reg = mm.mmap(4 * MIB, "dropper:io", header=0)
    r.map_file(mm, reg, file="data")
    dropper = m.spawn_process("dropper", (Touch(reg, write=0.0), Compute(s(1))), mm=mm)
    m.run(until=ms(300))
    freed = r.release(dropper, reg, clean_only=True)
    assert freed == 4 * MIB // m.page_size - dirty_before
    assert f.nr_cached == dirty_before and not f.shadow.any()
    assert writer.exit_ns is not None


def test_mapped_file_pages_count_in_rss_and_refault(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """An mmap'd file (a process's interpreter) counts in its RSS for the OOM killer; a read() buffer does
    not; mapped pages reclaimed and touched again are major faults read back from disk."""
    m, r = pressure_machine(128)
    mm = m.new_mm("app")
    text = mm.mmap(2 * MIB, "app:text", header=0)
    buf = mm.mmap(2 * MIB, "app:io", header=0)
    r.map_file(mm, text, file="python3", mapped=True, exists=True)
    r.map_file(mm, buf, file="log")
    prog = (Touch(text, write=0.0), Touch(buf, write=1.0), Compute(s(1)), Touch(text, write=0.0), Compute(s(1)))
    app = m.spawn_process("app", prog, mm=mm)
    m.run(until=ms(100))
    anon, file = r.oom.rss(app)
    assert (anon, file) == (0, 2 * MIB // m.page_size)
    assert m.vmstat["pgmajfault"] == 2 * MIB // m.page_size  # read from disk on first touch
    f = r.cache.files[r.cache.by_name["python3"]]
    r.vmscan.free_frames(f.pfn[f.pfn >= 0])  # as reclaim would
    assert r.oom.rss(app) == (0, 0) and f.shadow.all()
    m.run(until=ms(1500))
    assert r.oom.rss(app)[1] == 2 * MIB // m.page_size
    assert m.vmstat["workingset_refault_file"] == 2 * MIB // m.page_size
