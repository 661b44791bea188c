"""The OOM killer: pick the process whose death frees the most memory, and kill it.

Models mm/oom_kill.c (``out_of_memory``, ``select_bad_process``, ``oom_badness``; the badness formula of
2.6.36+, still current): a process's points are its RSS (``get_mm_rss()``: resident anonymous pages and the
file pages it has mapped — its interpreter and libraries, not what it reads or writes through the page cache)
plus its swap entries plus its page table pages, plus ``oom_score_adj * totalpages / 1000``;
``oom_score_adj = -1000`` exempts it. Global OOM
considers every process and ``totalpages`` = RAM + swap; memcg OOM (``mem_cgroup_out_of_memory``) only the
processes of the memcg's subtree, with ``totalpages`` = the memcg's limit. The victim's whole thread group
is killed and its memory freed at once (the oom_reaper's job), and ``oom_kill`` is counted in /proc/vmstat
and in the victim's memcg (``memory.events``); a memcg OOM also counts ``oom`` in the memcg that hit it.

When the victim is the task whose charge invoked the killer, the memcg charge path decides when it dies
(``kill_current=False``): the kernel only sends SIGKILL, and the task keeps retrying its charge until the
path gives up (``sim/mm/memcontrol.py``); its memory is freed when it exits.

Deviations from the kernel: ties go to the lowest tgid (the kernel keeps the first it meets in the task
list); no ``oom_kill_allocating_task``, no waiting for an earlier victim to exit, no OOM reaper (a victim's
memory is freed when it exits, which a killed simulated task does at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memsched.sim.fluid.task import FluidTask, FluidTaskState
from memsched.sim.mm.filemap import PageCache
from memsched.sim.mm.lru import Frames
from memsched.sim.mm.memcontrol import MemcgTree

if TYPE_CHECKING:
    from memsched.sim.fluid.machine import FluidMachine

__all__ = ["OomKill", "OomKiller"]


@dataclass(frozen=True, slots=True)
class OomKill:
    """One kill: when, in which scope (``"global"`` or a memcg path), whom, and why."""

    t_ns: int
    scope: str
    victim: str
    tgid: int
    rss_pages: int
    points: int
    trigger: str
    file_rss_pages: int = 0


class OomKiller:
    """``out_of_memory()`` of one simulated machine."""

    def __init__(
        self, machine: FluidMachine, frames: Frames, memcgs: MemcgTree, swap_total: int, cache: PageCache
    ) -> None:
        self.machine = machine
        self.frames = frames
        self.cache = cache
        self.memcgs = memcgs
        self.swap_total = swap_total
        #: ``/proc/<pid>/oom_score_adj`` by tgid (default 0).
        self.oom_score_adj: dict[int, int] = {}
        self.kills: list[OomKill] = []

    def rss(self, task: FluidTask) -> tuple[int, int]:
        """``MM_ANONPAGES`` and ``MM_FILEPAGES``: resident anonymous pages and mapped file pages."""
        mm_id = task.mm.id
        pfn = self.frames.mm_pfn.get(mm_id)
        if pfn is None:
            return 0, 0
        present = pfn >= 0
        file = self.cache.file_mask(mm_id, pfn.shape[0])
        mapped = self.cache.mapped_mask(mm_id, pfn.shape[0])
        return int(np.count_nonzero(present & ~file)), int(np.count_nonzero(present & mapped))

    def rss_anon(self, task: FluidTask) -> int:
        return self.rss(task)[0]

    def swapents(self, task: FluidTask) -> int:
        sw = self.frames.mm_swapped.get(task.mm.id)
        return 0 if sw is None else int(np.count_nonzero(sw))

    def badness(self, task: FluidTask, totalpages: int) -> int | None:
        """``oom_badness()``; None for an exempt process (``oom_score_adj == -1000``)."""
        adj = self.oom_score_adj.get(task.tgid, 0)
        if adj <= -1000:
            return None
        anon, file = self.rss(task)
        points = anon + file + self.swapents(task) + (anon + file) // 512
        points += adj * totalpages // 1000
        return max(points, 1)

    def out_of_memory(
        self, scope_memcg: int | None, trigger: FluidTask, *, after_ns: float = 0.0, kill_current: bool = True
    ) -> FluidTask | None:
        """Select and kill a victim; returns it (None if no process can be killed). ``after_ns``: how far into
        the triggering task's reclaim stall the kill happens (recorded time = now + after_ns).
        ``kill_current=False``: if the victim is ``trigger``, it is only marked (the caller ends it)."""
        m = self.machine
        if scope_memcg is None:
            totalpages = int(m.page_alloc.total_pages.sum()) + self.swap_total
            allowed = None
            scope = "global"
        else:
            memcg = self.memcgs.memcgs[scope_memcg]
            totalpages = int(memcg.limit)
            allowed = set(self.memcgs.subtree(scope_memcg))
            scope = memcg.path
            memcg.events["oom"] += 1
        best: tuple[int, int] | None = None
        victim: FluidTask | None = None
        for t in m.tasks:
            if t.id != t.tgid or t.state is FluidTaskState.EXITED:
                continue
            if allowed is not None and self.memcgs.memcg_of(t.tgid) not in allowed:
                continue
            pts = self.badness(t, totalpages)
            if pts is None:
                continue
            key = (pts, -t.tgid)
            if best is None or key > best:
                best, victim = key, t
        if victim is None or best is None:
            return None
        anon, file = self.rss(victim)
        self.kills.append(
            OomKill(
                m.engine.now + round(after_ns), scope, victim.name, victim.tgid, anon, best[0], trigger.name, file
            )
        )
        m.vmstat.inc("oom_kill")
        self.memcgs.memcgs[self.memcgs.memcg_of(victim.tgid)].events["oom_kill"] += 1
        if kill_current or victim.tgid != trigger.tgid:
            m.kill_process(victim)
        return victim
