"""When the vmpressure work item runs: at once when its CPU's reclaimer sleeps, else by the scheduler's wakeup
rule (CFS: the long-sleeping kworker preempts at once; EEVDF: with positive lag at once, else when the
reclaimer's deadline has passed, at the wakeup or at the first tick after it; the kworker leaves each run with
its old lag plus half of what the reclaimer ran since the wakeup minus its own run)."""

from __future__ import annotations

from memsched.sim.mm.vmpressure import VmpressureOp, base_slice_ns
from memsched.units import MIB

MS = 1_000_000


def _listen(r, memcg: str) -> None:  # type: ignore[no-untyped-def]
    efd = r.memcgs.eventfd("ear")
    plf = r.memcgs.open_pressure_level(memcg)
    r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} low")


def test_base_slice_scales_with_the_log_of_the_cpus() -> None:
    """6.15+: 0.70 ms x (1 + ilog2(min(CPUs, 8)))."""
    assert [base_slice_ns(n) for n in (1, 2, 3, 4, 8, 64)] == [
        700_000, 1_400_000, 1_400_000, 2_100_000, 2_800_000, 2_800_000,
    ]


def test_cfs_kworker_preempts_at_once(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    _, r = pressure_machine(64, kernel="5.10")
    vmp = r.vmpressure
    assert not vmp.eevdf
    assert vmp.work_time(5 * MS + 123, 0) == 5 * MS + 123 + vmp.workqueue_latency_ns


def test_eevdf_kworker_waits_for_the_reclaimers_deadline(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A reclaimer that has had its CPU for long has its deadline renewed at every 4 ms tick (the slice, 2.1 ms
    on four CPUs, is shorter): woken before the deadline the kworker waits for the next tick; after it, it
    runs at once. After the reclaimer slept it has a full slice again."""
    m, r = pressure_machine(64, kernel="6.18")
    vmp = r.vmpressure
    lat = vmp.workqueue_latency_ns
    assert vmp.eevdf and vmp.tick_ns == 4 * MS and vmp.slice_ns == base_slice_ns(4) == 2_100_000
    assert vmp.work_time(8 * MS + 500_000, 0) == 12 * MS + lat  # deadline 10.1 ms: not passed yet
    assert vmp.work_time(10 * MS + 500_000, 0) == 10 * MS + 500_000 + lat  # passed: preempted at the wakeup
    vmp.current_cpu = 0
    vmp.sleep(m.engine.now + 15 * MS, 300_000)  # asleep 15-15.3 ms: picked again at 15.3 ms
    vmp.current_cpu = -1
    m.engine.run(until=15 * MS + 1)
    assert vmp.work_time(16 * MS, 0) == 20 * MS + lat  # deadline 17.4 ms, first tick after it 20 ms
    assert vmp.work_time(16 * MS + 500_000, 1) == 20 * MS + lat  # another CPU: deadline renewed to 18.1 ms
    assert vmp.work_time(18 * MS + 500_000, 1) == 18 * MS + 500_000 + lat


def test_work_runs_when_its_cpus_reclaimer_sleeps(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A full window queues the work on CPU 0 at 1 ms; the reclaimer there sleeps at 1.2 ms, long before the
    next tick: the work runs then, once. A sleep on another CPU does not run it."""
    m, r = pressure_machine(64, kernel="6.18")
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    box = r.memcgs.get("/box").id
    _listen(r, "/box")
    vmp = r.vmpressure
    vmp.current_cpu = 0
    vmp.account(1 * MS, [VmpressureOp("tree", box, 512, 512)])
    vmp.current_cpu = 1
    vmp.sleep(1 * MS + 100_000, 50_000)
    vmp.current_cpu = 0
    vmp.sleep(1 * MS + 200_000, 50_000)
    vmp.current_cpu = -1
    m.engine.run(until=10 * MS)
    mine = [w for w in vmp.samples if w.flavour == "mainline" and w.memcg == box]
    assert [(w.t_ns, w.scanned, w.reclaimed) for w in mine] == [(1 * MS + 200_000, 512, 512)]
    assert [d[0] for d in vmp.deliveries if d[1] == "mainline"] == [1 * MS + 200_000]


def _window(m, r, vmp, t: int, box: int, cpu: int = 0) -> None:  # type: ignore[no-untyped-def]
    """One full window of ``box`` filled at ``t`` by the reclaimer on ``cpu``; the engine runs up to ``t``."""
    m.engine.run(until=t)
    vmp.current_cpu = cpu
    vmp.account(t, [VmpressureOp("tree", box, 512, 0)])
    vmp.current_cpu = -1


def _box(m, r) -> int:  # type: ignore[no-untyped-def]
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    _listen(r, "/box")
    return int(r.memcgs.get("/box").id)


def test_eevdf_kworker_that_waited_runs_after_every_later_window(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Zero lag at first: the window of 8.5 ms waits for the 12 ms tick (deadline 10.1 ms), and the kworker
    leaves that run with lag (3.5 ms + lat - run) / 2. Positive lag: the windows of 13 and 14 ms each run at
    once; each such run costs (run - lat) / 2 of lag, nothing when the two are equal."""
    m, r = pressure_machine(64, kernel="6.18")
    box = _box(m, r)
    vmp = r.vmpressure
    lat, run = vmp.workqueue_latency_ns, vmp.kworker_run_ns
    _window(m, r, vmp, 8 * MS + 500_000, box)
    _window(m, r, vmp, 13 * MS, box)
    _window(m, r, vmp, 14 * MS, box)
    m.engine.run(until=20 * MS)
    ran = [w.t_ns for w in vmp.samples if w.flavour == "mainline" and w.memcg == box]
    assert ran == [12 * MS + lat, 13 * MS + lat, 14 * MS + lat]
    waited = (12 * MS + lat - (8 * MS + 500_000) - run) // 2
    assert vmp._lag[0] == waited + 2 * ((lat - run) // 2)
    assert not vmp._lag.get(1)  # the other CPU's kworker never ran


def test_eevdf_kworker_lag_is_clamped_and_used_up(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """update_entity_lag() clamps to max(2 * slice, TICK_NSEC) (4.2 ms on four CPUs); a kworker whose runs cost more
    than the reclaimer's run before each switch uses its lag up and waits for a deadline again."""
    m, r = pressure_machine(64, kernel="6.18")
    box = _box(m, r)
    vmp = r.vmpressure
    vmp.kworker_run_ns = vmp.workqueue_latency_ns + 1_000_000  # 0.5 ms of lag per run at once
    vmp.current_cpu = 0
    vmp.sleep(m.engine.now + 1 * MS, 0)  # picked at 1 ms: deadline 3.1 ms, renewed at the 4 ms tick
    vmp.current_cpu = -1
    vmp._lag[0] = 10 * MS  # as if the kworker had waited very long: clamped when it next goes to sleep
    _window(m, r, vmp, 2 * MS, box)
    m.engine.run(until=3 * MS)
    limit = max(2 * vmp.slice_ns, vmp.tick_ns)
    assert limit == 4_200_000 and vmp._lag[0] == limit
    _window(m, r, vmp, 5 * MS, box)
    m.engine.run(until=6 * MS)
    assert vmp._lag[0] == limit - 500_000
    vmp._lag[0] = 400_000  # one more run at once leaves it at -0.1 ms: the next window waits
    _window(m, r, vmp, 7 * MS, box)
    m.engine.run(until=7 * MS + 100_000)
    assert vmp._lag[0] == -100_000
    assert vmp.work_time(7 * MS + 200_000, 0) > 7 * MS + 200_000 + vmp.workqueue_latency_ns


def test_two_work_items_on_one_cpu_run_in_one_kworker_run(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """The second memcg's window is queued while the first's kworker is still waiting for the tick: both run
    at that tick, in one kworker run (the reclaimer's run counts once, each item's run once)."""
    m, r = pressure_machine(64, kernel="6.18")
    box = _box(m, r)
    r.memcgs.mkdir("/other")
    r.memcgs.set_limit("/other", 16 * MIB, m.page_size)
    _listen(r, "/other")
    other = int(r.memcgs.get("/other").id)
    vmp = r.vmpressure
    lat, run = vmp.workqueue_latency_ns, vmp.kworker_run_ns
    _window(m, r, vmp, 8 * MS + 500_000, box)
    _window(m, r, vmp, 11 * MS, other)  # 11 ms is past the 10.1 ms deadline, but the kworker is already woken
    m.engine.run(until=20 * MS)
    ran = sorted((w.t_ns, w.memcg) for w in vmp.samples if w.flavour == "mainline" and w.memcg in (box, other))
    assert ran == [(12 * MS + lat, box), (12 * MS + lat, other)]
    assert vmp._lag[0] == (12 * MS + lat - (8 * MS + 500_000) - run) // 2 - run // 2
