"""``memsched pressure watch`` and ``memsched pressure serve``: memory-pressure notification on the running
kernel (``memsched.live.pressure``).

``watch --json`` streams **JSON Lines**: one JSON object per event on its own line (sorted keys), written as
the event happens, and exits after ``--duration``. A stream cannot be one JSON document without buffering
until the end, so this is the one place where ``--json`` departs from "one document" (docs/design.md).
Everything else — which backend, why not the others, errors — goes to stderr.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memsched.cli.catalogue import names as registry_names
from memsched.cli.common import (
    socket_file,
    whole_number,
)
from memsched.cli.pressure import pressure_app
from memsched.errors import ConfigError, MemschedError
from memsched.uapi.pressure import VmpressureLevel
from memsched.units import parse_duration

if TYPE_CHECKING:
    from rich.panel import Panel

    from memsched.live.pressure import PressureMonitor, PressureOptions, PressureRecord
    from memsched.live.pressure.context import BackendContext
    from memsched.live.pressure.reclaim_index import DeltaTracker
    from memsched.live.roots import LiveRoots

#: Help texts that list registry names (memsched.cli.catalogue.names: no simulator import).
_BACKEND_HELP = "auto, " + ", ".join(registry_names("pressure_backends")) + " (auto picks by capability)"
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help=_BACKEND_HELP)]
CgroupOpt = Annotated[
    str | None,
    typer.Option(
        "--cgroup", help="cgroup to watch: a directory (./x from here), or a path in each hierarchy such as /app"
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="backend setting key=value (psi_low, memcg_mode, reclaim_interval_ms, fifo_path, ...)"),
]

#: The most connections ``serve`` takes: each is a descriptor, and poll() scans them all on every wake-up.
MAX_CLIENTS = 65536

_COLOURS = {VmpressureLevel.LOW: "yellow", VmpressureLevel.MEDIUM: "dark_orange", VmpressureLevel.OOM: "bold red"}


def _options(sets: list[str] | None) -> PressureOptions:
    from memsched.config import from_sets, parse_set_args
    from memsched.live.pressure import PressureOptions

    return from_sets(PressureOptions, parse_set_args(sets or []), owner="the pressure backends")


def _check_request(backend: str, cgroup: str | None, options: PressureOptions) -> None:
    """The user's part of a request, before any backend is opened: a named cgroup must exist, and ``fifo``
    needs its path (exit 2; a backend the system lacks is exit 1)."""
    from memsched.live.cgroups import cgroup_mounts, check_cgroup_exists

    if backend == "fifo" and not options.fifo_path:
        raise ConfigError("--set fifo_path", "", "is required with --backend fifo (the FIFO or file to read)")
    if cgroup is not None:
        if backend in ("fifo", "daemon"):
            raise ConfigError("--cgroup", cgroup, f"cannot be used with --backend {backend} (it reads no cgroup)")
        check_cgroup_exists(cgroup, cgroup_mounts())


def _summary(rec: PressureRecord) -> str:
    d = rec.details
    if "index" in d:
        ev = f" [{'; '.join(map(str, d['evidence']))}]" if d.get("evidence") else ""  # type: ignore[call-overload]
        return f"index {d['index']} (scanned {d['scanned']}, reclaimed {d['reclaimed']}){ev}"
    if "kernel_level" in d:
        return f"{d['kernel_level']} x{d['count']} ({d['mode']})"
    if "trigger" in d:
        return f"{d['trigger']}: +{d['growth_us']} us stall"
    return ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("path", "cgroup", "scope"))


# --------------------------------------------------------------------------------------------- watch


class _SideIndex:
    """The reclaim index over the last refresh interval, from ``/proc/vmstat``, for the terminal view."""

    def __init__(self, roots: LiveRoots) -> None:
        self.roots = roots
        self.tracker: DeltaTracker | None = None
        self.text = "n/a"
        self.update()

    def update(self) -> None:
        from memsched.live.pressure.reclaim_index import DeltaTracker, vmstat_sample
        from memsched.live.procfs import parse_flat_keyed
        from memsched.live.roots import try_read_text
        from memsched.pressure.index import Rfc2012VmpressureConfig

        text, why = try_read_text(self.roots.proc("vmstat"), self.roots)
        if text is None:
            self.text = why
            return
        try:
            sample = vmstat_sample(parse_flat_keyed(text, source="/proc/vmstat"))
        except MemschedError as e:
            self.text = str(e)
            return
        if self.tracker is None:
            self.tracker = DeltaTracker(sample)
            return
        d = self.tracker.update(sample)
        if not d.scanned:
            self.text = "no reclaim in the last interval" + (f" ({'; '.join(d.evidence)})" if d.evidence else "")
            return
        index = Rfc2012VmpressureConfig().index(d.scanned, d.reclaimed)
        self.text = f"{index} (scanned {d.scanned}, reclaimed {d.reclaimed} pages, /proc/vmstat)"


def _psi_text(path: Path | None) -> str:
    from memsched.live.procfs import parse_psi
    from memsched.live.roots import try_read_text

    if path is None:
        return "n/a"
    text, why = try_read_text(path)
    if text is None:
        return why
    try:
        s = parse_psi(text, source=str(path))
    except MemschedError as e:
        return str(e)
    out = f"some {s.some.avg10:.2f} / {s.some.avg60:.2f} / {s.some.avg300:.2f}"
    if s.full is not None:
        out += f"   full {s.full.avg10:.2f} / {s.full.avg60:.2f} / {s.full.avg300:.2f}"
    return out + f"   (avg10/60/300 %, {path})"


def _view(mon: PressureMonitor, level: VmpressureLevel, psi_path: Path | None, side: _SideIndex, started: int) -> Panel:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    recs = [r for r in mon.recent() if r.level >= level]
    now = time.monotonic_ns()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("backend", f"{mon.choice.name}: {mon.choice.reason}")
    for name, why in mon.choice.others:
        head.add_row("", Text(f"not {name}: {why}", style="dim"))
    head.add_row("watching", mon.source.description)
    if recs:
        last = recs[-1]
        age = (now - last.monotonic_ns) / 1e9
        current = Text(f"{last.level.name} ", style=_COLOURS[last.level]) + Text(f"({age:.1f} s ago)")
    else:
        current = Text(f"no event at or above {level.name} yet", style="green")
    head.add_row("level", current)
    counts = Counter(r.level for r in recs)
    head.add_row("events", ", ".join(f"{lv.name} {counts[lv]}" for lv in VmpressureLevel if lv >= level))
    head.add_row("PSI", _psi_text(psi_path))
    if mon.choice.name == "reclaim-index" and recs:
        reclaim = _summary(recs[-1])
    else:
        reclaim = side.text
    head.add_row("reclaim index", reclaim)
    table = Table(title="recent events", expand=True)
    table.add_column("t (s)", justify="right")
    table.add_column("level")
    table.add_column("details")
    for r in recs[-12:]:
        table.add_row(
            f"{(r.monotonic_ns - started) / 1e9:.3f}", Text(r.level.name, style=_COLOURS[r.level]), _summary(r)
        )
    return Panel(Group(head, table), title="memsched pressure watch", subtitle="Ctrl-C to stop")


def _psi_path_for(backend_ctx: BackendContext) -> Path | None:
    from memsched.live.pressure.psi import psi_target

    try:
        return psi_target(backend_ctx).path
    except MemschedError:
        path = backend_ctx.roots.proc("pressure", "memory")
        return path if path.exists() else None


@pressure_app.command("watch")
def watch(
    *,
    backend: BackendOpt = "auto",
    cgroup: CgroupOpt = None,
    level: Annotated[
        str, typer.Option("--level", "-l", help="lowest level shown: low, medium, oom (critical)")
    ] = "low",
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", help="stop after this long (e.g. 30s); default: until Ctrl-C")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="JSON Lines on stdout: one object per event; backend report on stderr")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Watch memory pressure live: current level, recent events, PSI averages, reclaim index."""
    from rich.live import Live

    from memsched.cli.common import out_console
    from memsched.live.pressure import open_monitor, parse_level
    from memsched.live.pressure.context import BackendContext
    from memsched.uapi.pressure import VmpressureConfig

    threshold = parse_level(level, field="--level")
    duration_ns = parse_duration(duration, field="--duration") if duration is not None else None
    if duration_ns is not None and duration_ns <= 0:
        raise ConfigError("--duration", duration, "must be > 0")
    options = _options(set_)
    _check_request(backend, cgroup, options)
    started = time.monotonic_ns()
    deadline = None if duration_ns is None else started + duration_ns
    out_lock = threading.Lock()

    def emit(rec: PressureRecord) -> None:
        if rec.level < threshold:
            return
        with out_lock:
            sys.stdout.write(json.dumps(rec.to_dict(), sort_keys=True) + "\n")
            sys.stdout.flush()

    plain = not json_ and not sys.stdout.isatty()

    def emit_plain(rec: PressureRecord) -> None:
        if rec.level >= threshold:
            with out_lock:
                print(f"{(rec.monotonic_ns - started) / 1e9:9.3f} {rec.level.name:<6} {_summary(rec)}", flush=True)

    sink = emit if json_ else emit_plain if plain else None
    with open_monitor(
        VmpressureConfig(threshold=threshold), backend=backend, cgroup=cgroup, options=options, on_record=sink
    ) as mon:
        if json_ or plain:
            print(f"memsched: {mon.choice.explain()}", file=sys.stderr, flush=True)
            print(f"memsched: watching {mon.source.description}", file=sys.stderr, flush=True)
            _wait(mon, deadline)
            return
        ctx = BackendContext(cgroup=cgroup, options=options)
        psi_path = _psi_path_for(ctx)
        side = _SideIndex(ctx.roots)
        with Live(_view(mon, threshold, psi_path, side, started), console=out_console, refresh_per_second=4) as live:
            for _ in _ticks(mon, deadline, 0.5):
                side.update()
                live.update(_view(mon, threshold, psi_path, side, started))


