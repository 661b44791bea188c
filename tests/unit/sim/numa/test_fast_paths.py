"""The hot path's shortcuts give exactly (bit for bit) what the generic numpy calls they replace give."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memsched.sim.fluid.memmodel import _progressive_fill
from memsched.sim.mm.migrate import distinct
from memsched.sim.numa.faults import _when, _wrap, first_touchers, median


def test_median_is_numpys_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3000):
        n = int(rng.integers(1, 40))
        x = rng.random(n) * 10.0 ** int(rng.integers(0, 12))
        want = np.float64(np.median(x)).tobytes()
        assert np.float64(median(x)).tobytes() == want
        assert np.float64(median(np.sort(x), is_sorted=True)).tobytes() == want


def test_distinct_is_unique() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        x = rng.integers(-3 if rng.random() < 0.1 else 0, 60, size=int(rng.integers(0, 30)))
        got, want = distinct(x), np.unique(x)
        assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_wrap_is_the_floor_remainder_inside_one_period() -> None:
    """``_wrap(x, n)`` is ``x % n`` bit for bit (sign of zero included) for every ``-n < x < n``, the edges too."""
    rng = np.random.default_rng(3)
    n = rng.uniform(1.0, 2.0**34, (50, 1))
    x = rng.uniform(-1.0, 1.0, (50, 400)) * n
    edges = np.hstack([np.nextafter(-n, 0), np.nextafter(n, 0), np.full_like(n, -0.0), np.zeros_like(n), -n / 3])
    x = np.hstack([x, edges])
    want, got = x % n, _wrap(x, n)
    assert got.tobytes() == want.tobytes()


def test_arrival_times_equal_the_floor_remainder_formula() -> None:
    """``_when`` (with ``_wrap``) equals ``delay + ((offset - cursor) % nbytes) / rate`` on covered pages, for
    sweeps over real regions (their page spans, cursors in ``[0, nbytes)``)."""
    from memsched.sim.mm.mm import Region

    rng = np.random.default_rng(4)
    for psz in (4096, 65536, 2 * 1024 * 1024):
        for _ in range(30):
            cols = []
            for tid in range(int(rng.integers(1, 30))):
                region = Region(0, int(rng.integers(0, 2**31)), int(rng.integers(1, 2**32)))
                p0, p1 = region.page_span(psz)
                cursor = float(rng.random() * region.nbytes) % region.nbytes
                rate, delay = rng.uniform(0.01, 8.0), rng.random() * 1e6
                cols.append((tid, region.start, region.nbytes, p0, p1, cursor, rate, delay))
            c = np.array(cols, dtype=np.float64)
            lo = int(c[:, 3].min())
            pages = np.unique(rng.integers(lo, int(c[:, 4].max()) + 3, 600)).astype(np.int64)
            rstart, nbytes, p0c, p1c, cursor_c, rate, delay = (c[:, k : k + 1] for k in range(1, 8))
            offset = np.maximum((pages * psz).astype(np.float64)[None, :], rstart) - rstart
            want = delay + ((offset - cursor_c) % nbytes) / rate
            cover = (pages[None, :] >= p0c) & (pages[None, :] < p1c)
            assert _when(pages, psz, c).tobytes() == np.where(cover, want, np.inf).tobytes()


def test_first_touchers_sampled_path_equals_every_pair() -> None:
    """Sampling every 32nd page (and the pages of ambiguous gaps) finds the same first sweep and time as
    evaluating every (sweep, page) pair, also when every sweep covers every page (tasks walking one whole
    buffer: no coverage masks are built then)."""
    rng = np.random.default_rng(2)
    psz = 4096
    for k in range(60):
        npages = 4000
        everywhere = k % 3 == 2
        pages = np.sort(rng.choice(npages, size=int(rng.integers(300, 1500)), replace=False)).astype(np.int64)
        sweeps = []
        for tid in range(int(rng.integers(2, 30))):
            p0 = 0 if everywhere else int(rng.integers(0, npages // 2))
            p1 = npages + 1 if everywhere else int(rng.integers(p0 + 1, npages + 1))
            start, nbytes = p0 * psz + int(rng.integers(0, psz)), (p1 - p0 - 1) * psz
            sweeps.append(
                (tid, start, max(nbytes, 1), p0, p1, float(rng.random() * nbytes), float(rng.random() * 4 + 0.1),
                 float(rng.random() * 1e5))
            )
        who, t = first_touchers(pages, psz, sweeps)
        when = _when(pages, psz, np.array(sweeps, dtype=np.float64))
        best: npt.NDArray[np.int64] = np.argmin(when, axis=0)
        t_all = when[best, np.arange(pages.shape[0])]
        assert t.tobytes() == t_all.tobytes()
        assert who.tolist() == np.where(np.isfinite(t_all), best, -1).tolist()


def _fill_reference(
    a: npt.NDArray[np.float64], cap: npt.NDArray[np.float64], demand: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Progressive filling as first written (row copies every round, the used columns as a sub-matrix), with
    its load summed row after row (the fixed order that replaced ``demand @ a``, see ``_weighted_rows``)."""
    n = a.shape[0]
    rate = np.zeros(n)
    remaining = cap.astype(np.float64).copy()
    active = demand > 0
    t = 0.0
    uses = a > 0
    while active.any():
        load = np.zeros(a.shape[1])
        for d, row in zip(demand[active], a[active], strict=True):
            load = load + d * row
        pos = load > 1e-12
        step = 1.0 - t
        if pos.any():
            step = min(step, float((remaining[pos] / load[pos]).min()))
        step = max(step, 0.0)
        rate[active] += step * demand[active]
        remaining -= step * load
        t += step
        if t >= 1.0 - 1e-12:
            break
        saturated = pos & (remaining <= 1e-9 * cap)
        frozen = active & uses[:, saturated].any(axis=1)
        if not frozen.any():
            break
        active &= ~frozen
    return rate


