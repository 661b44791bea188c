"""Each vmpressure window is delivered exactly once — also when the reclaim that filled it ends in an OOM kill
of the last running task, and whatever runs or flushes afterwards.

The kernel's work item (``vmpressure_work_fn()``, mm/vmpressure.c) takes one snapshot and signals each
listener on the way to the root at most once for it. So for every listener the number of signals is fixed by
the windows computed for its memcg and its ancestors-or-self, by the listener's level and mode; the test
derives that count from :attr:`SimVmpressure.samples` with the mode rules spelled out here, and checks that
the deliveries are exactly those, at exactly the windows' times.
"""

from __future__ import annotations

from collections import Counter

import pytest

from helpers.pressure_programs import allocator
from memsched.sim.fluid.machine import FluidMachine
from memsched.sim.fluid.task import Phase, Touch, Wait
from memsched.sim.mm.reclaim import Reclaim
from memsched.sim.mm.version import KERNELS
from memsched.uapi.pressure import MemcgLevel
from memsched.units import MIB, ms, s

#: (memcg, level, mode) of each listener.
LISTENERS = (
    ("/top/box", "low", "default"),
    ("/top/box", "medium", "local"),
    ("/top/box", "critical", "default"),
    ("/top", "low", "hierarchy"),
    ("/top", "low", "default"),
    ("/top", "critical", "local"),
)


def _writer(m: FluidMachine, r: Reclaim, total_mib: int) -> None:
    """Writes ``total_mib`` of page cache in 1 MiB calls (dirty-throttled), then exits: its cache stays."""
    mm = m.new_mm("writer")
    reg = mm.mmap(total_mib * MIB, "writer:io", header=0)
    r.map_file(mm, reg, file="data")
    prog: list[Phase] = []
    for i in range(total_mib):
        prog += [Touch(reg.sub(i * MIB, MIB), write=1.0), Wait(r.writeback.throttle)]
    m.spawn_process("writer", tuple(prog), mm=mm)


def _expected(windows: dict[str, list[int]], memcg: str, level: str, mode: str) -> int:
    """Signals a listener must get: per window of its memcg or a descendant, vmpressure_event()'s rules
    (``local``: only its own memcg's windows; ``default``: not when a listener below was signalled for the
    same window — here the box's own low/default listener always is; ``hierarchy``: always)."""
    want = MemcgLevel[level.upper()]
    n = 0
    for where, levels in windows.items():
        own = where == memcg
        below = where.startswith(memcg + "/")
        if not (own or below):
            continue
        if mode == "local" and not own:
            continue
        if mode == "default" and below:  # "/top/box" signalled its own low listener for every window
            continue
        n += sum(lv >= want for lv in levels)
    return n


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_each_window_is_delivered_exactly_once_through_an_oom_kill(pressure_machine, kernel: str) -> None:  # type: ignore[no-untyped-def]
    """A writer leaves 20 MiB of cache in a 24 MiB memcg and exits; an allocator then reclaims it and grows
    until the memcg OOM killer takes it — the last task, so the run ends in the middle of the stall's deferred
    vmpressure calls. Every window reaches each listener once, at the window's time, and nothing is delivered
    again by a later run or flush."""
    m, r = pressure_machine(256, kernel=kernel)
    r.memcgs.mkdir("/top")
    r.memcgs.mkdir("/top/box")
    r.memcgs.set_limit("/top/box", 24 * MIB, m.page_size)
    ids = {p: r.memcgs.get(p).id for p in ("/top", "/top/box")}
    efds = {}
    for memcg, level, mode in LISTENERS:
        efd = r.memcgs.eventfd(f"{memcg}:{level},{mode}")
        plf = r.memcgs.open_pressure_level(memcg)
        r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} {level},{mode}")
        efds[(memcg, level, mode)] = efd
    rfc = r.vmpressure.vmpressure_fd(name="rfc-watcher")

    _writer(m, r, 20)
    r.memcgs.attach(m.tasks[-1].tgid, "/top/box")
    m.run(until=s(1))
    assert m.tasks[-1].exit_ns is not None
    task = allocator(m, 48, name="grower", think_ms=2)
    r.memcgs.attach(task.tgid, "/top/box")
    m.run(until=s(3))

    assert task.killed and [k.victim for k in r.oom.kills] == ["grower"]
    kill_t = r.oom.kills[0].t_ns
    assert m.engine.now >= task.exit_ns  # the run ended after the victim exited, with no task left
    mainline = [w for w in r.vmpressure.samples if w.flavour == "mainline"]
    by_id = {v: k for k, v in ids.items()}
    windows: dict[str, list[int]] = {}
    for w in mainline:
        windows.setdefault(by_id.get(w.memcg, "/"), []).append(w.level)
    assert len(windows.get("/top/box", [])) >= 10
    assert {MemcgLevel.LOW, MemcgLevel.CRITICAL} <= set(windows["/top/box"])  # reclaimed cache, then nothing
    assert any(kill_t - ms(1) < w.t_ns <= task.exit_ns for w in mainline)  # of the stall that invoked the killer
    if KERNELS[kernel].charge_loop == "6.18":  # passed_oom: the dying task reclaims on until its retries end
        assert any(w.t_ns > kill_t for w in mainline)

    def snapshot() -> tuple[int, int, int]:
        return len(r.vmpressure.samples), len(r.vmpressure.deliveries), sum(e.signals for e in efds.values())

    for key, efd in efds.items():
        assert efd.signals == _expected(windows, *key), key
    # one delivery per (window, listener it fires), at the window's time
    got = Counter(t for t, design, _, _ in r.vmpressure.deliveries if design == "mainline")
    want = Counter({w.t_ns: 0 for w in mainline})
    for w in mainline:
        want[w.t_ns] += w.delivered
    assert got == +want
    assert sum(got.values()) == sum(e.signals for e in efds.values())
    # the RFC watcher's broadcasts: at most one per RFC window, never one without a window
    rfc_t = Counter(t for t, design, name, _ in r.vmpressure.deliveries if design == "rfc2012")
    rfc_windows = Counter(w.t_ns for w in r.vmpressure.samples if w.flavour == "rfc2012")
    assert not rfc_t - rfc_windows
    assert rfc is not None

    before = snapshot()
    r.vmpressure.flush()
    m.run(until=s(4))
    r.vmpressure.flush()
    assert snapshot() == before  # nothing is delivered twice, however often time moves on afterwards
