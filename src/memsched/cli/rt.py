"""The ``memsched rt`` command group. Commands live in ``rt_sim.py`` (simulator) and ``rt_live.py`` (running
kernel), which import ``rt_app`` from here; ``memsched.cli`` imports those modules."""

import typer

from memsched.cli.app import app

rt_app = typer.Typer(
    help="SCHED_DEADLINE, preemption models and CPU isolation: simulated and on the running kernel.",
    no_args_is_help=True,
)
app.add_typer(rt_app, name="rt")
