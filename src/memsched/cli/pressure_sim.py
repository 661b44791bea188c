"""``memsched pressure sim [SCENARIO]``: run a memory-pressure scenario under each notification design."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from memsched.cli.catalogue import names as registry_names
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
from memsched.cli.pressure import pressure_app
from memsched.errors import ConfigError, UnknownNameError

#: Help texts that list registry names (memsched.cli.catalogue.names: no simulator import).
_SCENARIO_HELP = "built-in scenario (" + ", ".join(registry_names("pressure_scenarios")) + ") or a TOML file"
_DESIGNS_HELP = "comma-separated: " + ", ".join(registry_names("pressure_designs")) + " (default: the scenario's)"



def _designs(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    from memsched.workloads.pressure import DESIGNS

    if text is None:
        return default
    names = tuple(d.strip() for d in text.split(",") if d.strip())
    if not names:
        raise ConfigError("--designs", text, "must be a comma-separated list of: " + ", ".join(DESIGNS))
    for d in names:
        if d not in DESIGNS:
            raise UnknownNameError("--designs", d, DESIGNS)
    no_repeats("--designs", names)
    return names


@pressure_app.command("sim")
def sim(
    scenario: Annotated[
        str, typer.Argument(help=_SCENARIO_HELP)
    ] = "default",
    designs: Annotated[
        str | None,
        typer.Option(
            "--designs", help=_DESIGNS_HELP
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of every random choice", parser=seed_number)] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="write a self-contained HTML report", parser=output_file),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="parallel runs (default: one per CPU)", parser=whole_number)
    ] = None,
) -> None:
    """Simulate services filling memory, once per notification design, and compare what they saw and did."""
    from memsched.cli.common import out_console
    from memsched.config import check_seed
    from memsched.record import RunRecord
    from memsched.workloads.pressure import load_scenario
    from memsched.workloads.runner import run_many
    from memsched.workloads.runspec import RunSpec

    sc = load_scenario(scenario)
    chosen = _designs(designs, sc.designs)
    if jobs is not None and not 1 <= jobs <= 1024:
        raise ConfigError("--jobs", jobs, "must be in 1..1024")
    check_seed(seed, "--seed")
    if report is not None:
        check_writable(report, "--report")
    specs = [RunSpec(scenario, policy=d, seed=seed, family="pressure") for d in chosen]
    with progress_bar(len(specs), f"pressure {sc.name}") as advance:
        done = [0]

        def tick(i: int, rec: RunRecord) -> None:
            done[0] += 1
            advance(done[0])

        with simulation_memory_limit(min(jobs or os.cpu_count() or 1, len(specs))):
            records = run_many(specs, jobs=jobs, on_done=tick)
    if report is not None:
        from memsched.report.pressure import pressure_report

        write_atomic(report, pressure_report(records))
    if json_out:
        emit_json({"scenario": sc.name, "source": sc.source, "seed": seed, "designs": [r.to_json() for r in records]})
    else:
        from memsched.report.pressure import pressure_table

        out_console.print(pressure_table(records))