def _ticks(mon: PressureMonitor, deadline: int | None, every_s: float) -> Iterator[None]:
    """Yield every ``every_s`` (and on each event) until the deadline; raise the source's end-of-stream error."""
    next_tick = time.monotonic() + every_s
    while deadline is None or time.monotonic_ns() < deadline:
        left = next_tick - time.monotonic()
        if deadline is not None:
            left = min(left, (deadline - time.monotonic_ns()) / 1e9)
        with contextlib.suppress(TimeoutError):
            mon.file.read_event(timeout=max(0.0, left))  # raises SourceGoneError at the end of the stream
        if time.monotonic() >= next_tick:
            next_tick += every_s
            yield


def _wait(mon: PressureMonitor, deadline: int | None) -> None:
    for _ in _ticks(mon, deadline, 1.0):
        pass


# --------------------------------------------------------------------------------------------- serve


def _log(message: str) -> None:
    print(f"memsched pressure serve: {message}", file=sys.stderr, flush=True)


def _group_id(group: str) -> int:
    if group.isascii() and group.isdigit():
        gid = int(group)
        if gid >= (1 << 32) - 1:  # (gid_t)-1 means "no change" to chown(2)
            raise ConfigError("--group", group, "must be a gid below 4294967295")
        return gid
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError("--group", group, "must be an existing group name or a numeric gid") from None


