"""``memsched rt admit``, ``memsched rt run`` and ``memsched rt noise``: SCHED_DEADLINE and CPU noise on the
running kernel (``memsched.live``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from memsched.cli.common import emit_json, whole_number
from memsched.cli.rt import rt_app
from memsched.cli.rt_admit import deadline_attr
from memsched.uapi.sched import SchedFlag
from memsched.units import format_ns, parse_duration

if TYPE_CHECKING:
    from memsched.live.noise import NoiseReport

#: The longest ``rt noise`` measurement per CPU, and the largest gap threshold.
MAX_NOISE_DURATION_NS = 3600 * 1_000_000_000
MAX_NOISE_THRESHOLD_NS = 1_000_000_000
#: osnoise's default threshold (``memsched.live.noise.DEFAULT_THRESHOLD_NS``, which a test compares).
DEFAULT_THRESHOLD_NS = 5_000

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]
RuntimeOpt = Annotated[str, typer.Option("--runtime", help="budget per period, with a unit: 500us, 2ms")]
DeadlineOpt = Annotated[
    str, typer.Option("--deadline", help="relative deadline, with a unit (ns, us, ms, s)")
]
PeriodOpt = Annotated[
    str | None, typer.Option("--period", help="period, with a unit; default: equal to the deadline")
]


#: Every flag ``SchedFlag.parse`` accepts, in the kernel's order (``SCHED_FLAG_*`` in include/uapi/linux/sched.h).
_FLAGS_HELP = "comma-separated SCHED_FLAG_* names: " + ", ".join(
    str(f.name).lower().replace("_", "-") for f in SchedFlag
)


@rt_app.command("admit")
def admit(
    *,
    runtime: RuntimeOpt,
    deadline: DeadlineOpt,
    period: PeriodOpt = None,
    flags: Annotated[
        str, typer.Option("--flags", help=_FLAGS_HELP)
    ] = "",
    pid: Annotated[
        int | None,
        typer.Option(
            "--pid", help="predict a change of this task's reservation (default: a new task)", parser=whole_number
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Predict whether the kernel would admit a SCHED_DEADLINE reservation now (exit 0 if so, 1 if not).

    Reads the deadline tasks already running (sched_getattr of every SCHED_DEADLINE thread), the root domain's
    CPUs, sched_rt_runtime_us / sched_rt_period_us and the fair_server reservations, and applies the kernel's
    admission arithmetic (the simulator's memsched.admission).
    """
    from memsched.cli.rt_admit import admit as predict

    rc = predict(runtime, deadline, period, flags, pid, json_out=json_out, echo=typer.echo)
    if rc:
        raise typer.Exit(rc)


@rt_app.command("run")
def run(
    runtime: RuntimeOpt,
    deadline: DeadlineOpt,
    command: Annotated[
        list[str], typer.Argument(metavar="COMMAND", help="the command and its arguments, after --")
    ],
    period: PeriodOpt = None,
    flags: Annotated[
        str,
        typer.Option("--flags", help=_FLAGS_HELP + "; dl-overrun reports an overrun with SIGXCPU"),
    ] = "",
) -> None:
    """Run COMMAND as a SCHED_DEADLINE task: memsched rt run --runtime 2ms --deadline 10ms -- COMMAND...

    The child sets its own reservation and then execs COMMAND (a deadline task cannot fork); the exit status
    is COMMAND's (128 + N when killed by signal N). A refused reservation or a failed exec leaves nothing
    running.
    """
    from memsched.live.rt_run import run_deadline

    attr = deadline_attr(runtime, deadline, period, flags)
    result = run_deadline(command, attr)
    if result.signal is not None:
        typer.echo(f"memsched: {command[0]} {result.describe()}", err=True)
    raise typer.Exit(result.returncode)


