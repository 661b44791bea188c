"""Every file-descriptor semantic of the RFC's vmpressure_fd, checked with real select/poll on the fd."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import selectors
import signal
import threading
import time

import pytest

from memsched.errors import ConfigError, KernelError
from memsched.pressure import FileClosedError, VmpressureFile, WatcherList
from memsched.pressure.fd import MAX_TIMEOUT_S
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent, VmpressureLevel

LOW, MEDIUM, OOM = VmpressureLevel.LOW, VmpressureLevel.MEDIUM, VmpressureLevel.OOM


def _readable(f: VmpressureFile) -> bool:
    return bool(select.select([f], [], [], 0)[0])


def test_idle_file_is_not_readable_under_select_and_poll() -> None:
    """A fresh watcher reports no POLLIN to select, poll or epoll."""
    with VmpressureFile() as f:
        assert not _readable(f)
        p = select.poll()
        p.register(f, select.POLLIN)
        assert p.poll(0) == []
        ep = select.epoll()
        try:
            ep.register(f.fileno(), select.EPOLLIN)
            assert ep.poll(0) == []
        finally:
            ep.close()


def test_delivery_makes_fd_readable_and_read_clears_it() -> None:
    """A delivered level sets POLLIN; reading the event clears it."""
    with VmpressureFile() as f:
        assert f.deliver(MEDIUM) is True
        p = select.poll()
        p.register(f, select.POLLIN)
        assert p.poll(0) == [(f.fileno(), select.POLLIN)]
        assert f.read_event_nowait() == VmpressureEvent(MEDIUM)
        assert p.poll(0) == []
        assert not f.pending


def test_threshold_filters_lower_levels() -> None:
    """A MEDIUM watcher ignores LOW and wakes for MEDIUM and OOM."""
    with VmpressureFile(VmpressureConfig(threshold=MEDIUM)) as f:
        assert f.deliver(LOW) is False
        assert not _readable(f)
        assert f.deliver(OOM) is True
        assert _readable(f)
        assert f.filtered == 1


def test_pending_event_coalesces_until_read() -> None:
    """Further deliveries while an event is pending do not queue more events; one read drains them."""
    with VmpressureFile() as f:
        f.deliver(LOW)
        assert f.deliver(MEDIUM) is False
        assert f.deliver(LOW) is False
        f.read_event_nowait()
        assert not _readable(f)
        with pytest.raises(BlockingIOError):
            f.read_event_nowait()
        assert (f.signalled, f.coalesced, f.reads) == (1, 2, 1)


def test_read_returns_most_recent_level_like_vmpressure_val() -> None:
    """The event carries the latest delivered level, even a lower one that arrived after the wake-up."""
    with VmpressureFile(VmpressureConfig(threshold=OOM)) as f:
        f.deliver(OOM)
        f.deliver(LOW)  # coalesced, but it is now the most recent level
        assert f.read_event_nowait().level is LOW


def test_nowait_raises_blocking_io_error_eagain() -> None:
    """read_event_nowait with nothing pending raises BlockingIOError with errno EAGAIN."""
    with VmpressureFile() as f, pytest.raises(BlockingIOError) as exc:
        f.read_event_nowait()
    assert exc.value.errno == errno.EAGAIN


def test_read_event_blocks_until_a_producer_thread_delivers() -> None:
    """read_event blocks until another thread delivers, then returns that event."""
    with VmpressureFile() as f:
        started = threading.Event()
        result: list[VmpressureEvent] = []

        def reader() -> None:
            started.set()
            result.append(f.read_event(timeout=10))

        t = threading.Thread(target=reader)
        t.start()
        started.wait()
        assert not result  # still blocked: nothing delivered yet
        f.deliver(OOM)
        t.join(10)
        assert result == [VmpressureEvent(OOM)]


def test_read_event_timeout() -> None:
    """read_event with a timeout raises TimeoutError when nothing arrives."""
    with VmpressureFile() as f, pytest.raises(TimeoutError):
        f.read_event(timeout=0.01)


def test_short_read_buffer_is_einval() -> None:
    """Reads with a buffer smaller than struct vmpressure_event fail with EINVAL, even when pending."""
    with VmpressureFile() as f:
        f.deliver(LOW)
        with pytest.raises(KernelError) as exc:
            f.read(3)
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(KernelError):
            f.readinto(bytearray(2))
        assert f.pending  # the failed reads consumed nothing


def test_read_returns_4_byte_struct_and_readinto_returns_count() -> None:
    """read() gives the packed u32; readinto() fills 4 bytes and returns the buffer length (RFC quirk)."""
    with VmpressureFile() as f:
        f.deliver(MEDIUM)
        assert VmpressureEvent.unpack(f.read(64)).level is MEDIUM
        f.deliver(OOM)
        buf = bytearray(b"\xff" * 16)
        assert f.readinto(buf) == 16
        assert VmpressureEvent.unpack(bytes(buf[:4])).level is OOM
        assert buf[4:] == b"\xff" * 12


def test_selectors_and_asyncio_wait_on_the_fd() -> None:
    """The fd works with selectors.DefaultSelector and asyncio's add_reader."""
    with VmpressureFile() as f:
        sel = selectors.DefaultSelector()
        try:
            sel.register(f, selectors.EVENT_READ)
            assert sel.select(0) == []
            f.deliver(LOW)
            assert [key.fileobj for key, _ in sel.select(0)] == [f]
        finally:
            sel.close()
        f.read_event_nowait()

        async def main() -> VmpressureEvent:
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, f.deliver, OOM)
            return await asyncio.wait_for(f.read_event_async(), 10)

        assert asyncio.run(main()).level is OOM


