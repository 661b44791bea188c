"""The memcg charge path per kernel version: its retry loop, its OOM path and the dying task's exit, counted
in the critical windows vmpressure_prio() forces on the way, and delivered once each."""

from __future__ import annotations

import pytest

from helpers.pressure_programs import allocator
from memsched.sim.mm.memcontrol import Charge, MemcgTree, charge
from memsched.sim.mm.version import KERNELS
from memsched.uapi.pressure import MemcgLevel
from memsched.units import MIB, s

#: (reclaim calls before the OOM kill, after it, forced windows per call). 3.10: mem_cgroup_reclaim() calls
#: try_to_free_mem_cgroup_pages() twice per attempt, for 5 attempts and the one that invokes the OOM killer;
#: the dying task then bypasses the limit. 5.10 and 6.18: the first call, the drain retry and 16 retries
#: before the killer; 5.10 then forces the dying task's charge through; 6.18 resets its retries after the
#: kill (passed_oom) and gives up only after one more call and 16 retries; 6.11+ sweeps the priorities twice
#: per fruitless call (memcg_full_walk).
RULES = {"3.10": (12, 0, 4), "5.10": (18, 0, 4), "6.18": (18, 17, 8)}


def _listen(r, memcg: str, level: str):  # type: ignore[no-untyped-def]
    efd = r.memcgs.eventfd(f"{memcg}:{level}")
    plf = r.memcgs.open_pressure_level(memcg)
    r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} {level}")
    return efd


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_critical_windows_before_the_oom_kill_follow_the_kernel(pressure_machine, kernel: str) -> None:  # type: ignore[no-untyped-def]
    """An anonymous allocator without swap in a 16 MiB memcg: at the limit nothing is reclaimable, every
    reclaim call walks the priorities to 0 and forces a critical window at priorities 3, 2, 1 and 0. The
    number of windows before the kill, and after it until the task exits, is the version's retry rule."""
    m, r = pressure_machine(128, kernel=kernel)
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    box = r.memcgs.get("/box").id
    crit = _listen(r, "/box", "critical")
    task = allocator(m, 32, name="grower", think_ms=4)
    r.memcgs.attach(task.tgid, "/box")
    m.run(until=s(1))
    assert task.killed and [k.victim for k in r.oom.kills] == ["grower"]
    kill_t = r.oom.kills[0].t_ns
    windows = [w for w in r.vmpressure.samples if w.flavour == "mainline" and w.memcg == box]
    before, after, per_call = RULES[kernel]
    assert r.memcgs.memcgs[box].events["oom_kill"] == 1
    assert crit.signals == len(windows)  # each snapshot reached the listener once
    assert all(w.level == MemcgLevel.CRITICAL and w.reclaimed == 0 for w in windows)
    if not KERNELS[kernel].eevdf:
        # CFS: the woken kworker preempts the reclaimer at once, so each window is a snapshot of its own.
        forced = [w for w in windows if (w.scanned, w.reclaimed) == (512, 0)]
        assert len(forced) == len(windows)
        assert sum(w.t_ns <= kill_t for w in forced) == before * per_call
        assert sum(w.t_ns > kill_t for w in forced) == after * per_call
        assert all(w.t_ns <= task.exit_ns for w in forced)
    else:
        # EEVDF: the reclaimer keeps its CPU until its deadline passes at a tick, and the windows filled
        # meanwhile merge; the windows computed are still the retry rule's.
        assert sum(w.scanned for w in windows) == (before + after) * per_call * 512
        assert len(windows) < (before + after) * per_call // 10


class _Ops:
    """A charge path's world with nothing reclaimable and an OOM killer that picks a given victim."""

    def __init__(self, tree: MemcgTree, victim: str) -> None:
        self.tree = tree
        self.victim = victim
        self.calls: list[str] = []

    def reclaim(self, memcg: int, nr_pages: int, at_ns: float) -> tuple[int, float]:
        self.calls.append("reclaim")
        return 0, 1000.0

    def oom(self, memcg: int, at_ns: float) -> str:
        self.calls.append("oom")
        if self.victim == "other":
            self.tree.charge(memcg, -8)  # the other process's memory goes
        return self.victim


@pytest.mark.parametrize(
    ("kernel", "victim", "ok", "sequence"),
    [
        ("6.18", "current", False, ["reclaim"] * 18 + ["oom"] + ["reclaim"] * 17),
        ("6.18", "none", False, ["reclaim"] * 18 + ["oom"]),
        ("6.18", "other", True, ["reclaim"] * 18 + ["oom"]),
        ("5.10", "current", False, ["reclaim"] * 18 + ["oom"]),
        ("5.10", "none", True, ["reclaim"] * 18 + ["oom"]),  # OOM_FAILED: forced over the limit
        ("3.10", "current", False, ["reclaim"] * 12 + ["oom"]),
        ("3.10", "other", True, ["reclaim"] * 12 + ["oom"]),
    ],
)
def test_charge_loop_per_version(pressure_machine, kernel: str, victim: str, ok: bool, sequence: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The calls each version's charge loop makes for one page over a full memcg, and how it ends."""
    m, r = pressure_machine(64)
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 1 * MIB, m.page_size)
    box = r.memcgs.get("/box").id
    r.memcgs.charge(box, 256)
    ops = _Ops(r.memcgs, victim)
    got: Charge = charge(r.memcgs, box, 1, 1, KERNELS[kernel], ops)
    assert ops.calls == sequence
    assert got.ok is ok and got.dying is (victim == "current")
    assert got.reclaims == sequence.count("reclaim")
    assert int(r.memcgs.usage[box]) == (256 - 8 + 1 if victim == "other" else 256 + (1 if ok else 0))
