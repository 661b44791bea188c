"""Live NUMA on the running kernel: the real sysfs topology, numa top, and balancing a child for real.

On a one-node machine every action is a no-op for placement (all memory and CPUs are node 0), but the
calls are real: move_pages queries and moves, migrate_pages, sched_setaffinity pins and restores. The
child must keep running correctly, and its threads' CPU masks must be what they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from memsched.cli import main
from memsched.live import capabilities
from memsched.live.numa.balance import LiveBalancer
from memsched.live.numa.syscalls import KernelNumaSyscalls
from memsched.live.procfs import read_numa_maps
from memsched.live.roots import LiveRoots
from memsched.policies.numa.actions import Action, MigrateMmNodes, MigratePages, MigrateTask, SetAffinity, SwapTasks
from memsched.policies.numa.base import NumaPolicy, TaskWorkScan
from memsched.policies.numa.views import FaultBatch, PolicyContext
from memsched.topology.sysfs import topology_from_sysfs

pytestmark = pytest.mark.live

BUFFER_MIB = 32
CHILD = textwrap.dedent(
    f"""
    import sys, threading
    buf = bytearray({BUFFER_MIB} << 20)
    for i in range(0, len(buf), 4096):
        buf[i] = (i >> 12) % 251
    expected = sum(buf[::4096])
    bad, count, stop = [], [0, 0], threading.Event()
    def work(k):
        while not stop.is_set():
            if sum(buf[::4096]) != expected:
                bad.append(k)
            count[k] += 1
    worker = threading.Thread(target=work, args=(1,))
    worker.start()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    work(0)
    worker.join()
    print("BAD" if bad else "ok", count[0], count[1], flush=True)
    """
)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A Python child whose two busy threads (a third waits on stdin) keep checking a 32 MiB buffer it
    wrote; a newline stops it."""
    caps = capabilities()
    if not caps.numa_maps.available:
        pytest.skip(f"no per-node memory of processes: {caps.numa_maps.reason}")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def finish(proc: subprocess.Popen[str]) -> str:
    """Stop the child and return its verdict line."""
    out, _ = proc.communicate("\n", timeout=30)
    assert proc.returncode == 0, out
    return out.strip()


def affinities(pid: int) -> dict[int, frozenset[int]]:
    return {int(t): frozenset(os.sched_getaffinity(int(t))) for t in os.listdir(f"/proc/{pid}/task")}


class EveryAction(NumaPolicy):
    """A test policy that asks for every kind of action the live mechanism applies, each a placement no-op
    on one node except the one-shot task moves: pages to their thread's node, whole-process migration to
    the threads' node, affinity to that node's CPUs, a move of each thread to another allowed CPU, a swap."""

    id = "test-every-action"
    scan = TaskWorkScan(scan_size_mb=64)

    def __init__(self) -> None:
        self.tick_interval_ns = 200_000_000

    def on_faults(self, ctx: PolicyContext, batch: FaultBatch) -> Sequence[Action]:
        return [MigratePages(batch.mm, batch.page, batch.cpu_node, mode="syscall")]

    def on_tick(self, ctx: PolicyContext) -> Sequence[Action]:
        out: list[Action] = []
        running = [int(t) for t in ctx.tasks() if ctx.task_cpu(int(t)) >= 0]
        for t in running:
            cpu = ctx.task_cpu(t)
            node = int(ctx.cpu_node[cpu])
            allowed = np.flatnonzero(ctx.task_allowed(t))
            out.append(SetAffinity(t, tuple(c for c in ctx.node_cpus[node] if c in allowed)))
            others = [int(c) for c in allowed if c != cpu]
            if others:
                out.append(MigrateTask(t, others[0]))
            out.append(MigrateMmNodes(ctx.task_mm(t), tuple(range(ctx.nr_nodes)), (node,)))
        if len(running) >= 2:
            out.append(SwapTasks(running[0], running[1]))
        return out


