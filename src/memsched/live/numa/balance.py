"""Running a NUMA policy of ``memsched.policies`` against real processes: the live mechanism.

Each sample (every ``--interval``) the balancer reads the machine (:func:`take_snapshot`), builds a
:class:`LiveContext` over the processes it balances, and is the *fault source* of the shared
:class:`~memsched.policies.numa.driver.HookDriver`, which calls the hooks the policy overrides in the same
order as in the simulator:

1. **Page sampling instead of hinting faults** (``on_faults``, ``after_faults``, ``on_placement``,
   ``on_scan_pass``): user space cannot take NUMA hinting faults, so the balancer samples each process's
   anonymous memory one scan window per sample (``scan_size_mb`` of the policy's scanner, 256 MB otherwise;
   at most ``max_samples`` pages, see ``pages.py``) and asks where the pages are (``move_pages`` status
   query). Each present page becomes one record of a :class:`FaultBatch` standing for ``stride`` pages. Who
   touched it is not knowable either: the record is given to one of the process's threads that ran since the
   last sample (or is running now), drawn with probability proportional to the CPU time it used
   (the *uniform-access* assumption: every running thread touches the whole resident set, at the rate it
   runs), with a seeded generator. ``cpu`` is that thread's last CPU. ``last_nid``/``last_pid``/``last_cpu``
   are what the balancer recorded for the same page on its previous pass (page flags in the kernel), so
   two-stage filters work across passes. A single-threaded process is therefore exact about *who* (its one
   thread) but still only sampled in *what*. When the window wraps, the pass is complete: ``mm_scan_seq``
   goes up and ``on_scan_pass`` / ``on_placement`` run for that process's threads, before the faults of
   that last window are handed over (as the simulated ``task_numa_work()`` does).
2. ``on_tick`` once per sample (the sampling interval stands in for the policy's ``tick_interval_ns``).
3. ``lb_score`` is never called: user space cannot hook the kernel's load balancer.

Actions go through :class:`~memsched.live.numa.apply.Applier`, the live actuator (or are only described with
``dry_run``); each gives one :class:`~memsched.policies.numa.driver.ActionResult`.
The balanced set is the processes named (or all with an address space), minus the balancer itself, kernel
threads, and processes this user may not change (listed once in the notes, with the reason).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError, KernelError, MemschedError, ProcessGoneError
from memsched.live.numa.apply import Applier
from memsched.live.numa.context import BalancerState, LiveContext
from memsched.live.numa.pages import (
    KernelPageProbe,
    NumaMapsLayoutProbe,
    PageProbe,
    Window,
    anon_regions,
    sample_window,
)
from memsched.live.numa.snapshot import NumaSnapshot, ProcessSample, node_pages_of, take_snapshot
from memsched.live.numa.syscalls import KernelNumaSyscalls, NumaSyscalls
from memsched.live.procfs import CAP_SYS_NICE, parse_status, read_numa_maps
from memsched.live.roots import LiveRoots, try_read_text
from memsched.policies.numa.base import KnumaScand, NumaPolicy, TaskWorkScan, overridden_hooks
from memsched.policies.numa.driver import ActionResult, HookDriver
from memsched.policies.numa.views import FaultBatch
from memsched.topology import Topology
from memsched.topology.sysfs import topology_from_sysfs
from memsched.units import MIB

__all__ = ["Credentials", "LiveBalancer", "SampleReport", "read_credentials"]

IntArray = npt.NDArray[np.int64]
SAMPLING_HOOKS = ("on_faults", "after_faults", "on_placement", "on_scan_pass")
DEFAULT_SCAN_SIZE_MB = 256  # numa_balancing_scan_size_mb


@dataclass(frozen=True, slots=True)
class Credentials:
    """The caller's effective uid and ``CAP_SYS_NICE`` (``None``: unknown)."""

    euid: int | None
    cap_sys_nice: bool | None

    def may_change(self, process: ProcessSample) -> str | None:
        """``None`` if this caller may move ``process``'s threads and pages, else why not."""
        if self.cap_sys_nice:
            return None
        if self.euid is not None and process.uids and all(u == self.euid for u in process.uids[:3]):
            return None
        owner = process.uids[0] if process.uids else "?"
        return f"pid {process.pid} ({process.comm}) belongs to uid {owner}; changing it needs CAP_SYS_NICE"


