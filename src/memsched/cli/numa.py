"""The ``memsched numa`` command group (live NUMA tools). Commands live in ``numa_live.py``, which imports
``numa_app`` from here; ``memsched.cli`` imports it."""

import typer

from memsched.cli.app import app

numa_app = typer.Typer(help="NUMA topology, locality and balancing of real processes.", no_args_is_help=True)
app.add_typer(numa_app, name="numa")
