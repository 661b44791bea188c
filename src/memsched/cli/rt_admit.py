"""``memsched rt admit``: would the running kernel admit this SCHED_DEADLINE reservation now?

The command's work, without typer: the typer command (:mod:`memsched.cli.rt_live`) and the fast path
(:mod:`memsched.cli.fast`) both call :func:`admit`, which imports only the live readers and the admission
arithmetic (:mod:`memsched.admission`: integers, no numpy), never the simulators.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from memsched.admission import BW_UNIT
from memsched.cli.common import emit_json
from memsched.errors import ConfigError, ProcessGoneError, printable
from memsched.uapi.sched import SchedAttr, SchedFlag
from memsched.units import format_ns, parse_duration

if TYPE_CHECKING:
    from memsched.live.capabilities import Capability
    from memsched.live.deadline import AdmissionPrediction

__all__ = ["PID_MAX_LIMIT", "admit", "deadline_attr", "echo"]

#: ``PID_MAX_LIMIT`` on 64-bit kernels (include/linux/threads.h): 4 Mi thread ids.
PID_MAX_LIMIT = 4 * 1024 * 1024

#: click's ``_ansi_re`` (click/_compat.py): the escape sequences ``click.echo`` strips off a terminal.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def echo(line: str) -> None:
    """``typer.echo(line)`` as click does it for text on stdout: escape sequences stripped when stdout is not a
    terminal, the line and a newline written, stdout flushed."""
    out = sys.stdout
    if not out.isatty():
        line = _ANSI.sub("", line)
    out.write(line + "\n")
    out.flush()


def deadline_attr(runtime: str, deadline: str, period: str | None, flags: str = "") -> SchedAttr:
    """The ``SCHED_DEADLINE`` attributes the options ask for (``--runtime`` etc. name a bad value)."""
    return SchedAttr.deadline(
        runtime=parse_duration(runtime, field="--runtime"),
        deadline=parse_duration(deadline, field="--deadline"),
        period=parse_duration(period, field="--period") if period is not None else 0,
        flags=SchedFlag.parse(flags),
    )


def _cpus(bw: int | None) -> str:
    return "unlimited" if bw is None else f"{bw / BW_UNIT:.3f} CPUs"


def _print_prediction(p: AdmissionPrediction, echo: Callable[[str], None]) -> None:
    import textwrap

    from memsched.cli.common import out_width
    from memsched.live.dl_explain import describe_attr
    from memsched.uapi.cpumask import format_cpulist

    width = out_width()

    def line(text: str) -> None:  # "key        value": a long value wraps under itself, at the screen's width
        echo(
            textwrap.fill(
                text, width, subsequent_indent=" " * 11, break_long_words=False, break_on_hyphens=False
            )
        )

    line(f"request    {describe_attr(p.attr)} ({p.requested_bw} of BW_UNIT {BW_UNIT})")
    line(
        f"domain     CPUs {p.domain.cpulist} (capacity {p.domain.capacity}); limit {_cpus(p.limit_bw)} "
        f"(sched_rt_runtime_us {p.sysctls.rt_runtime_us} / sched_rt_period_us {p.sysctls.rt_period_us})"
    )
    t = p.target
    if t is not None:
        affinity = "unknown" if t.affinity is None else format_cpulist(t.affinity)
        policy = describe_attr(t.reservation.attr) if t.reservation is not None else t.policy_name
        line(f"target     pid {t.pid} {printable(t.comm)}: {policy}; on CPU {t.cpu}, affinity {affinity}")
    # dl_b->total_bw holds the target's own reservation too: held = servers + other tasks + target.
    own = f", the target {_cpus(p.old_bw)}" if p.old_bw else ""
    others = "other " if t is not None else ""
    line(
        f"held       {_cpus(p.total_bw)}: fair_servers {_cpus(p.servers_bw)} "
        f"[{p.servers.source}: {p.servers.reason}], "
        f"{len(p.tasks)} {others}deadline task(s) {_cpus(p.tasks_bw)}{own}"
    )
    for task in p.tasks:
        line(
            f"           pid {task.pid} tid {task.tid} {printable(task.comm)}: runtime "
            f"{format_ns(task.attr.sched_runtime)} / deadline {format_ns(task.attr.sched_deadline)} / period "
            f"{format_ns(task.attr.effective_period)} = {_cpus(task.bw)}"
        )
    if p.old_bw:
        # sched_dl_overflow (kernel/sched/deadline.c, 6.18) tests total_bw - old_bw + new_bw, then __dl_sub(old).
        line(
            f"available  {_cpus(p.free_bw)} free, {_cpus(p.available_bw)} for the request: the target's "
            f"{_cpus(p.old_bw)} is released before the request is added"
        )
    else:
        line(f"available  {_cpus(p.available_bw)}")
    verdict = "ADMITTED" if p.admitted else f"REFUSED ({p.verdict})"
    line(f"verdict    {verdict}: {p.reason}")
    for note in p.notes:
        line(f"note       {note}")


def admit(
    runtime: str,
    deadline: str,
    period: str | None,
    flags: str,
    pid: int | None,
    *,
    json_out: bool,
    echo: Callable[[str], None] = echo,
) -> int:
    """Print the prediction (``--json``: one document) and return the exit status: 0 admitted, 1 refused."""
    from memsched.live.capabilities import probe
    from memsched.live.deadline import predict_admission

    attr = deadline_attr(runtime, deadline, period, flags)
    if pid is not None and not 0 <= pid <= PID_MAX_LIMIT:
        raise ConfigError("--pid", pid, f"must be a thread id in 0..{PID_MAX_LIMIT}")
    probe("sched_deadline").require("sched_deadline")  # (probing only the two capabilities this command reads)
    try:
        prediction = predict_admission(attr, pid=pid)
    except ProcessGoneError:
        raise ConfigError("--pid", pid, "must be a running thread (no such process)") from None
    if prediction.verdict == "invalid":
        raise ConfigError(
            "--runtime/--deadline/--period", f"{runtime}/{deadline}/{period or deadline}", prediction.reason
        )
    caller, doc = _permitted(prediction, probe)
    if json_out:
        emit_json({**prediction.to_dict(), "permitted": doc})
    else:
        _print_prediction(prediction, echo)
        if not caller.available:
            echo(f"note       this process may not set it: {caller.reason}")
    return 0 if prediction.admitted else 1


def _permitted(p: AdmissionPrediction, probe: Callable[[str], Capability]) -> tuple[Capability, dict[str, object]]:
    """EPERM's two sides: what this process may do (``caller``) and what the kernel checks of the task it
    would change (``target``), and the ``permitted`` document. Without ``--pid`` the task is a new one this
    process starts, which inherits its affinity: the ``sched_deadline_permitted`` capability covers both."""
    import os

    from memsched.live.capabilities import Capability
    from memsched.live.dl_explain import caller_permission, target_permission

    if p.target is None:
        caller = probe("sched_deadline_permitted")
        return caller, {**caller.to_dict(), "caller": {"pid": os.getpid(), **caller.to_dict()}, "target": None}
    caller = Capability(*caller_permission())
    target_ok, target_why = target_permission(p)
    return caller, {
        "available": caller.available and target_ok is not False,
        "reason": f"{caller.reason}; {target_why}",
        "caller": {"pid": os.getpid(), **caller.to_dict()},
        "target": {"pid": p.target.pid, "available": target_ok, "reason": target_why},
    }
