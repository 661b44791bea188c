"""Admission parity: does :func:`~memsched.live.deadline.predict_admission` give the kernel's answer?

Each round starts idle helper processes (blocked in ``read(2)`` on a pipe, so they use no CPU) and makes them
SCHED_DEADLINE one by one with random reservations drawn from a seeded generator, predicting every attempt
first and comparing the predicted errno (0, EINVAL, EPERM, EBUSY) with the kernel's. A round ends when the
kernel refuses a valid reservation; then two probes at the exact boundary follow, built on a period of
``BW_UNIT`` ns so that ``to_ratio(period, runtime) == runtime``: one nanosecond over the predicted available
bandwidth (must be refused) and exactly the available bandwidth (must be admitted). A few attempts break a
``__checkparam_dl`` rule on purpose (must be EINVAL). Finally every helper is killed and reaped, and the next
round waits ``settle_s`` so that the kernel has released their bandwidth (it does so at each task's 0-lag
time, see :mod:`memsched.live.deadline`).

The helpers are this process's children; they are always killed in ``finally``, so a failed or interrupted
run leaves no SCHED_DEADLINE task behind. ``cli`` optionally asks a second predictor (``memsched rt admit
--json`` in a subprocess, in the live tests) for chosen attempts.
"""

from __future__ import annotations

import errno
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from memsched.admission import BW_UNIT, DL_SCALE
from memsched.live.deadline import predict_admission
from memsched.live.roots import LiveRoots
from memsched.live.sched_attr import raw_sched_setattr
from memsched.uapi.sched import SchedAttr, SchedFlag

__all__ = ["ParityAttempt", "ParityReport", "admission_parity", "random_reservation"]

#: Smallest runtime the kernel accepts (``1 << DL_SCALE`` ns).
MIN_RUNTIME_NS = 1 << DL_SCALE


@dataclass(frozen=True, slots=True)
class ParityAttempt:
    """One ``sched_setattr``: what was asked, what the predictor said, what the kernel said."""

    round: int
    kind: str  # "random", "invalid", "over-boundary", "at-boundary"
    attr: SchedAttr
    requested_bw: int
    available_bw: int | None
    predicted_errno: int
    kernel_errno: int
    cli_admitted: bool | None = None

    @property
    def agrees(self) -> bool:
        cli_ok = self.cli_admitted is None or self.cli_admitted == (self.kernel_errno == 0)
        return self.predicted_errno == self.kernel_errno and cli_ok


@dataclass(frozen=True, slots=True)
class ParityReport:
    seed: int
    attempts: tuple[ParityAttempt, ...] = field(default=())

    @property
    def agreements(self) -> int:
        return sum(a.agrees for a in self.attempts)

    @property
    def disagreements(self) -> tuple[ParityAttempt, ...]:
        return tuple(a for a in self.attempts if not a.agrees)

    def count(self, kernel_errno: int) -> int:
        return sum(a.kernel_errno == kernel_errno for a in self.attempts)

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {len(self.attempts)} attempts, {self.agreements} agree "
            f"({self.count(0)} admitted, {self.count(errno.EBUSY)} EBUSY, {self.count(errno.EINVAL)} EINVAL, "
            f"{sum(a.cli_admitted is not None for a in self.attempts)} also checked through the CLI)"
        )


def random_reservation(rng: random.Random, *, max_utilisation: float = 0.6) -> SchedAttr:
    """A valid reservation: period log-uniform in [1 ms, 1 s], utilisation in [0.02, max], deadline in
    [runtime, period]; one time in five the period is left 0 (period = deadline)."""
    period = int(10 ** rng.uniform(6, 9))
    runtime = max(MIN_RUNTIME_NS, int(period * rng.uniform(0.02, max_utilisation)))
    deadline = rng.randint(runtime, period)
    flags = SchedFlag.RECLAIM if rng.random() < 0.2 else SchedFlag(0)
    if rng.random() < 0.2:
        return SchedAttr.deadline(runtime, deadline, 0, flags)
    return SchedAttr.deadline(runtime, deadline, period, flags)


