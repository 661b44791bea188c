"""PSI in the simulated kernel: memory stall accounting from reclaim, the file format, and triggers."""

from __future__ import annotations

import errno
import itertools
import re
import select

import pytest

from helpers.pressure_programs import allocator, writer
from memsched.errors import KernelError
from memsched.sim.fluid.task import Call, Wait
from memsched.units import s

LINE = re.compile(r"^(some|full) avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=(\d+)$")


def _stalling(pressure_machine):  # type: ignore[no-untyped-def]
    """A machine where a bursty anonymous allocator competes with a writer's page cache for seconds:
    repeated direct reclaim stalls."""
    m, r = pressure_machine(64)
    writer(m, r, 600, chunk_kib=1024)
    m.run(until=s(0.5))
    allocator(m, 40, chunk_mib=4, think_ms=400)
    return m, r


def test_reclaim_stalls_show_as_memory_pressure(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """Direct reclaim stalls add to 'some' (total in us); 'full' <= 'some'; the kernel's file format."""
    m, r = _stalling(pressure_machine)
    m.run(until=s(5))
    text = r.psi.show()
    lines = text.splitlines()
    assert [LINE.match(x).group(1) for x in lines] == ["some", "full"]  # type: ignore[union-attr]
    some, full = (int(LINE.match(x).group(2)) for x in lines)  # type: ignore[union-attr]
    assert some > 0 and 0 <= full <= some
    assert m.vmstat["allocstall"] > 0
    assert some * 1000 <= sum(r.stall_ns.values()) + r.vmscan.kswapd[0].busy_ns + 1_000_000


def test_no_reclaim_no_pressure(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A machine with plenty of free memory reports zero stall."""
    m, r = pressure_machine(256)
    allocator(m, 16)
    m.run(until=s(3))
    assert r.psi.show().endswith("total=0\n")
    assert r.psi.snapshot()["some_total_us"] == 0


def test_trigger_rules(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """One trigger per open file (EBUSY); unprivileged windows must be 2 s multiples; 10 s maximum."""
    _, r = pressure_machine(64)
    with r.psi.open(privileged=False) as f:
        with pytest.raises(KernelError) as exc:
            f.write(b"some 150000 1000000\0")
        assert exc.value.errno == errno.EINVAL
        assert f.write(b"some 150000 2000000\0") == 20
        with pytest.raises(KernelError) as exc:
            f.write(b"some 150000 2000000\0")
        assert exc.value.errno == errno.EBUSY
    with r.psi.open(privileged=True) as f:
        assert f.write(b"full 50000 500000\0") > 0
    with r.psi.open(privileged=True) as f, pytest.raises(KernelError):
        f.write(b"some 150000 12000000\0")
    assert r.psi.triggers == []  # closing destroyed them


def test_privileged_trigger_fires_at_most_once_per_window(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A low-threshold trigger under sustained stalls fires, and its events are at least one window apart;
    the fd is readable for select, and poll() clears it."""
    m, r = _stalling(pressure_machine)
    f = r.psi.open(privileged=True)
    f.write(b"some 1000 500000\0")
    times: list[int] = []
    orig = f._notify

    def spy() -> None:
        times.append(m.engine.now)
        orig()

    f._notify = spy  # type: ignore[method-assign]
    m.run(until=s(4))
    assert len(times) >= 2
    assert all(b - a >= 500_000_000 for a, b in itertools.pairwise(times))
    assert select.select([f], [], [], 0)[0] == [f]
    assert f.poll() is True and f.poll() is False
    assert select.select([f], [], [], 0)[0] == []
    f.close()


def test_unprivileged_trigger_is_evaluated_by_the_averaging_work(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """An unprivileged 2 s trigger fires only on the averaging clock (multiples of PSI_FREQ = 2.001 s)."""
    m, r = _stalling(pressure_machine)
    f = r.psi.open(privileged=False)
    f.write(b"some 1000 2000000\0")
    times: list[int] = []
    orig = f._notify

    def spy() -> None:
        times.append(m.engine.now)
        orig()

    f._notify = spy  # type: ignore[method-assign]
    m.run(until=s(5))
    assert times
    assert all(t % r.psi.period_ns == 0 for t in times)
    assert f.poll() is True


def test_task_blocks_on_psi_trigger(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """A simulated task waiting for POLLPRI on a trigger wakes when it fires."""
    m, r = _stalling(pressure_machine)
    f = r.psi.open(privileged=True)
    f.write(b"some 1000 500000\0")
    woke: list[int] = []
    mm = m.new_mm("lmkd")

    def woken(machine, task) -> None:  # type: ignore[no-untyped-def]
        woke.append(machine.engine.now)
        assert f.poll()  # the woken poller sees POLLPRI, which clears the event

    m.spawn_process("lmkd", (Wait(f), Call(woken)), mm=mm)
    m.run(until=s(4))
    assert woke and f.events == 1
    f.close()


def test_kswapd_only_pressure_is_small(pressure_machine) -> None:  # type: ignore[no-untyped-def]
    """When kswapd keeps up (no direct reclaim), its own memstall is the only stall: under 5% of the run."""
    m, r = pressure_machine(64)
    writer(m, r, 120)
    m.run(until=s(3))
    snap = r.psi.snapshot()
    assert m.vmstat["allocstall"] == 0
    assert 0 < snap["some_total_us"] < 3 * 1_000_000 * 0.05
