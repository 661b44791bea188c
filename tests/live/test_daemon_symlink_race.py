"""The symlink race against ``memsched pressure serve``, run for real: a racer swaps the daemon's private socket
directory for a symlink between ``bind()`` and the permission changes (inotify + ``renameat2(RENAME_EXCHANGE)``,
``helpers/symlink_race.py``). A daemon that changes the socket's mode and group by path then changes a
root-owned file elsewhere (0600 -> 0666, group -> the socket's); one that works on descriptors does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

RACER = Path(__file__).resolve().parents[1] / "helpers" / "symlink_race.py"
GROUP = 4242  # any gid: chown(2) by root does not need the group to exist

DAEMON = """
import os, sys
from pathlib import Path
from memsched.live.pressure.daemon import PressureDaemon
from memsched.live.pressure.source import PressureSource

class Quiet(PressureSource):
    backend = "test"
    description = "nothing"

os.sched_setaffinity(0, {int(sys.argv[2])})
daemon = PressureDaemon(Path(sys.argv[1]), Quiet, mode=0o666, group=int(sys.argv[3]))
try:
    daemon.open()
    print("opened")
except Exception as e:
    print("refused", type(e).__name__, e)
finally:
    daemon.close()
"""


def _skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("the race needs root: a SCHED_FIFO racer and a daemon that may chown")
    try:
        os.sched_get_priority_max(os.SCHED_FIFO)
    except OSError as e:  # pragma: no cover - every Linux has it
        pytest.skip(f"no SCHED_FIFO: {e}")


def test_socket_permissions_cannot_be_redirected_by_a_symlink_swap(tmp_path: Path) -> None:
    """The racer wins its race (the swap happens after bind), and still no file outside the daemon's own
    directory changes mode or group."""
    _skip_unless_possible()
    base = tmp_path / "run"
    base.mkdir()
    base.chmod(0o775)  # writable by a group the attacker is in; neither world-writable nor sticky
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    cpu = min(os.sched_getaffinity(0))
    racer = subprocess.Popen(
        [sys.executable, str(RACER), str(base), str(victim), str(cpu)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready", racer.stderr.read() if racer.stderr else ""
        daemon = subprocess.run(
            [sys.executable, "-c", DAEMON, str(base / "pressure.sock"), str(cpu), str(GROUP)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        out, err = racer.communicate(timeout=30)
    finally:
        if racer.poll() is None:
            racer.kill()
            racer.wait()
    assert out.startswith("exchanged "), f"the racer did not get to swap: {out!r} {err!r} / {daemon.stdout!r}"
    kept = list(victim.glob(".keep-*"))
    assert kept, "the racer created no victim file"
    for path in kept:
        st = path.stat()
        assert (st.st_mode & 0o777, st.st_gid) == (0o600, 0), (
            f"the daemon changed a file outside its directory: {oct(st.st_mode & 0o777)} gid {st.st_gid} "
            f"(daemon said {daemon.stdout.strip()!r} {daemon.stderr.strip()[-300:]!r})"
        )
