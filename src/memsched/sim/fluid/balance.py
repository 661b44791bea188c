"""Where SCHED_OTHER tasks run: fork/wakeup placement and load balancing over the scheduling domains.

Models ``kernel/sched/fair.c`` of Linux 3.7:

* **Fork placement** (``select_task_rq_fair`` with ``SD_BALANCE_FORK``): from the top domain down,
  ``find_idlest_group()`` picks the group with the lowest load per unit of CPU power, staying in the local
  group unless another is lighter by more than half of the level's ``imbalance_pct``; then
  ``find_idlest_cpu()`` picks the least loaded CPU (ties: the forking CPU, then the lowest id). New threads of
  one process therefore spread node by node, then core by core, then onto SMT siblings.
* **Wakeup placement** (``select_task_rq_fair`` with ``SD_BALANCE_WAKE``): when the waker's CPU is known
  (a wake-up from a kernel lock), ``wake_affine()`` decides whether to pull the task towards the waker's CPU:
  with ``this_load`` the waker CPU's load and ``load`` the previous CPU's, it is balanced when
  ``100 * (this_load + weight) <= (100 + (imbalance_pct - 100) / 2) * load`` (``this_load`` 0 always is), and
  the pull also happens when ``this_load <= load`` and ``this_load + load <= `` the waker CPU's load per task
  (3.7; the NUMA levels carry ``SD_WAKE_AFFINE`` up to ``REMOTE_DISTANCE``, ``sd_local_flags()``). Then
  ``select_idle_sibling``: the target if idle (or the previous CPU if it is the target and idle), else an idle
  CPU of a fully idle core in the target's LLC, else any idle CPU there, else the target.
* **Load balancing** (``load_balance`` from the idle and periodic paths): an idle CPU walks its domains bottom
  up and pulls one task from the busiest *overloaded* group (more runnable tasks than its capacity in cores,
  ``sgs->group_capacity``), provided its own group has spare capacity; this also splits two tasks sharing an
  SMT core when a whole core is idle (the kernel's active balancing). Busy CPUs even out load when one holds
  at least two tasks' weight more than another in the same domain, by more than ``imbalance_pct``.

The fluid machine has no time slices, so balancing runs whenever the set of runnable tasks changes (wakeup,
block, exit, fork, affinity change) instead of on every tick; between such changes the state is static and
the kernel's periodic balancer would reach the same fixed point.

Deviations from the kernel: loads are instantaneous sums of weights (no ``cpu_load[]`` decay indexes); no
cache-hot check (``task_hot``). NUMA policies veto or steer moves through the ``score`` callback: ``None``
forbids a move (affinity, ``task_numa_hot()``), and among allowed candidates the highest score moves first
(numa/core's preference order, moving off-home-node tasks first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsched.sim.fluid.domains import Domain, build_domains
from memsched.topology import Topology

__all__ = ["Balancer", "Move"]

SCHED_POWER_SCALE = 1024
#: ``REMOTE_DISTANCE`` (include/linux/topology.h): NUMA levels up to this distance get ``SD_WAKE_AFFINE``.
REMOTE_DISTANCE = 20
#: ``sd->smt_gain`` (3.7): an SMT core is worth 1178/1024 of a CPU, split among its threads.
SMT_GAIN = 1178

#: (task id, src cpu, dst cpu, dst idle) -> None (not allowed) or a preference (higher moves first).
Score = Callable[[int, int, int, bool], float | None]


@dataclass(frozen=True, slots=True)
class Move:
    task: int
    src: int
    dst: int


@dataclass(frozen=True, slots=True)
class _Place:
    """A CPU in one of its domains: the domain's groups and their capacities, the index of the CPU's own group
    among them, and the indices of the others in the kernel's order (the ring after the CPU's own group)."""

    groups: tuple[tuple[int, ...], ...]
    capacity: tuple[int, ...]
    local: int
    others: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _GroupCounts:
    """A domain's groups in one balancing pass, by index: runnable tasks, and the excess of the groups above their
    capacity (the candidates of :meth:`Balancer._pull_from_overloaded`)."""

    nr: list[int]
    excess: dict[int, float]


class Balancer:
    """Placement and balancing decisions over per-CPU runqueues of task ids."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.nr_cpus = topology.nr_cpus
        self.domains = build_domains(topology)
        tpc = {c.core: 0 for c in topology.cpus}
        for c in topology.cpus:
            tpc[c.core] += 1
        self.power = np.zeros(self.nr_cpus)
        for c in topology.cpus:
            self.power[c.id] = SMT_GAIN / tpc[c.core] if tpc[c.core] > 1 else SCHED_POWER_SCALE
        self.core_of = topology.cpu_core()
        self.node_of = topology.cpu_node()
        self.llc_span = [next(d.span for d in doms if d.level == "MC") for doms in self.domains]
        self._spans: dict[int, list[int]] = {}
        self._span_lists: dict[tuple[int, ...], list[int]] = {}  # one list per distinct span (CPUs share spans)
        self._caps: dict[tuple[int, ...], int] = {}
        self._places: dict[tuple[int, int], _Place] = {}
        self._canon: dict[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]] = {}
        self.core_siblings = {c.id: topology.siblings(c.id) for c in topology.cpus}
        #: The smallest ``imbalance_pct`` of any domain (:meth:`balance`'s test of busy CPUs).
        self._min_pct = min((d.imbalance_pct for doms in self.domains for d in doms), default=100)
        self._skip_busy = True  # (tests turn it off to hold the skip to the full search)

    # ---- group statistics ------------------------------------------------------------------------------
    def _capacity(self, cpus: Sequence[int]) -> int:
        """``DIV_ROUND_CLOSEST(group power, SCHED_POWER_SCALE)``, at least 1: cores, not threads (per group,
        computed once: the powers do not change)."""
        key = tuple(cpus)
        cap = self._caps.get(key)
        if cap is None:
            cap = self._caps[key] = max(1, round(float(self.power[list(cpus)].sum()) / SCHED_POWER_SCALE))
        return cap

    def _avg_load(self, cpus: Sequence[int], load: npt.NDArray[np.float64]) -> float:
        idx = list(cpus)
        return float(load[idx].sum()) * SCHED_POWER_SCALE / float(self.power[idx].sum())

    # ---- placement ---------------------------------------------------------------------------------------
    def select_fork_cpu(self, this_cpu: int, allowed: npt.NDArray[np.bool_], load: npt.NDArray[np.float64]) -> int:
        """``select_task_rq_fair(SD_BALANCE_FORK)``: the CPU a new task starts on."""
        cpu = this_cpu
        doms = self.domains[cpu]
        level = len(doms) - 1
        while level >= 0:
            sd = doms[level]
            group = self._find_idlest_group(sd, cpu, allowed, load)
            if group is None:
                level -= 1
                continue
            new_cpu = self._find_idlest_cpu(group, cpu, allowed, load)
            if new_cpu == cpu:
                level -= 1
                continue
            weight = len(sd.span)
            cpu = new_cpu
            doms = self.domains[cpu]
            level = max((i for i, d in enumerate(doms) if len(d.span) < weight), default=-1)
        if not allowed[cpu]:
            cpu = int(allowed.nonzero()[0][0])
        return cpu

    def _find_idlest_group(
        self, sd: Domain, this_cpu: int, allowed: npt.NDArray[np.bool_], load: npt.NDArray[np.float64]
    ) -> tuple[int, ...] | None:
        imbalance = 100 + (sd.imbalance_pct - 100) // 2
        this_load = 0.0
        idlest: tuple[int, ...] | None = None
        min_load = float("inf")
        place = self._place_of(sd, this_cpu)
        for i in (place.local, *place.others):
            group = place.groups[i]
            if not allowed[list(group)].any():
                continue
            avg = self._avg_load(group, load)
            if i == place.local:
                this_load = avg
            elif avg < min_load:
                min_load = avg
                idlest = group
        if idlest is None or 100 * this_load < imbalance * min_load:
            return None
        return idlest

    def _find_idlest_cpu(
        self, group: tuple[int, ...], this_cpu: int, allowed: npt.NDArray[np.bool_], load: npt.NDArray[np.float64]
    ) -> int:
        best, best_load = -1, float("inf")
        for cpu in group:
            if not allowed[cpu]:
                continue
            cpu_load = float(load[cpu])
            if cpu_load < best_load or (cpu_load == best_load and cpu == this_cpu):
                best, best_load = cpu, cpu_load
        return best

    def _place_of(self, sd: Domain, cpu: int) -> _Place:
        """``cpu`` in ``sd``: its groups (one tuple object for all the domains with equal groups) and their
        capacities, the index of its own group, and of the others in the kernel's iteration order (the local
        group first, then the ring after it), made once per domain and CPU."""
        place = self._places.get((id(sd), cpu))
        if place is not None:
            return place
        groups = self._canon.setdefault(sd.groups, sd.groups)
        local = next(i for i, g in enumerate(groups) if cpu in g)
        n = len(groups)
        caps = tuple(self._capacity(g) for g in groups)
        place = self._places[(id(sd), cpu)] = _Place(groups, caps, local, tuple((local + k) % n for k in range(1, n)))
        return place

    def wake_affine(
        self, waker: int, prev: int, load: npt.NDArray[np.float64], nr: npt.NDArray[np.int64], weight: float
    ) -> bool:
        """``wake_affine()`` (kernel/sched/fair.c, 3.7) with instantaneous loads, not sync, no cgroups."""
        sd = next((d for d in self.domains[waker] if prev in d.span), None)
        if sd is None or self.topology.distance[self.node_of[waker], self.node_of[prev]] > REMOTE_DISTANCE:
            return False  # no SD_WAKE_AFFINE domain spans both CPUs
        this_load, prev_load = float(load[waker]), float(load[prev])
        balanced = True
        if this_load > 0:
            this_eff = 100 * self.power[prev] * (this_load + weight)
            prev_eff = (100 + (sd.imbalance_pct - 100) // 2) * self.power[waker] * prev_load
            balanced = this_eff <= prev_eff
        per_task = this_load / nr[waker] if nr[waker] else 0.0
        return balanced or (this_load <= prev_load and this_load + prev_load <= per_task)

    def select_wake_cpu(
        self,
        prev_cpu: int,
        allowed: npt.NDArray[np.bool_],
        nr_running: npt.NDArray[np.int64],
        *,
        waker: int | None = None,
        load: npt.NDArray[np.float64] | None = None,
        weight: float = 1024.0,
    ) -> int:
        """``select_idle_sibling()`` around the previous CPU, or around the waker's CPU when ``waker`` is given
        and ``wake_affine()`` pulls the task there."""
        if (
            waker is not None
            and load is not None
            and waker != prev_cpu
            and allowed[waker]
            and self.wake_affine(waker, prev_cpu, load, nr_running, weight)
        ):
            return self._idle_sibling(waker, prev_cpu, allowed, nr_running)
        if allowed[prev_cpu] and nr_running[prev_cpu] == 0:
            return prev_cpu
        llc = [c for c in self.llc_span[prev_cpu] if allowed[c]]
        for cpu in llc:  # an idle CPU whose whole core is idle
            if all(nr_running[s] == 0 for s in self.core_siblings[cpu]):
                return cpu
        for cpu in llc:
            if nr_running[cpu] == 0:
                return cpu
        if allowed[prev_cpu]:
            return prev_cpu
        candidates = allowed.nonzero()[0]
        return int(candidates[np.argmin(nr_running[candidates])])

    def _idle_sibling(
        self, target: int, prev: int, allowed: npt.NDArray[np.bool_], nr_running: npt.NDArray[np.int64]
    ) -> int:
        """``select_idle_sibling(p, target)`` (3.7): the target if idle, else an idle CPU of a fully idle core of
        the target's LLC, else any idle CPU there, else the target."""
        if nr_running[target] == 0:
            return target
        llc = [c for c in self.llc_span[target] if allowed[c]]
        for cpu in llc:
            if all(nr_running[s] == 0 for s in self.core_siblings[cpu]):
                return cpu
        for cpu in llc:
            if nr_running[cpu] == 0:
                return cpu
        return target

    # ---- balancing ---------------------------------------------------------------------------------------
    def balance(
        self,
        rq: Sequence[list[int]],
        weight: Callable[[int], float],
        score: Score,
    ) -> list[Move]:
        """Moves that bring the runqueues ``rq`` (task ids per CPU, in enqueue order) to balance.

        ``rq`` is updated in place as moves are decided; the caller applies the moves to its tasks.
        """
        moves: list[Move] = []
        limit = 4 * (sum(len(q) for q in rq) + 1) * max(len(d) for d in self.domains)
        changed = True
        while changed and len(moves) < limit:
            changed = False
            # plain lists: the per-CPU reads below are scalar (the same float64 values as an array's)
            weights = [[weight(t) for t in q] for q in rq]
            load = [float(sum(w)) for w in weights]
            nr = [len(q) for q in rq]
            busiest: dict[int, int] = {}  # a span's busiest CPU in this pass (the loads are fixed until a move)
            counts: dict[int, _GroupCounts] = {}  # the groups' counts of a domain in this pass (fixed until a move)
            # A busy CPU evens out (_even_out) only with a CPU ``src`` of one of its spans whose load is above its
            # own times that domain's imbalance_pct / 100, and only by taking a task lighter than the loads'
            # difference. The first cannot hold when even the busiest CPU of all is not above its load times the
            # smallest imbalance_pct; the second, when the busiest is not above it by more than the lightest
            # queued task (the products and the difference round monotonically; loads and weights are >= 0).
            # Either way _balance_cpu would find no move for it. (That is every busy CPU, most of the time.)
            top = max(load)
            top_pct = top * 100
            min_pct = self._min_pct
            min_w = min((min(w) for w in weights if w), default=0.0)
            skip = self._skip_busy
            for cpu in range(self.nr_cpus):
                if skip and nr[cpu] and (top_pct <= load[cpu] * min_pct or top - load[cpu] <= min_w):
                    continue
                move = self._balance_cpu(cpu, rq, nr, load, weight, score, busiest, counts)
                if move is not None:
                    rq[move.src].remove(move.task)
                    rq[move.dst].append(move.task)
                    moves.append(move)
                    changed = True
                    break
        return moves

    def _balance_cpu(
        self,
        cpu: int,
        rq: Sequence[list[int]],
        nr: list[int],
        load: list[float],
        weight: Callable[[int], float],
        score: Score,
        busiest: dict[int, int],
        counts: dict[int, _GroupCounts],
    ) -> Move | None:
        for sd in self.domains[cpu]:
            if nr[cpu] == 0:
                place = self._place_of(sd, cpu)
                groups = place.groups
                c = counts.get(id(groups))
                if c is None:
                    c = counts[id(groups)] = _group_counts(place, nr)
                local = place.local
                if c.nr[local] >= place.capacity[local] and len(groups[local]) > 1:
                    continue
                move = self._pull_from_overloaded(cpu, place, rq, nr, score, c.excess)
                if move is not None:
                    return move
            else:
                move = self._even_out(cpu, sd, rq, load, weight, score, busiest)
                if move is not None:
                    return move
        return None

    def _pull_from_overloaded(
        self,
        cpu: int,
        place: _Place,
        rq: Sequence[list[int]],
        nr: list[int],
        score: Score,
        excess: dict[int, float],
    ) -> Move | None:
        """The idle ``cpu`` pulls a task from the busiest overloaded group of a domain (``place``: the groups and
        their order from the CPU's own); ``excess``: of each overloaded group, by index (:meth:`_group_counts`)."""
        if not excess:  # (no group of the domain is overloaded: the usual case)
            return None
        best: tuple[float, int] | None = None
        for i in place.others:  # (the kernel's order: the first of equal excesses wins)
            e = excess.get(i)
            if e is not None and (best is None or e > best[0]):
                best = (e, i)
        if best is None:
            return None
        # Busiest CPU of the busiest group first; a lone running task may be pushed (active balance).
        for src in sorted(place.groups[best[1]], key=lambda c: (-nr[c], c)):
            move = _best_candidate(rq[src], src, cpu, True, score)
            if move is not None:
                return move
        return None

    def _span_list(self, sd: Domain) -> list[int]:
        """``sd``'s CPUs in order: the same list object for every CPU's domain of that span."""
        span = self._spans.get(id(sd))
        if span is None:
            span = self._spans[id(sd)] = self._span_lists.setdefault(sd.span, sorted(sd.span))
        return span

    def _even_out(
        self,
        cpu: int,
        sd: Domain,
        rq: Sequence[list[int]],
        load: list[float],
        weight: Callable[[int], float],
        score: Score,
        busiest: dict[int, int],
    ) -> Move | None:
        # the busiest CPU, the lowest id among equals (the span is sorted); the same for every CPU whose domain
        # has this span until a move changes the loads, so found once per span and pass
        span = self._span_list(sd)
        src = busiest.get(id(span), -1)
        if src < 0:
            src = busiest[id(span)] = max(span, key=load.__getitem__)
        if src == cpu or load[src] * 100 <= load[cpu] * sd.imbalance_pct:
            return None
        # Move only if it strictly narrows the gap (never just swaps which CPU is heavier).
        light = [t for t in rq[src] if load[src] - load[cpu] > weight(t)]
        return _best_candidate(light, src, cpu, False, score)


def _group_counts(place: _Place, nr: list[int]) -> _GroupCounts:
    """The runnable tasks (``nr`` per CPU) of each group of ``place``, and the excess ``(tasks - capacity) /
    capacity`` of those above their capacity (``sgs->group_capacity``)."""
    g_nr = [sum(nr[c] for c in g) for g in place.groups]
    excess = {i: (n - cap) / cap for i, (n, cap) in enumerate(zip(g_nr, place.capacity, strict=True)) if n > cap}
    return _GroupCounts(g_nr, excess)


def _best_candidate(tasks: Sequence[int], src: int, dst: int, dst_idle: bool, score: Score) -> Move | None:
    """The allowed task with the highest score; ties go to the most recently queued (the kernel's tail)."""
    best: tuple[float, int] | None = None
    for task in reversed(tasks):
        s = score(task, src, dst, dst_idle)
        if s is not None and (best is None or s > best[0]):
            best = (s, task)
    return Move(best[1], src, dst) if best is not None else None
