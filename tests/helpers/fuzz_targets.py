"""What the fuzzers feed, and to what: one target per input format, each through the entry points the command
line uses (the same loaders and ``Runner.check``), then a short stretch of the run an accepted input starts.

A target takes a payload — ``bytes`` for file formats and the daemon protocol, ``str`` for one option value,
a list of strings for ``--set`` — and either returns (accepted), raises a :class:`~memsched.errors.MemschedError`
(refused, with a message: the project's own error), or raises anything else: a crash. The run after
acceptance is shortened (:data:`RUN_NS` of simulated time) so that a campaign can afford tens of thousands of
examples; what would make it spin or allocate without bound does so early (a zero-time rt-app loop, a machine
of 300 nodes, a frame table of 100,000 TiB), and the full length of an accepted input is bounded separately by
the validation (rt-app's event estimate, the scenario and topology limits).

``KINDS`` lists every kind with its seed inputs (valid files, for atheris's mutations and the strategies').
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memsched.config import from_sets, parse_set_args
from memsched.errors import MemschedError
from memsched.live.pressure import PressureOptions
from memsched.live.pressure.options import parse_level, parse_psi_trigger
from memsched.uapi.cpumask import parse_cpulist
from memsched.uapi.pressure import PsiTrigger
from memsched.units import parse_duration, parse_size

__all__ = ["KINDS", "RUN_NS", "Target", "run_target"]

#: Simulated time an accepted simulation input runs for in a fuzz example.
RUN_NS = 20_000_000

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _temp_file(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="memsched-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


# ---------------------------------------------------------------------------------------------- file formats


def topology_file(data: bytes) -> None:
    """``memsched run numa02 --topology FILE``: the runner's check, then 20 ms of numa02 on the machine."""
    from memsched.sim.fluid.machine import FluidMachine, MachineConfig
    from memsched.workloads import base as workloads
    from memsched.workloads.numa import NumaRunner
    from memsched.workloads.runspec import RunSpec

    path = _temp_file(data, ".toml")
    try:
        spec = RunSpec("numa02", topology=str(path), policy="none")
        NumaRunner().check(spec)
        from memsched.topology import load_topology

        topo = load_topology(path)
        machine = FluidMachine(topo, seed=0, config=MachineConfig(thp=True))
        wl = workloads.get("numa02")
        wl.build(machine, wl.make_config({}))
        machine.run(until=RUN_NS)
    finally:
        path.unlink()


def scenario_file(data: bytes) -> None:
    """``memsched pressure sim FILE``: the runner's check per design, then 20 ms of the scenario."""
    from memsched.workloads.pressure.run import PressureRunner
    from memsched.workloads.pressure.scenario import load_scenario
    from memsched.workloads.pressure.services import PressureRun
    from memsched.workloads.runspec import RunSpec

    path = _temp_file(data, ".toml")
    try:
        scenario = load_scenario(str(path))
        for design in scenario.designs:
            PressureRunner().check(RunSpec(str(path), policy=design, family="pressure"))
        short = dataclasses.replace(scenario, duration=min(scenario.duration, RUN_NS))
        PressureRun(short, scenario.designs[0], 0).run()
    finally:
        path.unlink()


def rt_app_file(data: bytes) -> None:
    """``memsched rt sim --rt-app FILE``: the file on a 4-CPU exact machine, then 20 ms of its run."""
    from memsched.sim.sched.machine import RtMachine
    from memsched.sim.sched.sched import SchedConfig
    from memsched.workloads.rt.rtapp import load_rt_app

    path = _temp_file(data, ".json")
    try:
        m = RtMachine(4, SchedConfig())
        built = load_rt_app(path, m)
        m.run(min(built.duration_ns, RUN_NS))
    finally:
        path.unlink()


# ---------------------------------------------------------------------------------------------- option values