def test_close_unregisters_from_watcher_list_and_closes_fd() -> None:
    """Closing a watcher removes it from the system-wide list and makes its fd unusable."""
    watchers = WatcherList()
    a = watchers.open(VmpressureConfig(threshold=LOW))
    b = watchers.open(VmpressureConfig(threshold=OOM))
    assert len(watchers) == 2
    assert watchers.broadcast(MEDIUM) == [a]
    a.close()
    a.close()  # idempotent
    assert len(watchers) == 1 and list(watchers) == [b]
    assert a.deliver(OOM) is False
    with pytest.raises(ValueError):
        a.fileno()
    with pytest.raises(KernelError) as exc:
        a.read_event_nowait()
    assert exc.value.errno == errno.EBADF
    with b:
        assert watchers.broadcast(OOM) == [b]
    assert len(watchers) == 0


def test_end_wakes_a_blocked_reader_with_the_error() -> None:
    """A reader blocked in read_event() wakes up with the producer's end-of-stream error."""
    from memsched.pressure import SourceGoneError

    with VmpressureFile() as f:
        caught: list[BaseException] = []

        def reader() -> None:
            try:
                f.read_event(timeout=30)
            except BaseException as e:
                caught.append(e)

        t = threading.Thread(target=reader)
        t.start()
        f.end(SourceGoneError(errno.ENODEV, "the cgroup was removed"))
        t.join(30)
        assert not t.is_alive()
        assert len(caught) == 1 and isinstance(caught[0], SourceGoneError)
        assert caught[0].errno == errno.ENODEV


def test_end_keeps_the_pending_event_then_reports_the_error() -> None:
    """An event pending when the source ends is still read; later reads raise; the fd stays readable."""
    from memsched.pressure import SourceGoneError

    with VmpressureFile() as f:
        f.deliver(MEDIUM)
        f.end(SourceGoneError(errno.EPIPE, "daemon gone"))
        assert f.deliver(OOM) is False  # nothing is delivered after the end
        assert _readable(f)
        assert f.read_event_nowait() == VmpressureEvent(MEDIUM)
        assert _readable(f)
        for _ in range(2):
            with pytest.raises(SourceGoneError, match="daemon gone"):
                f.read_event_nowait()
        with pytest.raises(SourceGoneError):
            f.read_event(timeout=1)
        assert "ended" in repr(f)


def test_end_is_seen_by_the_async_reader() -> None:
    """read_event_async() raises the end-of-stream error instead of waiting forever."""
    from memsched.pressure import SourceGoneError

    async def main(f: VmpressureFile) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, f.end, SourceGoneError(errno.ENODEV, "gone"))
        with pytest.raises(SourceGoneError):
            await asyncio.wait_for(f.read_event_async(), 30)

    with VmpressureFile() as f:
        asyncio.run(main(f))


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _blocked_reader(f: VmpressureFile, caught: list[BaseException]) -> threading.Thread:
    """A thread blocked in ``f.read_event()`` with no timeout, recording what it raises."""
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            f.read_event()
        except BaseException as e:
            caught.append(e)

    t = threading.Thread(target=reader, name="test-reader", daemon=True)
    t.start()
    started.wait(10)
    time.sleep(0.2)  # into select(); a reader that had not got there would see the close all the same
    return t


