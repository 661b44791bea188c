"""vmpressure_fd() on the simulated kernel: levels from real reclaim, the RFC's system-wide mode, and tasks
blocking on the fd."""

from __future__ import annotations

import errno
import select
import struct

import pytest

from helpers.pressure_programs import allocator, writer
from memsched.errors import KernelError
from memsched.sim.fluid.task import Call
from memsched.uapi.pressure import MemcgLevel, VmpressureConfig, VmpressureLevel
from memsched.units import MIB, s

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


def test_streaming_writer_produces_low_events(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A page-cache writer filling RAM makes kswapd reclaim clean page cache efficiently: LOW windows, and a
    LOW watcher's fd becomes readable (checked with select on the real descriptor)."""
    m, r = pressure_machine(64)
    with m.vmpressure_fd(VmpressureConfig(threshold=LOW)) as f:
        writer(m, r, 160)
        m.run(until=s(2))
        rfc = [x for x in r.vmpressure.samples if x.flavour == "rfc2012"]
        assert rfc and all(x.level == LOW for x in rfc)
        assert all(x.scanned >= 256 for x in rfc)  # the RFC window is a minimum of 256 scanned pages
        assert select.select([f], [], [], 0)[0] == [f]
        assert f.read_event_nowait().level is LOW
        assert f.signalled == 1 and f.coalesced == len(rfc) - 1  # one pending event until read


def test_anon_exhaustion_reaches_oom_level_through_priority_with_nothing_scanned(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """No file pages, no swap: reclaim scans nothing, the priority falls to <= 4 / <= 3, and both flavours
    report the top level (RFC OOM, mainline critical) before the OOM killer acts."""
    m, r = pressure_machine(64)
    with m.vmpressure_fd(VmpressureConfig(threshold=MEDIUM)) as f:
        allocator(m, 96)
        m.run(until=s(2))
        assert m.vmstat["pgscan_direct"] == m.vmstat["pgscan_kswapd"] == 0
        kill_t = r.oom.kills[0].t_ns
        rfc = [x for x in r.vmpressure.samples if x.flavour == "rfc2012"]
        main = [x for x in r.vmpressure.samples if x.flavour == "mainline"]
        assert rfc and all(x.level == OOM and x.reclaimed == 0 and x.index == 100 for x in rfc)
        assert main and all(x.level == MemcgLevel.CRITICAL for x in main)
        assert min(x.t_ns for x in rfc) <= kill_t
        assert f.read_event_nowait().level is OOM


def test_task_blocks_on_the_fd_until_an_event(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A simulated task in a Wait phase on the fd sleeps until an event is delivered, then reads it."""
    m, r = pressure_machine(64)
    f = m.vmpressure_fd(VmpressureConfig(threshold=LOW))
    seen: list[tuple[int, VmpressureLevel]] = []

    def read(machine, task) -> None:  # type: ignore[no-untyped-def]
        seen.append((machine.engine.now, f.read_event_nowait().level))

    mm = m.new_mm("listener")
    listener = m.spawn_process("listener", (r.wait_pressure(f), Call(read)) * 3, mm=mm)
    m.run(until=s(1))
    assert seen == [] and listener.state.name == "BLOCKED"
    writer(m, r, 160)
    m.run(until=s(3))
    assert len(seen) == 3 and all(level is LOW for _, level in seen)
    first_delivery = min(t for t, design, _, _ in r.vmpressure.deliveries if design == "rfc2012")
    assert seen[0][0] >= first_delivery
    f.close()


def test_oom_threshold_watcher_ignores_low_only_pressure(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A watcher with threshold OOM stays silent while reclaim is efficient (LOW windows are filtered)."""
    m, r = pressure_machine(64)
    with m.vmpressure_fd(VmpressureConfig(threshold=OOM)) as f:
        writer(m, r, 160)
        m.run(until=s(2))
        assert f.filtered > 0 and f.signalled == 0 and not f.pending


def test_close_unregisters_the_watcher(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """After close(), the simulated kernel delivers nothing more to the watcher."""
    m, r = pressure_machine(64)
    f = m.vmpressure_fd(VmpressureConfig(threshold=LOW))
    f.close()
    writer(m, r, 160)
    m.run(until=s(2))
    assert len(r.vmpressure.watchers) == 0
    assert not any(d == "rfc2012" for _, d, _, _ in r.vmpressure.deliveries)
    assert f.signalled == 0


def test_syscall_checks_the_raw_config(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """The syscall takes the raw struct too: a wrong size is EINVAL; a good one opens a watcher."""
    m, _ = pressure_machine(64)
    with pytest.raises(KernelError) as exc:
        m.vmpressure_fd(struct.pack("=II", 16, MEDIUM))
    assert exc.value.errno == errno.EINVAL
    with m.vmpressure_fd(VmpressureConfig(threshold=MEDIUM).pack()) as f:
        assert f.config.threshold is MEDIUM


def test_memcg_limit_reclaim_is_invisible_to_the_rfc(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """The RFC ignored reclaim on behalf of a memcg: a writer squeezed by a memcg limit produces no RFC
    window while mainline's memcg accounting sees it."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=32 * MIB)
    r.memcgs.mkdir("/w")
    r.memcgs.set_limit("/w", 16 * MIB, m.page_size)
    w = writer(m, r, 40)
    r.memcgs.attach(w.tgid, "/w")
    m.run(until=s(2))
    assert r.memcgs.memcgs[1].stat["pgscan"] > 0
    assert not [x for x in r.vmpressure.samples if x.flavour == "rfc2012"]
    assert [x for x in r.vmpressure.samples if x.flavour == "mainline" and x.memcg == 1]

