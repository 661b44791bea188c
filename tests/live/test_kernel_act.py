"""``memsched pressure act`` against the running kernel, in a 64 MiB v1 memory cgroup (with a v2 twin for PSI).

Each test builds ``/<name>`` (64 MiB) with two children: ``leak`` (a slow leak that also re-reads a 24 MiB
file, so that its page cache is squeezed out as it grows: reclaim, refaults and PSI stall come before the OOM
killer) and ``steady`` (a sibling on the ``--protect`` list). A sleeper outside the subtree stands for "the
rest of the machine". Expectations are ranges with generous timeouts; the cgroups are removed afterwards,
killing what is left, also when a test fails.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memsched.live.act import LiveActor, Protect, open_subtree
from memsched.live.act.load import idle_sibling, slow_leaker
from memsched.live.cgroups import MemcgV1Child, cgroup_mounts
from memsched.policies.act.actions import KillCgroup, KillProcess
from memsched.policies.act.conformance import load_policy
from memsched.policies.act.views import MemoryView

pytestmark = pytest.mark.live

MIB = 1 << 20
_names = itertools.count()


@dataclass
class Tree:
    cg: MemcgV1Child
    leak_dir: Path
    steady_dir: Path
    reread: Path

    @property
    def name(self) -> str:
        return "/" + self.cg.path.name

    def oom_kills(self) -> int:
        total = 0
        for d in (self.cg.path, self.leak_dir, self.steady_dir):
            fields = (d / "memory.oom_control").read_text().split()
            total += int(fields[fields.index("oom_kill") + 1])
        return total


def _cold_file(path: Path, size: int) -> Path:
    path.write_bytes(b"y" * size)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the leaker's reads charge its own memcg
    finally:
        os.close(fd)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    if os.geteuid() != 0:
        pytest.skip("creating memory cgroups needs root")
    mounts = cgroup_mounts()
    if mounts.v1_memory is None or mounts.v2 is None:
        pytest.skip("needs the cgroup v1 memory controller and the v2 hierarchy (for PSI) mounted")
    cg = MemcgV1Child(f"memsched-act-{os.getpid()}-{next(_names)}", limit_bytes=64 * MIB, v2=True)
    with cg:
        t = Tree(cg, cg.child("leak", v2=True), cg.child("steady", v2=True), _cold_file(tmp_path / "ws", 24 * MIB))
        yield t
    assert not cg.path.exists() and cg.v2_path is not None and not cg.v2_path.exists(), "cgroup left behind"


@pytest.fixture
def outsider() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield p
    p.kill()
    p.wait()


SETS = {
    "earlyoom": ({}, 0.1),
    # the test cannot wait 30 s at 60 %: the same rule with a 0.1 % limit held for 1 s, and a slower leak. On
    # a quiet machine the leak cgroup's PSI full avg10 climbs only to about 1.5-1.9 % before the kernel's OOM
    # kill (0.2 at 12.6 s, 0.5 at 14.6 s, 1.5 at 20.6 s, killed at 21 s with a step every 0.4 s); on a loaded
    # one it climbs faster. A 2 % limit passed under load and never fired on a quiet machine; a 0.3 % limit lost
    # to the kernel once in many runs. At 0.1 % it fired at 16.5 s (avg10 0.18 % after 1 s above the limit).
    "systemd-oomd": ({"mem_pressure_limit_pct": "0.1", "mem_pressure_duration_s": "1"}, 0.4),
    # lmkd's medium trigger at 30 ms of ``some`` stall per 1 s window instead of 70: on a quiet machine the leak
    # cgroup stalls at about 50-80 ms a second from the first direct reclaim (2.7 s) to the kernel's OOM kill (about
    # 5.7 s), so the 70 ms trigger fired at 5.6 s in one run and after the OOM kill in two of three others; at 30
    # ms it fires within about half a second of the first stall. The rules after the trigger are lmkd's own.
    "lmkd": ({"psi_partial_stall_ms": "30"}, 0.1),
}


@pytest.mark.parametrize("policy", sorted(SETS))
def test_leak_is_killed_before_the_kernel_oom_killer(
    tree: Tree, outsider: subprocess.Popen[bytes], policy: str
) -> None:
    sets, interval = SETS[policy]
    steady = tree.cg.run_in(tree.steady_dir, idle_sibling())
    leak = tree.cg.run_in(tree.leak_dir, slow_leaker(reread=tree.reread, interval_s=interval, oom_score_adj=500))
    time.sleep(0.3)
    before = tree.oom_kills()
    sub = open_subtree(tree.name)
    subtree_pids = {steady.pid, leak.pid}
    log = io.StringIO()
    actor = LiveActor(load_policy(policy, sets), sub, protect=Protect(frozenset({steady.pid}), frozenset()), log=log)
    try:
        actor.run(duration_s=90, until=lambda _: leak.poll() is not None)
    finally:
        actor.close()
    leak.wait(10)
    lines = [json.loads(x) for x in log.getvalue().splitlines()]
    applied = [x for x in lines if x["status"] == "applied"]
    assert applied, f"{policy} took no action: {lines}"
    assert leak.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert tree.oom_kills() == before, "the kernel's OOM killer fired first"
    signalled = {p for x in lines for p in x["signalled"]}
    assert signalled and signalled <= subtree_pids - {steady.pid}
    assert steady.poll() is None and outsider.poll() is None
    first = applied[0]
    assert first["policy"] == policy and first["evidence"] and first["reason"]
    if policy == "systemd-oomd":
        assert first["action"] == "kill-cgroup" and first["cgroup"] == tree.name + "/leak"
    else:
        assert first["pid"] == leak.pid


def test_safety_rules_refuse_every_forbidden_target(tree: Tree, outsider: subprocess.Popen[bytes]) -> None:
    steady = tree.cg.run_in(tree.steady_dir, idle_sibling())
    leak = tree.cg.run_in(tree.leak_dir, idle_sibling())
    time.sleep(0.3)
    sub = open_subtree(tree.name)
    log = io.StringIO()
    actor = LiveActor(load_policy("kernel-oom"), sub, protect=Protect(frozenset({steady.pid}), frozenset()), log=log)
    view: MemoryView = actor.sample()
    assert {p.pid for p in view.procs} == {leak.pid}  # the protected sibling is not even in the view
    results = [
        actor.apply(KillProcess(outsider.pid, signal.SIGKILL, "test"), view),
        actor.apply(KillProcess(steady.pid, signal.SIGKILL, "test"), view),
        actor.apply(KillProcess(os.getpid(), signal.SIGKILL, "test"), view),
        actor.apply(KillCgroup(tree.name + "/steady", signal.SIGKILL, "test"), view),
        actor.apply(KillCgroup("/", signal.SIGKILL, "test"), view),
    ]
    assert [r.status for r in results] == ["skipped"] * 5, [r.message for r in results]
    assert "not inside" in results[0].message and "--protect" in results[1].message
    assert "this process" in results[2].message and "--protect" in results[3].message
    dry = LiveActor(load_policy("kernel-oom"), sub, dry_run=True, log=log)
    assert dry.apply(KillProcess(leak.pid, signal.SIGKILL, "test"), view).status == "dry-run"
    time.sleep(0.2)
    assert steady.poll() is None and outsider.poll() is None and leak.poll() is None
    assert all(json.loads(x)["signalled"] == [] for x in log.getvalue().splitlines())


def test_cli_kills_the_leak_logs_json_lines_and_ends_cleanly_on_sigterm(tree: Tree, tmp_path: Path) -> None:
    steady = tree.cg.run_in(tree.steady_dir, idle_sibling())
    leak = tree.cg.run_in(tree.leak_dir, slow_leaker(reread=tree.reread, interval_s=0.1, oom_score_adj=500))
    logfile = tmp_path / "act.jsonl"
    cli = subprocess.Popen(
        [sys.executable, "-m", "memsched", "pressure", "act", "--policy", "earlyoom", "--cgroup", tree.name,
         "--protect", str(steady.pid), "--log", str(logfile), "--duration", "60s"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        leak.wait(40)
    finally:
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=20)
    assert cli.returncode == 0, err
    assert "samples" in err and "applied" in err
    lines = [json.loads(x) for x in logfile.read_text().splitlines()]
    assert lines[0]["pid"] == leak.pid and lines[0]["signal"] == "SIGTERM" and lines[0]["status"] == "applied"
    assert {"mem_available_pct", "mem_term_pct", "victim_oom_score"} <= set(lines[0]["evidence"])
    assert steady.poll() is None


def test_cgroups_are_removed_even_when_the_test_fails(tmp_path: Path) -> None:
    if os.geteuid() != 0 or cgroup_mounts().v1_memory is None or cgroup_mounts().v2 is None:
        pytest.skip("needs root, the v1 memory controller and the v2 hierarchy")
    cg = MemcgV1Child(f"memsched-act-fail-{os.getpid()}", limit_bytes=64 * MIB, v2=True)
    with pytest.raises(RuntimeError), cg:
        d = cg.child("leak", v2=True)
        cg.run_in(d, slow_leaker(interval_s=0.1))
        time.sleep(0.3)
        raise RuntimeError("a failing test body")
    assert not cg.path.exists() and cg.v2_path is not None and not cg.v2_path.exists()


def test_shed_service_calls_the_callback_on_pressure_and_kills_nothing(tree: Tree) -> None:
    """vmpressure-shed through the Python API: the kernel's own levels (memory.pressure_level, hierarchy mode)
    reach the callback; the policy never kills (the kernel's OOM killer stays the backstop)."""
    from memsched.live.act import ShedService

    calls: list[tuple[int, str]] = []
    svc = ShedService("vmpressure-shed", cgroup=tree.name)
    svc.register("cache", sheddable=lambda: 40 * MIB, shed=lambda n, level: calls.append((n, level)) or n)
    with svc:
        leak = tree.cg.run_in(tree.leak_dir, slow_leaker(reread=tree.reread, interval_s=0.1, oom_score_adj=500))
        deadline = time.monotonic() + 40
        while not calls and leak.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert calls, "no shed request although the kernel reported pressure"
    assert calls[0][1] in ("medium", "critical")
    assert calls[0][0] in (10 * MIB, 40 * MIB)  # 25 % on medium, all on critical
    assert all(r.status == "applied" and r.action.__class__.__name__ == "Shed" for r in svc.actor.results)