def test_progressive_fill_equals_its_first_form() -> None:
    """Including rounds that saturate several resources at once and rows that start frozen (zero demand)."""
    rng = np.random.default_rng(3)
    for k in range(500):
        n, r = int(rng.integers(1, 50)), int(rng.integers(2, 40))
        a = rng.random((n, r)) * (rng.random((n, r)) < 0.4)
        demand = rng.random(n) * (rng.random(n) < 0.9)
        cap = rng.random(r) * n * 0.3
        if k % 3 == 0:  # equal capacities and demands: ties, several columns saturating together
            a, cap, demand = np.round(a * 4) / 4, np.full(r, 1.0), np.where(demand > 0, 1.0, 0.0)
        assert _progressive_fill(a, cap, demand).tobytes() == _fill_reference(a, cap, demand).tobytes()


def test_stream_table_rows_equal_per_row_rows() -> None:
    """A phase's table row on node k (``MemModel.stream_table``, computed once per placement) is bit for bit
    the row ``stream_rows`` + ``row_base`` give a task of that phase running on node k, and ``solve_base`` of
    such rows equals ``solve`` of the per-row inputs: on every preset (links, routing, coherence resource)."""
    from memsched.sim.fluid.memmodel import MemModel
    from memsched.topology import list_presets, load_topology

    rng = np.random.default_rng(5)
    for name in list_presets():
        m = MemModel(load_topology(name))
        nr = m.nr_nodes
        for _ in range(60):
            frac = rng.random(nr) * (rng.random(nr) < 0.7) * 2.0**30
            if rng.random() < 0.1:
                frac[:] = 0.0  # touches nothing yet: streams locally
            write, cpb, scale = float(rng.random()), float(rng.random() * 0.01), float(rng.uniform(0.2, 1.0))
            den, base = m.stream_table(frac, np.full(nr, write), np.full(nr, cpb), np.full(nr, scale))
            n = int(rng.integers(1, 40))
            node = rng.integers(0, nr, n)
            share = rng.uniform(0.3, 1.0, n)
            rows = np.repeat(frac[None, :], n, axis=0)
            demand, reads, writes, core_ns = m.stream_rows(
                node, share, rows, np.full(n, write), np.full(n, cpb), np.full(n, scale)
            )
            assert (share / den[node]).tobytes() == demand.tobytes()
            assert base[node].tobytes() == m.row_base(node, reads, writes, core_ns).tobytes()
            core = rng.integers(0, 8, n)
            got = m.solve_base(core, share / den[node], base[node])
            want = m.solve(node, core, demand, reads, writes, core_ns)
            assert got.rate.tobytes() == want.rate.tobytes()


def test_copy_rows_alone_equal_rows_among_others() -> None:
    """What ``FluidProgress`` keeps per task (``_copy_table``) relies on this: a copy row computed alone
    (``copy_parts`` + ``row_base``) is bit for bit the same row computed among others, on every preset."""
    from memsched.sim.fluid.memmodel import MemModel
    from memsched.topology import list_presets, load_topology

    rng = np.random.default_rng(11)
    for name in list_presets():
        m = MemModel(load_topology(name))
        nr = m.nr_nodes
        for k in (2, 3, 17, 48):
            node = rng.integers(0, nr, k)
            src = rng.random((k, nr)) * (rng.random((k, nr)) < 0.6) * 2.0**21
            dst = rng.random((k, nr)) * (rng.random((k, nr)) < 0.6) * 2.0**21
            reads, writes, core_ns = m.copy_parts(node, src, dst)
            base = m.row_base(node, reads, writes, core_ns)
            for i in range(k):
                one = slice(i, i + 1)
                r1, w1, c1 = m.copy_parts(node[one], src[one], dst[one])
                assert m.row_base(node[one], r1, w1, c1).tobytes() == base[one].tobytes()
                assert m.copy_den(c1).tobytes() == m.copy_den(core_ns[one]).tobytes()


