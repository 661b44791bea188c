"""A hand-built PolicyContext for testing policy rules without a simulation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memsched.policies.numa.views import FaultBatch, MempolicyView


@dataclass
class FakeContext:
    """``nodes`` x ``cpus_per_node`` CPUs; ``rq[cpu]`` lists queued task ids; tasks map to (tgid, mm)."""

    nodes: int = 2
    cpus_per_node: int = 2
    rq: dict[int, list[int]] = field(default_factory=dict)
    task_info: dict[int, tuple[int, int]] = field(default_factory=dict)  # task -> (tgid, mm)
    mm_pages: dict[int, list[int]] = field(default_factory=dict)
    seq: dict[int, int] = field(default_factory=dict)
    periods: dict[int, int] = field(default_factory=dict)
    policies: dict[int, MempolicyView] = field(default_factory=dict)
    now: int = 0

    @property
    def now_ns(self) -> int:
        return self.now

    @property
    def nr_nodes(self) -> int:
        return self.nodes

    @property
    def nr_cpus(self) -> int:
        return self.nodes * self.cpus_per_node

    @property
    def cpu_node(self) -> np.ndarray:
        return np.repeat(np.arange(self.nodes), self.cpus_per_node)

    @property
    def distance(self) -> np.ndarray:
        return np.where(np.eye(self.nodes, dtype=bool), 10, 20)

    @property
    def node_cpus(self) -> tuple[tuple[int, ...], ...]:
        c = self.cpus_per_node
        return tuple(tuple(range(n * c, (n + 1) * c)) for n in range(self.nodes))

    @property
    def cpu_nr_running(self) -> np.ndarray:
        return np.array([len(self.rq.get(c, [])) for c in range(self.nr_cpus)])

    @property
    def node_free_pages(self) -> np.ndarray:
        return np.full(self.nodes, 1000)

    @property
    def node_total_pages(self) -> np.ndarray:
        return np.full(self.nodes, 1000)

    @property
    def page_size(self) -> int:
        return 2 << 20

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(0)

    def tasks(self) -> np.ndarray:
        return np.array(sorted(self.task_info), dtype=np.int64)

    def task_tgid(self, task: int) -> int:
        return self.task_info[task][0]

    def task_mm(self, task: int) -> int:
        return self.task_info[task][1]

    def task_cpu(self, task: int) -> int:
        return next((c for c, q in self.rq.items() if task in q), -1)

    def task_runnable(self, task: int) -> bool:
        return self.task_cpu(task) >= 0

    def task_allowed(self, task: int) -> np.ndarray:
        return np.ones(self.nr_cpus, dtype=bool)

    def task_preferred_node(self, task: int) -> int:
        return -1

    def task_scan_period_ns(self, task: int) -> int:
        return self.periods.get(task, 100_000_000)

    def task_runtime_ns(self, task: int) -> int:
        return 0

    def cpu_tasks(self, cpu: int) -> tuple[int, ...]:
        return tuple(self.rq.get(cpu, []))

    def mm_tasks(self, mm: int) -> tuple[int, ...]:
        return tuple(t for t, (_, m) in self.task_info.items() if m == mm)

    def mm_node_pages(self, mm: int) -> np.ndarray:
        return np.array(self.mm_pages.get(mm, [0] * self.nodes))

    def mm_scan_seq(self, mm: int) -> int:
        return self.seq.get(mm, 0)

    def task_mempolicy(self, task: int) -> MempolicyView:
        return self.policies.get(task, MempolicyView("default", mof=True))

    def mm_vma_mempolicies(self, mm: int) -> tuple[tuple[int, MempolicyView], ...]:
        return ()


def batch(
    *,
    task: list[int],
    cpu: list[int],
    page_node: list[int],
    last_nid: list[int] | None = None,
    last_pid: list[int] | None = None,
    last_cpu: list[int] | None = None,
    cpus_per_node: int = 2,
    mm: int = 0,
    base_pages: int = 512,
    nr_faults: int = 1,
    mof: list[bool] | None = None,
) -> FaultBatch:
    n = len(task)
    arr = lambda v, fill: np.array(v if v is not None else [fill] * n, dtype=np.int64)  # noqa: E731
    cpus = arr(cpu, 0)
    return FaultBatch(
        mm=mm,
        time_ns=np.zeros(n, dtype=np.int64),
        task=arr(task, 0),
        tgid=arr(task, 0),
        cpu=cpus,
        cpu_node=cpus // cpus_per_node,
        page=np.arange(n, dtype=np.int64),
        page_node=arr(page_node, 0),
        last_nid=arr(last_nid, -1),
        last_pid=arr(last_pid, -1),
        last_cpu=arr(last_cpu, -1),
        base_pages=base_pages,
        nr_faults=nr_faults,
        mof=None if mof is None else np.array(mof, dtype=bool),
    )
