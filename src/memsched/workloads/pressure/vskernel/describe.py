"""A workload described once for both sides (real kernel and simulator), and what one run of it produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memsched.units import NSEC_PER_SEC

__all__ = ["LEVELS", "Proc", "Trace", "Workload"]

LEVELS = ("low", "medium", "critical")


@dataclass(frozen=True)
class Proc:
    """One process of a workload."""

    name: str
    kind: str  # writer | reader | grower
    memcg: str = ""  # "" = the workload's cgroup, else a child of it
    size_mib: int | None = None  # writer/reader: file size; grower: None = until killed
    rate_mib_s: float | None = None  # None: as fast as it goes (the simulator takes the real median)
    after: str | None = None  # start when this process exits
    file: str | None = None  # reader: the writer whose file it reads
    hold_s: float = 0.0  # grower: keep what it has for this long, then exit


@dataclass(frozen=True)
class Workload:
    """Memory cgroups (the workload's, limited, and children of it with optional limits) and processes."""

    name: str
    description: str
    limit_mib: int
    procs: tuple[Proc, ...]
    children: tuple[tuple[str, int | None], ...] = ()


@dataclass
class Trace:
    """What one run (real or simulated) produced, in ns from the run's start.

    ``signals`` are the listener's: on the v1 side (``mode="v1"``) the cumulative vmpressure eventfds (a
    critical window signals all three levels), on the v2 side the PSI triggers (``medium`` = some, ``critical``
    = full, as :class:`~memsched.workloads.pressure.scenario.Scenario`'s ``[psi]`` names them). ``psi`` samples
    the cumulative stall of the workload's cgroup (``some``/``full`` totals, us); ``counters`` samples its memcg
    event counters (v2 ``memory.events``: ``low high max oom oom_kill``; v1: ``failcnt`` and ``oom_kill``)."""

    procs: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # name -> (start, exit, killed)
    signals: list[tuple[int, str, int]] = field(default_factory=list)
    oom_kills: int = 0
    mode: str = "v1"
    psi: list[tuple[int, int, int]] = field(default_factory=list)  # (t, some us, full us)
    counters: list[tuple[int, dict[str, int]]] = field(default_factory=list)

    def rates(self, w: Workload) -> dict[str, float]:
        """MiB/s of each sized process over its life."""
        out = {}
        for p in w.procs:
            if p.size_mib is not None and p.name in self.procs:
                t0, t1, _ = self.procs[p.name]
                out[p.name] = p.size_mib / max((t1 - t0) / NSEC_PER_SEC, 1e-6)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trace:
        """A trace saved with ``dataclasses.asdict`` (files of round 1 have no mode, psi or counters)."""
        t = cls(oom_kills=int(d["oom_kills"]), mode=str(d.get("mode", "v1")))
        t.procs = {str(k): (int(v[0]), int(v[1]), bool(v[2])) for k, v in d["procs"].items()}
        t.signals = [(int(a), str(b), int(c)) for a, b, c in d["signals"]]
        t.psi = [(int(a), int(b), int(c)) for a, b, c in d.get("psi", [])]
        t.counters = [(int(a), {str(k): int(v) for k, v in c.items()}) for a, c in d.get("counters", [])]
        return t