#: (family, workload, policy) triples whose settings ``--set`` is checked against.
SET_OWNERS: tuple[tuple[str, str, str | None], ...] = (
    ("numa", "numa01", "mainline"),
    ("numa", "specjbb", "autonuma"),
    ("numa", "mixed", "numad"),
    ("numa", "perf-bench-numa", "balancenuma"),
    ("numa", "numa02", "homenode"),
    ("numa", "numa02_SMT", "numacore"),
    ("numa", "numa01", "moron"),
    ("rt", "hackbench", None),
    ("rt", "cyclictest", "lazy"),
    ("rt", "dl-periodic", None),
    ("rt", "isolation", None),
    ("rt", "kvm", None),
    ("rt", "dhall", None),
    ("rt", "grub", None),
    ("live", "pressure-options", None),
)


def set_strings(payload: tuple[int, list[str]]) -> None:
    """``--set key=value ...`` for one owner: ``parse_set_args``, then the family's ``Runner.check`` (the NUMA
    and realtime runs' split between workload/scenario, policy and scheduler) or ``PressureOptions``."""
    from memsched.workloads.runner import runner_for
    from memsched.workloads.runspec import RunSpec

    owner, items = payload
    family, workload, policy = SET_OWNERS[owner % len(SET_OWNERS)]
    sets = parse_set_args(items)
    if family == "live":
        from_sets(PressureOptions, sets, owner="the pressure backends")
        return
    topology = "sandybridge-2n32" if family == "numa" else None
    runner_for(family).check(RunSpec(workload, topology=topology, policy=policy, sets=sets, family=family))


def _each(*calls: Callable[[], object]) -> None:
    """Run every entry point on the same value; a refusal by one does not skip the others."""
    refused: MemschedError | None = None
    for call in calls:
        try:
            call()
        except MemschedError as e:
            refused = refused or e
    if refused is not None:
        raise refused


def duration_text(text: str) -> None:
    """``--duration``, ``--runtime``, ``--interval`` ... and a scenario file's durations."""
    _each(
        lambda: parse_duration(text, field="--duration"),
        lambda: parse_duration(text, field="duration", unit_required=True, max_ns=600 * 10**9),
    )


def size_text(text: str) -> None:
    """A topology's ``node_memory``, a scenario's sizes."""
    _each(
        lambda: parse_size(text, field="size"),
        lambda: parse_size(text, field="node_memory", unit_required=True, max_bytes=1 << 42),
    )


def level_text(text: str) -> None:
    """``--level`` of ``pressure watch``; ``systemd_level``/``fifo_level`` settings."""
    _each(
        lambda: parse_level(text, field="--level"),
        lambda: from_sets(PressureOptions, {"fifo_level": text}, owner="the pressure backends"),
    )


def psi_trigger_text(text: str) -> None:
    """``--set psi_low=...`` (units or kernel µs) and a scenario's ``[psi]`` triggers (the kernel's parser)."""
    raw = text.encode("utf-8", "surrogateescape")
    _each(
        lambda: parse_psi_trigger(text, field="psi_low"),
        lambda: from_sets(PressureOptions, {"psi_medium": text}, owner="the pressure backends"),
        lambda: PsiTrigger.parse_write(raw + b"\0", privileged=True),
        lambda: PsiTrigger.parse_write(raw + b"\0", privileged=False),
    )


def cpulist_text(text: str) -> None:
    """``rt noise --cpus``; sysfs ``cpulist`` files."""
    parse_cpulist(text, field="--cpus")


# ---------------------------------------------------------------------------------------------- daemon protocol


@dataclass
class _Daemon:
    """One daemon on a FIFO source for the whole worker, checked after every example."""

    daemon: Any
    path: Path
    fifo: Path
    thread: threading.Thread
    tmp: tempfile.TemporaryDirectory[str]


_DAEMON: list[_Daemon] = []


def _daemon() -> _Daemon:
    from memsched.live.pressure.daemon import PressureDaemon
    from memsched.live.pressure.fifo import FifoSource

    if _DAEMON and _DAEMON[0].thread.is_alive():
        return _DAEMON[0]
    tmp = tempfile.TemporaryDirectory(prefix="memsched-fuzz-daemon-")
    fifo = Path(tmp.name) / "events"
    os.mkfifo(fifo)
    path = Path(tmp.name) / "p.sock"
    daemon = PressureDaemon(path, lambda: FifoSource(fifo), handshake_timeout_ns=200_000_000).open()
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    _DAEMON[:] = [_Daemon(daemon, path, fifo, thread, tmp)]
    return _DAEMON[0]


