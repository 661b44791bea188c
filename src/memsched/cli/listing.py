"""``memsched list``: what it shows of the registries, and how it prints it.

The rows come from one of two sources that give the same answer:

* the registries themselves (:func:`live_rows`: topology presets, workloads, policies with their config
  classes, the scenarios of ``rt sim``, ``pressure sim`` and ``pressure act-sim``), which import numpy and the
  simulators: what the typer command ``memsched list`` uses;
* the catalogue (:mod:`memsched.cli.catalogue`), the same rows recorded from the registries into a data file
  that a test keeps equal to them: what the fast path (:mod:`memsched.cli.fast`) uses, so that ``memsched
  list`` answers in tens of milliseconds instead of importing the simulators.

:func:`list_command` checks the arguments, selects and prints the rows identically for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from memsched.cli.common import emit_json, print_tables
from memsched.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from memsched.report.fit import FitTable

__all__ = ["KINDS", "OVERVIEW", "Source", "list_command", "live_rows", "live_settings"]

#: What ``memsched list`` lists, in the order its error message names them.
KINDS = ("topologies", "workloads", "policies", "scenarios", "settings")

#: The command that lists ``--set`` keys, as an option's error message suggests it.
SETTINGS = "memsched list settings"

#: What ``memsched list`` without an argument lists, in this order: every catalogue but the ``--set`` keys.
OVERVIEW = KINDS[:-1]


class Source(Protocol):
    """Where :func:`list_command` gets its rows."""

    def rows(self, what: str) -> list[dict[str, Any]]:
        """The rows of ``topologies``, ``workloads``, ``policies`` or ``scenarios``."""
        ...

    def settings(self, policy: str | None, workload: str | None, scenario: str | None) -> list[dict[str, Any]]:
        """The ``--set`` rows of the owners named (every owner when none is)."""
        ...


def live_rows(what: str) -> list[dict[str, Any]]:
    """The rows of ``what`` from the registries (imports the simulators)."""
    from memsched.config import describe

    if what == "topologies":
        from memsched.topology import list_presets, load_topology

        rows = []
        for name in list_presets():
            t = load_topology(name)
            rows.append(
                {
                    "id": name,
                    "nodes": t.nr_nodes,
                    "cpus": t.nr_cpus,
                    "memory_gib": t.memory_bytes >> 30,
                    "description": t.description,
                }
            )
        return rows
    if what == "workloads":
        from memsched.workloads import base as workload_registry

        return [
            {
                "id": s.id,
                "family": s.family,
                "description": s.description,
                "settings": [k.name for k in describe(s.config_cls)],
            }
            for s in (workload_registry.get(n) for n in workload_registry.names())
        ]
    if what == "policies":
        from memsched.policies.numa import registry as policy_registry

        return [
            {
                "id": s.id,
                "version": s.version,
                "models": s.models,
                "description": s.description,
                "settings": [k.name for k in describe(s.config_cls)],
            }
            for s in policy_registry.specs()
        ]
    if what == "scenarios":
        return _scenario_rows()
    raise UnknownNameError("what", what, list(KINDS))


def _scenario_rows() -> list[dict[str, Any]]:
    """The built-in scenarios, each with the command that runs it."""
    from memsched.workloads import rt as rt_scenarios
    from memsched.workloads.act import list_act_scenarios, load_act_scenario
    from memsched.workloads.pressure.scenario import list_scenarios, load_scenario

    rows = [
        {"id": n, "command": "rt sim", "description": rt_scenarios.get(n).description} for n in rt_scenarios.names()
    ]
    rows += [
        {"id": n, "command": "pressure sim", "description": load_scenario(n).description} for n in list_scenarios()
    ]
    rows += [
        {"id": n, "command": "pressure act-sim", "description": load_act_scenario(n).pressure.description}
        for n in list_act_scenarios()
    ]
    return rows


def live_settings(policy: str | None, workload: str | None, scenario: str | None) -> list[dict[str, Any]]:
    """The ``--set`` rows from the config classes themselves."""
    from memsched.cli.settings import owners, setting_rows

    return setting_rows(owners(policy, workload, scenario))


class LiveSource:
    """The registries (what the typer command uses)."""

    rows = staticmethod(live_rows)
    settings = staticmethod(live_settings)


def list_command(
    source: Source,
    what: str | None,
    *,
    json_out: bool,
    policy: str | None,
    workload: str | None,
    scenario: str | None,
) -> None:
    """List ``what`` from ``source`` on stdout: one JSON document with ``json_out``, else a table. Without
    ``what``: every catalogue of :data:`OVERVIEW`, one table each (one JSON object of them, by name)."""
    if what != "settings" and (policy, workload, scenario) != (None, None, None):
        given = (("--policy", policy), ("--workload", workload), ("--scenario", scenario))
        option, value = next((o, v) for o, v in given if v is not None)
        raise ConfigError(
            option, value, f"selects --set keys: it goes with 'memsched list settings' ({SETTINGS} {option} {value})"
        )
    if what is None:
        if json_out:
            emit_json({kind: source.rows(kind) for kind in OVERVIEW})
            return
        print_tables([_rows_table(kind, source.rows(kind)) for kind in OVERVIEW])
        return
    if what == "settings":
        settings = source.settings(policy, workload, scenario)
        if json_out:
            emit_json(settings)
        else:
            from memsched.cli.settings import settings_table

            print_tables([settings_table(settings)])
        return
    if what not in KINDS:
        raise UnknownNameError("what", what, list(KINDS))
    rows = source.rows(what)
    if json_out:
        emit_json(rows)
        return
    print_tables([_rows_table(what, rows)])


def _rows_table(what: str, rows: list[dict[str, Any]]) -> FitTable:
    """The table of one catalogue, titled with its name."""
    from memsched.report.fit import Column, FitTable

    table = FitTable(what, [Column(key, wrap=key in ("description", "models", "settings")) for key in rows[0]])
    cells = table.add_group(None)
    for row in rows:
        cells.append([", ".join(v) if isinstance(v, list) else str(v) for v in row.values()])
    return table
