"""The ``memsched pressure`` command group. Commands live in ``pressure_sim.py`` (simulated kernel) and
``pressure_live.py`` (running kernel), which import ``pressure_app`` from here; ``memsched.cli`` imports them."""

import typer

from memsched.cli.app import app

pressure_app = typer.Typer(
    help="Memory-pressure notification: vmpressure_fd(), memcg pressure_level, PSI; simulated and live.",
    no_args_is_help=True,
)
app.add_typer(pressure_app, name="pressure")
