"""``memsched numa top`` and ``memsched numa balance``: NUMA locality and balancing of real processes
(``memsched.live.numa``)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from memsched.cli.common import (
    emit_json,
    seed_number,
    whole_number,
)
from memsched.cli.numa import numa_app
from memsched.errors import ConfigError, Terminated, printable
from memsched.units import MIB, parse_duration

if TYPE_CHECKING:
    from memsched.live.numa.balance import SampleReport
    from memsched.live.numa.snapshot import NumaSnapshot
    from memsched.live.roots import LiveRoots

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]
IntervalOpt = Annotated[str, typer.Option("--interval", help="time between samples, with a unit (2s, 500ms)")]
ProcRootOpt = Annotated[
    Path, typer.Option("--proc-root", help="read this copy of /proc instead (a fixture or a saved tree)")
]
SysRootOpt = Annotated[Path, typer.Option("--sys-root", help="read this copy of /sys instead")]


def _roots(proc_root: Path, sys_root: Path) -> LiveRoots:
    from memsched.live.roots import LiveRoots

    # The first file each tree is read for, there in every kernel: its absence means a wrong directory, which
    # is the user's mistake (exit 2), not a kernel that failed to answer (exit 1).
    trees = (("--proc-root", proc_root, "/proc", "vmstat"), ("--sys-root", sys_root, "/sys", "devices/system/cpu"))
    for field, path, real, entry in trees:
        if not path.is_dir():
            raise ConfigError(field, str(path), "must be an existing directory")
        if not (path / entry).exists():
            raise ConfigError(field, str(path), f"must be a copy of {real} (it has no {entry})")
    return LiveRoots(proc_root=proc_root, sys_root=sys_root)


@contextmanager
def _kernel_warnings() -> Iterator[None]:
    """Fields the kernel did not print become one ``memsched: warning:`` line each on stderr (not repeated)."""
    from memsched.live.procfs import MissingFieldWarning

    seen: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            typer.echo(f"memsched: warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", MissingFieldWarning)
        warnings.showwarning = show
        yield


#: Limits of the live NUMA tools' options: an hour between samples at most, a million samples, 2^20 pages
#: sampled per process and sample (the move_pages(2) status query of one window).
MAX_INTERVAL_NS = 3600 * 1_000_000_000
MAX_COUNT = 1_000_000
MAX_SAMPLES = 1 << 20


def _signal_name(stopped: KeyboardInterrupt) -> str:
    """The signal that ended a run: the one a :class:`Terminated` carries, else SIGINT (Ctrl-C)."""
    import signal

    return signal.Signals(stopped.signum).name if isinstance(stopped, Terminated) else "SIGINT"


def _count(count: int | None, field: str = "--count") -> int | None:
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise ConfigError(field, count, f"must be in 1..{MAX_COUNT}")
    return count


def _interval(text: str) -> int:
    interval_ns = parse_duration(text, field="--interval", max_ns=MAX_INTERVAL_NS)
    if interval_ns <= 0:
        raise ConfigError("--interval", text, "must be > 0")
    return interval_ns


# ------------------------------------------------------------------------------------------------ numa top


def _top_document(snap: NumaSnapshot, roots: LiveRoots) -> dict[str, object]:
    from memsched.live import capabilities
    from memsched.live.numa.snapshot import locality
    from memsched.uapi.cpumask import format_cpulist

    topo = snap.topology
    caps = capabilities(roots)
    return {
        "time_ns": snap.time_ns,
        "page_size": snap.page_size,
        "nodes": [
            {
                "id": n.id,
                "cpus": format_cpulist(n.cpus),
                "total_bytes": snap.node_total_bytes[n.id],
                "free_bytes": snap.node_free_bytes[n.id],
            }
            for n in topo.nodes
        ],
        "distance": topo.distance.tolist(),
        "vmstat": dict(snap.counters.values),
        "vmstat_missing": list(snap.counters.missing),
        "processes": [row.to_dict(snap.page_size) for row in locality(snap)],
        "unreadable": {str(k): v for k, v in sorted(snap.unreadable.items())},
        "capabilities": {k: caps.to_dict()[k] for k in ("numa_nodes", "numa_maps", "numa_balancing")},
    }


def _machine_line(nr_nodes: int, roots: LiveRoots) -> str:
    """``1 node, balancing off``: what the JSON's capabilities say, in words (with the reason for "off")."""
    from memsched.live import capabilities

    caps = capabilities(roots)
    nodes = f"{nr_nodes} node{'' if nr_nodes == 1 else 's'}"
    if caps.numa_balancing.available:
        return f"{nodes}, balancing on (the kernel's automatic NUMA balancing)"
    return f"{nodes}, balancing off ({caps.numa_balancing.reason})"