def _print_noise(report: NoiseReport) -> None:
    from memsched.cli.common import out_console
    from memsched.uapi.cpumask import format_cpulist

    iso = report.isolation
    from memsched.report.fit import Column, FitTable

    typer.echo(
        f"noise above {format_ns(report.threshold_ns)} for {format_ns(report.duration_ns)} per CPU"
        f" ({'all CPUs at once' if report.parallel else 'one CPU at a time'})"
    )
    # osnoise's columns (Documentation/trace/osnoise-tracer.rst), heads shortened to fit 80 columns.
    table = FitTable(
        "",
        [
            Column("CPU", right=True),
            Column("isol", "isolation of the CPU (isolcpus, nohz_full)", right=True),
            Column("run us", "time the loop ran, µs (osnoise RUNTIME IN US)", right=True),
            Column("noise us", "time stolen from the loop, µs", right=True),
            Column("avail %", "% of CPU available to the loop (osnoise % OF CPU AVAILABLE)", right=True),
            Column("max us", "longest single noise, µs", right=True),
            Column("count", "noise occurrences above the threshold", right=True),
            Column("IRQ", "hardware interrupts during the run", right=True),
            Column("NMI", "non-maskable interrupts", right=True),
            Column("SIRQ", "softirqs", right=True),
            Column("thr", "threads that preempted the loop (THREAD)", right=True),
            Column("res ns", "loop resolution: mean iteration, ns", right=True),
        ],
    )
    rows = table.add_group(None)

    def opt(v: int | None) -> str:
        return "-" if v is None else str(v)

    for c in report.cpus:
        rows.append(
            [
                str(c.cpu),
                iso.describe(c.cpu),
                f"{c.runtime_ns / 1000:.0f}",
                f"{c.noise_ns / 1000:.1f}",
                f"{c.cpu_available_pct:.4f}",
                f"{c.max_single_ns / 1000:.1f}",
                str(c.count),
                opt(c.irq),
                opt(c.nmi),
                opt(c.softirq),
                opt(c.thread),
                f"{c.resolution_ns:.0f}",
            ]
        )
    out_console.print(table)
    nohz = (
        "kernel without CONFIG_NO_HZ_FULL"
        if iso.nohz_full is None
        else format_cpulist(iso.nohz_full) or "none"
    )
    boot = " ".join(f"{k}={v}" if v else k for k, v in iso.boot_params.items()) or "none"
    typer.echo(
        f"isolated CPUs: {format_cpulist(iso.isolated) or 'none'}; nohz_full: {nohz}; boot parameters: {boot}"
    )
    floor = min(c.floor_ns for c in report.cpus)
    typer.echo(
        f"loop resolution (mean iteration, RES) {max(c.resolution_ns for c in report.cpus):.0f} ns; "
        f"clock floor {floor} ns"
    )
    for note in report.notes:
        typer.echo(f"note: {note}")


@rt_app.command("noise")
def noise(
    duration: Annotated[
        str, typer.Option("--duration", help="how long to measure each CPU, with a unit")
    ] = "1s",
    threshold: Annotated[
        str, typer.Option("--threshold", help="a gap longer than this is noise (osnoise's default 5us)")
    ] = f"{DEFAULT_THRESHOLD_NS // 1000}us",
    cpus: Annotated[
        str | None, typer.Option("--cpus", help="CPU list such as 0-3,6 (default: all allowed)")
    ] = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="one CPU at a time instead of all at once (osnoise runs all)")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure scheduling noise per CPU from user space (osnoise-style) and show which CPUs are isolated."""
    from memsched.live.noise import measure_noise
    from memsched.uapi.cpumask import parse_cpulist

    report = measure_noise(
        parse_cpulist(cpus, field="--cpus") if cpus is not None else None,
        duration_ns=parse_duration(duration, field="--duration", max_ns=MAX_NOISE_DURATION_NS),
        threshold_ns=parse_duration(threshold, field="--threshold", max_ns=MAX_NOISE_THRESHOLD_NS),
        sequential=sequential,
    )
    if json_out:
        emit_json(report.to_dict())
    else:
        _print_noise(report)