def test_kept_copy_rows_follow_the_copy_and_the_node() -> None:
    """A task's kept copy row is rebuilt when its pending copy grows and when it runs on another node, and is
    then the row computed afresh from its copy and node."""
    from memsched.sim.fluid.machine import FluidMachine, MachineConfig
    from memsched.sim.fluid.task import Join, Spawn, ThreadSpec, Touch
    from memsched.topology import load_topology
    from memsched.units import GIB, NSEC_PER_MSEC

    topo = load_topology("sandybridge-2n32")
    m = FluidMachine(topo, seed=0, config=MachineConfig())
    mm = m.new_mm("p")
    buf = mm.mmap(1 * GIB, "b")
    m.spawn_process("p", (Spawn((ThreadSpec("t", (Touch(buf, 20),)),)), Join()), mm=mm)
    m.run(until=50 * NSEC_PER_MSEC)
    p = m.progress
    task = next(t for t in m.tasks if t.name == "t")
    mib = float(2**20)

    def fresh() -> tuple[bytes, bytes]:
        node = p.cpu_node[p.arrays.oncpu[[task.id]]]
        reads, writes, core_ns = p.memmodel.copy_parts(node, p.arrays.copy_src[[task.id]], p.arrays.copy_dst[[task.id]])
        return p.memmodel.copy_den(core_ns).tobytes(), p.memmodel.row_base(node, reads, writes, core_ns).tobytes()

    def kept() -> tuple[bytes, bytes]:
        p.recompute()
        den, base = p._copy_table(np.array([task.id]), p.cpu_node[p.arrays.oncpu[[task.id]]])
        return den.tobytes(), base.tobytes()

    p.charge_copy(task, np.array([8 * mib, 0.0]), np.array([0.0, 8 * mib]))
    first = kept()
    assert first == fresh()
    p.charge_copy(task, np.array([0.0, 24 * mib]), np.array([24 * mib, 0.0]))  # the copy grows the other way
    second = kept()
    assert second == fresh() and second != first
    other = next(c for c in range(topo.nr_cpus) if topo.cpu_node()[c] != topo.cpu_node()[task.cpu])
    m.sched.move_task(task, other)
    third = kept()
    assert third == fresh() and third != second


def test_add_whole_is_add_on_whole_counters() -> None:
    """``NodeCounters.add_whole`` (one bincount, one add per cell) leaves the bits ``add`` (``np.add.at``, one add
    per record) leaves on counters of whole numbers, halved between batches as homenode does, and returns the
    records per id."""
    from memsched.policies.numa.stats import NodeCounters

    rng = np.random.default_rng(11)
    for _ in range(300):
        slots = int(rng.integers(1, 9))
        a, b = NodeCounters(slots), NodeCounters(slots)
        for _ in range(int(rng.integers(1, 6))):
            n = int(rng.integers(0, 200))
            ids = rng.integers(0, int(rng.integers(1, 40)), n).astype(np.int64)
            nodes = rng.integers(0, slots, n).astype(np.int64)
            pages = float(rng.choice([1, 512, 262144]))
            a.add(ids, nodes, pages)
            counts = b.add_whole(ids, nodes, pages)
            assert counts.tolist() == (np.bincount(ids).tolist() if n else [])
            if n and rng.random() < 0.5:
                task = int(rng.choice(ids))
                a.floor_halve(task)
                b.floor_halve(task)
            rows = min(a.data.shape[0], b.data.shape[0])
            assert a.data[:rows].tobytes() == b.data[:rows].tobytes()
            assert not np.count_nonzero(a.data[rows:]) and not np.count_nonzero(b.data[rows:])


def test_lookup_of_every_page_is_the_payers() -> None:
    """The actuator's payer lookup: when every page moved (the same array back) it is the payers themselves if no
    page repeats, and the first occurrence's payer of a repeated page otherwise, as the sorted lookup gives."""
    from memsched.sim.numa.actuator import _lookup

    rng = np.random.default_rng(12)
    for _ in range(500):
        n = int(rng.integers(1, 60))
        keys = rng.integers(0, 80 if rng.random() < 0.5 else 10 * n, n).astype(np.int64)
        values = rng.integers(0, 30, n).astype(np.int64)
        order = keys.argsort(kind="stable")
        want = values[order[keys[order].searchsorted(keys)]]
        assert _lookup(keys, values, keys, True).tolist() == want.tolist()
        some = keys[rng.random(n) < 0.5]
        assert _lookup(keys, values, some, False).tolist() == values[order[keys[order].searchsorted(some)]].tolist()


