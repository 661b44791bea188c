"""The fluid engine's compiled kernels give the pure numpy code's bits, and ``MEMSCHED_JIT`` picks when they run.

CI installs numba (the ``test`` extra pulls in ``fast``), so these run there; without numba the kernel tests
skip and the gate's tests still run.
"""

from __future__ import annotations

import gc
import inspect
import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from memsched.errors import ConfigError
from memsched.sim.fluid import jit
from memsched.sim.fluid.memmodel import MemModel
from memsched.topology import list_presets, load_topology


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A fresh gate (no mode read, no solves counted, no kernels loaded); the process's own comes back after."""
    monkeypatch.setattr(jit, "_gate", jit._Gate())
    monkeypatch.delenv(jit.ENV, raising=False)
    return monkeypatch


def _pure(m: MemModel, core: np.ndarray, demand: np.ndarray, base: np.ndarray) -> tuple[bytes, ...]:
    saved = jit._gate
    jit._gate = never = jit._Gate()
    never.left = None
    try:
        r = m.solve_base(core, demand, base)
    finally:
        jit._gate = saved
    return r.rate.tobytes(), r.controller_util.tobytes(), r.link_util.tobytes()


def _rows(m: MemModel, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """``n`` rows as the engine builds them: streaming rows from placement fractions and copy rows."""
    nr = m.nr_nodes
    node = rng.integers(0, nr, n)
    frac = rng.random((n, nr)) * (rng.random((n, nr)) < 0.6)
    frac[rng.random(n) < 0.1] = 0.0  # touches nothing yet
    demand, reads, writes, core_ns = m.stream_rows(
        node, rng.uniform(0.2, 1.0, n), frac, rng.random(n), rng.random(n) * 0.01, rng.uniform(0.2, 1.0, n)
    )
    copy = rng.random(n) < 0.2
    if copy.any():
        k = int(copy.sum())
        src = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5) + 1e-3
        dst = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5)
        cd, cr, cw, cn = m.copy_rows(node[copy], rng.uniform(0.2, 1.0, k), src, dst)
        demand[copy], reads[copy], writes[copy], core_ns[copy] = cd, cr, cw, cn
    demand[rng.random(n) < 0.05] = 0.0  # rows that start frozen
    return node, demand, m.row_base(node, reads, writes, core_ns)


def test_compiled_solve_gives_the_pure_bits_on_every_preset() -> None:
    """Rates and utilisations, bit for bit, on every preset (links, spread routing, the coherence resource, SMT
    siblings sharing a core), with saturated controllers, links and cores, zero demands and ties."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    rng = np.random.default_rng(17)
    for name in list_presets():
        topo = load_topology(name)
        m = MemModel(topo)
        cpu_core = topo.cpu_core()
        for k in range(150):
            n = int(rng.integers(1, min(3 * topo.nr_cpus, 200)))
            node, demand, base = _rows(m, rng, n)
            cpus = np.array([rng.choice(topo.node_cpus(int(x))) for x in node], dtype=np.int64)
            core = cpu_core[cpus]
            if k % 5 == 0:  # equal demands on equal rows: several resources saturate in one round
                demand = np.where(demand > 0, 1.0, 0.0)
                base = np.round(base * 4) / 4
            if k % 7 == 3:  # entries of -0.0 (left out of the loads like 0.0)
                base = np.where(base == 0.0, -0.0, base)
            if k % 13 == 6:  # an infinite demand: every column's load is NaN (the full matrix's path)
                demand[0] = np.inf
            sc = m.snoop_cap
            got = kernels.solve(core, demand, base, m.controller_cap, m.link_cap, sc or 0.0, sc is not None)
            with np.errstate(all="ignore"):
                want = _pure(m, core, demand, base)
            assert tuple(x.tobytes() for x in got) == want, (name, k)


def test_compiled_stream_table_gives_the_pure_bits_on_every_preset() -> None:
    """A phase's table rows (demand denominators and resource use per node), with empty placements, page-walk
    costs and write fractions, on every preset; and the load-time self-check agrees with this numpy."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    assert kernels.self_check() == []
    rng = np.random.default_rng(23)
    for name in list_presets():
        m = MemModel(load_topology(name))
        nr = m.nr_nodes
        for k in range(80):
            frac = rng.random(nr) * (rng.random(nr) < 0.7) * 2.0 ** int(rng.integers(12, 40))
            if k % 10 == 0:
                frac[:] = 0.0
            write, cpb, scale = np.full(nr, rng.random()), rng.random(nr) * 0.01, np.full(nr, rng.uniform(0.2, 1.0))
            den, base = np.empty(nr), np.empty((nr, nr + m.link_cap.shape[0] + 2))
            kernels.stream_table(frac, write, cpb, scale, m.row_args, den, base)
            want_den, want_base = m.stream_table(frac, write, cpb, scale)
            assert den.tobytes() == want_den.tobytes() and base.tobytes() == want_base.tobytes(), (name, k)


