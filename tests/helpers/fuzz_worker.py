"""Run fuzz examples in a separate process with a time and a memory cap per example, and say how each ended.

:class:`FuzzWorker` starts ``python fuzz_worker.py`` once and sends it examples over a pipe (pickled
``(kind, payload)``); the worker runs :func:`helpers.fuzz_targets.run_target` and answers with an
:class:`Outcome`:

``ok``
    accepted (and its short run finished);
``refused``
    the project's own error (a :class:`~memsched.errors.MemschedError`): what bad input should get;
``crash``
    any other exception (its type, message and innermost frames);
``hang``
    over the time cap: an ``ITIMER_REAL`` in the worker interrupts Python code; if it does not come back
    within the cap plus a grace period (a long C call) the worker is killed and restarted;
``memory``
    over the memory cap: the worker's data segment (``RLIMIT_DATA``: heap and anonymous mappings) is capped
    at what it held after start-up plus the cap, so a runaway allocation raises ``MemoryError`` — or kills the
    worker, which counts the same.

A crash, a hang and a runaway allocation are all failures of the project; refusals are not.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LEN = struct.Struct("<I")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: str  # ok, refused, crash, hang, memory
    detail: str = ""
    seconds: float = 0.0
    #: The worker's data segment after the example (a growing one is restarted before it nears the cap).
    data_bytes: int = 0

    @property
    def failed(self) -> bool:
        return self.status in ("crash", "hang", "memory")


class _Overtime(BaseException):
    """The per-example time cap (a BaseException, so that ``except Exception`` in the code under test does
    not swallow it)."""


def _write(fd: int, obj: object) -> None:
    data = pickle.dumps(obj)
    os.write(fd, _LEN.pack(len(data)) + data)


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _read(fd: int) -> Any:
    (n,) = _LEN.unpack(_read_exact(fd, _LEN.size))
    return pickle.loads(_read_exact(fd, n))


def _data_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _summary(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)[-3:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(e).__name__}: {str(e)[:300]} [{where}]"


def serve(rfd: int, wfd: int, time_cap: float, memory_cap: int) -> None:
    """The worker's loop (in the child process)."""
    sys.path.insert(0, str(HERE.parent))
    import memsched.workloads.rt
    import memsched.workloads.runner  # noqa: F401
    from helpers.fuzz_targets import run_target
    from memsched.errors import MemschedError

    def overtime(signum: int, frame: object) -> None:
        raise _Overtime

    signal.signal(signal.SIGALRM, overtime)
    limit = _data_size() + memory_cap
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    _write(wfd, "ready")
    while True:
        try:
            kind, payload = _read(rfd)
        except EOFError:
            return
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, time_cap)
        try:
            run_target(kind, payload)
            status, detail = "ok", ""
        except MemschedError as e:
            status, detail = "refused", str(e)[:300]
        except _Overtime:
            status, detail = "hang", f"over {time_cap:g} s"
        except MemoryError as e:
            status, detail = "memory", _summary(e)
        except BaseException as e:
            status, detail = "crash", _summary(e)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _write(wfd, Outcome(kind, status, detail, time.monotonic() - started, _data_size() - limit + memory_cap))


class FuzzWorker:
    """A worker process with a per-example time cap (seconds) and memory cap (bytes)."""

    def __init__(self, *, time_cap: float = 10.0, memory_cap: int = 1 << 30, grace: float = 10.0) -> None:
        self.time_cap = time_cap
        self.memory_cap = memory_cap
        self.grace = grace
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._start()

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # The worker's temporary files (a target's daemon socket and FIFO) go to a directory of its own, removed
        # when it is reaped: a killed worker runs no cleanup of its own, and left them in /tmp.
        self._tmp = tempfile.mkdtemp(prefix="memsched-fuzz-worker-")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
            "TMPDIR": self._tmp,
        }
        self._proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                str(to_child_r),
                str(from_child_w),
                str(self.time_cap),
                str(self.memory_cap),
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._w, self._r = to_child_w, from_child_r
        if not select.select([self._r], [], [], 120)[0] or _read(self._r) != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def _restart(self) -> None:
        self.close()
        self.restarts += 1
        self._start()

    def run(self, kind: str, payload: Any) -> Outcome:
        started = time.monotonic()
        try:
            _write(self._w, (kind, payload))
            ready = select.select([self._r], [], [], self.time_cap + self.grace)[0]
            if ready:
                out = _read(self._r)
                assert isinstance(out, Outcome)
                if out.data_bytes > self.memory_cap // 2:  # what earlier examples left: start afresh
                    self._restart()
                return out
            self._restart()
            return Outcome(
                kind, "hang", f"no answer within {self.time_cap + self.grace:g} s", time.monotonic() - started
            )
        except (EOFError, BrokenPipeError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self._restart()
            status = "memory" if code in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT) else "crash"
            return Outcome(kind, status, f"the worker died (status {code})", time.monotonic() - started)

    def close(self) -> None:
        for fd in (getattr(self, "_w", -1), getattr(self, "_r", -1)):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._w = self._r = -1
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


if __name__ == "__main__":
    # Run the importable module's serve(), so that Outcome pickles as helpers.fuzz_worker.Outcome.
    sys.path.insert(0, str(HERE.parent))
    from helpers.fuzz_worker import serve as _serve

    _serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