def _print_top(snap: NumaSnapshot, previous: NumaSnapshot | None, limit: int, machine: str) -> None:
    from memsched.cli.common import out_console
    from memsched.live.numa.snapshot import locality
    from memsched.report.fit import Column, FitTable, size
    from memsched.uapi.cpumask import format_cpulist

    topo = snap.topology
    out_console.print(machine, highlight=False)
    nodes = FitTable(
        "nodes",
        [
            Column("node"),
            Column("cpus"),
            Column("memory", "node's memory (MemTotal of its meminfo)", right=True),
            Column("free", "free memory on the node", right=True),
            Column("distance", "SLIT distances to nodes 0, 1, ..."),
        ],
    )
    rows = nodes.add_group(None)
    for n in topo.nodes:
        rows.append(
            [
                str(n.id),
                format_cpulist(n.cpus),
                size(snap.node_total_bytes[n.id]),
                size(snap.node_free_bytes[n.id]),
                " ".join(str(int(d)) for d in topo.distance[n.id]),
            ]
        )
    out_console.print(nodes)
    rate_column = [Column("per s", "change per second since the last refresh", right=True)] if previous else []
    counters = FitTable("/proc/vmstat", [Column("counter"), Column("value", right=True), *rate_column])
    rows = counters.add_group(None)
    delta = snap.counters.delta(previous.counters) if previous is not None else {}
    seconds = (snap.time_ns - previous.time_ns) / 1e9 if previous is not None else 0.0
    for name, value in snap.counters.values.items():
        d = delta.get(name)
        rate = [f"{d / seconds:.0f}" if d is not None and seconds > 0 else "-"] if previous is not None else []
        rows.append([name, "unknown" if value is None else str(value), *rate])
    out_console.print(counters)
    found = locality(snap)
    procs = FitTable(
        f"processes by remote-memory share ({len(found)} with an address space, top {min(limit, len(found))})",
        [
            Column("pid", right=True),
            Column("comm", wrap=True),
            Column("thr", "threads", right=True),
            Column("on nodes", "nodes the threads last ran on"),
            Column("resident", "resident memory (numa_maps N<node>= totals)", right=True),
            *(
                Column(f"N{n.id}", "resident MiB on each node (N0, N1, ...)" if n.id == topo.nodes[0].id else "", True)
                for n in topo.nodes
            ),
            Column("remote", "share of resident memory on nodes none of its threads ran on", right=True),
        ],
    )
    rows = procs.add_group(None)
    for r in found[:limit]:
        rows.append(
            [
                str(r.pid),
                printable(r.comm),
                str(r.threads),
                ",".join(map(str, r.thread_nodes)) or "-",
                size(r.total_pages * snap.page_size),
                *[f"{p * snap.page_size / MIB:.0f}" for p in r.node_pages],
                f"{100 * r.remote_share:.1f}%",
            ]
        )
    out_console.print(procs)
    if snap.unreadable:
        example = next(iter(snap.unreadable.values()))
        out_console.print(f"{len(snap.unreadable)} process(es) not readable by this user (e.g. {example})")


@numa_app.command("top")
def top(
    json_out: JsonOpt = False,
    interval: IntervalOpt = "2s",
    count: Annotated[
        int | None,
        typer.Option("--count", help="refreshes (default: until Ctrl-C on a terminal, else 1)", parser=whole_number),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="processes shown (text output)", parser=whole_number)] = 20,
    proc_root: ProcRootOpt = Path("/proc"),
    sys_root: SysRootOpt = Path("/sys"),
) -> None:
    """Processes by remote-memory share (memory not on the nodes their threads run on) and the NUMA counters.

    Remote memory is resident memory (numa_maps N<node>= totals) on nodes none of the process's threads last
    ran on. On a terminal the view refreshes every --interval; --json prints one snapshot.
    """
    roots = _roots(proc_root, sys_root)
    interval_ns = _interval(interval)
    _count(count)
    _count(limit, "--limit")
    if json_out and count not in (None, 1):
        raise ConfigError("--count", count, "must be 1 with --json (it prints one snapshot)")
    with _kernel_warnings():
        _top(roots, json_out, interval_ns, count, limit)