@pressure_app.command("serve")
def serve(
    *,
    socket_path: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            help="Unix socket to listen on (default: $MEMSCHED_PRESSURE_SOCKET or /run/memsched/pressure.sock)",
            parser=socket_file,
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="socket permissions, octal (default 0660: owner and group)")
    ] = "0660",
    group: Annotated[str | None, typer.Option("--group", help="group owning the socket (name or gid)")] = None,
    backend: BackendOpt = "auto",
    cgroup: CgroupOpt = None,
    max_clients: Annotated[
        int, typer.Option("--max-clients", help="connections beyond this are closed at once", parser=whole_number)
    ] = 1024,
    max_clients_per_uid: Annotated[
        int | None,
        typer.Option(
            "--max-clients-per-uid",
            help="connections of one user beyond this are closed (default: 1/8 of --max-clients, at least 1)",
            parser=whole_number,
        ),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Serve pressure events to unprivileged subscribers over a Unix socket (4-byte vmpressure_event records)."""
    from memsched.live.pressure import PressureSource
    from memsched.live.pressure.backends import open_backend
    from memsched.live.pressure.context import BackendContext
    from memsched.live.pressure.daemon import PressureDaemon, default_socket_path

    try:
        mode_bits = int(mode, 8)
    except ValueError:
        raise ConfigError("--mode", mode, "must be an octal permission mode such as 0660") from None
    if not 0 <= mode_bits <= 0o777:
        raise ConfigError("--mode", mode, "must be between 0000 and 0777")
    if not 1 <= max_clients <= MAX_CLIENTS:
        raise ConfigError("--max-clients", max_clients, f"must be in 1..{MAX_CLIENTS}")
    if max_clients_per_uid is not None and not 1 <= max_clients_per_uid <= max_clients:
        raise ConfigError("--max-clients-per-uid", max_clients_per_uid, f"must be in 1..{max_clients} (--max-clients)")
    gid = _group_id(group) if group is not None else None
    options = _options(set_)
    _check_request(backend, cgroup, options)
    ctx = BackendContext(cgroup=cgroup, options=options)
    path = socket_path if socket_path is not None else default_socket_path(BackendContext(options=options))
    logging.basicConfig(level=logging.INFO, format="memsched pressure serve: %(message)s", stream=sys.stderr)
    chosen: list[str] = []

    def factory() -> PressureSource:
        source, choice = open_backend(backend, ctx)
        chosen.append(choice.explain())
        return source

    daemon = PressureDaemon(
        path, factory, mode=mode_bits, group=gid, max_clients=max_clients, max_clients_per_uid=max_clients_per_uid
    )
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, lambda _s, _f: daemon.request_stop())
    previous_wakeup = signal.set_wakeup_fd(daemon.signal_wakeup_fd, warn_on_full_buffer=False)
    try:
        daemon.open()
        assert daemon.source is not None
        _log(f"listening on {path} (mode {mode_bits:04o})")
        _log(chosen[0])
        _log(f"watching {daemon.source.description}")
        status = daemon.serve()
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        daemon.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    s = daemon.stats
    _log(
        f"stopped ({s.events} events, {s.accepted} clients, {s.malformed} malformed, "
        f"{s.timed_out} timed out, {s.refused} refused, {s.refused_uid} refused over the per-user limit)"
    )
    if status:
        assert daemon.error is not None
        raise daemon.error if isinstance(daemon.error, MemschedError) else MemschedError(str(daemon.error))