def test_sysfs_topology_of_this_machine() -> None:
    """The real /sys: every CPU we may run on belongs to a node; memory per node adds up to something."""
    topo = topology_from_sysfs("/sys")
    cpus = {c for n in topo.nodes for c in n.cpus}
    assert set(os.sched_getaffinity(0)) <= cpus
    assert topo.memory_bytes > 0 and (topo.distance.diagonal() == 10).all()


def test_top_json_on_this_machine(child: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]) -> None:
    """numa top --json lists the child with its buffer resident; on one node nothing is remote."""
    assert main(["numa", "top", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = next(p for p in doc["processes"] if p["pid"] == child.pid)
    assert row["threads"] == 3 and row["total_pages"] * doc["page_size"] >= BUFFER_MIB << 20
    if len(doc["nodes"]) == 1:
        assert row["remote_pages"] == 0 and row["remote_share"] == 0.0
    assert doc["vmstat"]["numa_hit"] is not None and doc["vmstat"]["numa_hit"] > 0
    assert finish(child).startswith("ok")


def test_every_action_applied_for_real(child: subprocess.Popen[str]) -> None:
    """Every action kind goes to the kernel without error; the child runs on, its buffer intact, its CPU
    masks unchanged; on one node its memory stays on node 0."""
    before = affinities(child.pid)
    balancer = LiveBalancer(EveryAction(), pids=[child.pid], interval_ns=200_000_000)
    reports = balancer.run(3)
    results = [r for rep in reports for r in rep.results]
    kinds = {r.action for r in results}
    assert {"MigratePages", "SetAffinity", "MigrateTask", "MigrateMmNodes"} <= kinds
    assert not [r for r in results if r.status in ("failed", "partial")], [r.line() for r in results]
    assert any(r.action == "MigrateTask" and r.status == "applied" for r in results)
    assert sum(rep.faults for rep in reports) > 0
    assert affinities(child.pid) == before
    # The calls behind the no-ops, made directly: moving present pages to the node they are on, and
    # migrate_pages between the same nodes, both succeed and change nothing.
    kernel = KernelNumaSyscalls()
    vma = max(read_numa_maps(LiveRoots(), child.pid), key=lambda v: v.anon)
    addrs = vma.start + 4096 * np.arange(64, dtype=np.int64)
    where = kernel.move_pages(child.pid, addrs, None)
    present = addrs[where >= 0]
    assert present.shape[0] > 0
    moved = kernel.move_pages(child.pid, present, where[where >= 0])
    assert (moved == where[where >= 0]).all()
    nodes = frozenset(topology_from_sysfs("/sys").nodes[i].id for i in range(1))
    assert kernel.migrate_pages(child.pid, nodes, nodes) == 0
    assert finish(child).startswith("ok")


def test_cli_balance_for_real(child: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]) -> None:
    """homenode and numad run against the child from the command line without a failed action."""
    before = affinities(child.pid)
    pid = ["--pid", str(child.pid)]
    argv = ["numa", "balance", "--policy", "homenode", *pid, "--count", "2", "--interval", "300ms", "--json"]
    assert main(argv) == 0
    homenode = json.loads(capsys.readouterr().out)
    numad_sets = ["--set", "min_interval_s=1", "--set", "cpu_threshold=1", "--set", "memory_threshold_mb=1"]
    argv = ["numa", "balance", "--policy", "numad", *pid, *numad_sets, "--count", "3", "--interval", "600ms", "--json"]
    assert main(argv) == 0
    numad = json.loads(capsys.readouterr().out)
    for doc in (homenode, numad):
        assert doc["dry_run"] is False and doc["samples"][0]["processes"] == [{"pid": child.pid, "comm": "python"}]
        statuses = {a["status"] for s in doc["samples"] for a in s["actions"]}
        assert statuses <= {"applied", "no-op", "skipped", "recorded"}, statuses
    assert affinities(child.pid) == before
    assert finish(child).startswith("ok")