def daemon_bytes(payload: tuple[list[bytes], bool]) -> None:
    """A client sends ``chunks`` (then half-closes or not) to a running daemon; the daemon must stay up and
    serve a well-behaved client. The same bytes are decoded as the client side does (a hostile daemon)."""
    from memsched.live.pressure.protocol import HELLO_SIZE, Hello, Subscriber, decode_events
    from memsched.uapi.pressure import VmpressureConfig

    chunks, half_close = payload
    blob = b"".join(chunks)
    for check in (lambda: Hello.unpack(blob), lambda: decode_events(bytearray(blob))):
        with contextlib.suppress(MemschedError):
            check()
    sub = Subscriber(b"")
    try:
        for c in chunks:
            sub.feed(c)
    except MemschedError:
        pass
    d = _daemon()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(d.path))
        for c in chunks:
            try:
                s.sendall(c)
            except OSError:
                break  # the daemon closed us: fine
        if half_close:
            s.shutdown(socket.SHUT_WR)
    finally:
        s.close()
    good = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    good.settimeout(5)
    try:
        good.connect(str(d.path))
        hello = b""
        while len(hello) < HELLO_SIZE:
            part = good.recv(HELLO_SIZE - len(hello))
            if not part:
                raise AssertionError("the daemon closed a well-behaved client")
            hello += part
        Hello.unpack(hello)
        good.sendall(VmpressureConfig().pack())
    finally:
        good.close()
    if not d.thread.is_alive() or d.daemon.error is not None:
        raise AssertionError(f"the daemon stopped: {d.daemon.error!r}")


# ---------------------------------------------------------------------------------------------- the registry


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _data(*parts: str) -> bytes:
    return resources.files("memsched.data").joinpath(*parts).read_bytes()


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[Any], None]
    #: Valid inputs to start from (atheris's corpus, the strategies' mutations).
    seeds: Callable[[], list[Any]] = field(default=lambda: [])


KINDS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "topology",
            topology_file,
            lambda: [_data("topologies", n) for n in ("westmere-ex-4n48.toml", "opteron-4n32.toml", "x86-8n64.toml")],
        ),
        Target(
            "scenario",
            scenario_file,
            lambda: [_data("scenarios", n) for n in ("pressure-default.toml", "pressure-memcg.toml")],
        ),
        Target("rt-app", rt_app_file, lambda: [_read(FIXTURES / "rt-app" / "periodic.json")]),
        Target("set", set_strings, lambda: [(0, ["scan_delay_ms=1000"]), (7, ["groups=4", "preempt=lazy"])]),
        Target("duration", duration_text, lambda: ["2ms", "1.5s", "100ns", "10us"]),
        Target("size", size_text, lambda: ["3GiB", "256M", "64 MB", "4096B"]),
        Target("level", level_text, lambda: ["low", "medium", "critical", "1<<20"]),
        Target("psi-trigger", psi_trigger_text, lambda: ["some 70000 2000000", "full 100ms 2s", "off"]),
        Target("cpulist", cpulist_text, lambda: ["0-3,8", "0", "(null)", "1-2,4-7"]),
        Target("daemon-protocol", daemon_bytes, lambda: [([b"\x08\0\0\0\0\x04\0\0"], False)]),
    )
}


def _selftest(kind: str, payload: Any) -> None:
    """Targets that misbehave on purpose, to test the harness's caps."""
    if kind == "__sleep__":
        import time

        time.sleep(payload)
    elif kind == "__allocate__":
        bytearray(payload)
    elif kind == "__raise__":
        raise ValueError(payload)


def run_target(kind: str, payload: Any) -> None:
    if kind.startswith("__"):
        _selftest(kind, payload)
        return
    KINDS[kind].run(payload)
