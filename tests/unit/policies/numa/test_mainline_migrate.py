"""mainline's task_numa_migrate() search against a plain transcription of the kernel's loop, on random states.

The policy's search skips candidates that cannot be strictly better than the best so far and tests the loads
once per node pair; the reference here scores every allowed CPU with task_numa_compare() in full, as the
kernel does. Both must pick the same CPU, task and node for every state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pytest

from helpers.numa_fake import FakeContext, batch
from memsched.policies.numa import get
from memsched.policies.numa.actions import Action, MigratePages, MigrateTask, SetPreferredNode, SwapTasks
from memsched.policies.numa.mainline import Mainline, MainlineConfig, NumaGroup, _RqView


@dataclass
class _Ctx(FakeContext):
    allowed: dict[int, list[bool]] = field(default_factory=dict)

    def task_allowed(self, task: int) -> np.ndarray:
        mask = self.allowed.get(task)
        return np.array(mask, dtype=bool) if mask is not None else np.ones(self.nr_cpus, dtype=bool)


def _load_too_imbalanced(
    pct: int, src: tuple[float, float, bool], dst: tuple[float, float, bool], src_load: float, dst_load: float
) -> bool:
    src_cap, dst_cap = src[1], dst[1]
    hi, lo = max(dst_load, src_load), min(dst_load, src_load)
    imb = hi * src_cap * 100 - lo * dst_cap * pct
    if imb <= 0:
        return False
    ohi, olo = max(dst[0], src[0]), min(dst[0], src[0])
    return imb > ohi * src_cap * 100 - olo * dst_cap * pct


def _reference(p: Mainline, ctx: _Ctx, task: int, src_cpu: int) -> tuple[int, int | None, int] | None:
    """task_numa_migrate()'s choice (cpu, swapped task, node): every allowed CPU scored in full, the first
    strictly better candidate kept."""
    st = p.tasks[task]
    nr_running = ctx.cpu_nr_running.tolist()
    src_nid = int(ctx.cpu_node[src_cpu])

    def stats(nid: int) -> tuple[float, float, bool]:
        cpus = ctx.node_cpus[nid]
        running = sum(nr_running[c] for c in cpus)
        return float(running) * 1024, float(len(cpus)) * 1024, running < len(cpus)

    def tw(t: int, nid: int) -> int:
        return p.task_weight(t, nid)

    def gw(t: int, nid: int) -> int:
        return p.group_weight(t, nid)

    def group(t: int) -> int | None:
        s = p.tasks.get(t)
        return s.group if s is not None else None

    def compare(dst_nid: int, dst_cpu: int, taskimp: int, groupimp: int) -> tuple[int, int | None] | None:
        src, dst = stats(src_nid), stats(dst_nid)
        queued = ctx.cpu_tasks(dst_cpu)
        cur = queued[0] if queued else None
        load = 1024.0
        if cur is None:
            imp = groupimp if groupimp > 0 else taskimp
            if imp <= 0 or (src[2] and not dst[2]):
                return None
            src_load, dst_load = src[0] - load, dst[0] + load
        else:
            if not bool(ctx.task_allowed(cur)[src_cpu]):
                return None
            if group(cur) == st.group:
                imp = taskimp + tw(cur, src_nid) - tw(cur, dst_nid)
                if st.group is not None:
                    imp -= imp // 16
            else:
                imp = groupimp if st.group is not None else taskimp
                if group(cur) is not None:
                    imp += gw(cur, src_nid) - gw(cur, dst_nid)
                else:
                    imp += tw(cur, src_nid) - tw(cur, dst_nid)
            if imp <= 0:
                return None
            if nr_running[src_cpu] == 1 and nr_running[dst_cpu] == 1:
                return imp, cur
            src_load, dst_load = src[0] - load + load, dst[0] + load - load
        if _load_too_imbalanced(p.config.imbalance_pct, src, dst, src_load, dst_load):
            return None
        return imp, cur

    best: tuple[int, int, int | None, int] | None = None

    def search(nid: int) -> None:
        nonlocal best
        taskimp = tw(task, nid) - tw(task, src_nid)
        groupimp = gw(task, nid) - gw(task, src_nid)
        for cpu in ctx.node_cpus[nid]:
            if not bool(ctx.task_allowed(task)[cpu]):
                continue
            cand = compare(nid, cpu, taskimp, groupimp)
            if cand is not None and (best is None or cand[0] > best[0]):
                best = (cand[0], cpu, cand[1], nid)

    search(st.preferred)
    if best is None:
        for nid in range(ctx.nr_nodes):
            if nid in (src_nid, st.preferred):
                continue
            if tw(task, nid) - tw(task, src_nid) < 0 and gw(task, nid) - gw(task, src_nid) < 0:
                continue
            search(nid)
    return None if best is None else best[1:]


def _choice(actions: list[Action]) -> tuple[int, int | None, int] | None:
    if not actions:
        return None
    last = actions[-1]
    nodes = [a.node for a in actions if isinstance(a, SetPreferredNode)]
    if isinstance(last, MigrateTask):
        return last.dst_cpu, None, nodes[0] if nodes else -2
    assert isinstance(last, SwapTasks)
    return -1, last.b, nodes[0] if nodes else -2


def _random_state(seed: int) -> tuple[Mainline, _Ctx, list[int]]:
    rng = np.random.default_rng(seed)
    nodes, per = int(rng.integers(2, 5)), int(rng.integers(1, 5))
    ncpu = nodes * per
    ntasks = int(rng.integers(2, 2 * ncpu + 2))
    rq: dict[int, list[int]] = {}
    for t in range(1, ntasks + 1):
        rq.setdefault(int(rng.integers(0, ncpu)), []).append(t)
    allowed = {t: (rng.random(ncpu) < 0.8).tolist() for t in range(1, ntasks + 1) if rng.random() < 0.3}
    ctx = _Ctx(nodes=nodes, cpus_per_node=per, rq=rq, task_info={t: (t, t) for t in range(1, ntasks + 1)},
               allowed=allowed)
    p = get("mainline").make(MainlineConfig(imbalance_pct=int(rng.choice([100, 112, 125, 300]))))
    assert isinstance(p, Mainline)
    gids = sorted({int(g) for g in rng.integers(1, ntasks + 1, int(rng.integers(0, 3)))})
    for g in gids:
        p.groups[g] = NumaGroup(g, set(), rng.integers(0, 4, (nodes, 2)).astype(float) * 8, np.zeros((nodes, 2)))
    for t in range(1, ntasks + 1):
        if rng.random() < 0.15:
            continue  # no NUMA state: all weights 0
        st = p._t(ctx, t)
        st.faults[:] = rng.integers(0, 5, (nodes, 2)) ** int(rng.integers(1, 4)) * rng.choice([0.5, 1.0, 3.0])
        if gids and rng.random() < 0.6:
            g = int(rng.choice(gids))
            st.group = g
            p.groups[g].tasks.add(t)
        st.preferred = int(rng.integers(0, nodes))
    movers = [t for t, s in p.tasks.items() if ctx.task_cpu(t) >= 0 and ctx.task_cpu(t) // per != s.preferred]
    return p, ctx, movers


@pytest.mark.parametrize("seed", range(300))
def test_search_matches_the_kernels_loop(seed: int) -> None:
    p, ctx, movers = _random_state(seed)
    view = _RqView(ctx)  # one view for every task, as on_tick() shares it
    for task in movers:
        want = _reference(p, ctx, task, ctx.task_cpu(task))
        before = copy.deepcopy(p.tasks[task].preferred)
        got = _choice(p._task_numa_migrate(ctx, task, view, ctx.task_cpu(task)))
        p.tasks[task].preferred = before
        if want is None:
            assert got is None
        else:
            cpu, other, nid = want
            assert got == (cpu if other is None else -1, other, nid if nid != before else -2)


def _should_migrate(p: Mainline, task: int, src: int, dst: int, last_nid: int, last_pid: int, mof: bool) -> bool:
    """should_numa_migrate_memory() for one fault, rule by rule (after mpol_misplaced())."""
    if src == dst or not mof:
        return False
    if last_pid >= 0 and last_nid != dst:
        return False  # (1) the two-stage filter
    if last_pid == task:
        return True  # (2) private
    st = p.tasks.get(task)
    if st is None or st.group is None:
        return True  # (3) no group
    g = p.groups[st.group]
    if dst not in g.active:
        return False  # (4)
    if src not in g.active:
        return True  # (5)
    gf = g.faults.sum(axis=1)
    return bool(gf[dst] < gf[src] * 3 / 4)  # (6)


@pytest.mark.parametrize("seed", range(200))
def test_on_faults_matches_the_per_fault_rules(seed: int) -> None:
    """on_faults() evaluates the batch at once (one group's row directly, or a row per group); each fault must
    get should_numa_migrate_memory()'s answer."""
    rng = np.random.default_rng(1000 + seed)
    nodes, per = int(rng.integers(2, 5)), 2
    ctx = FakeContext(nodes=nodes, cpus_per_node=per, task_info={t: (1, 0) for t in range(1, 7)})
    p = get("mainline").make()
    assert isinstance(p, Mainline)
    ngroups = int(rng.integers(0, 3))
    for g in range(1, ngroups + 1):
        active = {int(n) for n in rng.integers(0, nodes, int(rng.integers(1, nodes + 1)))}
        faults = rng.integers(0, 4, (nodes, 2)) * rng.choice([0.25, 1.0, 7.0, 0.1])
        p.groups[g] = NumaGroup(g, set(), faults, np.zeros((nodes, 2)), active=active)
    for t in range(1, 7):
        if rng.random() < 0.8:
            st = p._t(ctx, t)
            if ngroups and rng.random() < 0.8:
                st.group = int(rng.integers(1, ngroups + 1))
                p.groups[st.group].tasks.add(t)
    n = int(rng.integers(1, 40))
    tasks = rng.integers(1, 7 if rng.random() < 0.5 else 3, n).tolist()
    cpus = rng.integers(0, nodes * per, n).tolist()
    page_node = rng.integers(0, nodes, n).tolist()
    rs = rng.random(n)
    last_pid = [t if r < 0.2 else (-1 if r < 0.3 else int(rng.integers(1, 7))) for t, r in zip(tasks, rs, strict=True)]
    last_nid = [c // per if r < 0.8 else int(rng.integers(0, nodes)) for c, r in zip(cpus, rng.random(n), strict=True)]
    mof = (rng.random(n) < 0.9).tolist() if rng.random() < 0.3 else None
    b = batch(task=tasks, cpu=cpus, page_node=page_node, last_nid=last_nid, last_pid=last_pid, cpus_per_node=per,
              mof=mof)
    want = [
        i
        for i in range(n)
        if _should_migrate(p, tasks[i], page_node[i], cpus[i] // per, last_nid[i], last_pid[i],
                           True if mof is None else mof[i])
    ]
    got: list[int] = []
    for act in p.on_faults(ctx, b):
        assert isinstance(act, MigratePages)
        got += act.pages.tolist()
    assert got == want


def test_group_verdicts_through_numpy_call_and_give_what_the_dict_does() -> None:
    """``group_verdicts`` maps a batch's shared faults to task_numa_group()'s verdicts through a dict of the
    triples or, for large batches, through numpy's sort of them as integers: the same calls, in the triples'
    lexicographic order, and the same verdict for every fault (last tasks and CPUs of -1, ids of several
    digits, triples next to each other in every digit, a single triple, many)."""
    from memsched.policies.numa.mainline import group_verdicts

    rng = np.random.default_rng(7)
    seen_many = uniform = 0
    for _ in range(300):
        n = int(rng.integers(1, 400))
        k = int(rng.integers(1, 12))
        top = 300 if rng.random() < 0.5 else 3  # (ids of several digits, or few: triples side by side)
        distinct = np.stack(
            [rng.integers(0, top, k), rng.integers(-1, top, k), rng.integers(-1, top, k)], axis=1
        ).astype(np.int64)
        rows = distinct[rng.integers(0, k, n)]
        task, last_pid, last_cpu = rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy()
        p_true = float(rng.choice([0.0, 0.5, 1.0]))  # (every verdict False, mixed, every one True)
        answers = {tuple(map(int, t)): bool(rng.random() < p_true) for t in distinct}
        runs = []
        for lists_up_to in (n, n - 1):  # (through the dict, then through numpy)
            calls: list[tuple[int, int, int]] = []

            def verdict_of(
                t: int, p: int, c: int, calls: list[tuple[int, int, int]] = calls, answers: dict = answers
            ) -> bool:
                calls.append((t, p, c))
                return answers[(t, p, c)]

            out = group_verdicts(task, last_pid, last_cpu, verdict_of, lists_up_to)
            if lists_up_to < n and len(set(answers.values())) == 1:  # (one verdict for every fault: that bool)
                assert out is next(iter(answers.values()))
                uniform += 1
            runs.append((np.broadcast_to(np.asarray(out, dtype=bool), (n,)).tolist(), calls))
        assert runs[0] == runs[1]
        assert runs[0][1] == sorted(set(zip(task.tolist(), last_pid.tolist(), last_cpu.tolist(), strict=True)))
        assert runs[0][0] == [answers[t] for t in zip(task.tolist(), last_pid.tolist(), last_cpu.tolist(), strict=True)]
        seen_many += len(runs[0][1]) > 5
    assert seen_many > 50 and uniform > 50


def test_distinct_ids_are_the_sorted_set_and_its_positions() -> None:
    from memsched.policies.numa.mainline import distinct_ids

    rng = np.random.default_rng(3)
    for _ in range(200):
        ids = rng.integers(0, int(rng.choice([1, 4, 300])), int(rng.integers(0, 50))).astype(np.int64)
        want = sorted(set(ids.tolist()))
        got, slot = distinct_ids(ids)
        assert got == want
        assert slot.tolist() == np.searchsorted(np.array(want, dtype=np.int64), ids).tolist()
