"""Where cells run: a local process pool (the default) or a Ray cluster. Both run
:func:`~memsched.sweep.cell.run_cell` and hand back its :class:`~memsched.results.Outcome`, so a cell gives the
same record on either.

The interface is four calls: ``submit(cell)``, ``poll(timeout_s)`` (the outcomes finished since the last poll,
in no particular order), ``in_flight()`` and ``close()``; ``capacity`` is how many cells the caller keeps
submitted. Both executors retry a cell whose worker died (``retries`` times), and after that return it as
failed with the reason, so a killed worker, an out-of-memory kill or a lost Ray node costs at most that cell.

**Local pool.** ``workers`` processes (default: one per CPU), each sent one cell at a time over its own pipe,
so the pool knows which cell a dead worker was running and starts a replacement. Workers are forked from a
``forkserver`` that has imported the simulator once (fork of a process with threads is unsafe; spawning would
import everything per worker).

**Ray.** Each cell is a Ray task (``ray.remote(run_cell)``) on the cluster at ``address`` (``auto``: the one
this machine belongs to; ``local``: a private instance on this machine). Ray's own task retries are off, so a
task lost with its worker or node comes back as an error here and is resubmitted (``attempts`` counts every
try, as for the local pool). The workers must run the same memsched (the model version is checked per cell).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any, Protocol

from memsched.errors import ConfigError
from memsched.results.store import Outcome
from memsched.sweep.cell import Cell, run_cell, serve

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["Executor", "LocalPool", "RayPool", "make_executor"]


class Executor(Protocol):
    name: str
    workers: int
    capacity: int

    def submit(self, cell: Cell) -> None: ...

    def poll(self, timeout_s: float) -> list[Outcome]: ...

    def in_flight(self) -> int: ...

    def close(self) -> None: ...


def check_executor_options(jobs: int | None, retries: int) -> None:
    """``--jobs`` and ``--retries`` within what a machine (or a cluster's share of the driver) can honour."""
    if jobs is not None and not 1 <= jobs <= 1024:
        raise ConfigError("--jobs", jobs, "must be in 1..1024")
    if not 0 <= retries <= 100:
        raise ConfigError("--retries", retries, "must be in 0..100")


def make_executor(ray: str | None, jobs: int | None, retries: int) -> Executor:
    """The local pool (``ray is None``) or a Ray executor at that address."""
    check_executor_options(jobs, retries)
    if ray is None:
        return LocalPool(jobs, retries=retries)
    return RayPool(ray, retries=retries, num_cpus=jobs)


def _lost(cell: Cell, attempt: int, retries: int, why: str, started: float, host: str, executor: str) -> Outcome:
    return Outcome(
        key=cell.key,
        cell=cell.doc,
        record=None,
        error=f"{why} while running this cell (attempt {attempt} of {retries + 1})",
        wall_s=time.monotonic() - started,
        host=host,
        pid=0,
        attempts=attempt,
        executor=executor,
    )


@dataclasses.dataclass(eq=False)
class _Worker:
    proc: BaseProcess
    conn: Connection


@dataclasses.dataclass
class _Job:
    cell: Cell
    attempt: int
    started: float = 0.0


class LocalPool:
    """Worker processes on this machine, one cell each at a time."""

    name = "local"

    def __init__(self, workers: int | None = None, *, retries: int = 1) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.capacity = self.workers
        self.retries = retries
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["memsched.sweep.cell"])
        self._idle: list[_Worker] = []
        self._busy: dict[_Worker, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._host = socket.gethostname()

    def submit(self, cell: Cell) -> None:
        self._queue.append(_Job(cell, 1))
        self._dispatch()

    def in_flight(self) -> int:
        return len(self._busy) + len(self._queue)

    def poll(self, timeout_s: float) -> list[Outcome]:
        if not self._busy:
            return []
        waitables: dict[Any, _Worker] = {}
        for w in self._busy:
            waitables[w.conn] = w
            waitables[w.proc.sentinel] = w
        ready = wait(list(waitables), timeout_s)
        out = []
        for w in dict.fromkeys(waitables[r] for r in ready):
            job = self._busy.pop(w)
            try:
                if w.conn.poll():
                    outcome = w.conn.recv()
                    out.append(dataclasses.replace(outcome, attempts=job.attempt, executor=self.name))
                    self._idle.append(w)
                    continue
            except (EOFError, OSError):
                pass
            why = self._retire(w)
            if job.attempt <= self.retries:
                self._queue.appendleft(_Job(job.cell, job.attempt + 1))
            else:
                out.append(_lost(job.cell, job.attempt, self.retries, why, job.started, self._host, self.name))
        self._dispatch()
        return out

    def close(self) -> None:
        """Stop every worker (one running a cell is terminated: nothing of it was committed)."""
        for w in self._idle:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self._busy:
            w.proc.terminate()
        for w in [*self._idle, *self._busy]:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self._idle.clear()
        self._busy.clear()
        self._queue.clear()

    def _dispatch(self) -> None:
        while self._queue and (self._idle or len(self._busy) < self.workers):
            w = self._idle.pop() if self._idle else self._start()
            job = self._queue.popleft()
            job.started = time.monotonic()
            self._busy[w] = job
            with contextlib.suppress(OSError):  # it died between two cells: the next poll sees it, retries the cell
                w.conn.send(job.cell)

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=serve, args=(child,), name="memsched-sweep-worker", daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    @staticmethod
    def _retire(w: _Worker) -> str:
        w.proc.join(timeout=5)
        code = w.proc.exitcode
        w.conn.close()
        if code is not None and code < 0:
            return f"worker process {w.proc.pid} was killed by {signal.Signals(-code).name}"
        return f"worker process {w.proc.pid} exited with status {code}"


class RayPool:
    """Each cell a Ray task on a cluster."""

    name = "ray"

    def __init__(self, address: str, *, retries: int = 1, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray", address, "needs Ray installed: pip install 'memsched[ray]'") from None
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            try:
                if address == "local":  # a new instance even if this machine belongs to a cluster
                    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                             logging_level=logging.WARNING)
                else:
                    ray.init(address=address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(
                    "--ray", address, f"must be the address of a running Ray cluster, auto or local ({e})"
                ) from None
            self._owned = True
        self._task = ray.remote(max_retries=0)(run_cell)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        self.capacity = max(2 * self.workers, 4)
        self.retries = retries
        self._refs: dict[Any, _Job] = {}

    def submit(self, cell: Cell) -> None:
        self._submit(_Job(cell, 1))

    def _submit(self, job: _Job) -> None:
        job.started = time.monotonic()
        self._refs[self._task.remote(job.cell)] = job

    def in_flight(self) -> int:
        return len(self._refs)

    def poll(self, timeout_s: float) -> list[Outcome]:
        ray = self._ray
        refs = list(self._refs)
        if not refs:
            return []
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # run_cell itself failed (it catches the run's errors)
                out.append(_lost(job.cell, job.attempt, 0, f"the Ray task failed: {_first_line(e)}", job.started,
                                 "", self.name))
                continue
            except ray.exceptions.RayError as e:  # the worker, its node or the object was lost
                if job.attempt <= self.retries:
                    self._submit(_Job(job.cell, job.attempt + 1))
                else:
                    out.append(_lost(job.cell, job.attempt, self.retries, f"Ray lost the task ({type(e).__name__})",
                                     job.started, "", self.name))
                continue
            out.append(dataclasses.replace(outcome, attempts=job.attempt, executor=self.name))
        return out

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owned:
            self._ray.shutdown()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