def test_close_from_another_thread_wakes_every_blocked_reader() -> None:
    """close() wakes readers blocked in read_event() in other threads: each raises FileClosedError (EBADF),
    and the descriptor is closed once they have left, not leaked."""
    before = _fds()
    f = VmpressureFile()
    caught: list[BaseException] = []
    readers = [_blocked_reader(f, caught) for _ in range(2)]
    f.close()
    for t in readers:
        t.join(timeout=10)
        assert not t.is_alive(), "a reader stayed blocked after close()"
    assert len(caught) == 2 and all(isinstance(e, FileClosedError) for e in caught)
    assert {e.errno for e in caught if isinstance(e, OSError)} == {errno.EBADF}
    assert "closed while a read waited" in str(caught[0])
    assert _fds() <= before


def test_close_from_a_signal_handler_wakes_the_reader_in_the_same_thread() -> None:
    """A signal handler that closes the file while this thread waits in read_event(): the read raises
    FileClosedError; the descriptor was not closed under the waiting select()."""
    f = VmpressureFile()
    old = signal.signal(signal.SIGALRM, lambda *_: f.close())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(FileClosedError, match="closed while a read waited"):
            f.read_event(timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert f.closed


def test_close_from_another_task_wakes_the_async_reader() -> None:
    """A task awaiting read_event_async() raises FileClosedError when another task closes the file."""

    async def main(f: VmpressureFile) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, f.close)
        with pytest.raises(FileClosedError):
            await asyncio.wait_for(f.read_event_async(), 10)

    before = _fds()
    asyncio.run(main(VmpressureFile()))
    assert _fds() <= before


def test_close_from_another_thread_wakes_the_async_reader() -> None:
    """A thread closing the file wakes an asyncio reader in the loop's thread."""

    async def main(f: VmpressureFile) -> None:
        closer = threading.Timer(0.1, f.close)
        closer.start()
        try:
            with pytest.raises(FileClosedError):
                await asyncio.wait_for(f.read_event_async(), 10)
        finally:
            closer.join(10)

    asyncio.run(main(VmpressureFile()))


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, -0.5, 1e300, MAX_TIMEOUT_S + 1, "1", True, [1]])
def test_read_event_refuses_a_timeout_that_is_not_a_bounded_number(timeout: object) -> None:
    """NaN (which spun at 100 % CPU), infinity, negative, too large and non-numbers are refused at the call,
    naming 'timeout' and what is allowed; None is the way to wait without a limit."""
    with VmpressureFile() as f:
        f.deliver(MEDIUM)  # even with an event pending: the argument is checked first
        with pytest.raises(ConfigError, match=r"'timeout' must be a number of seconds from 0 to 3600, or None"):
            f.read_event(timeout=timeout)  # type: ignore[arg-type]
        assert f.pending


def test_read_event_timeout_bounds_are_accepted() -> None:
    """timeout=0 only looks at what is pending; the largest timeout and None are accepted."""
    with VmpressureFile() as f:
        with pytest.raises(TimeoutError):
            f.read_event(timeout=0)
        for timeout in (0, MAX_TIMEOUT_S, None):
            f.deliver(LOW)
            assert f.read_event(timeout=timeout).level is LOW
        import numpy as np  # (numpy's integers are numbers of seconds as its floats are: review 3)

        for timeout in (np.int64(0), np.float64(0.5)):
            f.deliver(LOW)
            assert f.read_event(timeout=timeout).level is LOW  # type: ignore[arg-type]


@pytest.mark.parametrize("config", ["medium", VmpressureLevel.OOM, 8])
def test_a_config_that_is_not_a_vmpressure_config_is_refused(config: object) -> None:
    """VmpressureFile(config) takes a VmpressureConfig or None; a level or a name is refused at once."""
    with pytest.raises(ConfigError, match=r"^'config' must be a VmpressureConfig"):
        VmpressureFile(config)  # type: ignore[arg-type]


def test_several_async_readers_of_one_file_all_wake() -> None:
    """Two tasks awaiting one file in one loop: an event goes to one of them and the other keeps waiting
    (it is not left without a reader callback), and a close wakes the one still waiting."""

    async def main(f: VmpressureFile) -> list[object]:
        async def reader() -> object:
            try:
                return (await f.read_event_async()).level
            except FileClosedError as e:
                return type(e)

        tasks = [asyncio.create_task(reader()) for _ in range(2)]
        await asyncio.sleep(0.05)
        f.deliver(OOM)
        done, _ = await asyncio.wait(tasks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        await asyncio.sleep(0.05)
        f.close()
        return list(await asyncio.wait_for(asyncio.gather(*tasks), 10))

    before = _fds()
    results = asyncio.run(main(VmpressureFile()))
    assert len(results) == 2 and set(results) == {FileClosedError, OOM}
    assert _fds() <= before
