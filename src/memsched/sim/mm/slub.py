"""SLUB, coarsely: per-CPU slab fast path, per-CPU and per-node partial lists, the page allocator behind.

Models ``mm/slub.c`` (v6.x; the structure its header comment describes): each CPU allocates from its own
*cpu slab* without locks (``slab_alloc_node`` → fast path, ~10.5 ns for an alloc+free pair on an i7-4790K:
Jesper Dangaard Brouer, "[PATCH V2 3/6] slub bulk alloc: extract objects from the per cpu slab", linux-mm,
17 Jun 2015); when it is empty the slow path (``___slab_alloc``, preemption disabled) takes a slab from the
CPU's partial list (``CONFIG_SLUB_CPU_PARTIAL``), else from the node's partial list under
``n->list_lock`` (shared by all CPUs of the node, so it can be contended), else a new slab from the page
allocator, which now and then needs reclaim or compaction. Frees of objects that belong to another slab
go to the CPU's partial list; when that list grows beyond ``cpu_partial_slabs`` it is flushed to the node
list under ``list_lock`` — the "indeterminism in the latency of the free" for which the ``SLUB_CPU_PARTIAL``
help in mm/Kconfig says "Typically one would choose no for a realtime system". Only the fast-path cost is
sourced; every other latency below is an assumption and a knob.

State is counts, not objects: per cache, each CPU's free objects in its cpu slab and the free counts of
its partial slabs, and the node's partial slabs. Randomness (which frees are remote, when the page
allocator is slow) comes from the ``slub`` random stream of the run, and the time at which ``list_lock`` is
taken from the run's engine: the allocator reads the simulated clock, it never keeps one.

Deviations from the kernel: one node; no object identity (a free is remote with probability
``remote_free_prob``); no sheaves/barn (the ~6.18 design); empty slabs are never returned to the page
allocator; list_lock contention is modelled as waiting for the lock's previous holder only.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.config import LIMIT_LATENCY_NS, cost_knob, knob, validate
from memsched.sim.engine import Engine

__all__ = ["MAX_OBJS_PER_PAGE", "Slub", "SlubConfig"]

#: ``MAX_OBJS_PER_PAGE`` (mm/slub.c, 6.x): ``slab->objects`` is a 15-bit field.
MAX_OBJS_PER_PAGE = 32767
#: ``cpu_partial_slabs`` is an ``unsigned int`` (struct kmem_cache, 5.16+), derived from the sysfs ``cpu_partial``
#: that ``cpu_partial_store()`` reads with ``kstrtouint()``.
UINT_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class SlubConfig:
    objects_per_slab: int = knob(
        32, "objects per slab (e.g. kmalloc-128 on a 4 KiB slab)", min=1, max=MAX_OBJS_PER_PAGE, limit=True
    )
    cpu_partial: bool = knob(True, "CONFIG_SLUB_CPU_PARTIAL (default y on SMP; Kconfig says n for realtime)")
    cpu_partial_slabs: int = knob(
        4, "slabs a CPU keeps on its partial list before flushing (s->cpu_partial_slabs)",
        min=1, max=UINT_MAX, limit=True,
    )
    fast_ns: int = cost_knob(5, "fast-path alloc or free: half of 10.554 ns per pair (Brouer, i7-4790K)")
    cpu_partial_ns: int = cost_knob(150, "refill from / put to the per-CPU partial list (assumed, 100s of ns)")
    node_partial_ns: int = cost_knob(400, "take a slab from the node list incl. list_lock (assumed)")
    list_lock_hold_ns: int = cost_knob(250, "list_lock hold time per operation, for contention (assumed)")
    new_slab_ns: int = cost_knob(2_000, "new slab from the page allocator's per-CPU lists (assumed, ~µs)")
    reclaim_prob: float = knob(
        0.0, "probability that a new slab needs reclaim/compaction (assumed)", min=0.0, max=1.0
    )
    reclaim_mean_ns: int = knob(
        200_000, "mean cost of that slow page allocation, exponential (assumed)",
        min=0, max=LIMIT_LATENCY_NS, limit=True,
    )
    remote_free_prob: float = knob(
        0.5, "fraction of frees to a slab other than the CPU's slab (assumed)", min=0.0, max=1.0
    )

    def __post_init__(self) -> None:
        validate(self)


class _Cache:
    __slots__ = ("cpu_free", "cpu_partial", "node_partial", "stats")

    def __init__(self, nr_cpus: int) -> None:
        self.cpu_free = [0] * nr_cpus
        self.cpu_partial: list[list[int]] = [[] for _ in range(nr_cpus)]
        self.node_partial: list[int] = []
        self.stats = {"fast": 0, "cpu_partial": 0, "node_partial": 0, "new_slab": 0, "reclaim": 0, "flush": 0}


class Slub:
    """The SLUB caches of one machine; :meth:`op` returns the cost of an alloc/free burst at ``engine.now``."""

    def __init__(self, nr_cpus: int, config: SlubConfig, engine: Engine) -> None:
        self.cfg = config
        self.nr_cpus = nr_cpus
        self.engine = engine
        self.rng = engine.rng("slub")
        self.caches: dict[str, _Cache] = {}
        self.list_lock_free_at = 0

    def op(self, cpu: int, cache: str, n: int, alloc: bool) -> tuple[int, bool]:
        """Cost (ns) of ``n`` allocations or frees on ``cpu``, and whether a slow path was taken."""
        c = self.caches.get(cache)
        if c is None:
            c = self.caches[cache] = _Cache(self.nr_cpus)
        cost = 0
        slow = False
        for _ in range(n):
            if alloc:
                dc, s = self._alloc(c, cpu)
            else:
                dc, s = self._free(c, cpu)
            cost += dc
            slow = slow or s
        return cost, slow

    def _locked(self, hold: int) -> int:
        """Take ``list_lock`` now: waiting time for the previous holder, then hold it."""
        now = self.engine.now
        wait = max(0, self.list_lock_free_at - now)
        self.list_lock_free_at = now + wait + hold
        return wait

    def _alloc(self, c: _Cache, cpu: int) -> tuple[int, bool]:
        cfg = self.cfg
        if c.cpu_free[cpu] > 0:
            c.cpu_free[cpu] -= 1
            c.stats["fast"] += 1
            return cfg.fast_ns, False
        if cfg.cpu_partial and c.cpu_partial[cpu]:
            c.cpu_free[cpu] = c.cpu_partial[cpu].pop() - 1
            c.stats["cpu_partial"] += 1
            return cfg.cpu_partial_ns, True
        if c.node_partial:
            wait = self._locked(cfg.list_lock_hold_ns)
            c.cpu_free[cpu] = c.node_partial.pop() - 1
            c.stats["node_partial"] += 1
            return cfg.node_partial_ns + wait, True
        c.stats["new_slab"] += 1
        cost = cfg.new_slab_ns
        if cfg.reclaim_prob and self.rng.random() < cfg.reclaim_prob:
            c.stats["reclaim"] += 1
            cost += int(self.rng.exponential(cfg.reclaim_mean_ns))
        c.cpu_free[cpu] = cfg.objects_per_slab - 1
        return cost, True

    def _free(self, c: _Cache, cpu: int) -> tuple[int, bool]:
        cfg = self.cfg
        local = cfg.remote_free_prob == 0.0 or self.rng.random() >= cfg.remote_free_prob
        if local and c.cpu_free[cpu] < cfg.objects_per_slab:
            c.cpu_free[cpu] += 1
            c.stats["fast"] += 1
            return cfg.fast_ns, False
        if cfg.cpu_partial:
            part = c.cpu_partial[cpu]
            if part and part[-1] < cfg.objects_per_slab:
                part[-1] += 1
            else:
                part.append(1)
            if len(part) <= cfg.cpu_partial_slabs:
                return cfg.cpu_partial_ns, False
            # put_cpu_partial() overflow: unfreeze every slab onto the node list under list_lock
            c.stats["flush"] += 1
            wait = self._locked(cfg.list_lock_hold_ns * len(part))
            c.node_partial.extend(part)
            part.clear()
            return cfg.cpu_partial_ns + cfg.node_partial_ns + wait, True
        wait = self._locked(cfg.list_lock_hold_ns)
        if c.node_partial and c.node_partial[-1] < cfg.objects_per_slab:
            c.node_partial[-1] += 1
        else:
            c.node_partial.append(1)
        return cfg.node_partial_ns + wait, True

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: dict(c.stats) for name, c in sorted(self.caches.items())}
