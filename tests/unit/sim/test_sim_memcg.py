"""memcg in the simulated kernel: hierarchical limits, event_control registration, eventfd counters,
propagation modes through real reclaim, and memcg OOM."""

from __future__ import annotations

import errno
import select
import struct
import sys

import pytest

from helpers.pressure_programs import allocator, writer
from memsched.errors import ConfigError, KernelError
from memsched.units import MIB, s


def _listen(r, memcg: str, args: str):  # type: ignore[no-untyped-def]
    efd = r.memcgs.eventfd(f"{memcg}:{args}")
    plf = r.memcgs.open_pressure_level(memcg)
    r.memcgs.write_event_control(memcg, f"{efd.fileno()} {plf.fileno()} {args}")
    return efd


def test_hierarchical_charges_and_limits(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A charge counts in the memcg and every ancestor; the tightest limit on the path is the one hit."""
    m, r = pressure_machine(64)
    a = r.memcgs.mkdir("/a")
    b = r.memcgs.mkdir("/a/b")
    r.memcgs.set_limit("/a", 8 * MIB, m.page_size)
    r.memcgs.charge(b.id, 1000)
    assert [int(r.memcgs.usage[i]) for i in (0, a.id, b.id)] == [1000, 1000, 1000]
    assert r.memcgs.over_limit(b.id, 2000) == a.id  # 3000 pages > 2048 at /a
    assert r.memcgs.over_limit(b.id, 1000) is None
    assert r.memcgs.margin(b.id) == 2048 - 1000
    with pytest.raises(ConfigError, match="parent"):
        r.memcgs.mkdir("/x/y")
    with pytest.raises(ConfigError, match="root"):
        r.memcgs.set_limit("/", 8 * MIB, m.page_size)


def test_streamer_under_tight_memcg_limit_gets_medium(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A page-cache writer in a 16 MiB memcg: reclaim meets dirty pages it cannot free, windows reach medium
    (and low fires on efficient ones), signalled on the memcg's eventfds; the writer is not killed."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=32 * MIB)
    r.memcgs.mkdir("/w")
    r.memcgs.set_limit("/w", 16 * MIB, m.page_size)
    low, medium = _listen(r, "/w", "low"), _listen(r, "/w", "medium")
    w = writer(m, r, 48)
    r.memcgs.attach(w.tgid, "/w")
    m.run(until=s(3))
    assert medium.count >= 1 and low.count > medium.count
    assert select.select([medium], [], [], 0)[0] == [medium]
    raw = medium.read_bytes(8)
    assert struct.unpack("=Q", raw)[0] >= 1 and medium.count == 0
    assert select.select([medium], [], [], 0)[0] == []
    assert not w.killed and m.vmstat["oom_kill"] == 0


def test_eventfd_counter_semantics(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Reads return the number of signals since the last read (8 bytes); empty -> EAGAIN; short -> EINVAL."""
    _, r = pressure_machine(64)
    efd = r.memcgs.eventfd()
    efd.signal()
    efd.signal()
    with pytest.raises(KernelError) as exc:
        efd.read_bytes(4)
    assert exc.value.errno == errno.EINVAL
    assert int.from_bytes(efd.read_bytes(8), sys.byteorder) == 2
    with pytest.raises(BlockingIOError):
        efd.read()
    efd.close()


def test_propagation_modes_through_real_reclaim(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Pressure in /a/b (its limit): b's default listener fires; /a's default listener stays silent (b
    signalled); /a's hierarchy listener fires; the root's local listener never fires for a descendant."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=32 * MIB)
    r.memcgs.mkdir("/a")
    r.memcgs.mkdir("/a/b")
    r.memcgs.set_limit("/a/b", 16 * MIB, m.page_size)
    b_def = _listen(r, "/a/b", "low")
    a_def = _listen(r, "/a", "low")
    a_hier = _listen(r, "/a", "low,hierarchy")
    root_local = _listen(r, "/", "low,local")
    w = writer(m, r, 40)
    r.memcgs.attach(w.tgid, "/a/b")
    m.run(until=s(2))
    assert b_def.signals > 0
    assert a_hier.signals == b_def.signals
    assert a_def.signals == 0 and root_local.signals == 0


def test_default_listener_above_a_silent_one_gets_the_event(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A child listener whose level is too high does not stop the event reaching the parent's default one."""
    m, r = pressure_machine(256, disk_write_bytes_per_s=32 * MIB)
    r.memcgs.mkdir("/a")
    r.memcgs.mkdir("/a/b")
    r.memcgs.set_limit("/a/b", 16 * MIB, m.page_size)
    b_crit = _listen(r, "/a/b", "critical")
    a_low = _listen(r, "/a", "low")
    w = writer(m, r, 40)
    r.memcgs.attach(w.tgid, "/a/b")
    m.run(until=s(2))
    assert a_low.signals > b_crit.signals


def test_event_control_errors(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Unknown levels/modes: EINVAL; closed eventfd: EBADF; control file of another cgroup: EINVAL."""
    _, r = pressure_machine(64)
    r.memcgs.mkdir("/a")
    efd = r.memcgs.eventfd()
    plf = r.memcgs.open_pressure_level("/a")
    for args in ("warning", "low,global", "low,"):
        with pytest.raises(KernelError) as exc:
            r.memcgs.write_event_control("/a", f"{efd.fileno()} {plf.fileno()} {args}")
        assert exc.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as exc:
        r.memcgs.write_event_control("/", f"{efd.fileno()} {plf.fileno()} low")
    assert exc.value.errno == errno.EINVAL
    fd = efd.fileno()
    efd.close()
    with pytest.raises(KernelError) as exc:
        r.memcgs.write_event_control("/a", f"{fd} {plf.fileno()} low")
    assert exc.value.errno == errno.EBADF
    plf.close()


def test_closing_the_eventfd_unregisters(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Closing a registered eventfd removes its listener (memcg_event_remove)."""
    _, r = pressure_machine(64)
    efd = _listen(r, "/", "medium")
    assert len(r.memcgs.memcgs[0].listeners) == 1
    efd.close()
    assert r.memcgs.memcgs[0].listeners == []


def test_memcg_oom_kills_inside_the_memcg_only(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """An anonymous allocator over its memcg limit is killed by the memcg OOM killer; a bigger process outside
    the memcg is left alone; the memcg counts oom and oom_kill, and critical reaches its listener first."""
    m, r = pressure_machine(128)
    r.memcgs.mkdir("/box")
    r.memcgs.set_limit("/box", 16 * MIB, m.page_size)
    crit = _listen(r, "/box", "critical")
    outside = allocator(m, 48, name="outside")
    m.run(until=s(0.2))
    boxed = allocator(m, 32, name="boxed")
    r.memcgs.attach(boxed.tgid, "/box")
    m.run(until=s(2))
    assert boxed.killed and not outside.killed
    assert [(k.victim, k.scope) for k in r.oom.kills] == [("boxed", "/box")]
    box = r.memcgs.get("/box")
    assert box.events["oom"] == 1 and box.events["oom_kill"] == 1 and box.failcnt > 0
    assert crit.signals > 0
