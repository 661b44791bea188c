"""``memsched rt sim``: run a task set or an rt-app file on the exact simulated scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memsched.cli.catalogue import names as registry_names
from memsched.cli.common import (
    check_writable,
    emit_json,
    output_file,
    progress_bar,
    seed_number,
    simulation_memory_limit,
    whole_number,
    write_atomic,
)
from memsched.cli.rt import rt_app
from memsched.errors import ConfigError

if TYPE_CHECKING:
    from memsched.record import RunRecord

#: Help texts that list registry names (memsched.cli.catalogue.names: no simulator import).
_SCENARIOS_HELP = "scenario: " + ", ".join(registry_names("rt_scenarios"))
_MODELS_HELP = "preemption model: " + ", ".join(registry_names("preempt_models"))
#: The scenarios whose records carry the hackbench or cyclictest figures that --compare-preempt sets side by side
#: (:func:`preempt_doc`); on the others every model gives the same run, and the table would have nothing to show.
PREEMPT_SCENARIOS = ("hackbench", "cyclictest", "hackbench+cyclictest")
_COMPARE_HELP = f"run the scenario under every model ({', '.join(PREEMPT_SCENARIOS)}; default {PREEMPT_SCENARIOS[-1]})"



def _task_table(rec: RunRecord) -> Any:
    from memsched.report.fit import Column, FitTable, count

    table = FitTable(
        f"{rec['taskset']}, preempt={rec['preempt']}, {rec['cpus']} CPUs, {rec['elapsed_s']:.3f} s simulated",
        [
            Column("task"),
            Column("policy"),
            Column("jobs", "jobs released", right=True),
            Column("miss", "deadline misses", right=True),
            Column("resp µs", "response time mean/max, µs", right=True),
            Column("tard µs", "largest tardiness, µs", right=True),
            Column("lat µs", "wakeup latency mean/max, µs", right=True),
            Column("cs v/iv", "voluntary/involuntary context switches", right=True),
            Column("migr", "migrations between CPUs", right=True),
            Column("thru", "throughput: the work its program completed per second of the run, in CPUs (a vCPU's "
                   "is its guest's, shown under kvm)", right=True),
        ],
    )
    rows = table.add_group(None)
    for t in rec["tasks"]:
        r = t.get("response_us")
        lat = t.get("latency_us")
        rows.append(
            [
                t["name"],
                t["policy"],
                count(t["jobs"]),
                count(t["deadline_misses"]),
                f"{r['mean']:.1f}/{r['max']:.1f}" if r else "-",
                f"{t['max_tardiness_us']:.1f}",
                f"{lat['mean']:.1f}/{lat['max']:.1f}" if lat else "-",
                f"{count(t['nvcsw'])}/{count(t['nivcsw'])}",
                count(t["migrations"]),
                f"{t['throughput']:.3f}",
            ]
        )
    return table


def _summary(rec: RunRecord) -> str:
    from memsched.report.fit import mapping_lines

    util = ", ".join(f"{u:.2f}" for u in rec["cpu_utilisation"])
    lines = [
        f"events {rec['events']}, context switches {rec['context_switches']} "
        f"({rec['involuntary_switches']} involuntary), "
        f"migrations {rec['migrations']}, deadline misses {rec['deadline_misses']}, CPU utilisation {util}"
    ]
    for key in ("hackbench", "cyclictest", "isolation", "grub", "kvm"):
        if key in rec:
            lines += mapping_lines(key, rec[key])
    return "\n".join(lines)


def _trace_doc(rec: RunRecord) -> dict[str, Any]:
    from memsched.report.trace import schedule_trace

    m = rec.extras["machine"]
    names = {t.id: t.name for t in m.tasks}
    now = m.engine.now
    # the slice each CPU is still running when the simulation ends
    running = [(rq.cpu, rq.curr.id, rq.trace_start, now) for rq in m.core.rqs if rq.curr is not None]
    slices = [*(m.core.trace or []), *(s for s in running if s[3] > s[2])]
    return schedule_trace(f"{rec['taskset']} / {rec['preempt']}", rec["cpus"], slices, names, m.job_records())


@rt_app.command("sim")
def sim(
    taskset: Annotated[str | None, typer.Argument(help=_SCENARIOS_HELP)] = None,
    rt_app_file: Annotated[
        Path | None, typer.Option("--rt-app", help="an rt-app JSON file instead of a scenario")
    ] = None,
    preempt: Annotated[
        str | None, typer.Option("--preempt", help=_MODELS_HELP)
    ] = None,
    cpus: Annotated[
        int | None, typer.Option(
            "--cpus", metavar="N", help="number of CPUs (default: the scenario's)", parser=whole_number
        )
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of every random choice", parser=seed_number)] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key=value for the scenario or the scheduler")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")
    ] = False,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="write a Chrome/Perfetto trace of the schedule", parser=output_file),
    ] = None,
    compare_preempt: Annotated[
        bool, typer.Option("--compare-preempt", help=_COMPARE_HELP)
    ] = False,
    per_job: Annotated[
        bool,
        typer.Option(
            "--per-job",
            help="with --json: add every finished job (task, release, start, finish, deadline, response, "
            "missed, preemptions, migrations; ns) as per_job",
        ),
    ] = False,
    ideal: Annotated[
        bool,
        typer.Option(
            "--ideal",
            help="textbook machine: no switch/cache costs or noise, no fair_server, no admission limit "
            "(--set keys still win)",
        ),
    ] = False,
) -> None:
    """Simulate a realtime task set on the exact scheduler and report response times, misses, switches."""
    from memsched.cli.common import out_console
    from memsched.config import check_seed, parse_set_args
    from memsched.sim.sched.preempt import MODELS, parse_model
    from memsched.topology.bounds import MAX_CPUS
    from memsched.workloads import rt as scenarios
    from memsched.workloads.rt.run import DEFAULT_SCENARIO, RtOptions
    from memsched.workloads.runner import run_one, runner_for
    from memsched.workloads.runspec import RunSpec

    sets = parse_set_args(set_ or [])
    check_seed(seed, "--seed")
    if preempt is not None:
        parse_model(preempt)
    if cpus is not None and not 1 <= cpus <= MAX_CPUS:
        raise ConfigError("--cpus", cpus, f"must be in 1..{MAX_CPUS} (the most CPUs simulated)")
    if taskset is not None and rt_app_file is not None:
        raise ConfigError("--rt-app", str(rt_app_file), "cannot be combined with a TASKSET argument")
    if taskset is not None:
        scenarios.get(taskset)
    if per_job and not json_out:
        raise ConfigError("--per-job", True, "adds the jobs to the JSON document: use it with --json")
    if per_job and compare_preempt:
        raise ConfigError("--per-job", True, "cannot be combined with --compare-preempt")
    if trace is not None:
        check_writable(trace, "--trace")
        if compare_preempt:
            raise ConfigError("--trace", str(trace), "cannot be combined with --compare-preempt")
    if compare_preempt:
        if rt_app_file is not None or preempt is not None:
            raise ConfigError(
                "--compare-preempt", True, "runs every model on a scenario; drop --preempt/--rt-app"
            )
        name = taskset or DEFAULT_SCENARIO
        if name not in PREEMPT_SCENARIOS:
            raise ConfigError(
                "--compare-preempt",
                name,
                "compares hackbench and cyclictest figures: use it with " + ", ".join(PREEMPT_SCENARIOS),
            )
        specs = [
            RunSpec(name, policy=model, seed=seed, sets=sets, family="rt", options=RtOptions(cpus=cpus, ideal=ideal))
            for model in MODELS
        ]
        for spec in specs:
            runner_for("rt").check(spec)
        rows = []
        with progress_bar(len(MODELS), "models") as advance, simulation_memory_limit():
            for i, spec in enumerate(specs):
                rows.append(run_one(spec))
                advance(i + 1)
        doc = preempt_doc(rows)
        if json_out:
            emit_json(doc)
        else:
            out_console.print(preempt_table(doc))
        return
    options = RtOptions(
        cpus=cpus,
        rt_app=None if rt_app_file is None else str(rt_app_file),
        trace=trace is not None,
        per_job=per_job,
        ideal=ideal,
    )
    spec = RunSpec(
        taskset or (DEFAULT_SCENARIO if rt_app_file is None else "rt-app"),
        policy=preempt,
        seed=seed,
        sets=sets,
        family="rt",
        options=options,
    )
    runner_for("rt").check(spec)
    with progress_bar(1, taskset or "rt-app") as advance, simulation_memory_limit():
        rec = run_one(spec)
        advance(1)
    if trace is not None:
        write_atomic(trace, json.dumps(_trace_doc(rec)))
    if json_out:
        emit_json(rec.to_json())
    else:
        out_console.print(_task_table(rec))
        out_console.print(_summary(rec))


def preempt_doc(rows: list[RunRecord]) -> dict[str, Any]:
    """Side-by-side figures per model and the lazy/full ratios the roadmap asks about."""
    models = []
    for r in rows:
        hb = r.get("hackbench", {})
        cy = r.get("cyclictest", {})
        models.append(
            {
                "preempt": r["preempt"],
                "hackbench_time_s": hb.get("time_s"),
                "throughput_msgs_per_s": hb.get("throughput_msgs_per_s"),
                "context_switches": hb.get("context_switches"),
                "involuntary_switches": hb.get("involuntary_switches"),
                "lock_contentions": hb.get("lock_contentions"),
                "cyclictest_mean_us": cy.get("mean_us"),
                "cyclictest_p99_us": cy.get("p99_us"),
                "cyclictest_max_us": cy.get("max_us"),
                "events": r["events"],
            }
        )
    by = {m["preempt"]: m for m in models}
    ratios: dict[str, Any] = {}
    if "lazy" in by and "full" in by:
        lz, fl = by["lazy"], by["full"]

        def ratio(key: str) -> float | None:
            a, b = lz.get(key), fl.get(key)
            return (a / b) if a is not None and b else None

        ratios = {
            "context_switches_lazy_over_full": ratio("context_switches"),
            "throughput_lazy_over_full": ratio("throughput_msgs_per_s"),
            "cyclictest_mean_lazy_over_full": ratio("cyclictest_mean_us"),
            "cyclictest_max_lazy_over_full": ratio("cyclictest_max_us"),
        }
    return {
        "taskset": rows[0]["taskset"],
        "config": rows[0]["config"],
        "seed": rows[0]["seed"],
        "models": models,
        "ratios": ratios,
    }


def preempt_table(doc: dict[str, Any]) -> Any:
    from memsched.report.fit import Column, FitTable, count

    table = FitTable(
        f"{doc['taskset']} under every preemption model",
        [
            Column("preempt"),
            Column("hb s", "hackbench time, simulated s", right=True),
            Column("msgs/s", "hackbench messages per second", right=True),
            Column("cs", "context switches", right=True),
            Column("invol", "involuntary context switches", right=True),
            Column("lock", "lock contentions", right=True),
            Column("cyc µs", "cyclictest latency mean/max, µs", right=True),
        ],
    )
    rows = table.add_group(None)

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for m in doc["models"]:
        rows.append(
            [
                m["preempt"],
                f(m["hackbench_time_s"], ".4f"),
                f(m["throughput_msgs_per_s"], ".0f"),
                count(m["context_switches"]),
                count(m["involuntary_switches"]),
                count(m["lock_contentions"]),
                f"{f(m['cyclictest_mean_us'], '.2f')}/{f(m['cyclictest_max_us'], '.2f')}",
            ]
        )
    return table
