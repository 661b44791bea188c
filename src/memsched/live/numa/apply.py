"""Applying a policy's actions to real processes, one result per action, or describing them (``--dry-run``).

=================== ========================================================================================
action              live meaning
=================== ========================================================================================
``MigrateMmNodes``  ``migrate_pages(2)`` on the whole process, ``MPOL_MF_MOVE`` semantics (the kernel's
                    ``do_migrate_pages``: the n-th node of the sorted source set maps to the (n mod k)-th of
                    the k destination nodes; when the sets differ in size, a source node that is also a
                    destination keeps its pages). The process's ``numa_maps`` is read before and after, so
                    the result gives the pages per node on both sides and the kernel's count of pages it could
                    not move.
``MigratePages``    ``move_pages(2)`` with ``MPOL_MF_MOVE`` (pages this process maps alone) of every page
                    each page id stands for (the block a sampled page represents, see ``pages.py``); each
                    destination node is one call. Pages are queried first, so the result tells moved,
                    already there, not present and failed (by errno) apart. ``sync``/``async`` migrations
                    run under the policy's :class:`MigrationRules` rate limit (``ratelimit_mb`` per
                    ``migrate_interval_ms`` per destination node, scaled to the time since the last sample);
                    ``syscall`` ones (a daemon's own calls) are not limited, as in the simulator.
``MigrateTask``     a one-shot move: ``sched_setaffinity(tid, {dst_cpu})`` makes the kernel move a running or
                    queued thread there now, then the thread's own mask is restored at once (in a ``finally``),
                    as ``migrate_task_to()`` moves a task without pinning it. The scheduler may move it again
                    later; user space cannot provide the load-balancer preference (``lb_score``) that keeps it.
``SwapTasks``       two such moves; if the second fails after the first, the result says so (``partial``).
``SetAffinity``     ``sched_setaffinity(tid, cpus)`` (``None``: every online CPU): a persistent binding, as
                    numad's. The balancer can restore the original masks when it stops
                    (``restore_affinity``).
``SetPreferredNode``, recorded by the balancer (``recorded``): the kernel has no user-space interface for
``SetScanPeriod``   either; the policy sees them again through the context.
=================== ========================================================================================

Safety: actions only ever name threads and processes of the balanced set, which holds only processes this
user may change (same real, effective and saved uid as the caller's effective uid, or ``CAP_SYS_NICE``;
``kernel_migrate_pages`` and ``check_same_owner`` accept at least that); the kernel's answer is still
checked per action. A process that exits meanwhile gives ``skipped``. Statuses: ``applied``, ``partial``
(part of the action took effect: the message says what did and what did not), ``no-op``, ``skipped``
(with the reason), ``failed`` (the kernel refused; nothing changed unless the message says otherwise),
``dry-run`` (what would be done), ``recorded``.
"""

from __future__ import annotations

import collections
import errno
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from memsched.errors import KernelError, MemschedError, ProcessGoneError
from memsched.live.numa.context import LiveContext, LiveTask
from memsched.live.numa.pages import PageProbe, Window
from memsched.live.numa.snapshot import ProcessSample
from memsched.live.numa.syscalls import NumaSyscalls
from memsched.live.oserrors import process_error
from memsched.policies.numa.actions import (
    Action,
    MigrateMmNodes,
    MigratePages,
    MigrateTask,
    SetAffinity,
    SetPreferredNode,
    SetScanPeriod,
    SwapTasks,
)
from memsched.policies.numa.base import MigrationRules
from memsched.policies.numa.driver import ActionHandlers, ActionResult, Status
from memsched.uapi.cpumask import format_cpulist
from memsched.units import MIB, format_bytes

__all__ = ["Applier"]

IntArray = npt.NDArray[np.int64]
NSEC_PER_MSEC = 1_000_000


def _errnos(codes: Iterable[int]) -> str:
    counts = collections.Counter(-c for c in codes)
    return ", ".join(f"{errno.errorcode.get(e, str(e))} x{n}" for e, n in sorted(counts.items()))