def test_compiled_copy_rows_give_the_pure_bits_on_every_preset() -> None:
    """A migrating task's copy row (source and destination bytes per node, any scale) on every preset."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    rng = np.random.default_rng(29)
    for name in list_presets():
        m = MemModel(load_topology(name))
        nr = m.nr_nodes
        k = 40
        src = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5) * 2.0 ** int(rng.integers(12, 34))
        dst = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5) * 2.0 ** int(rng.integers(12, 34))
        src[::7] = 0.0  # nothing to read: the total's floor
        node = rng.integers(0, nr, k)
        rows = rng.permutation(k)[: k // 2]  # some tasks' rows, in any order
        base, mm = np.full((k, nr + m.link_cap.shape[0] + 2), -1.0), np.full(k, -1.0)
        kernels.copy_rows(rows, node[rows], src, dst, m.row_args, base, mm)
        reads, writes, core_ns = m.copy_parts(node[rows], src[rows], dst[rows])
        assert base[rows].tobytes() == m.row_base(node[rows], reads, writes, core_ns).tobytes(), name
        assert mm[rows].tobytes() == m.copy_den(core_ns).tobytes(), name
        untouched = np.setdiff1d(np.arange(k), rows)
        assert (base[untouched] == -1.0).all() and (mm[untouched] == -1.0).all()


def test_compiled_solve_of_no_rows() -> None:
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    m = MemModel(load_topology("westmere-ex-4n48"))
    e = np.empty(0, dtype=np.int64)
    base = np.zeros((0, m.nr_nodes + m.link_cap.shape[0] + 2))
    got = kernels.solve(e, np.empty(0), base, m.controller_cap, m.link_cap, 0.0, False)
    assert tuple(x.tobytes() for x in got) == _pure(m, e, np.empty(0), base)


def test_auto_uses_the_kernel_after_its_solves(gate: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    _compiled_ahead()  # (auto loads the kernels from the cache in a run's middle, never compiles them there)
    gate.setattr(jit, "AUTO_AFTER", 3)
    assert [jit.solve_kernel() is not None for _ in range(4)] == [False, False, True, True]


def test_auto_uses_the_kernels_after_its_time_in_pure_code(gate: pytest.MonkeyPatch) -> None:
    """``auto`` loads the kernels once the process has simulated ``AUTO_PURE_S`` of CPU time since its first call
    of a ``compiled_as`` function, whatever the solves, and that call uses them; under ``0`` it never does."""
    pytest.importorskip("numba")
    _compiled_ahead()
    calls: list[str] = []

    @jit.compiled_as("pairwise_sum")
    def twin(x: np.ndarray, lo: int, n: int) -> float:
        calls.append("pure")
        return float(np.add.reduce(x[lo : lo + n]))

    gate.setattr(jit, "AUTO_AFTER", 10**9)
    gate.setattr(jit, "AUTO_PURE_S", 0.05)
    x = np.arange(8.0)
    twin(x, 0, 8)
    assert calls == ["pure"] and jit.loaded() is None
    spent = time.process_time()
    while time.process_time() - spent < 0.06:  # (CPU time passes)
        pass
    twin(x, 0, 8)
    assert calls == ["pure"] and jit.loaded() is not None
    jit.reset()
    gate.setenv(jit.ENV, "0")
    spent = time.process_time()
    for _ in range(2):
        twin(x, 0, 8)
        while time.process_time() - spent < 0.06:
            pass
    assert calls == ["pure"] * 3 and jit.loaded() is None


def test_load_ahead_loads_now_under_auto_and_one_never_under_zero(gate: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    assert jit.undecided()
    assert jit.load_ahead() and jit.loaded() is not None and not jit.undecided()
    assert jit.solve_kernel() is not None  # (no pure solve first)
    jit.reset()
    gate.setenv(jit.ENV, "1")
    assert jit.load_ahead() and jit.loaded() is not None
    jit.reset()
    gate.setenv(jit.ENV, "0")
    assert not jit.load_ahead() and jit.loaded() is None and not jit.undecided()
    assert jit.solve_kernel() is None


def test_the_garbage_collector_waits_while_the_kernels_load(gate: pytest.MonkeyPatch) -> None:
    """The load runs with the collector paused and leaves it as it found it, also when the load fails."""
    seen: list[bool] = []

    def load(required: bool, every: bool, may_compile: bool) -> None:
        seen.append(gc.isenabled())
        if required:
            raise ConfigError(jit.ENV, "1", "the load failed")

    gate.setattr(jit, "_load_kernels", load)
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            jit._load(required=False)
            assert gc.isenabled() is enabled
            with pytest.raises(ConfigError):
                jit._load(required=True)
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False] * 4


def test_load_ahead_without_numba_stays_pure_and_one_is_refused(gate: pytest.MonkeyPatch) -> None:
    gate.setitem(sys.modules, "memsched.sim.fluid._kernels", None)  # import fails as without numba
    assert not jit.load_ahead() and jit.loaded() is None
    assert jit.solve_kernel() is None  # (decided: no second attempt)
    jit.reset()
    gate.setenv(jit.ENV, "1")
    with pytest.raises(ConfigError, match=r"MEMSCHED_JIT.*numba is not installed"):
        jit.load_ahead()


def test_zero_never_uses_the_kernel(gate: pytest.MonkeyPatch) -> None:
    gate.setenv(jit.ENV, "0")
    gate.setattr(jit, "AUTO_AFTER", 1)
    assert all(jit.solve_kernel() is None for _ in range(5))
    assert "MEMSCHED_JIT=0" in jit.status()


def test_one_uses_the_kernel_from_the_first_solve(gate: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    gate.setenv(jit.ENV, "1")
    assert jit.solve_kernel() is not None


def test_without_numba_auto_stays_pure_and_one_is_refused(gate: pytest.MonkeyPatch) -> None:
    gate.setitem(sys.modules, "memsched.sim.fluid._kernels", None)  # import fails as without numba
    gate.setattr(jit, "AUTO_AFTER", 1)
    assert jit.solve_kernel() is None and jit.solve_kernel() is None
    jit.reset()
    gate.setenv(jit.ENV, "1")
    with pytest.raises(ConfigError, match=r"MEMSCHED_JIT.*numba is not installed"):
        jit.solve_kernel()


def test_kernels_that_fail_to_build_leave_auto_pure_and_refuse_one(gate: pytest.MonkeyPatch) -> None:
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")

    def broken(every: bool = True, may_compile: bool = True) -> bool:
        raise RuntimeError("LLVM could not build it")

    gate.setattr(kernels, "warm", broken)
    gate.setattr(jit, "AUTO_AFTER", 1)
    assert jit.solve_kernel() is None and jit.solve_kernel() is None and jit.loaded() is None
    jit.reset()
    gate.setenv(jit.ENV, "1")
    with pytest.raises(ConfigError, match=r"MEMSCHED_JIT.*could not compile.*RuntimeError: LLVM could not build it"):
        jit.solve_kernel()


def test_a_numpy_that_sums_otherwise_keeps_the_pure_code(gate: pytest.MonkeyPatch) -> None:
    """The self-check at load: a numpy built with other SIMD sums (say, fused multiply-adds) would give other
    bits than the kernels. Where only the stream table's or the copy rows' dots differ, every kernel but that one;
    where the other sums differ, none."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    _compiled_ahead()
    gate.setattr(jit, "AUTO_AFTER", 1)
    gate.setattr(kernels, "self_check", lambda: ["stream_table"])
    assert jit.solve_kernel() is not None and jit.stream_table_kernel() is None
    assert jit.copy_rows_kernel() is not None
    jit.reset()
    gate.setattr(kernels, "self_check", lambda: ["copy_rows"])
    assert jit.solve_kernel() is not None and jit.copy_rows_kernel() is None
    assert jit.stream_table_kernel() is not None
    jit.reset()
    gate.setattr(kernels, "self_check", lambda: ["sums"])
    assert jit.solve_kernel() is None and jit.loaded() is None
    jit.reset()
    gate.setenv(jit.ENV, "1")
    with pytest.raises(ConfigError, match=r"MEMSCHED_JIT.*this numpy's sums differ from the kernels' \(sums\)"):
        jit.solve_kernel()


