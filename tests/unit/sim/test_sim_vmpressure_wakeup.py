"""When the vmpressure work item runs: at once when its CPU's reclaimer sleeps, else by the scheduler's wakeup
rule (CFS: the long-sleeping kworker preempts at once; EEVDF: when the reclaimer's deadline has passed, at the
wakeup or at the first tick after it)."""

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
