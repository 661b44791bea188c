"""Scheduling domains built from the topology, as ``kernel/sched/topology.c`` (3.7: kernel/sched/core.c)
builds them: SMT (hardware threads of a core), MC (the CPUs sharing a last-level cache, here a node), then
one NUMA level per distinct SLIT distance (``sched_init_numa()``: level ``k`` spans the nodes within the
``k``-th smallest distance of each node).

Each level of a CPU is a :class:`Domain`: its span and its groups (the child level's spans), with the
``imbalance_pct`` the kernel used for that level in 3.7 (SMT 110, MC 117 [sd_init's 125 for MC was lowered
to 117 in SD_MC_INIT], NUMA 125).

Deviations from the kernel: no SD_* flag word; which balancing a level takes part in is fixed in
``balance.py`` (every level balances on fork, wakeups stay within the LLC).
"""

from __future__ import annotations

from dataclasses import dataclass

from memsched.topology import Topology

__all__ = ["Domain", "build_domains"]


@dataclass(frozen=True, slots=True)
class Domain:
    level: str
    span: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]
    imbalance_pct: int


def build_domains(topo: Topology) -> list[list[Domain]]:
    """``build_domains(t)[cpu]``: the domains of ``cpu`` from the lowest level to the whole machine."""
    cpu_by_id = topo.cpus_by_id
    levels: list[tuple[str, int, dict[int, tuple[int, ...]]]] = []  # name, imbalance_pct, cpu -> span

    def span_of(pred: object) -> dict[int, tuple[int, ...]]:
        return {c.id: tuple(sorted(d.id for d in topo.cpus if pred(c, d))) for c in topo.cpus}  # type: ignore[operator]

    if topo.threads_per_core > 1:
        levels.append(("SMT", 110, span_of(lambda c, d: c.core == d.core)))
    levels.append(("MC", 117, span_of(lambda c, d: c.node == d.node)))
    for dist in sorted({int(x) for x in topo.distance.flatten()} - {10}):
        levels.append(
            (f"NUMA{dist}", 125, span_of(lambda c, d, dist=dist: topo.distance[c.node, d.node] <= dist))
        )
    out: list[list[Domain]] = []
    for cpu in sorted(cpu_by_id):
        doms: list[Domain] = []
        prev_span: tuple[int, ...] | None = None
        child_map: dict[int, tuple[int, ...]] | None = None
        for name, pct, spans in levels:
            span = spans[cpu]
            if span == prev_span:
                child_map = spans
                continue  # degenerate level (sd_degenerate): same span as the child
            groups: tuple[tuple[int, ...], ...]
            if child_map is None:
                groups = tuple((c,) for c in span)
            else:
                seen: list[tuple[int, ...]] = []
                for c in span:
                    g = child_map[c]
                    if g not in seen:
                        seen.append(g)
                groups = tuple(seen)
            doms.append(Domain(name, span, groups, pct))
            prev_span = span
            child_map = spans
        out.append(doms)
    return out