def test_status_says_what_a_run_would_use(gate: pytest.MonkeyPatch) -> None:
    """``memsched --version``'s words for each mode, with and without numba (found without importing it)."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    auto = (
        f"numba kernels after {jit.AUTO_AFTER} solves or {jit.AUTO_PURE_S:g} s of pure simulation, once compiled "
        "(python -m memsched.sim.fluid.jit)"
    )
    modes = (("1", "numba kernels from the first solve"), ("auto", auto))
    for installed in (True, False):
        numba_spec = real_find_spec("json") if installed else None  # (any spec: "numba is there")
        gate.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a, s=numba_spec: s if name == "numba" else real_find_spec(name, *a),
        )
        gate.setenv(jit.ENV, "0")
        assert jit.status() == "pure numpy (MEMSCHED_JIT=0)"
        for mode, with_numba in modes:
            gate.setenv(jit.ENV, mode)
            assert jit.status() == (with_numba if installed else "pure numpy (numba not installed)")


def test_a_bad_value_is_refused(gate: pytest.MonkeyPatch) -> None:
    gate.setenv(jit.ENV, "yes")
    with pytest.raises(ConfigError, match=r"MEMSCHED_JIT' must be auto, 1 .* \(got 'yes'\)"):
        jit.solve_kernel()


def _run(env_value: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, jit.ENV: env_value}
    return subprocess.run(
        [sys.executable, "-m", "memsched", *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_cli_refuses_a_bad_value_before_it_runs() -> None:
    r = _run("fast", "run", "numa02", "--policy", "moron", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert "MEMSCHED_JIT" in r.stderr and "'fast'" in r.stderr and r.stderr.count("\n") == 1


#: Whole runs through every kernel: streaming, copy rows and the coherence resource (x86-8n64), 4 KiB pages,
#: compute phases and kernel debts (specjbb, perf-bench-numa), and the pressure simulator's fluid machine
#: (debts as events, reclaim, OOM kills).
RUNS = [
    ("run", "numa02", "--policy", "moron", "-t", "x86-8n64", "--json"),
    ("run", "numa02_SMT", "--policy", "mainline", "--no-thp", "--json"),
    ("run", "specjbb", "--policy", "autonuma", "-t", "sandybridge-2n32", "--json"),
    ("run", "perf-bench-numa", "--policy", "numad", "-t", "opteron-4n32", "--seed", "1", "--json"),
    ("pressure", "sim", "default", "--designs", "rfc2012", "--json"),
]


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(a[:3]) for a in RUNS])
def test_a_run_gives_the_same_record_with_and_without_the_kernels(argv: tuple[str, ...]) -> None:
    """A whole run (every event's rates, advances, completions and fault predictions) through the pure code
    and through the kernels from the first solve."""
    pytest.importorskip("numba")
    pure, compiled = _run("0", *argv), _run("1", *argv)
    assert pure.returncode == 0 and compiled.returncode == 0, pure.stderr + compiled.stderr
    assert json.loads(pure.stdout)  # a record, not an empty line
    assert compiled.stdout == pure.stdout


def test_switching_to_the_kernels_in_the_middle_of_a_run_changes_nothing(gate: pytest.MonkeyPatch) -> None:
    """``auto`` switches when a process has solved enough times, which may be in the middle of a run."""
    pytest.importorskip("numba")
    _compiled_ahead()  # (in a run's middle, auto loads the kernels from the cache only)
    from memsched.workloads.runner import run_one
    from memsched.workloads.runspec import RunSpec

    spec = RunSpec("numa02", "westmere-ex-4n48", "moron")
    gate.setenv(jit.ENV, "0")
    pure = run_one(spec).to_json()
    # after 300 solves (in a solve), or after 50 ms of pure simulation (in one of the fault path's steps)
    for after, pure_s in ((300, jit.AUTO_PURE_S), (10**9, 0.05)):
        jit.reset()
        gate.setenv(jit.ENV, "auto")
        gate.setattr(jit, "AUTO_AFTER", after)
        gate.setattr(jit, "AUTO_PURE_S", pure_s)
        switched = run_one(spec).to_json()
        assert jit.loaded() is not None  # it did switch
        assert json.dumps(switched, sort_keys=True) == json.dumps(pure, sort_keys=True)


def test_firing_through_copy_ends_gives_the_records_of_the_engine_stepping_each(gate: pytest.MonkeyPatch) -> None:
    """``FluidProgress.fire_through`` (the engine's loop through a run of its own completions, compiled: the
    advances, the ends of sync migrations' copies, the rates computed again, the next completion) against the
    engine stepping each completion itself: the same records. The run takes the kernel's way often, through
    several completions at a time and with the rates computed in it, or the comparison would prove little."""
    pytest.importorskip("numba")
    from memsched.sim.fluid.progress import FluidProgress
    from memsched.workloads.runner import run_one
    from memsched.workloads.runspec import RunSpec

    gate.setenv(jit.ENV, "1")
    real = FluidProgress.fire_through
    seen = {"calls": 0, "recomputed": 0, "several": 0}

    def counted(self: FluidProgress, t: int, t_ev: int | None) -> bool:
        running, fired = self._running, self.fired_through
        took = real(self, t, t_ev)
        seen["calls"] += took
        seen["recomputed"] += took and self._running is not running
        seen["several"] += self.fired_through - fired > 1
        return took

    for spec in (RunSpec("numa02", "westmere-ex-4n48", "moron"), RunSpec("numa01_THREAD_ALLOC", "x86-8n64", "moron")):
        gate.setattr(FluidProgress, "fire_through", counted)
        through = json.dumps(run_one(spec).to_json(), sort_keys=True)
        gate.setattr(FluidProgress, "fire_through", lambda self, t, t_ev: False)
        stepped = json.dumps(run_one(spec).to_json(), sort_keys=True)
        assert through == stepped, spec
    assert seen["calls"] > 1000 and seen["recomputed"] > 1000 and seen["several"] > 10, seen


def test_fire_chain_computes_rates_only_from_rows_kept_up_to_date() -> None:
    """``fire_chain`` computes the rates itself only where Python would make nothing: every running task streams
    from a phase table checked under the current versions, or copies from a copy row of its epoch and node."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    cpu_node = np.array([0, 0, 1, 1], np.int64)
    oncpu = np.array([0, 2, -1, 3], np.int64)
    kind = np.array([1, 1, 2, 1], np.int8)  # two Touches, a Compute off every CPU, a Touch that copies
    key = np.array([0, 1, 2, 1], np.int64)
    copy_left = np.array([0.0, 0.0, 0.0, 4096.0])
    epoch = np.array([0, 0, 0, 3], np.int64)
    stamps = np.array([3, 3, -1], np.int64)  # (keys 0 and 1 checked under the versions now: stamp 3)
    crow_epoch, crow_node = np.array([-1, -1, -1, 3], np.int64), np.array([-1, -1, -1, 1], np.int64)

    def ready(**change: Any) -> bool:
        a = {"oncpu": oncpu, "kind": kind, "copy_left": copy_left, "stamps": stamps, "crow_epoch": crow_epoch}
        a |= {"stamp": 3} | change
        a.setdefault("crow_node", crow_node)
        return bool(
            kernels._rows_ready(
                4, a["oncpu"], a["kind"], key, a["copy_left"], epoch, a["stamps"], a["stamp"], a["crow_epoch"],
                a["crow_node"], cpu_node,
            )
        )

    assert ready()
    assert not ready(stamps=np.array([3, 2, -1], np.int64))  # a streaming task's table was checked under others
    assert not ready(stamps=stamps[:1])  # a streaming task's table was never checked
    assert not ready(stamp=0)  # the versions moved since the tables were checked
    assert not ready(crow_epoch=np.array([-1, -1, -1, 2], np.int64))  # the copy grew since its row was made
    assert not ready(oncpu=np.array([0, 2, 1, 3], np.int64))  # a computing task runs
    assert not ready(kind=np.array([1, 0, 2, 1], np.int8))  # an idle task runs
    assert not ready(oncpu=np.full(4, -1, np.int64))  # nobody runs
    copying = {
        "copy_left": np.array([0.0, 8.0, 0.0, 4096.0]),
        "crow_epoch": np.array([-1, 0, -1, 3], np.int64),
        "stamps": np.array([3, -1, -1], np.int64),
    }
    assert ready(**copying, crow_node=np.array([-1, 1, -1, 1], np.int64))  # (its copy row, not its table)
    assert not ready(**copying, crow_node=np.array([-1, 0, -1, 1], np.int64))  # a row made on another node


def test_pairwise_sum_is_numpys_add_reduce() -> None:
    """Every length up to several of numpy's 128-element blocks (its recursion), at any offset, bit for bit."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    rng = np.random.default_rng(2)
    for k in range(3000):
        n = int(rng.integers(0, 300 if k % 2 else 3000))
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        lo = int(rng.integers(0, 5))
        y = np.concatenate([rng.random(lo), x])
        assert np.float64(kernels.pairwise_sum(y, lo, n)).tobytes() == np.add.reduce(x).tobytes()


def test_compiled_first_touchers_equals_the_pure_one(gate: pytest.MonkeyPatch) -> None:
    """Sweeps over overlapping and disjoint regions, cursors anywhere, delays, pages not covered by any sweep,
    at every page size: the same first toucher and arrival time for every page (both of the pure code's ways,
    every pair and the samples with their gaps)."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.mm.mm import Region
    from memsched.sim.numa.faults import first_touchers

    gate.setenv(jit.ENV, "0")
    rng = np.random.default_rng(4)
    for psz in (4096, 65536, 2 * 1024 * 1024):
        for _ in range(150):
            base = int(rng.integers(0, 2**31)) // psz * psz
            cols = []
            for tid in range(int(rng.integers(1, 60))):
                start = base if rng.random() < 0.5 else int(rng.integers(base, base + 2**30))
                region = Region(0, start, int(rng.integers(1, 2**30)))
                p0, p1 = region.page_span(psz)
                cursor = float(rng.random() * region.nbytes) % region.nbytes
                delay = rng.random() * 1e6 * (rng.random() < 0.5)
                cols.append((tid, region.start, region.nbytes, p0, p1, cursor, rng.uniform(0.01, 8.0), delay, 0, 0, 0))
            c = np.array(cols, dtype=np.float64)
            lo = base // psz
            pages = np.unique(rng.integers(lo, lo + 2**30 // psz + 3, int(rng.integers(1, 5000)))).astype(np.int64)
            want = first_touchers(pages, psz, c)
            got = kernels.first_touchers(pages, psz, c, 32)
            assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()


def test_compiled_first_touchers_skip_no_winner_on_near_ties(gate: pytest.MonkeyPatch) -> None:
    """``_first``'s lower bound skips a sweep's exact arrival only when it cannot win: sweeps whose arrivals tie
    exactly or differ in the last bits (the same region and rate with cursors a few bytes apart, delays an ulp
    apart, rates that round alike), zero delays and cursors, and NaN and inf rates (which are never skipped)."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.faults import first_touchers

    gate.setenv(jit.ENV, "0")
    rng = np.random.default_rng(41)
    psz = 4096
    for trial in range(300):
        nbytes = int(rng.integers(1, 2**16)) * psz
        rate = float(rng.uniform(0.01, 8.0))
        delay = float(rng.random() * 1e6) if rng.random() < 0.7 else 0.0
        cursor = float(rng.integers(0, nbytes))
        cols = []
        for tid in range(int(rng.integers(2, 40))):
            c = cursor + float(rng.choice([0.0, 1.0, -1.0, 0.5, 4096.0])) if rng.random() < 0.8 else 0.0
            r = rate * (1.0 + float(rng.choice([0.0, 2.0**-52, -(2.0**-52), 1e-15])))
            d = np.nextafter(delay, np.inf) if rng.random() < 0.3 else delay
            if trial % 50 == 0 and tid == 1:
                r = float(rng.choice([np.nan, np.inf, 0.0]))
            cols.append((tid, 0.0, float(nbytes), 0.0, float(nbytes // psz), c % nbytes, r, d, 0, 0, 0))
        c2 = np.array(cols, dtype=np.float64)
        pages = np.unique(rng.integers(0, nbytes // psz, int(rng.integers(1, 3000)))).astype(np.int64)
        with np.errstate(all="ignore"):
            want = first_touchers(pages, psz, c2)
        got = kernels.first_touchers(pages, psz, c2, 32)
        assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes(), trial


def _compiled_ahead() -> None:
    """``python -m memsched.sim.fluid.jit``: numba's cache then holds every kernel, whatever ran before."""
    r = subprocess.run(
        [sys.executable, "-m", "memsched.sim.fluid.jit"], capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0 and "kernels are ready" in r.stdout, r.stderr


def test_the_kernels_can_be_compiled_ahead() -> None:
    pytest.importorskip("numba")
    _compiled_ahead()


def test_warm_loads_every_kernel_unless_the_cache_has_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """``warm(every=False)`` calls no kernel when numba's cache holds each one for the types warm passes (each loads
    at its first call), and every kernel when one of them would have to be compiled (no compile in a run's
    middle); ``warm()`` calls every kernel."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    import numba

    called: list[str] = []
    for name, kernel in list(vars(kernels).items()):
        if isinstance(kernel, numba.core.registry.CPUDispatcher):
            monkeypatch.setattr(kernels, name, lambda *a, _n=name: called.append(_n))
    monkeypatch.setattr(kernels, "_cached", lambda kernel, args: True)
    kernels.warm(every=False)
    assert called == []
    kernels.warm()
    every = list(called)
    assert {"solve", "reach_deliver", "payments", "fire_chain"} <= set(every)
    called.clear()
    payments = kernels.payments
    monkeypatch.setattr(kernels, "_cached", lambda kernel, args: kernel is not payments)
    kernels.warm(every=False)
    assert called == every


def _cold_recorded(gate: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """The kernels' module with each kernel replaced by a recorder of its calls (the list returned), its self-check
    passing, and numba's cache empty for every kernel (``_cached`` False)."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    import numba

    called: list[str] = []
    for name, kernel in list(vars(kernels).items()):
        if isinstance(kernel, numba.core.registry.CPUDispatcher):
            gate.setattr(kernels, name, lambda *a, _n=name: called.append(_n))
    gate.setattr(kernels, "self_check", lambda: [])
    gate.setattr(kernels, "_cached", lambda kernel, args: False)  # (a cold cache)
    return kernels, called


class _Tty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_auto_does_not_compile_the_kernels_in_the_middle_of_a_run(gate: pytest.MonkeyPatch) -> None:
    """Under ``auto``, the switch in a run's middle (after ``AUTO_AFTER`` solves, or ``AUTO_PURE_S`` of pure
    simulation) loads the kernels from numba's cache only: where the cache lacks one, the process stays pure and
    compiles nothing (about 50 s, against 0.5 s for a load). ``load_ahead``, for work known to be long, compiles
    them; with the cache full, the switch loads them."""
    kernels, called = _cold_recorded(gate)
    gate.setattr(jit, "AUTO_AFTER", 1)
    assert jit.solve_kernel() is None
    assert called == [] and jit.loaded() is None and not jit.undecided()
    gate.setattr(jit, "_gate", jit._Gate())
    gate.setattr(jit, "AUTO_AFTER", 10**9)
    gate.setattr(jit, "AUTO_PURE_S", 0.0)
    jit._undecided_call()  # (the first fault-path call: the clock starts)
    jit._undecided_call()
    assert called == [] and jit.loaded() is None and not jit.undecided()
    gate.setattr(jit, "_gate", jit._Gate())
    assert jit.load_ahead()
    assert "reach_deliver" in called and jit.loaded() is kernels
    called.clear()
    gate.setattr(jit, "_gate", jit._Gate())
    gate.setattr(jit, "AUTO_AFTER", 1)
    gate.setattr(kernels, "_cached", lambda kernel, args: True)  # (every kernel cached: each loads at its call)
    assert jit.solve_kernel() is not None and jit.loaded() is kernels and called == []


def test_load_ahead_compiles_only_for_work_that_earns_it_back(gate: pytest.MonkeyPatch) -> None:
    """``load_ahead(may_compile=False)`` (the runner's work below ``LOAD_AHEAD_COLD_COST``) loads from numba's cache
    only: with a kernel missing, the process stays pure and, on a terminal, says how to compile them. Under ``1``
    it compiles them whatever the work."""
    kernels, called = _cold_recorded(gate)
    gate.setattr(sys, "stderr", tty := _Tty())
    assert not jit.load_ahead(every=True, may_compile=False)
    assert called == [] and jit.loaded() is None and not jit.undecided()
    assert tty.getvalue() == jit.COLD_NOTICE + "\n"
    gate.setattr(jit, "_gate", jit._Gate())
    gate.setenv(jit.ENV, "1")
    assert jit.load_ahead(every=True, may_compile=False)
    assert "reach_deliver" in called and jit.loaded() is kernels


def test_the_compile_notice_is_said_once_on_a_terminal_when_numba_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the kernels load, a process says once that numba compiles, at its first compile (a function numba has
    not compiled yet, here one made for the test); on a terminal only (a ``--json`` run's stderr into a pipe
    stays as it was), not from a pool's worker, and not for a load that compiles nothing."""
    numba = pytest.importorskip("numba")
    import multiprocessing

    def compile_two() -> None:
        for value in (1, 2.0):  # (two compiles: an int, then a float)
            numba.njit(lambda x: x + 1)(value)

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with jit._compile_notice():
        pass  # (nothing compiled: nothing said)
    assert tty.getvalue() == ""
    with jit._compile_notice():
        compile_two()
    assert tty.getvalue() == jit.COMPILE_NOTICE + "\n"
    compile_two()  # (the listener is gone once the load ends)
    assert tty.getvalue() == jit.COMPILE_NOTICE + "\n"
    monkeypatch.setattr(multiprocessing, "parent_process", object)  # (a worker: its parent is any object)
    with jit._compile_notice():
        compile_two()
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: None)
    monkeypatch.setattr(sys, "stderr", pipe := io.StringIO())
    with jit._compile_notice():
        compile_two()
    assert tty.getvalue() == jit.COMPILE_NOTICE + "\n" and pipe.getvalue() == ""


def test_cached_is_what_a_call_would_load_without_compiling() -> None:
    """``_cached``, in a fresh process whose cache has the kernels: True for a kernel and the types the engine passes
    (read from numba's index: nothing is loaded), False for types never compiled (and the check compiles nothing),
    and False for a function numba does not cache."""
    pytest.importorskip("numba")
    _compiled_ahead()
    code = (
        "import json, numba, numpy as np\n"
        "from memsched.sim.fluid import _kernels as k\n"
        "f64 = np.zeros(3)\n"
        "got = [k._cached(k.pairwise_sum, (f64, 0, 3)), k._cached(k.pairwise_sum, (f64.astype(np.float32), 0, 3))]\n"
        "got += [len(k.pairwise_sum.overloads), k._cached(numba.njit(lambda x: x), (1,))]\n"
        "print(json.dumps(got))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [True, False, 0, False]


def test_a_run_after_a_lazy_load_loads_only_the_kernels_it_calls() -> None:
    """A process that loads the kernels ahead of one run (``load_ahead()``) loads each at its first call: a run
    without page migrations by an action never loads ``payments`` (but loads ``scan_hits``, which its scans call),
    and gives the bits of the pure code."""
    pytest.importorskip("numba")
    _compiled_ahead()
    code = (
        "import json, sys\n"
        "from memsched.sim.fluid import jit, _kernels as k\n"
        "ahead = jit.load_ahead()\n"
        "from memsched.workloads.runner import run_one\n"
        "from memsched.workloads.runspec import RunSpec\n"
        "rec = run_one(RunSpec('numa02', 'westmere-ex-4n48', 'moron', 0))\n"
        "print(json.dumps([ahead, len(k.payments.overloads), len(k.scan_hits.overloads), rec.to_json()]))\n"
    )
    got = []
    for value in ("1", "0"):
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, jit.ENV: value},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        got.append(json.loads(r.stdout))
    assert got[0][:3] == [True, 0, 1] and got[1][:3] == [False, 0, 0]
    assert got[0][3] == got[1][3]


def test_auto_stays_pure_under_numba_disable_jit(gate: pytest.MonkeyPatch) -> None:
    """``NUMBA_DISABLE_JIT=1`` (numba's debugging switch) would run the kernels as Python loops."""
    numba = pytest.importorskip("numba")
    gate.setattr(numba.config, "DISABLE_JIT", True)
    gate.setattr(jit, "AUTO_AFTER", 1)
    assert jit.solve_kernel() is None and jit.loaded() is None


def _same(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    """Every array of the same dtype and bytes, every number the same (floats bit for bit)."""
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.tobytes() == w.tobytes(), i
        elif isinstance(w, float):
            assert np.float64(g).tobytes() == np.float64(w).tobytes(), i
        else:
            assert g == w, i


def _sweep_rows(rng: np.random.Generator, psz: int, base: int, n: int) -> np.ndarray:
    """``n`` sweeps' rows as ``_generate_faults`` builds them: a ``Sweep``, then work, done and part."""
    from memsched.sim.mm.mm import Region

    rows = []
    for tid in range(n):
        start = base if rng.random() < 0.5 else int(rng.integers(base, base + 2**30))
        region = Region(0, start, int(rng.integers(1, 2**30)))
        p0, p1 = region.page_span(psz)
        cursor = float(rng.random() * region.nbytes) % region.nbytes
        delay = rng.random() * 1e6 * (rng.random() < 0.5)
        work = float(rng.integers(1, 2**34))
        done = work * rng.random()
        part = 1.0 if rng.random() < 0.6 else rng.random()
        rows.append((tid, region.start, region.nbytes, p0, p1, cursor, rng.uniform(0.01, 8.0), delay, work, done, part))
    return np.array(rows, dtype=np.float64)


def test_compiled_scan_hits_equals_the_pure_one() -> None:
    """The pages reached in time, their order, sweep, time and distance ahead, and the median, at every page
    size and horizon (none, some and every page reached in time)."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.faults import STRIDE, scan_hits

    rng = np.random.default_rng(5)
    for psz in (4096, 2 * 1024 * 1024):
        for _ in range(120):
            base = int(rng.integers(0, 2**31)) // psz * psz
            cols = _sweep_rows(rng, psz, base, int(rng.integers(1, 50)))
            lo = base // psz
            pages = np.unique(rng.integers(lo, lo + 2**30 // psz + 3, int(rng.integers(1, 3000)))).astype(np.int64)
            horizon = float(rng.choice([0.0, 1e5, 1e7, 1e9, 1e12]))
            _same(
                kernels.scan_hits(pages, psz, cols, STRIDE, horizon),
                inspect.unwrap(scan_hits)(pages, psz, cols, STRIDE, horizon),
            )


def test_compiled_reach_rows_equals_the_pure_one() -> None:
    """Sweeps that came far or not (rates, debts, copies, tasks off their CPU, tasks that left the phase, no
    progress known), with and without the second look: the same pages reached, the same rest and times."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.faults import reach_rows

    rng = np.random.default_rng(6)
    for _ in range(400):
        ntasks = int(rng.integers(1, 40))
        nsw = int(rng.integers(1, ntasks + 1))
        cols = _sweep_rows(rng, 4096, 0, nsw)
        tids = rng.permutation(ntasks)[:nsw].astype(np.int64)
        still = np.zeros(0, dtype=bool) if rng.random() < 0.5 else rng.random(nsw) < 0.7
        rem = cols[:, 8].max() * rng.random(ntasks)
        n = int(rng.integers(1, 2000))
        first = rng.integers(0, nsw, n).astype(np.int64)
        pages = np.sort(rng.choice(10**6, n, replace=False)).astype(np.int64)
        offsets, ahead = rng.random(n) * 1e8, rng.random(n) * 2**33 * rng.random()
        rate = rng.random(ntasks) * (rng.random(ntasks) < 0.9)
        share = rng.random(ntasks) * (rng.random(ntasks) < 0.9)
        oncpu = np.where(rng.random(ntasks) < 0.9, rng.integers(0, 48, ntasks), -1).astype(np.int64)
        debt = rng.random(ntasks) * 1e6 * (rng.random(ntasks) < 0.5)
        copy_left = rng.random(ntasks) * 1e6 * (rng.random(ntasks) < 0.3)
        came_known, again = bool(rng.random() < 0.9), bool(rng.random() < 0.7)
        ints, floats = np.concatenate((pages, first)), np.concatenate((offsets, ahead))
        args = (cols, tids, still, came_known, rem, ints, floats, again, rate, share, oncpu, debt, copy_left)
        _same(kernels.reach_rows(*args), inspect.unwrap(reach_rows)(*args))


def test_compiled_fault_rows_and_after_equal_the_pure_ones() -> None:
    """Faults on pages marked or not, resident or not, by tasks on a CPU or not: the same batch columns, the
    same pages unmarked; after the policy moved some pages, the same count still remote and the same last
    nid, pid and CPU recorded."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.balancing import _fault_after, _fault_rows

    rng = np.random.default_rng(7)
    cpu_node = np.repeat(np.arange(4), 12).astype(np.int64)
    for _ in range(300):
        npages, ntasks = int(rng.integers(1, 5000)), int(rng.integers(1, 60))
        n = int(rng.integers(1, min(npages, 1500) + 1))
        pages = rng.choice(npages, n, replace=False).astype(np.int64)
        task_ids = rng.integers(0, ntasks, n).astype(np.int64)
        offsets = rng.random(n) * 1e8 * rng.random()
        oncpu = np.where(rng.random(ntasks) < 0.85, rng.integers(0, 48, ntasks), -1).astype(np.int64)
        marked = rng.random(npages) < 0.9
        page_node = np.where(rng.random(npages) < 0.95, rng.integers(0, 4, npages), -1).astype(np.int16)
        tgid = rng.integers(0, 4, ntasks).astype(np.int64)
        last = [np.where(rng.random(npages) < 0.5, rng.integers(0, 48, npages), -1).astype(np.int64) for _ in range(3)]
        now = int(rng.integers(0, 10**12))
        state = {k: (marked.copy(), [x.copy() for x in last]) for k in ("pure", "kernel")}
        out = {}
        for k, fn in (("pure", inspect.unwrap(_fault_rows)), ("kernel", kernels.fault_rows)):
            m, (ln, lp, lc) = state[k]
            out[k] = fn(pages, task_ids, offsets, oncpu, m, page_node, cpu_node, tgid, ln, lp, lc, ntasks, now)
        assert state["kernel"][0].tobytes() == state["pure"][0].tobytes()
        _same(out["kernel"], out["pure"])
        if not out["pure"][0].shape[1]:
            continue
        cols = out["pure"][0]
        cols.flags.writeable = False  # (the batch's columns, as the policy had them)
        rows = list(cols)
        moved = np.where(rng.random(npages) < 0.3, rng.integers(0, 4, npages), page_node).astype(np.int16)
        kept = {}
        for k, fn in (("pure", inspect.unwrap(_fault_after)), ("kernel", kernels.fault_after)):
            _, (ln, lp, lc) = state[k]
            kept[k] = fn(*rows[:5], moved, ln, lp, lc)
        assert kept["kernel"] == kept["pure"]
        for a, b in zip(state["kernel"][1], state["pure"][1], strict=True):
            assert a.tobytes() == b.tobytes()


def test_stable_argsort_is_numpys() -> None:
    """Random keys, many ties, a few ascending runs (a scan's arrival times), nothing: numpy's stable order."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    rng = np.random.default_rng(8)
    for k in range(2000):
        n = int(rng.integers(0, 3000))
        if k % 4 == 0:
            x = rng.random(n)
        elif k % 4 == 1:
            x = rng.integers(0, 5, n).astype(np.float64)
        elif k % 4 == 2:
            x = np.concatenate([np.sort(rng.random(int(m))) for m in rng.integers(0, 300, int(rng.integers(1, 8)))])
        else:
            x = np.repeat(rng.random(n // 10 + 1), 10)
        assert kernels.stable_argsort(x).tobytes() == x.argsort(kind="stable").tobytes()


def test_compiled_mark_window_equals_the_pure_one() -> None:
    """Windows over present and absent pages, some marked already, ratelimited nodes skipped or not, 2 MiB
    units, 4 KiB pages in huge and split blocks, plain 4 KiB pages: the same counts and the same marks."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.balancing import _mark_window

    rng = np.random.default_rng(9)
    for _ in range(400):
        npages, thp = int(rng.integers(1, 6000)), int(rng.choice([0, 8, 512]))
        page_node = np.where(rng.random(npages) < 0.8, rng.integers(0, 4, npages), -1).astype(np.int16)
        marked = rng.random(npages) < 0.3
        skip = rng.random(4) < 0.3 if rng.random() < 0.5 else np.zeros(4, dtype=bool)
        huge = rng.random(npages // thp + 1) < 0.6 if thp else np.zeros(0, dtype=bool)
        lo = int(rng.integers(0, npages))
        hi = int(rng.integers(lo, npages + 1))
        units = bool(rng.random() < 0.2)
        want_marked, got_marked = marked.copy(), marked.copy()
        want = inspect.unwrap(_mark_window)(page_node, want_marked, lo, hi, skip, units, thp, huge, 1 if thp else 512)
        got = kernels.mark_window(page_node, got_marked, lo, hi, skip, units, thp, huge, 1 if thp else 512)
        assert tuple(got) == tuple(want) and got_marked.tobytes() == want_marked.tobytes()


def test_compiled_payments_equal_the_pure_ones() -> None:
    """Sync migrations paid by one task or many, with gaps in the payers' ids, pages named twice, every page moved
    or some, on 2 to 8 nodes, from read-only columns (an action's) and writable ones: the same payers, pages, CPU
    time and bytes per node."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.actuator import _payments

    rng = np.random.default_rng(10)
    for _ in range(400):
        n, nr = int(rng.integers(1, 2000)), int(rng.integers(2, 9))
        pages = rng.integers(0, n * (4 if rng.random() < 0.7 else 1) + 1, n).astype(np.int64)
        order = rng.random()
        if order < 0.3:  # (a fault batch's: increasing, no page twice)
            pages = np.unique(pages)
            n = pages.shape[0]
        elif order < 0.5:
            pages = np.sort(pages)
        payer = rng.choice(rng.integers(0, 80, int(rng.integers(1, 6))), n).astype(np.int64)
        kept_all = bool(rng.random() < 0.5)
        moved = pages if kept_all else pages[rng.random(n) < 0.6]
        src = rng.integers(0, nr, moved.shape[0]).astype(np.int64)
        dst = rng.integers(0, nr, moved.shape[0]).astype(np.int64)
        if rng.random() < 0.5:
            for col in (pages, payer, dst):
                col.flags.writeable = False
        psz = float(rng.choice([4096.0, 2097152.0]))
        args = (pages, payer, moved, kept_all, src, dst, nr, psz, int(rng.choice([1_000, 512 * 1_000, 0])))
        _same(kernels.payments(*args), inspect.unwrap(_payments)(*args))


def test_compiled_charge_rows_equal_the_pure_ones() -> None:
    """Migrations charged to distinct tasks, some with no CPU time or no copy: the same debts, copies, copy epochs
    and cause sum, and the same flags."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.fluid.progress import _charge_rows

    rng = np.random.default_rng(11)
    for _ in range(300):
        nt, nr = int(rng.integers(1, 60)), int(rng.integers(2, 9))
        k = int(rng.integers(1, nt + 1))
        tids = np.sort(rng.choice(nt, k, replace=False)).astype(np.int64)
        ns = rng.choice([0.0, 1000.0, 512000.0, 3000.0], k)
        pages = rng.integers(0, 40, (k, nr)) * (rng.random((k, 1)) < 0.8)
        src = pages * 4096.0
        dst = rng.permuted(pages, axis=1) * 4096.0
        state = (rng.random(nt) * 1e6, rng.random(nt) * 1e7, rng.random((nt, nr)) * 1e6, rng.random((nt, nr)) * 1e6,
                 rng.integers(0, 9, nt).astype(np.int64))  # fmt: skip
        total = float(rng.random() * 1e9)
        mine, theirs = [x.copy() for x in state], [x.copy() for x in state]
        got = kernels.charge_rows(tids, ns, src, dst, total, *mine)
        want = inspect.unwrap(_charge_rows)(tids, ns, src, dst, total, *theirs)
        _same(tuple(got), tuple(want))
        for g, w in zip(mine, theirs, strict=True):
            assert g.tobytes() == w.tobytes()


def test_compiled_sweep_rows_equal_the_pure_ones() -> None:
    """Tasks on a CPU or not, streaming or not, with one region or a shared one too, with debts, copies, no
    rate or no share, done past the work or not, windows that cover their sweeps or not, short and long
    horizons: the same rows and task ids."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.fluid.progress import _sweep_rows as pure

    rng = np.random.default_rng(11)
    outcomes: set[int] = set()
    for _ in range(400):
        n, nkeys = int(rng.integers(1, 60)), int(rng.integers(1, 6))
        psz = int(rng.choice([4096, 2 * 1024 * 1024]))
        geo_i = np.zeros((nkeys, 4), dtype=np.int64)
        geo_f = np.zeros((nkeys, 2))
        for k in range(nkeys):
            geo_i[k, :2] = rng.integers(0, 2**34), rng.integers(1, 2**31)
            if rng.random() < 0.4:
                geo_i[k, 2:] = rng.integers(0, 2**34), rng.integers(1, 2**31)
                geo_f[k, 0] = rng.uniform(0.01, 0.99)
            geo_f[k, 1] = float(geo_i[k, 1]) * int(rng.integers(1, 9)) / (1.0 - geo_f[k, 0])
        ids = np.sort(rng.choice(n + 5, n, replace=False)).astype(np.int64)
        size = int(ids.max()) + 1
        oncpu = np.where(rng.random(size) < 0.85, rng.integers(0, 48, size), -1).astype(np.int64)
        kind = rng.choice(np.array([0, 1, 1, 1, 2], dtype=np.int8), size)
        phase_key = rng.integers(0, nkeys, size).astype(np.int64)
        rate = rng.uniform(0.0, 8.0, size) * (rng.random(size) < 0.9)
        share = rng.random(size) * (rng.random(size) < 0.9)
        debt = rng.random(size) * 1e6 * (rng.random(size) < 0.4)
        copy_left = rng.random(size) * 1e7 * (rng.random(size) < 0.3)
        rem = geo_f[phase_key, 1] * rng.uniform(-0.1, 1.0, size)
        lo = int(rng.integers(0, 2**35 // psz))
        hi = lo + int(rng.integers(0, 2**33 // psz))
        horizon = float(rng.choice([0.0, 1e4, 1e6, 1e9, 2.0**52]))
        args = (ids, oncpu, kind, phase_key, geo_i, geo_f, rate, debt, share, copy_left, rem, psz, lo, hi, horizon)
        want = inspect.unwrap(pure)(*args)
        _same(kernels.sweep_rows(*args), want)
        outcomes.add(min(want[1].shape[0], 2))
    assert outcomes == {0, 1, 2}  # (draws with no row, one and several)


def test_the_streaming_tasks_are_those_in_a_touch_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sweep_rows`` takes the tasks whose column says MEM for the tasks in a ``Touch`` phase: at every scan of
    runs with one region and with shared ones, every running task's column and phase agree."""
    from memsched.sim.fluid.progress import FluidProgress
    from memsched.sim.fluid.state import MEM
    from memsched.sim.fluid.task import Touch
    from memsched.workloads.runner import run_one
    from memsched.workloads.runspec import RunSpec

    real = FluidProgress.sweep_rows
    seen = [0, 0]

    def checked(self: FluidProgress, ids: np.ndarray, *args: Any) -> Any:
        self.sync()
        a = self.arrays
        for tid in ids.tolist():
            task = self.tasks[tid]
            if a.oncpu[tid] >= 0:
                seen[0] += 1
                streams = isinstance(task.phase, Touch)
                seen[1] += streams
                assert (a.kind[tid] == MEM) == streams, (tid, task.phase)
        return real(self, ids, *args)

    monkeypatch.setattr(FluidProgress, "sweep_rows", checked)
    for workload in ("numa02_SMT", "specjbb", "perf-bench-numa"):
        run_one(RunSpec(workload, "sandybridge-2n32", "homenode"))
    assert seen[0] > 1000 and 0 < seen[1] <= seen[0]


def test_compiled_settle_charges_equal_the_pure_ones() -> None:
    """Settles of batches with and without lock holds (spinlock and 3.7's mutex, long holds that sleep), TLB
    flushes by tasks and by kernel threads, tasks that came with nothing, tasks not running or exited, hinting
    faults with and without contention, costs of zero: the same charges, causes, totals, sleeps and wakers."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.balancing import _settle_charges
    from memsched.sim.numa.contention import Contention, ContentionCosts

    rng = np.random.default_rng(12)
    seen = {"sleep": 0, "flush": 0, "spin": 0, "debt": 0, "touched": 0}
    for _ in range(600):
        nr_tasks = int(rng.integers(1, 40))
        alive = np.sort(rng.choice(nr_tasks, int(rng.integers(0, nr_tasks + 1)), replace=False)).astype(np.int64)
        oncpu = np.where(rng.random(nr_tasks) < 0.8, rng.integers(0, 48, nr_tasks), -1).astype(np.int64)
        c = Contention(ContentionCosts(), anon_vma_mutex=bool(rng.random() < 0.5))
        for _ in range(int(rng.integers(0, 30))):
            task = int(rng.integers(-1, nr_tasks))
            what = rng.random()
            if what < 0.35:
                c.hold(0, task, "ptl", int(rng.integers(0, 300)), float(rng.choice([0, 500, 1000, 15_000])))
            elif what < 0.7:
                c.hold(0, task, "anon", int(rng.integers(0, 300)), float(rng.choice([0, 1000, 40_000])))
            else:
                c.flush(0, task, int(rng.integers(0, 5)))
        ev = c.take(0)
        if ev is None:
            ev_tid, ev_f, ev_n = np.zeros(0, np.int64), np.zeros((4, 0)), np.zeros((3, 0), np.int64)
        else:
            ev_tid, ev_f, ev_n = ev.rows()
        nh = int(rng.integers(0, nr_tasks + 1))
        hint_tid = np.sort(rng.choice(nr_tasks, nh, replace=False)).astype(np.int64)
        hint_ns = rng.integers(1, 512, nh) * float(rng.choice([0.0, 2000.0, 1024000.0]))
        cost_ns = np.array([10_000, *rng.choice([0, 200, 2000], 2), rng.choice([0, 1500])], dtype=np.int64)
        args = (
            hint_tid, hint_ns, ev_tid, ev_f, ev_n, alive, oncpu, nr_tasks, float(rng.choice([1.0, 1e5, 1e7])),
            c.anon_vma_mutex, cost_ns,
        )  # fmt: skip
        # updated in place: the causes' totals so far, the run's sums (the last: the sends' so far) and counts, the
        # debts (empty: charged by the caller)
        causes = rng.random(4) * 1e9 * (rng.random(4) < 0.7)
        sums = np.concatenate([rng.random(3) * 1e9 * (rng.random(3) < 0.7), [rng.random() * 1e9]])
        counts = rng.integers(0, 10**6, 3) * (rng.random(3) < 0.7)
        debt = rng.random(nr_tasks) * 1e6 if rng.random() < 0.7 else np.zeros(0)
        state = (causes, sums, counts, debt)
        want_state, got_state = [x.copy() for x in state], [x.copy() for x in state]
        want = inspect.unwrap(_settle_charges)(*args, *want_state)
        _same(kernels.settle_charges(*args, *got_state), want)
        for got_x, want_x in zip(got_state, want_state, strict=True):
            assert got_x.dtype == want_x.dtype and got_x.tobytes() == want_x.tobytes()
        seen["debt"] += int(debt.shape[0] > 0 and want[2] > 0 and want_state[3].tobytes() != debt.tobytes())
        nr_sleep, nr_flush = (want_state[2] - counts)[:2]
        seen["sleep"] += int(nr_sleep > 0)
        seen["flush"] += int(nr_flush > 0)
        seen["spin"] += int(want_state[1][0] > sums[0])
        seen["touched"] += int(want[0][0] != 0 and want_state[0].tobytes() != causes.tobytes())
    assert min(seen.values()) > 20  # (the draws cover sleeps, shootdowns, spins and charged causes)


def test_compiled_holds_equal_the_lists(gate: pytest.MonkeyPatch) -> None:
    """``Contention.hold_each`` through its kernel (``add_holds``) against its lists: holds of either lock by
    tasks and kernel threads that come again, counts and costs of zero or below, int and float costs, flushes,
    lists and arrays, and batches that the lists began and the kernel goes on with (``auto`` switching in the
    middle of a run): the same slots and sums, read as arrays and as the lists of Python numbers."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.numa.contention import BatchEvents, Contention, ContentionCosts

    def lists(ev: BatchEvents) -> list[list[Any]]:
        cols = (ev.tids, ev.ptl_ns, ev.ptl_n, ev.ptl_sq, ev.anon_ns, ev.anon_n, ev.anon_sq, ev.flushes)
        return [[(type(x), repr(x)) for x in col] for col in cols]

    rng = np.random.default_rng(5)
    seen = {"again": 0, "switched": 0, "anon": 0, "flush": 0}
    for _ in range(400):
        calls = []
        for _ in range(int(rng.integers(1, 8))):
            k = int(rng.integers(1, 6))
            tasks = rng.integers(-1, 6, k).astype(np.int64)
            counts = rng.integers(-2, 600, k).astype(np.int64) * (rng.random(k) < 0.8)
            each = rng.choice([0, -5, 100, 500, 1_000, 40_000]).item()
            each_ns = float(each) if rng.random() < 0.5 else int(each)
            flushes = rng.integers(0, 4, k).astype(np.int64) if rng.random() < 0.5 else None
            as_lists = rng.random() < 0.5
            args = [tasks, counts, flushes]
            if as_lists:
                args = [None if a is None else a.tolist() for a in args]
            calls.append((args[0], "ptl" if rng.random() < 0.5 else "anon", args[1], each_ns, args[2]))
            seen["again"] += len(set(tasks.tolist())) < k
            seen["anon"] += calls[-1][1] == "anon" and each > 0
            seen["flush"] += flushes is not None and bool(flushes.any())
        switch = int(rng.integers(0, len(calls) + 1))  # (calls before it: the lists)
        out = []
        for at in (len(calls), switch):
            c = Contention(ContentionCosts(), anon_vma_mutex=False)
            for i, (tasks_i, lock, counts_i, each_ns, flushes_i) in enumerate(calls):
                gate.setattr(jit._gate, "kernels", None if i < at else kernels)
                c.hold_each(0, tasks_i, lock, counts_i, each_ns, flushes_i)
            ev = c.take(0)
            assert ev is not None
            out.append(([x.tobytes() for x in ev.rows()], [x.dtype for x in ev.rows()], lists(ev)))
        seen["switched"] += 0 < switch < len(calls)
        assert out[1] == out[0], calls
    assert min(seen.values()) > 20, seen


def test_compiled_migrate_rows_equal_the_pure_ones() -> None:
    """Migrations of pages present or not, on their destination already or not, under the rate limit (windows
    open, restarted, overflowing) or not, to nodes with room or below their watermark: the same pages moved,
    counts and refusals, the same windows and free frames after; read-only columns too; a page or node out of
    range changes nothing and is flagged."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.mm.migrate import _migrate_rows

    rng = np.random.default_rng(13)
    seen = {"ratelimited": 0, "balance": 0, "all": 0}
    for _ in range(500):
        nr, npages = int(rng.integers(1, 9)), int(rng.integers(1, 3000))
        page_node = np.where(rng.random(npages) < 0.9, rng.integers(0, nr, npages), -1).astype(np.int16)
        n = int(rng.integers(0, min(npages, 600) + 1))
        pages = rng.choice(npages, n, replace=False).astype(np.int64)
        dst = rng.integers(0, nr, n).astype(np.int64)
        if rng.random() < 0.5:
            pages.flags.writeable = False
            dst.flags.writeable = False
        state = (
            rng.integers(0, 2_000_000, nr).astype(np.int64), rng.integers(0, 40_000, nr).astype(np.int64),
            rng.integers(-10**6, 10**6, nr).astype(np.int64),
        )  # fmt: skip
        free = rng.integers(0, 400, nr).astype(np.int64) * int(rng.choice([1, 1000]))
        if nr > 1 and rng.random() < 0.25:  # every page present and elsewhere, with room: all of them may move
            page_node = np.abs(page_node).astype(np.int16)
            dst = (page_node[pages].astype(np.int64) + 1) % nr
            free += 10**6
        high = rng.integers(0, 100, nr).astype(np.int64)
        bpp, rl = int(rng.choice([1, 512])), int(rng.choice([200, 32768]))
        ratelimit = bool(rng.random() < 0.6)
        now = int(rng.integers(0, 3_000_000))
        results = []
        for fn in (inspect.unwrap(_migrate_rows), kernels.migrate_rows):
            we, wp, ll = (x.copy() for x in state)
            fr = free.copy()
            out = fn(pages, dst, page_node, ratelimit, now, we, wp, ll, bpp, rl, 100_000, fr, high, nr)
            results.append((out, we, wp, ll, fr))
        (want, *want_state), (got, *got_state) = results
        assert not got[-1]
        if got[8]:  # every page moves: the callers use their own arrays (the pure code returns them)
            assert want[0] is pages and np.array_equal(got[0], pages) and np.array_equal(got[1], dst)
            got, want = got[2:], want[2:]
        _same(got, want)
        assert all(g.tobytes() == w.tobytes() for g, w in zip(got_state, want_state, strict=True))
        seen["ratelimited"] += int(want[-5] > 0) if not want[-2] else 0
        seen["balance"] += int(want[-4] > 0) if not want[-2] else 0
        seen["all"] += int(bool(want[-2]))
    assert min(seen.values()) > 10
    bad = np.array([0, npages], dtype=np.int64)
    out = kernels.migrate_rows(bad, np.zeros(2, np.int64), page_node, True, 0, *(x.copy() for x in state), 1, 1, 1,
                               free, high, nr)  # fmt: skip
    assert out[-1] and out[0].size == 0


def test_compiled_partial_gains_equal_the_pure_ones() -> None:
    """Moves of a few pages or many, pages named twice, pages not present before, regions holding some of them,
    all, none, inside one page or empty: the same gains, bit for bit."""
    kernels = pytest.importorskip("memsched.sim.fluid._kernels")
    from memsched.sim.mm.mm import _partial_gains

    pure = inspect.unwrap(_partial_gains)
    rng = np.random.default_rng(12)
    psz = 4096
    moved = 0
    for _ in range(400):
        npages, nr = int(rng.integers(1, 300)), int(rng.integers(1, 6))
        spans = []
        for _ in range(int(rng.integers(0, 8))):
            start = int(rng.integers(0, npages * psz))
            nbytes = int(rng.integers(0, npages * psz - start + 1)) if rng.random() < 0.9 else 0
            p0 = start // psz
            p1 = p0 if nbytes == 0 else (start + nbytes - 1) // psz + 1
            spans.append((p0, p1, start - p0 * psz, p1 * psz - (start + nbytes)))
        span = np.array(spans, dtype=np.int64).reshape(-1, 4)
        m = int(rng.integers(0, 40))
        pages = rng.integers(0, npages, m).astype(np.int64)
        nodes = rng.integers(0, nr, m).astype(np.int64)
        old = rng.integers(-1, nr, m).astype(np.int64)
        want = pure(pages, nodes, old, span, psz, nr)
        got = kernels.partial_gains(pages, nodes, old, span, psz, nr)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()
        moved += int(np.count_nonzero(want))
    assert moved > 500