def read_credentials(roots: LiveRoots) -> Credentials:
    """The caller's credentials from ``/proc/self/status`` (both unknown when it cannot be read)."""
    path = roots.proc("self", "status")
    text, _ = try_read_text(path, roots)
    if text is None:
        return Credentials(None, None)
    status = parse_status(text, source=str(path))
    return Credentials(status.uids[1] if len(status.uids) > 1 else None, status.has_capability(CAP_SYS_NICE))


@dataclass(frozen=True)
class SampleReport:
    """One sample: when, which processes were balanced, what became of each action, and notes."""

    index: int
    now_ns: int
    processes: tuple[tuple[int, str], ...]
    results: tuple[ActionResult, ...]
    notes: tuple[str, ...] = ()
    faults: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "sample": self.index,
            "now_ns": self.now_ns,
            "processes": [{"pid": p, "comm": c} for p, c in self.processes],
            "sampled_pages": self.faults,
            "actions": [r.to_dict() for r in self.results],
            "notes": list(self.notes),
        }


@dataclass(eq=False)
class _PageMemory:
    """The page-flag state of sampled pages (``last_nid``, ``last_pid``, ``last_cpu``), sorted by page."""

    vpn: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nid: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    task: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cpu: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def lookup(self, vpns: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        out = [np.full(vpns.shape[0], -1, dtype=np.int64) for _ in range(3)]
        if self.vpn.shape[0]:
            pos = np.minimum(np.searchsorted(self.vpn, vpns), self.vpn.shape[0] - 1)
            hit = self.vpn[pos] == vpns
            for arr, src in zip(out, (self.nid, self.task, self.cpu), strict=True):
                arr[hit] = src[pos[hit]]
        return out[0], out[1], out[2]

    def record(self, vpns: IntArray, nid: IntArray, task: IntArray, cpu: IntArray) -> None:
        keep = ~np.isin(self.vpn, vpns)
        vpn = np.concatenate([self.vpn[keep], vpns])
        order = np.argsort(vpn, kind="stable")
        self.vpn = vpn[order]
        self.nid = np.concatenate([self.nid[keep], nid])[order]
        self.task = np.concatenate([self.task[keep], task])[order]
        self.cpu = np.concatenate([self.cpu[keep], cpu])[order]


def _ro(arr: npt.NDArray[np.int64]) -> IntArray:
    out = np.array(arr, dtype=np.int64)
    out.flags.writeable = False
    return out


class LiveBalancer:
    """One policy driving real processes (or, with ``dry_run``, only proposing what it would do)."""

    def __init__(
        self,
        policy: NumaPolicy,
        *,
        roots: LiveRoots | None = None,
        dry_run: bool = False,
        pids: Iterable[int] | None = None,
        seed: int = 0,
        max_samples: int = 4096,
        topology: Topology | None = None,
        syscalls: NumaSyscalls | None = None,
        probe: PageProbe | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        page_size: int | None = None,
        clk_tck: int | None = None,
        self_pid: int | None = None,
        restore_affinity: bool = False,
        interval_ns: int = 1_000_000_000,
    ) -> None:
        if not isinstance(policy, NumaPolicy):
            raise ConfigError("policy", policy, "must be a memsched.policies.numa.base.NumaPolicy")
        if max_samples < 1:
            raise ConfigError("max_samples", max_samples, "must be >= 1")
        self.policy = policy
        self.roots = roots or LiveRoots()
        self.real = self.roots == LiveRoots()
        if syscalls is None and self.real:
            syscalls = KernelNumaSyscalls()
        if not dry_run and syscalls is None:
            raise ConfigError(
                "--proc-root/--sys-root",
                f"{self.roots.proc_root}, {self.roots.sys_root}",
                "must be /proc and /sys to apply actions (the pids of a copied tree are not this machine's "
                "processes); use --dry-run",
            )
        self.dry_run = dry_run
        self.syscalls = syscalls
        self.topology = topology or topology_from_sysfs(self.roots.sys_root)
        self.probe: PageProbe = probe or (
            KernelPageProbe(syscalls)
            if self.real and syscalls is not None
            else NumaMapsLayoutProbe(self.topology.nr_nodes)
        )
        self.pids = None if pids is None else tuple(sorted(set(pids)))
        self.max_samples = max_samples
        self.clock = clock
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self.clk_tck = clk_tck or int(os.sysconf("SC_CLK_TCK"))
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.restore_affinity = restore_affinity
        self.interval_ns = interval_ns
        self.credentials = read_credentials(self.roots)
        self.hooks = set(overridden_hooks(policy))
        scan = policy.scan
        if isinstance(scan, TaskWorkScan):
            scan_mb, period_ns = scan.scan_size_mb, scan.scan_period_min_ms * 1_000_000
        elif isinstance(scan, KnumaScand):
            scan_mb, period_ns = scan.pages_to_scan_mb, interval_ns
        else:
            scan_mb, period_ns = DEFAULT_SCAN_SIZE_MB, interval_ns
        self.window_pages = max(1, scan_mb * MIB // self.page_size)
        self.state = BalancerState(seed=seed, start_ns=clock(), default_period_ns=period_ns)
        self.changed_affinity: dict[int, frozenset[int]] = {}
        self._pages: dict[int, _PageMemory] = {}
        self._index = 0
        self._last_ns: int | None = None
        self._noted: set[int] = set()
        self.close_notes: list[str] = []

    @property
    def places_on_scan_pass(self) -> bool:
        """The policy acts when a scan pass over a process ends (``on_scan_pass``/``on_placement``): it runs
        before that pass's faults count, so the first pass gives it nothing to act on."""
        return bool(self.hooks & {"on_scan_pass", "on_placement"})

    # ---- what the output header says ---------------------------------------------------------------------
    def describe(self) -> list[str]:
        hooks = ", ".join(sorted(self.hooks)) or "none"
        lines = [
            f"policy {self.policy.id}: hooks {hooks}",
            f"pages: {self.probe.source}; window {self.window_pages * self.page_size // MIB} MiB, "
            f"at most {self.max_samples} sampled pages per process and sample",
            f"mode: {'dry run (nothing is changed)' if self.dry_run else 'applying actions'}",
        ]
        if "lb_score" in self.hooks:
            lines.append("lb_score (load-balancer preference) is not used live: user space cannot hook the balancer")
        if not self.hooks:
            lines.append(f"{self.policy.id} overrides no hook: it never acts")
        return lines

    # ---- one sample --------------------------------------------------------------------------------------
    def step(self) -> SampleReport:
        self._index += 1
        snap = take_snapshot(
            self.roots,
            self.topology,
            pids=self.pids,
            page_size=self.page_size,
            clk_tck=self.clk_tck,
            clock=self.clock,
            exclude=(self.self_pid,),
        )
        notes = self._notes(snap)
        processes = [p for p in snap.processes.values() if self.credentials.may_change(p) is None]
        tick_ns = 1_000_000_000 // self.clk_tck
        ctx = LiveContext(snap, processes, self.state, tick_ns)
        elapsed = snap.time_ns - self._last_ns if self._last_ns is not None else self.interval_ns
        self._last_ns = snap.time_ns
        applier = Applier(
            ctx,
            sample=self._index,
            probe=self.probe,
            syscalls=None if self.dry_run else self.syscalls,
            rules=self.policy.migration,
            elapsed_ns=elapsed,
            online_cpus=frozenset(c.id for c in self.topology.cpus),
            changed_affinity=self.changed_affinity,
            node_pages_of=self._read_node_pages,
        )
        driver = HookDriver(self.policy, ctx, applier)
        results: list[ActionResult] = []
        sampled = 0
        if self.hooks & set(SAMPLING_HOOKS):
            for mm in sorted(ctx.mm_process):
                if not any(ctx.tasks_by_id[t].active for t in ctx.mm_tasks(mm)):
                    continue  # the kernel scans from a running thread's tick: an idle process is not scanned
                process = ctx.mm_process[mm]
                regions = anon_regions(process, self.page_size, self.topology.nr_nodes)
                window = sample_window(regions, self.state.scan_offset.get(mm, 0), self.window_pages, self.max_samples)
                self.state.scan_offset[mm] = window.next_offset
                applier.set_blocks(mm, window)
                if window.wrapped:  # the pass is complete before the faults of its last window count
                    self.state.scan_seq[mm] = self.state.scan_seq.get(mm, 0) + 1
                    results += driver.scan_pass(mm)
                try:
                    batch = self._fault_batch(ctx, mm, process, window)
                except ProcessGoneError:
                    continue
                if batch is not None:
                    sampled += batch.size
                    results += driver.faults(batch)
                    self._pages.setdefault(mm, _PageMemory()).record(
                        np.array(batch.page), np.array(batch.cpu_node), np.array(batch.task), np.array(batch.cpu)
                    )
        results += driver.tick()
        for t in ctx.tasks_by_id.values():
            self.state.runtime[t.id] = t.thread.runtime_ns
        self.state.samples += 1
        return SampleReport(
            index=self._index,
            now_ns=ctx.now_ns,
            processes=tuple((p.pid, p.comm) for p in sorted(processes, key=lambda p: p.pid)),
            results=tuple(results),
            notes=tuple(notes),
            faults=sampled,
        )

    def _read_node_pages(self, pid: int) -> IntArray | None:
        try:
            return node_pages_of(read_numa_maps(self.roots, pid), self.topology.nr_nodes, self.page_size)
        except KernelError:
            return None

    def _notes(self, snap: NumaSnapshot) -> list[str]:
        notes = []
        for p in sorted(snap.processes.values(), key=lambda p: p.pid):
            why = self.credentials.may_change(p)
            if why and p.pid not in self._noted:
                self._noted.add(p.pid)
                notes.append(f"not balanced: {why}")
        for pid, why in sorted(snap.unreadable.items()):
            if pid not in self._noted and (self.pids is None or pid in self.pids):
                self._noted.add(pid)
                notes.append(f"not balanced: {why}")
        return notes

    def _fault_batch(self, ctx: LiveContext, mm: int, process: ProcessSample, window: Window) -> FaultBatch | None:
        if window.vpns.shape[0] == 0:
            return None
        runners = [ctx.tasks_by_id[t] for t in ctx.mm_tasks(mm) if ctx.tasks_by_id[t].active]
        nodes = self.probe.page_nodes(process, window.vpns, self.page_size)
        present = nodes >= 0
        if not present.any():
            return None
        pages = window.vpns[present]
        weights = np.array([t.weight_ns for t in runners], dtype=np.float64)
        rng = self.state.rng(f"accessor.{process.pid}")
        pick = rng.choice(len(runners), size=pages.shape[0], p=weights / weights.sum())
        task = np.array([t.id for t in runners], dtype=np.int64)[pick]
        cpu = np.array([t.cpu for t in runners], dtype=np.int64)[pick]
        tgid = np.array([t.tgid for t in runners], dtype=np.int64)[pick]
        last_nid, last_pid, last_cpu = self._pages.setdefault(mm, _PageMemory()).lookup(pages)
        return FaultBatch(
            mm=mm,
            time_ns=_ro(np.full(pages.shape[0], ctx.now_ns, dtype=np.int64)),
            task=_ro(task),
            tgid=_ro(tgid),
            cpu=_ro(cpu),
            cpu_node=_ro(ctx.cpu_node[cpu]),
            page=_ro(pages),
            page_node=_ro(nodes[present]),
            last_nid=_ro(last_nid),
            last_pid=_ro(last_pid),
            last_cpu=_ro(last_cpu),
            base_pages=window.stride,
        )

    # ---- running and stopping ----------------------------------------------------------------------------
    def run(
        self,
        count: int | None,
        *,
        on_sample: Callable[[SampleReport], None] = lambda r: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[SampleReport]:
        """``count`` samples (``None``: until interrupted), ``interval_ns`` apart; always :meth:`close`."""
        reports: list[SampleReport] = []
        try:
            while count is None or len(reports) < count:
                if reports:
                    sleep(self.interval_ns / 1e9)
                report = self.step()
                reports.append(report)
                on_sample(report)
        finally:
            self.close()
        return reports

    def close(self) -> list[str]:
        """With ``restore_affinity``, give every thread whose mask a ``SetAffinity`` changed its mask back.
        What was done is also kept in ``close_notes``."""
        out = self.close_notes
        if not self.restore_affinity or self.syscalls is None:
            return out
        for tid, mask in sorted(self.changed_affinity.items()):
            try:
                self.syscalls.set_affinity(tid, mask)
                out.append(f"tid {tid}: affinity restored")
            except MemschedError as e:
                out.append(f"tid {tid}: affinity NOT restored: {e}")
        self.changed_affinity.clear()
        return out

    def summary(self) -> Sequence[str]:
        """The persistent changes made so far (affinities changed and not restored)."""
        return [
            f"tid {tid}: affinity changed (was {sorted(mask)})" for tid, mask in sorted(self.changed_affinity.items())
        ]