def _top(roots: LiveRoots, json_out: bool, interval_ns: int, count: int | None, limit: int) -> None:
    from memsched.cli.common import out_console
    from memsched.live.numa.snapshot import take_snapshot
    from memsched.topology.sysfs import topology_from_sysfs

    topo = topology_from_sysfs(roots.sys_root)
    if json_out:
        emit_json(_top_document(take_snapshot(roots, topo), roots))
        return
    terminal = out_console.is_terminal
    remaining = count if count is not None else (None if terminal else 1)
    previous: NumaSnapshot | None = None
    machine = _machine_line(topo.nr_nodes, roots)
    shown = 0
    while remaining is None or shown < remaining:
        if shown:
            time.sleep(interval_ns / 1e9)
        snap = take_snapshot(roots, topo)
        if terminal:
            out_console.clear()
        _print_top(snap, previous, limit, machine)
        previous = snap
        shown += 1


# ------------------------------------------------------------------------------------------------ numa balance


#: Task states (``/proc/<pid>/stat`` field 3) of a process that has exited: zombie, dead (``task_state_array``
#: in fs/proc/array.c; ``x`` in 3.13 to 4.13).
_EXITED = ("Z", "X", "x")


def _check_pids(roots: LiveRoots, pids: list[int]) -> None:
    """Each ``--pid`` names a running process of the tree read, with an address space (as ``rt admit --pid``: a
    pid that is not there, or a zombie, is bad input, not a sample without work)."""
    from memsched.cli.rt_admit import PID_MAX_LIMIT
    from memsched.errors import AccessDeniedError, KernelError
    from memsched.live.procfs import list_pids, read_numa_maps, read_task_stat

    for p in pids:
        if not 1 <= p <= PID_MAX_LIMIT:
            raise ConfigError("--pid", p, f"must be a process id in 1..{PID_MAX_LIMIT - 1}")
    running = set(list_pids(roots))
    for p in pids:
        if p not in running:
            raise ConfigError("--pid", p, f"must be a running process (no such process in {roots.proc_root})")
        try:
            stat = read_task_stat(roots, p)
        except KernelError:
            continue  # gone or unreadable since: the first sample says so
        if stat.state in _EXITED:
            raise ConfigError("--pid", p, "must be a running process (it has exited: a zombie its parent has not "
                              "reaped)")  # fmt: skip
        if stat.is_kthread:
            raise ConfigError("--pid", p, "must be a process with an address space (it is a kernel thread)")
        try:  # a process asked for by name that cannot be balanced is refused, not noted and skipped
            read_numa_maps(roots, p)
        except AccessDeniedError as e:
            raise ConfigError("--pid", p, f"must be a process this user may read the memory map of ({e})") from None
        except KernelError:
            continue  # gone since: the first sample says so


def _sample_printer(policy_id: str, places_on_scan_pass: bool, count: int | None) -> Callable[[SampleReport], None]:
    """What ``numa balance`` prints per sample. A sample without an action says so; for a policy that places
    tasks when a scan pass ends (``on_scan_pass``/``on_placement``: a pass's placement runs before that pass's
    faults count, so it acts from a later sample) it adds why, and on the last sample of a run in which it
    never acted, that more samples are needed."""
    acted = False

    def show(report: SampleReport) -> None:
        nonlocal acted

        def echo(line: str) -> None:  # (process names are anyone's text: no control character reaches the terminal)
            typer.echo(printable(line))

        for note in report.notes:
            echo(f"note: {note}")
        shown = 8
        pids = ", ".join(f"{p} ({c})" for p, c in report.processes[:shown]) or "none"
        if len(report.processes) > shown:
            pids += f" and {len(report.processes) - shown} more"
        echo(
            f"[{report.index}] t={report.now_ns / 1e9:.3f}s balanced: {pids}; "
            f"{report.faults} sampled page(s); {len(report.results)} action(s)"
        )
        for r in report.results:
            echo(r.line())
        acted = acted or bool(report.results)
        if report.results:
            return
        why = ""
        if places_on_scan_pass:
            last = count is not None and report.index >= count
            if not last:
                why = f" ({policy_id} places tasks when a scan pass ends: it acts from a later sample)"
            elif not acted:
                why = f" ({policy_id} places tasks when a scan pass ends, from the sample after it: more with --count)"
        echo(f"[{report.index}] no action from this sample{why}")

    return show


