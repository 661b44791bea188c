"""``memsched run``, ``memsched compare`` and ``memsched list``: the simulated NUMA machine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from memsched.cli.app import app
from memsched.cli.common import (
    check_writable,
    emit_json,
    no_repeats,
    output_file,
    progress_bar,
    seed_number,
    simulation_memory_limit,
    whole_number,
    write_atomic,
)
from memsched.errors import ConfigError

DEFAULT_TOPOLOGY = "westmere-ex-4n48"
DEFAULT_WORKLOADS = "numa01,numa01_THREAD_ALLOC,numa02,numa02_SMT"

TopologyOpt = Annotated[
    str, typer.Option("--topology", "-t", help="preset name (memsched list topologies) or a TOML file")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="seed of every random choice; same seed, same result", parser=seed_number)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]
ThpOpt = Annotated[bool, typer.Option("--thp/--no-thp", help="2 MiB transparent huge pages (default) or 4 KiB pages")]


@app.command()
def run(
    workload: Annotated[str, typer.Argument(help="workload id (memsched list workloads)")],
    topology: TopologyOpt = DEFAULT_TOPOLOGY,
    policy: Annotated[
        str, typer.Option("--policy", "-p", help="NUMA policy id, latest version (mainline) or exact (mainline-v1)")
    ] = "none",
    seed: SeedOpt = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key=value for the workload or the policy (repeatable)")
    ] = None,
    json_out: JsonOpt = False,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="write a Chrome/Perfetto trace of the run", parser=output_file),
    ] = None,
    thp: ThpOpt = True,
) -> None:
    """Simulate one workload under one policy and report times and /proc/vmstat counters."""
    from memsched.cli.common import out_console
    from memsched.config import check_seed, parse_set_args
    from memsched.conformance import checked_spec
    from memsched.workloads.numa import NumaOptions
    from memsched.workloads.runner import run_one, runner_for
    from memsched.workloads.runspec import RunSpec

    check_seed(seed, "--seed")
    spec = RunSpec(
        workload,
        topology,
        policy,
        seed,
        sets=parse_set_args(set_ or []),
        options=NumaOptions(thp=thp, trace=trace is not None),
    )
    runner_for(spec.family).check(spec)
    checked_spec(policy)
    if trace is not None:
        check_writable(trace, "--trace")
    with progress_bar(None, f"{workload} / {policy}") as advance, simulation_memory_limit():
        record = run_one(spec, progress=advance)
    if trace is not None:
        from memsched.report.trace import run_trace

        write_atomic(trace, json.dumps(run_trace(record)))
    if json_out:
        emit_json(record.to_json())
    else:
        from memsched.report.tables import run_table

        out_console.print(run_table(record))


def _policy_list(text: str) -> list[str]:
    from memsched.policies.numa import registry as policy_registry

    if text == "all":
        return policy_registry.names()
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError("--policies", text, "must be 'all' or a comma-separated list of policy ids")
    no_repeats("--policies", names, lambda name: policy_registry.get(name).versioned_id)
    return names


def _check_plugins(policies: list[str]) -> None:
    """Run the conformance checker over any policy that is not built in (once per process)."""
    from memsched.conformance import checked_spec

    for name in policies:
        checked_spec(name)


def _workload_list(text: str) -> list[str]:
    from memsched.workloads import base as workload_registry

    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names:
        raise ConfigError("--workloads", text, "must be a comma-separated list of workload ids")
    for name in names:
        workload_registry.get(name)
    no_repeats("--workloads", names)
    return names


def _topology_list(text: str) -> list[str]:
    """``compare --topology``: one preset or TOML file, or several, comma-separated, each stripped of spaces as
    ``--workloads`` and ``--policies`` are (a file whose name holds a comma or a space is one topology), each
    loaded (so checked) once here."""
    from memsched.topology import load_topology

    if Path(text).is_file():
        load_topology(text)
        return [text]
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("--topology", text, "must be a preset name, a TOML file or a comma-separated list of them")
    for name in names:
        load_topology(name)
    no_repeats("--topology", names)
    return names


#: ``compare --topology``: one machine, or several side by side in one run (each its own tables and report part).
TopologiesOpt = Annotated[
    str,
    typer.Option(
        "--topology",
        "-t",
        metavar="TOPOLOGY[,TOPOLOGY…]",
        help="preset name (memsched list topologies) or a TOML file; several, comma-separated, run in one pool "
        "and are reported one after the other",
    ),
]


@app.command()
def compare(
    topology: TopologiesOpt = DEFAULT_TOPOLOGY,
    workloads: Annotated[
        str,
        typer.Option(
            "--workloads",
            "-w",
            # the default listed with spaces, so that help wraps between ids, not inside one ("numa ⏎ 01")
            help=f"comma-separated workload ids  [default: {DEFAULT_WORKLOADS.replace(',', ', ')}]",
            show_default=False,
        ),
    ] = DEFAULT_WORKLOADS,
    policies: Annotated[str, typer.Option("--policies", help="comma-separated policy ids, or 'all'")] = "all",
    seed: SeedOpt = 0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds", help="run every cell with N seeds (seed, seed+1, ...): median, min and max", parser=whole_number
        ),
    ] = 1,
    json_out: JsonOpt = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="write a self-contained HTML report", parser=output_file),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="parallel runs (default: one per CPU)", parser=whole_number)
    ] = None,
    thp: ThpOpt = True,
) -> None:
    """Run workloads under every policy, next to their hard-bound reference runs, and compare."""
    from memsched.cli.common import out_console
    from memsched.config import MAX_SEED, check_seed
    from memsched.record import RunRecord
    from memsched.workloads.numa import NumaOptions, compare_specs
    from memsched.workloads.runner import run_many

    topologies = _topology_list(topology)
    wls = _workload_list(workloads)
    pols = _policy_list(policies)
    if jobs is not None and not 1 <= jobs <= 1024:
        raise ConfigError("--jobs", jobs, "must be in 1..1024")
    check_seed(seed, "--seed")
    if not 1 <= seeds <= 1000:
        raise ConfigError("--seeds", seeds, "must be in 1..1000")
    last = seed + seeds - 1
    if last > MAX_SEED:
        allowed = f"runs seeds {seed}..{last} with --seed {seed}; seeds must be in 0..{MAX_SEED}"
        raise ConfigError("--seeds", seeds, allowed)
    if report is not None:
        check_writable(report, "--report")
    _check_plugins(pols)
    per_topology = [
        [spec for s in range(seed, seed + seeds) for spec in compare_specs(topo, wls, pols, s, NumaOptions(thp=thp))]
        for topo in topologies
    ]
    specs = [spec for topo_specs in per_topology for spec in topo_specs]
    with progress_bar(len(specs), "simulating") as advance:
        done = [0]

        def tick(i: int, rec: RunRecord) -> None:
            done[0] += 1
            advance(done[0])

        with simulation_memory_limit(min(jobs or os.cpu_count() or 1, len(specs))):
            records = run_many(specs, jobs=jobs, on_done=tick)
    # (run_many keeps the input order: each topology's records are its specs' slice)
    groups: list[list[RunRecord]] = []
    start = 0
    for topo_specs in per_topology:
        groups.append(records[start : start + len(topo_specs)])
        start += len(topo_specs)
    if report is not None:
        from memsched.report.html import compare_report

        write_atomic(report, compare_report(*groups))
    if json_out and seeds > 1:
        from memsched.report.tables import compare_summary

        summary = [row for group in groups for row in compare_summary(group)]
        emit_json({"runs": [r.to_json() for r in records], "summary": summary})
    elif json_out:
        emit_json([r.to_json() for r in records])
    else:
        from rich.markup import escape

        from memsched.report.tables import best_lines, compare_table, diagnosis_table, workload_notes

        for i, group in enumerate(groups):
            if len(groups) > 1:
                out_console.print(("\n" if i else "") + f"[bold]{escape(topologies[i])}[/bold]", highlight=False)
            for line in best_lines(group):
                out_console.print(line, highlight=False)
            out_console.print(compare_table(group))
            why = diagnosis_table(group)
            if why is not None:
                out_console.print(why)
            for note in workload_notes(group):
                out_console.print(note)


@app.command("list")
def list_(
    what: Annotated[
        str | None,
        typer.Argument(
            help="topologies, workloads, policies, scenarios or settings; without it, all but settings",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    policy: Annotated[str | None, typer.Option("--policy", "-p", help="settings: this policy's --set keys")] = None,
    workload: Annotated[
        str | None, typer.Option("--workload", "-w", help="settings: this workload's --set keys")
    ] = None,
    scenario: Annotated[
        str | None, typer.Option("--scenario", help="settings: this rt scenario's and the rt scheduler's keys")
    ] = None,
) -> None:
    """List topologies, workloads, policies, scenarios (of rt sim, pressure sim and act-sim), or the --set keys with
    type, default, range, unit and source; without an argument, the first four."""
    from memsched.cli.listing import LiveSource, list_command

    list_command(LiveSource(), what, json_out=json_out, policy=policy, workload=workload, scenario=scenario)
