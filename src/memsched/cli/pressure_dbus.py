"""``memsched pressure dbus``: serve ``org.freedesktop.LowMemoryMonitor`` (low-memory-monitor's D-Bus interface)
from any live backend, so GLib's ``GMemoryMonitor`` in GTK, GNOME and Flatpak applications hears memsched's
levels (``memsched.live.pressure.dbus_service``; the mapping is in ``memsched.live.pressure.dbus``).

The other direction is a backend: ``memsched pressure watch --backend dbus`` (``--set dbus_bus=...``).
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from memsched.cli.catalogue import names as registry_names
from memsched.cli.pressure import pressure_app
from memsched.errors import ConfigError, MemschedError
from memsched.units import parse_duration

#: Help texts that list registry names (memsched.cli.catalogue.names: no simulator import).
_BACKEND_HELP = "auto, " + ", ".join(registry_names("pressure_backends")) + " (the source of the events)"



def _log(message: str) -> None:
    print(f"memsched pressure dbus: {message}", file=sys.stderr, flush=True)


def _nonnegative_duration(text: str, field: str) -> int:
    if text.strip() == "0":
        return 0
    ns = parse_duration(text, field=field)
    if ns < 0:
        raise ConfigError(field, text, "must be >= 0")
    return ns


@pressure_app.command("dbus")
def dbus(
    *,
    bus: Annotated[
        str,
        typer.Option("--bus", help="system (where GLib listens), session, or a D-Bus address (unix:path=...)"),
    ] = "system",
    backend: Annotated[
        str, typer.Option("--backend", "-b", help=_BACKEND_HELP)
    ] = "auto",
    cgroup: Annotated[
        str | None,
        typer.Option(
            "--cgroup", help="cgroup to watch: a directory (./x from here), or a path in each hierarchy such as /app"
        ),
    ] = None,
    level: Annotated[str, typer.Option("--level", "-l", help="lowest level sent: low, medium, oom (critical)")] = "low",
    min_interval: Annotated[
        str,
        typer.Option(
            "--min-interval", help="repeat a level only after this long (e.g. 1s); a higher level goes at once"
        ),
    ] = "0",
    reconnect_timeout: Annotated[
        str,
        typer.Option("--reconnect-timeout", help="after losing the bus, retry this long, then exit 1 (0: at once)"),
    ] = "10s",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="backend setting key=value (psi_low, memcg_mode, fifo_path, dbus_bus, ...)"),
    ] = None,
) -> None:
    """Serve org.freedesktop.LowMemoryMonitor: LowMemoryWarning 50/100/255 for LOW/MEDIUM/OOM, for GLib apps."""
    import asyncio

    from memsched.config import from_sets, parse_set_args
    from memsched.live.pressure import PressureOptions, PressureSource, parse_level
    from memsched.live.pressure.backends import open_backend
    from memsched.live.pressure.context import BackendContext
    from memsched.live.pressure.dbus import BUS_NAME, LMM_LEVELS, OBJECT_PATH, resolve_bus
    from memsched.live.pressure.dbus_service import LowMemoryMonitorService

    threshold = parse_level(level, field="--level")
    min_interval_ns = _nonnegative_duration(min_interval, "--min-interval")
    reconnect_ns = _nonnegative_duration(reconnect_timeout, "--reconnect-timeout")
    address = resolve_bus(bus)
    options = from_sets(PressureOptions, parse_set_args(set_ or []), owner="the pressure backends")
    if backend == "dbus" and resolve_bus(options.dbus_bus, field_name="dbus_bus").address == address.address:
        raise ConfigError(
            "--backend", backend, f"would listen to this service's own signals on the {address.label} (set dbus_bus)"
        )
    if cgroup is not None:  # the user's value, before the bus and the backend (exit 2, as watch and serve)
        from memsched.live.cgroups import cgroup_mounts, check_cgroup_exists

        check_cgroup_exists(cgroup, cgroup_mounts())
    ctx = BackendContext(cgroup=cgroup, threshold=threshold, options=options)
    logging.basicConfig(level=logging.INFO, format="memsched pressure dbus: %(message)s", stream=sys.stderr)
    chosen: list[str] = []

    def factory() -> PressureSource:
        source, choice = open_backend(backend, ctx)
        chosen.append(choice.explain())
        return source

    def ready(unique_name: str) -> None:
        _log(f"owning {BUS_NAME} ({OBJECT_PATH}) on the {address} as {unique_name}")
        _log(chosen[0])
        if service.source is not None:
            _log(f"watching {service.source.description}")
        mapping = ", ".join(f"{lv.name} -> {byte}" for lv, byte in LMM_LEVELS.items() if lv >= threshold)
        _log(f"LowMemoryWarning levels: {mapping}")

    service = LowMemoryMonitorService(
        address,
        factory,
        threshold=threshold,
        min_interval_ns=min_interval_ns,
        reconnect_timeout_ns=reconnect_ns,
        on_ready=ready,
    )

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
        return await service.run()

    status = asyncio.run(main())
    s = service.stats
    _log(
        f"stopped ({s.events} events, {s.signals} signals, {s.below_level} below --level, {s.paced} held back by "
        f"--min-interval, {s.dropped} dropped while the bus was away, {s.reconnects} reconnects)"
    )
    if status:
        assert service.error is not None
        raise service.error if isinstance(service.error, MemschedError) else MemschedError(str(service.error))