@numa_app.command("balance")
def balance(
    policy: Annotated[str, typer.Option("--policy", "-p", help="NUMA policy id (numad, homenode, ...)")] = "numad",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="take one sample (more with --count), print what would be done, change nothing"),
    ] = False,
    interval: Annotated[
        str | None,
        typer.Option("--interval", help="time between samples, with a unit (default: the policy's tick, else 5s)"),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", help="samples to take (default: 1 with --dry-run, else until Ctrl-C)", parser=whole_number
        ),
    ] = None,
    pid: Annotated[
        list[int] | None,
        typer.Option(
            "--pid", help="balance only this process (repeatable; default: all we may change)", parser=whole_number
        ),
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value for the policy (repeatable)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the balancer's random choices", parser=seed_number)] = 0,
    max_samples: Annotated[
        int,
        typer.Option(
            "--max-samples", help="sampled pages per process and sample (the scan window's budget)", parser=whole_number
        ),
    ] = 4096,
    restore_affinity: Annotated[
        bool, typer.Option("--restore-affinity", help="on exit, give threads the CPU masks SetAffinity changed back")
    ] = False,
    json_out: JsonOpt = False,
    proc_root: ProcRootOpt = Path("/proc"),
    sys_root: SysRootOpt = Path("/sys"),
) -> None:
    """Run a NUMA policy against real processes and apply its actions (sched_setaffinity, move_pages).

    Each action is printed with what became of it (applied, partial, no-op, skipped, failed, or dry-run).
    Only processes this user may change are balanced. With --proc-root/--sys-root (a copied tree or a
    fixture) only --dry-run is possible.
    """
    from memsched.config import check_seed, parse_set_args
    from memsched.conformance import load_policy
    from memsched.live import capabilities
    from memsched.live.numa.balance import LiveBalancer
    from memsched.live.roots import LiveRoots

    roots = _roots(proc_root, sys_root)
    spec, instance = load_policy(policy, parse_set_args(set_ or []))
    count = _count(count)
    if count is None and dry_run:  # a dry run answers "what would it do now?": one pass, not a loop
        count = 1
    if not 1 <= max_samples <= MAX_SAMPLES:
        raise ConfigError("--max-samples", max_samples, f"must be in 1..{MAX_SAMPLES}")
    _check_pids(roots, pid or [])
    check_seed(seed, "--seed")
    if interval is not None:
        interval_ns = _interval(interval)
    else:
        interval_ns = instance.tick_interval_ns or 5_000_000_000
    if roots != LiveRoots() and not dry_run:
        raise ConfigError(
            "--dry-run", False, "is required with --proc-root/--sys-root (a copied tree's pids are not this machine's)"
        )
    balancer = LiveBalancer(
        instance,
        roots=roots,
        dry_run=dry_run,
        pids=pid,
        seed=seed,
        max_samples=max_samples,
        restore_affinity=restore_affinity,
        interval_ns=interval_ns,
    )
    header = [*balancer.describe(), f"interval {interval_ns / 1e9:g} s, {count or 'unlimited'} sample(s)"]
    caps = capabilities(roots)
    if not caps.numa_nodes.available:
        header.append(f"note: {caps.numa_nodes.reason}")
    if caps.numa_balancing.available:
        header.append(f"note: {caps.numa_balancing.reason}")
    reports: list[SampleReport] = []
    if not json_out:
        for line in header:
            typer.echo(line, err=True)
    # Ctrl-C or SIGTERM is how a run without --count ends: with --json the samples taken so far are still
    # printed (the document says which signal ended it), then the command ends as interrupted (130 / 128+n).
    stopped: KeyboardInterrupt | None = None  # (Terminated is one: SIGTERM, SIGHUP)
    try:
        with _kernel_warnings():
            printer = _sample_printer(spec.id, balancer.places_on_scan_pass, count)
            balancer.run(count, on_sample=(reports.append if json_out else printer))
    except KeyboardInterrupt as e:
        if not json_out:
            raise
        stopped = e
    finally:
        closing = [*balancer.close_notes, *balancer.summary()]
        if not json_out:
            for line in closing:
                typer.echo(f"exit: {line}", err=True)
    if json_out:
        emit_json(
            {
                "policy": spec.id,
                "dry_run": dry_run,
                "interval_ns": interval_ns,
                "header": header,
                "samples": [r.to_dict() for r in reports],
                "exit": closing,
                "interrupted": None if stopped is None else _signal_name(stopped),
            }
        )
    if stopped is not None:
        raise stopped