class Applier(ActionHandlers):
    """Applies (or, ``syscalls=None``, describes) the actions of one sample."""

    def __init__(
        self,
        ctx: LiveContext,
        *,
        sample: int,
        probe: PageProbe,
        syscalls: NumaSyscalls | None,
        rules: MigrationRules,
        elapsed_ns: int,
        online_cpus: frozenset[int],
        changed_affinity: dict[int, frozenset[int]],
        node_pages_of: Callable[[int], IntArray | None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.sample = sample
        self.probe = probe
        self.syscalls = syscalls
        self.rules = rules
        self.online_cpus = online_cpus
        self.changed_affinity = changed_affinity
        self.node_pages_of = node_pages_of
        page = ctx.page_size
        windows = max(1.0, elapsed_ns / (rules.migrate_interval_ms * NSEC_PER_MSEC))
        self._budget: collections.defaultdict[int, int] = collections.defaultdict(
            lambda: int(rules.ratelimit_mb * MIB // page * windows)
        )
        self._blocks: dict[int, tuple[IntArray, IntArray]] = {}

    @property
    def dry_run(self) -> bool:
        return self.syscalls is None

    # ---- bookkeeping for fault batches -------------------------------------------------------------------
    def set_blocks(self, mm: int, window: Window) -> None:
        """The blocks the sampled pages of ``mm`` stand for in this sample."""
        self._blocks[mm] = (window.vpns, window.block_end)

    # ---- the Actuator protocol ---------------------------------------------------------------------------
    def set_preferred_node(self, action: SetPreferredNode) -> ActionResult:
        t = self._task(action.task)
        self.ctx.state.preferred[action.task] = action.node
        who = t.describe() if t else f"task {action.task}"
        return self._result(action, who, f"preferred node {action.node}", "recorded", "balancer state")

    def set_scan_period(self, action: SetScanPeriod) -> ActionResult:
        t = self._task(action.task)
        self.ctx.state.period[action.task] = action.period_ns
        who = t.describe() if t else f"task {action.task}"
        return self._result(action, who, f"scan period {action.period_ns / 1e6:g} ms", "recorded", "balancer state")

    def _result(
        self,
        action: Action,
        target: str,
        detail: str,
        status: Status,
        message: str = "",
        moved_pages: IntArray | None = None,
    ) -> ActionResult:
        return ActionResult(
            type(action).__name__, target, detail, status, message, sample=self.sample, moved_pages=moved_pages
        )

    def _task(self, task: int) -> LiveTask | None:
        return self.ctx.tasks_by_id.get(task)

    # ---- pages -------------------------------------------------------------------------------------------
    def _expand(self, mm: int, pages: IntArray) -> tuple[IntArray, IntArray]:
        """Base pages each page id stands for (its sampled block, or itself), and the id each came from."""
        heads, ends = self._blocks.get(mm, (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
        block_end = pages + 1
        if heads.shape[0]:
            order = np.argsort(heads)
            hs, es = heads[order], ends[order]
            pos = np.minimum(np.searchsorted(hs, pages), hs.shape[0] - 1)
            block_end = np.where(hs[pos] == pages, es[pos], pages + 1)
        lengths = np.maximum(block_end - pages, 1)
        owner = np.repeat(pages, lengths)
        offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return owner + offsets, owner

    def migrate_pages(self, action: MigratePages) -> ActionResult:
        process = self.ctx.mm_process.get(action.mm)
        if process is None:
            detail = f"{action.pages.shape[0]} page(s)"
            return self._result(action, f"mm {action.mm}", detail, "skipped", "not a balanced process")
        parts = [
            self._migrate_pages_to(action, process, int(dst), action.pages[action.dst == dst])
            for dst in np.unique(action.dst)
        ]
        if len(parts) == 1:
            return parts[0]
        statuses = {p.status for p in parts}
        if len(statuses) == 1:
            status: Status = parts[0].status
        elif statuses & {"applied", "partial"}:
            status = "partial"
        else:
            status = "failed" if "failed" in statuses else "skipped"
        moved = [p.moved_pages for p in parts if p.moved_pages is not None]
        return self._result(
            action,
            parts[0].target,
            f"{action.pages.shape[0]} page id(s) to {len(parts)} nodes",
            status,
            "; ".join(f"{p.detail}: {p.status}{': ' + p.message if p.message else ''}" for p in parts),
            np.concatenate(moved) if moved else None,
        )

    def _migrate_pages_to(self, action: MigratePages, process: ProcessSample, dst: int, ids: IntArray) -> ActionResult:
        ctx = self.ctx
        page = ctx.page_size
        target = f"pid {process.pid} ({process.comm})"
        vpns, owner = self._expand(action.mm, ids)
        detail = f"{ids.shape[0]} page id(s), {format_bytes(vpns.shape[0] * page)} -> node {dst}"
        if not 0 <= dst < ctx.nr_nodes or ctx.node_total_pages[dst] == 0:
            return self._result(action, target, detail, "skipped", f"node {dst} has no memory or does not exist")
        try:
            before = self.probe.page_nodes(process, vpns, page)
        except MemschedError as e:
            return self._gone_or_failed(action, target, detail, e)
        present = before >= 0
        here = before == dst
        movable = np.flatnonzero(present & ~here)
        facts = f"{int(here.sum())} already on node {dst}, {int((~present).sum())} not present"
        if action.mode in ("sync", "async") and self.rules.rate_limit and movable.shape[0] > self._budget[dst]:
            facts += (
                f", {movable.shape[0] - self._budget[dst]} deferred by the rate limit "
                f"({self.rules.ratelimit_mb} MB per {self.rules.migrate_interval_ms} ms to a node)"
            )
            movable = movable[: self._budget[dst]]
        if movable.shape[0] == 0:
            return self._result(action, target, detail, "no-op", f"nothing to move ({facts})")
        counts = collections.Counter(before[movable].tolist())
        sources = ", ".join(f"{c} from node {n}" for n, c in sorted(counts.items()))
        if self.dry_run:
            self._budget[dst] -= movable.shape[0]
            return self._result(action, target, detail, "dry-run", f"would move {sources}; {facts}")
        assert self.syscalls is not None
        try:
            status = self.syscalls.move_pages(
                process.pid, vpns[movable] * page, np.full(movable.shape[0], dst, dtype=np.int64)
            )
        except MemschedError as e:
            return self._gone_or_failed(action, target, detail, e)
        moved = status == dst
        failed = status < 0
        n_moved, n_failed = int(moved.sum()), int(failed.sum())
        stayed = movable.shape[0] - n_moved - n_failed
        self._budget[dst] -= n_moved
        ctx.moved_pages(action.mm, before[movable][moved], dst)
        heads = vpns[movable][moved]
        heads = heads[heads == owner[movable][moved]]
        if n_moved == movable.shape[0]:
            return self._result(action, target, detail, "applied", f"moved {sources}; {facts}", heads)
        errors = f"{n_failed} failed ({_errnos(status[failed])})" if n_failed else "none failed"
        outcome = f"{errors}, {stayed} left on another node; {facts}"
        if n_moved:
            message = f"process partly moved: {n_moved} of {movable.shape[0]} page(s) now on node {dst}; {outcome}"
            return self._result(action, target, detail, "partial", message, heads)
        return self._result(action, target, detail, "failed", f"no page moved: {outcome}")

    def migrate_mm_nodes(self, action: MigrateMmNodes) -> ActionResult:
        ctx = self.ctx
        src, dst = sorted(set(action.from_nodes)), sorted(set(action.to_nodes))
        detail = f"nodes {format_cpulist(src) or '-'} -> {format_cpulist(dst)}"
        process = ctx.mm_process.get(action.mm)
        if process is None:
            return self._result(action, f"mm {action.mm}", detail, "skipped", "not a balanced process")
        target = f"pid {process.pid} ({process.comm})"
        bad = [n for n in (*src, *dst) if not 0 <= n < ctx.nr_nodes]
        if bad:
            return self._result(action, target, detail, "skipped", f"node(s) {bad} do not exist")
        before = np.array(ctx.mm_node_pages(action.mm), dtype=np.int64)
        moving = {s: d for s, d in _remap(src, dst).items() if before[s] > 0}
        plan = "; ".join(f"{before[s]} page(s) node {s} -> {d}" for s, d in sorted(moving.items()))
        if not moving:
            return self._result(action, target, detail, "no-op", "no resident page on a node that would move")
        if self.dry_run:
            return self._result(action, target, detail, "dry-run", f"would migrate_pages: {plan}")
        assert self.syscalls is not None
        try:
            left = self.syscalls.migrate_pages(process.pid, frozenset(src), frozenset(dst))
        except MemschedError as e:
            return self._gone_or_failed(action, target, detail, e)
        after = self.node_pages_of(process.pid) if self.node_pages_of is not None else None
        seen = ""
        if after is not None:
            ctx.set_node_pages(action.mm, after)
            seen = f"; numa_maps before {before.tolist()}, after {after.tolist()}"
        if left == 0:
            return self._result(action, target, detail, "applied", f"migrate_pages: {plan}{seen}")
        moved_any = after is not None and bool((after[list(moving)] < before[list(moving)]).any())
        return self._result(
            action,
            target,
            detail,
            "partial" if moved_any else "failed",
            f"{'process partly moved: ' if moved_any else ''}the kernel could not move {left} page(s) "
            f"(planned: {plan}){seen}",
        )

    def _gone_or_failed(self, action: Action, target: str, detail: str, e: MemschedError) -> ActionResult:
        if isinstance(e, ProcessGoneError):
            return self._result(action, target, detail, "skipped", "the process exited")
        return self._result(action, target, detail, "failed", f"{e}; nothing changed")

    # ---- tasks -------------------------------------------------------------------------------------------
    def _check_move(self, t: LiveTask, dst_cpu: int) -> str | None:
        if dst_cpu not in self.online_cpus:
            return f"CPU {dst_cpu} is not online"
        if dst_cpu not in t.allowed:
            return f"CPU {dst_cpu} is outside the thread's allowed CPUs {format_cpulist(t.allowed)}"
        return None

    def _move(self, t: LiveTask, dst_cpu: int) -> None:
        """Move one thread now: pin it to ``dst_cpu`` (the kernel migrates a running or queued thread at once)
        and restore its own mask, whatever happens in between."""
        assert self.syscalls is not None
        original = self.syscalls.get_affinity(t.tid)
        if dst_cpu not in original:
            raise KernelError(errno.EINVAL, f"CPU {dst_cpu} is outside its allowed CPUs {format_cpulist(original)}")
        try:
            self.syscalls.set_affinity(t.tid, frozenset({dst_cpu}))
        finally:
            try:
                self.syscalls.set_affinity(t.tid, original)
            except ProcessGoneError:
                pass  # a thread that exited is not left pinned
            except KernelError as e:
                raise process_error(
                    e.errno or errno.EIO,
                    f"LEFT PINNED to CPU {dst_cpu}: restoring its affinity {format_cpulist(original)} failed: {e}",
                ) from e

    def migrate_task(self, action: MigrateTask) -> ActionResult:
        t = self._task(action.task)
        if t is None:
            return self._result(
                action, f"task {action.task}", f"-> CPU {action.dst_cpu}", "skipped", "not a balanced thread"
            )
        node = int(self.ctx.cpu_node[action.dst_cpu]) if 0 <= action.dst_cpu < self.ctx.nr_cpus else -1
        detail = f"CPU {t.cpu} -> CPU {action.dst_cpu} (node {node})"
        problem = self._check_move(t, action.dst_cpu)
        if problem:
            return self._result(action, t.describe(), detail, "skipped", problem)
        if t.cpu == action.dst_cpu:
            return self._result(action, t.describe(), detail, "no-op", "already there")
        if self.dry_run:
            return self._result(action, t.describe(), detail, "dry-run", "would move it once (affinity kept)")
        try:
            self._move(t, action.dst_cpu)
        except ProcessGoneError:
            return self._result(action, t.describe(), detail, "skipped", "the thread exited")
        except MemschedError as e:
            return self._result(action, t.describe(), detail, "failed", str(e))
        self.ctx.moved_task(t.id, action.dst_cpu)
        return self._result(action, t.describe(), detail, "applied", "moved once; its affinity is unchanged")

    def swap_tasks(self, action: SwapTasks) -> ActionResult:
        a, b = self._task(action.a), self._task(action.b)
        if a is None or b is None:
            return self._result(
                action, f"tasks {action.a}, {action.b}", "swap", "skipped", "not balanced threads"
            )
        target = f"{a.describe()} <-> {b.describe()}"
        detail = f"CPU {a.cpu} <-> CPU {b.cpu}"
        if a.cpu < 0 or b.cpu < 0:
            return self._result(action, target, detail, "skipped", "a thread is not running")
        problem = self._check_move(a, b.cpu) or self._check_move(b, a.cpu)
        if problem:
            return self._result(action, target, detail, "skipped", problem)
        if self.dry_run:
            return self._result(action, target, detail, "dry-run", "would exchange their CPUs once")
        ca, cb = a.cpu, b.cpu
        try:
            self._move(a, cb)
        except ProcessGoneError:
            return self._result(action, target, detail, "skipped", f"{a.describe()} exited, nothing changed")
        except MemschedError as e:
            return self._result(action, target, detail, "failed", f"first move failed, nothing changed: {e}")
        self.ctx.moved_task(a.id, cb)
        try:
            self._move(b, ca)
        except MemschedError as e:
            return self._result(
                action,
                target,
                detail,
                "partial",
                f"{a.describe()} moved to CPU {cb}, but {b.describe()} did not move: {e}",
            )
        self.ctx.moved_task(b.id, ca)
        return self._result(action, target, detail, "applied", "exchanged once; affinities unchanged")

    def set_affinity(self, action: SetAffinity) -> ActionResult:
        t = self._task(action.task)
        wanted = self.online_cpus if action.cpus is None else frozenset(action.cpus) & self.online_cpus
        detail = f"affinity -> {format_cpulist(wanted) or '(none)'}"
        if t is None:
            return self._result(action, f"task {action.task}", detail, "skipped", "not a balanced thread")
        if not wanted:
            return self._result(action, t.describe(), detail, "skipped", f"no online CPU in {action.cpus}")
        if self.dry_run:
            if wanted == t.allowed:
                return self._result(action, t.describe(), detail, "no-op", "already its affinity")
            return self._result(
                action, t.describe(), detail, "dry-run", f"would change it from {format_cpulist(t.allowed)}"
            )
        assert self.syscalls is not None
        try:
            before = self.syscalls.get_affinity(t.tid)
            if before == wanted:
                return self._result(action, t.describe(), detail, "no-op", "already its affinity")
            self.syscalls.set_affinity(t.tid, wanted)
        except ProcessGoneError:
            return self._result(action, t.describe(), detail, "skipped", "the thread exited")
        except MemschedError as e:
            return self._result(action, t.describe(), detail, "failed", f"{e}; affinity unchanged")
        self.changed_affinity.setdefault(t.tid, before)
        self.ctx.changed_affinity(t.id, wanted)
        return self._result(action, t.describe(), detail, "applied", f"was {format_cpulist(before)}")


def _remap(src: list[int], dst: list[int]) -> dict[int, int]:
    """Where ``migrate_pages(2)`` sends each source node's pages (``do_migrate_pages`` / ``node_remap``,
    mm/mempolicy.c): the n-th source node to the (n mod k)-th destination; sources that stay are left out."""
    out = {}
    for i, s in enumerate(src):
        d = dst[i % len(dst)]
        if s == d or (len(src) != len(dst) and s in dst):
            continue
        out[s] = d
    return out
