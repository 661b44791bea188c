"""ShedService and LiveActor's shed path on a fake cgroup tree (no real memcg): a failing ``sheddable()``, the
``shed`` callback's return value, ``register()``'s checks, restarting, and the finalizer of a dropped service."""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from memsched.errors import ConfigError, KernelError
from memsched.live import act
from memsched.live.act import LiveActor, Protect, ShedService, Subtree
from memsched.live.roots import LiveRoots
from memsched.policies.act.actions import Shed
from memsched.policies.act.conformance import load_policy

MIB = 1 << 20


@pytest.fixture
def subtree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Subtree:
    """A v2 cgroup directory with no process under an empty /proc; ShedService opens it for any ``cgroup=``."""
    (tmp_path / "proc").mkdir()
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.procs").write_text("")
    sub = Subtree(cg, "/svc", False, cg, LiveRoots(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys"))
    monkeypatch.setattr(act, "open_subtree", lambda *a, **k: sub)
    return sub


def _wait(cond: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _act_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "memsched-act"]


def _service(**sets: str) -> ShedService:
    return ShedService("vmpressure-shed", cgroup="/svc", sets={"interval_ms": "5", **sets})


def _flaky(fail: set[int], value: object = "boom") -> Callable[[], object]:
    """A sheddable() that fails on the calls numbered in ``fail`` (raising, or returning ``value``)."""
    calls = [0]

    def size() -> object:
        calls[0] += 1
        if calls[0] in fail:
            if value == "boom":
                raise RuntimeError("cache being rebuilt")
            return value
        return 8 * MIB

    return size


@pytest.mark.parametrize("bad", ["boom", float("nan"), -1, "12", None, True, float("inf"), 1 << 64])
def test_a_failing_sheddable_is_recorded_and_sampling_goes_on(
    subtree: Subtree, bad: object, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception or a non-byte-count from sheddable() leaves the service out of that sample, is recorded
    and logged once, and the thread keeps sampling (it used to die with the first one)."""
    svc = _service()
    svc.register("cache", sheddable=_flaky({2, 3}, bad), shed=lambda n, level: n)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="memsched.live.act"), svc:
        assert _wait(lambda: svc.actor.samples >= 6)
        assert len(_act_threads()) == 1
    assert svc.actor.sample_error_count == 2
    assert [e.service for e in svc.actor.sample_errors] == ["cache", "cache"]
    assert "cache: sheddable()" in svc.actor.sample_errors[0].message
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cache: sheddable()" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_failing_sheddable_leaves_only_that_service_out_of_the_view(subtree: Subtree) -> None:
    """The view of a sample lists the services whose sheddable() worked, with their bytes."""
    services = {
        "bad": ("/svc", lambda: float("nan"), lambda n, level: n),
        "good": ("/svc/good", lambda: 3 * MIB + 0.5, lambda n, level: n),
    }
    actor = LiveActor(load_policy("vmpressure-shed", None), subtree, kills=False, services=services)  # type: ignore[arg-type]
    view = actor.sample()
    assert [(s.name, s.cgroup, s.sheddable) for s in view.services] == [("good", "/svc/good", 3 * MIB)]
    assert actor.sample_error_count == 1 and "nan" in actor.sample_errors[0].message


def test_a_removed_cgroup_ends_the_run(subtree: Subtree) -> None:
    """`pressure act` sampled on, silently, after its cgroup was removed: the next sample says so and the run
    ends (KernelError, exit 1 from the command line), as `pressure watch` does."""
    actor = LiveActor(load_policy("vmpressure-shed", None), subtree, kills=False)
    actor.sample()
    (subtree.directory / "cgroup.procs").unlink()
    subtree.directory.rmdir()
    with pytest.raises(KernelError, match=r"cg was removed \(the cgroup acted in\)"):
        actor.run(duration_s=5.0)
    actor.close()


@pytest.mark.parametrize(
    ("returned", "status", "message"),
    [
        (4 * MIB, "applied", f"freed {4 * MIB} bytes"),
        (None, "applied", "freed an unknown number of bytes"),
        (2.0 * MIB, "applied", f"freed {2 * MIB} bytes"),
        (-1, "failed", "returned -1"),
        (float("nan"), "failed", "returned nan"),
        ("lots", "failed", "returned 'lots'"),
    ],
)
def test_the_shed_callback_returns_bytes_freed_or_none(
    subtree: Subtree, returned: object, status: str, message: str
) -> None:
    """shed() returns the bytes freed, or None for "unknown" (applied, not failed as it used to be); anything
    else is failed with the value it returned."""
    asked: list[tuple[int, str]] = []

    def shed(n: int, level: str) -> object:
        asked.append((n, level))
        return returned

    services = {"cache": ("/svc", lambda: 8 * MIB, shed)}
    actor = LiveActor(load_policy("vmpressure-shed", None), subtree, kills=False, services=services)  # type: ignore[arg-type]
    result = actor.apply(Shed("cache", 4 * MIB, "medium", "test"), actor.sample())
    assert asked == [(4 * MIB, "medium")]
    assert (result.status, message in result.message) == (status, True), result.message


def test_register_checks_its_arguments_at_once(subtree: Subtree) -> None:
    """Non-callables, an empty or repeated name and a relative cgroup are refused by register() itself."""
    svc = _service()
    ok: Callable[[], int] = lambda: 0  # noqa: E731
    svc.register("cache", sheddable=ok, shed=lambda n, level: None)
    bad_calls: list[tuple[str, dict[str, object]]] = [
        ("sheddable", {"name": "a", "sheddable": 123, "shed": lambda n, level: n}),
        ("shed", {"name": "a", "sheddable": ok, "shed": "not callable"}),
        ("name", {"name": "", "sheddable": ok, "shed": lambda n, level: n}),
        ("name", {"name": 7, "sheddable": ok, "shed": lambda n, level: n}),
        ("name", {"name": "cache", "sheddable": ok, "shed": lambda n, level: n}),
        ("cgroup", {"name": "a", "sheddable": ok, "shed": lambda n, level: n, "cgroup": "svc/a"}),
    ]
    for field, kw in bad_calls:
        name = kw.pop("name")
        with pytest.raises(ConfigError, match=f"'{field}'"):
            svc.register(name, **kw)  # type: ignore[arg-type]
    assert list(svc.actor.services) == ["cache"]
    svc.stop()


def test_a_stopped_service_starts_again(subtree: Subtree) -> None:
    """A second ``with svc:`` samples again in a fresh thread (it used to exit at once); start() on a running
    service does not start a second thread."""
    svc = _service()
    svc.register("cache", sheddable=lambda: MIB, shed=lambda n, level: n)
    with svc:
        assert _wait(lambda: svc.actor.samples >= 2)
        [first] = _act_threads()
        svc.start()
        assert _act_threads() == [first]
    assert not first.is_alive() and not _act_threads()
    before = svc.actor.samples
    with svc:
        assert _wait(lambda: svc.actor.samples >= before + 2)
        [second] = _act_threads()
        assert second is not first
    assert not second.is_alive()


def test_a_stop_that_times_out_says_so_and_start_refuses_until_the_thread_ends(
    subtree: Subtree, caplog: pytest.LogCaptureFixture
) -> None:
    """stop(timeout) while a sheddable() is still running returns False (logged), leaves the registration open
    until that sample ends, and start() raises instead of returning on a service about to end (it was a silent
    no-op); once the thread has ended, start() samples again."""
    entered, release = threading.Event(), threading.Event()

    def slow() -> int:
        entered.set()
        release.wait(10)
        return MIB

    svc = _service()
    svc.register("slow", sheddable=slow, shed=lambda n, level: n)
    closed = threading.Event()
    real_close = svc.actor.close
    svc.actor.close = lambda: (real_close(), closed.set())[0]  # type: ignore[method-assign]
    svc.start()
    try:
        assert entered.wait(10)
        with caplog.at_level(logging.WARNING, logger="memsched.live.act"):
            assert svc.stop(timeout=0.01) is False
        assert any("did not stop within" in r.getMessage() for r in caplog.records)
        assert svc.running and not closed.is_set()  # not closed under the running sample
        with pytest.raises(RuntimeError, match="has not ended"):
            svc.start()
    finally:
        release.set()  # also when an assertion failed: no blocked thread left for the next test
    assert svc.stop() is True
    assert not svc.running and closed.is_set() and not _act_threads()
    before = svc.actor.samples
    svc.start()
    assert _wait(lambda: svc.actor.samples >= before + 2)
    assert svc.stop() is True and not svc.running


def test_a_crashing_policy_is_reported_not_silent(subtree: Subtree, caplog: pytest.LogCaptureFixture) -> None:
    """An exception that ends the thread (here the policy's) is logged and kept in ``svc.error``."""
    svc = _service()

    def broken(view: object) -> list[object]:
        raise ZeroDivisionError("policy bug")

    svc.actor.policy.on_sample = broken  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.ERROR, logger="memsched.live.act"), svc:
        assert _wait(lambda: not svc.running)
    assert isinstance(svc.error, ZeroDivisionError)
    assert any("policy bug" in r.getMessage() for r in caplog.records)


def test_a_dropped_running_service_is_stopped_by_its_finalizer(subtree: Subtree) -> None:
    """Dropping a started service without stop() ends its thread and closes the actor once it is collected: the
    thread holds the actor, never the service."""
    svc = _service()
    svc.register("cache", sheddable=lambda: MIB, shed=lambda n, level: n)
    svc.start()
    [thread] = _act_threads()
    actor = svc.actor
    closed = threading.Event()
    real_close = actor.close
    actor.close = lambda: (real_close(), closed.set())[0]  # type: ignore[method-assign]
    assert _wait(lambda: actor.samples >= 1)
    ref = weakref.ref(svc)
    del svc
    gc.collect()
    assert ref() is None
    thread.join(10)
    assert not thread.is_alive()
    assert closed.is_set()


def test_a_protected_name_that_is_not_utf8_still_matches(subtree: Subtree) -> None:
    """--protect with a name of raw bytes (argv decodes them as surrogates) or as the \\xNN text memsched shows
    matches the process whose comm holds those bytes: parse_task_stat now gives that text."""
    stat = "4242 (db\udcff\udcfe) S 1 1 1 0 -1 4194304" + " 0" * 35 + "\n"
    piddir = subtree.roots.proc(4242)
    piddir.mkdir()
    (piddir / "stat").write_bytes(stat.encode("utf-8", "surrogateescape"))
    why = "its comm 'db\\\\xff\\\\xfe' is on the --protect list"
    for name in ("db\udcff\udcfe", "db\\xff\\xfe"):
        assert subtree.untouchable(4242, Protect.parse([name])) == why
    assert subtree.untouchable(4242, Protect.parse(["db"])) is None