def _invalid_reservation(rng: random.Random) -> SchedAttr:
    """A reservation that breaks one ``__checkparam_dl`` rule."""
    period = int(10 ** rng.uniform(6, 8))
    choice = rng.randrange(3)
    if choice == 0:  # runtime > deadline
        return SchedAttr.deadline(period // 2 + 1, period // 2, period)
    if choice == 1:  # runtime below 1 << DL_SCALE
        return SchedAttr.deadline(MIN_RUNTIME_NS - 1, period, period)
    return SchedAttr.deadline(period // 10, period, period - 1)  # deadline > period


class _Helpers:
    """Idle child processes to turn into deadline tasks; all killed and reaped by :meth:`close`."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", "import os; os.read(0, 1)"], stdin=subprocess.PIPE, close_fds=True
        )
        self.procs.append(proc)
        return proc.pid

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        self.procs.clear()


@dataclass
class _Run:
    """The state of one parity run: where to read, whom to ask, and the attempts so far."""

    roots: LiveRoots
    cli: Callable[[SchedAttr], bool] | None
    attempts: list[ParityAttempt] = field(default_factory=list)

    def attempt(
        self, helpers: _Helpers, rnd: int, kind: str, attr: SchedAttr, ask_cli: bool
    ) -> ParityAttempt:
        """Predict, optionally ask the CLI, then ask the kernel, for a fresh idle helper."""
        pid = helpers.spawn()
        prediction = predict_admission(attr, roots=self.roots, pid=pid)
        cli_admitted = self.cli(attr) if self.cli is not None and ask_cli else None
        kernel_errno, _ = raw_sched_setattr(pid, attr)
        record = ParityAttempt(
            rnd,
            kind,
            attr,
            prediction.requested_bw,
            prediction.available_bw,
            prediction.expected_errno,
            kernel_errno,
            cli_admitted,
        )
        self.attempts.append(record)
        return record

    def boundary_probes(self, helpers: _Helpers, rnd: int, available: int | None) -> None:
        """One unit over the available bandwidth, then exactly at it (period BW_UNIT ns: bw == runtime)."""
        if available is None:
            return
        ask = self.cli is not None
        over = max(MIN_RUNTIME_NS, available + 1)
        if over <= BW_UNIT:
            self.attempt(helpers, rnd, "over-boundary", SchedAttr.deadline(over, BW_UNIT, BW_UNIT), ask)
        if MIN_RUNTIME_NS <= available <= BW_UNIT:
            self.attempt(helpers, rnd, "at-boundary", SchedAttr.deadline(available, BW_UNIT, BW_UNIT), ask)


def admission_parity(
    *,
    seed: int,
    rounds: int,
    max_attempts_per_round: int = 40,
    invalid_probability: float = 0.1,
    settle_s: float = 0.25,
    roots: LiveRoots | None = None,
    cli: Callable[[SchedAttr], bool] | None = None,
    cli_every: int = 0,
) -> ParityReport:
    """Run ``rounds`` rounds; ``cli(attr)`` is also asked on every ``cli_every``-th attempt and on the
    boundary probes when given."""
    rng = random.Random(seed)
    run = _Run(roots or LiveRoots(), cli)
    for rnd in range(rounds):
        helpers = _Helpers()
        try:
            for _ in range(max_attempts_per_round):
                ask = cli is not None and cli_every > 0 and len(run.attempts) % cli_every == 0
                if rng.random() < invalid_probability:
                    run.attempt(helpers, rnd, "invalid", _invalid_reservation(rng), ask)
                    continue
                record = run.attempt(helpers, rnd, "random", random_reservation(rng), ask)
                if record.kernel_errno == errno.EBUSY:
                    run.boundary_probes(helpers, rnd, record.available_bw)
                    break
        finally:
            helpers.close()
        time.sleep(settle_s)
    return ParityReport(seed, tuple(run.attempts))