def test_migrate_pages_validation_keeps_its_arrays_and_errors() -> None:
    """``MigratePages`` copies its id arrays read-only whatever form they come in, and names the first negative
    id of the field it is in."""
    import pytest

    from memsched.errors import ConfigError
    from memsched.policies.numa.actions import MigratePages

    src = np.array([5, 3, 9], dtype=np.int64)
    for pages in (src, src.tolist(), src.astype(np.int32), src.reshape(3, 1), src.astype(">i8")):
        act = MigratePages(0, pages, np.array([1]), payer=[2, 2, 4])  # type: ignore[arg-type]
        assert act.pages.dtype == np.int64 and act.pages.tolist() == [5, 3, 9] and not act.pages.flags.writeable
        assert act.dst.tolist() == [1, 1, 1] and act.payer is not None and act.payer.tolist() == [2, 2, 4]
    assert MigratePages(0, src, src, payer=src).pages is not src  # a copy: the caller's array may change
    for field, first_bad, kwargs in (
        ("pages", -2, {"pages": np.array([4, -2, -7]), "dst": [0], "payer": [1]}),
        ("dst", -1, {"pages": [4, 2], "dst": np.array([0, -1]), "payer": [1]}),
        ("payer", -3, {"pages": [4, 2], "dst": [0], "payer": np.array([-3, 1])}),
    ):
        with pytest.raises(ConfigError) as err:
            MigratePages(0, **kwargs)  # type: ignore[arg-type]
        assert field in str(err.value) and str(first_bad) in str(err.value)


def test_migrate_pages_from_faults_is_the_checked_action() -> None:
    """``MigratePages.from_faults`` gives the action the constructor gives from the batch's columns, by a mask or
    by indices, read-only and not the batch's own arrays; it names a negative id as the constructor does, and
    takes the constructor's path for what is not a 1-D mask or index array."""
    import pytest

    from memsched.errors import ConfigError
    from memsched.policies.numa.actions import MigratePages
    from memsched.policies.numa.views import FaultBatch

    rng = np.random.default_rng(13)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        time_ns, task, tgid, cpu, cpu_node, page, page_node, last_nid, last_pid, last_cpu = (
            rng.integers(0, hi, n).astype(np.int64) for hi in (99, 24, 2, 48, 4, 500, 4, 4, 24, 48)
        )
        batch = FaultBatch(3, time_ns, task, tgid, cpu, cpu_node, page, page_node, last_nid, last_pid, last_cpu, 1)
        mask = rng.random(n) < 0.5
        for which in (mask, np.flatnonzero(mask), mask.nonzero()[0].astype(np.int32)):
            mode = str(rng.choice(["sync", "async", "syscall"]))
            got = MigratePages.from_faults(batch, which, mode=mode)  # type: ignore[arg-type]
            want = MigratePages(batch.mm, batch.page[which], batch.cpu_node[which], payer=batch.task[which], mode=mode)  # type: ignore[arg-type]
            assert (got.mm, got.mode) == (want.mm, want.mode)
            assert got.payer is not None and want.payer is not None
            for g, w, own in ((got.pages, want.pages, batch.page), (got.dst, want.dst, batch.cpu_node),
                              (got.payer, want.payer, batch.task)):  # fmt: skip
                assert g.dtype == np.int64 and g.tolist() == w.tolist() and not g.flags.writeable
                assert not np.shares_memory(g, own)
    a = np.array([1, 2], dtype=np.int64)
    for field in ("pages", "dst", "payer"):
        cols = {"page": a, "cpu_node": a, "task": a}
        cols[{"pages": "page", "dst": "cpu_node", "payer": "task"}[field]] = np.array([4, -1], dtype=np.int64)
        batch = FaultBatch(0, a, cols["task"], a, a, cols["cpu_node"], cols["page"], a, a, a, a, 1)
        with pytest.raises(ConfigError) as err:
            MigratePages.from_faults(batch, np.ones(2, dtype=bool))
        assert field in str(err.value) and "-1" in str(err.value)
    batch = FaultBatch(0, a, a, a, a, a, np.array([7, 8]), a, a, a, a, 1)
    sliced = MigratePages.from_faults(batch, slice(0, 1))  # type: ignore[arg-type]
    assert sliced.pages.tolist() == [7] and not np.shares_memory(sliced.pages, batch.page)
