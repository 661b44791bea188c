"""The catalogue: what ``memsched list`` shows of the built-in registries, recorded in a data file so that the
fast path (:mod:`memsched.cli.fast`) answers without importing numpy or the simulators.

The registries stay the one source of truth. ``data/catalogue.json`` is *generated* from them
(``python -m memsched.cli.catalogue --write``; ``--check`` says whether it is current), and the test suite
fails when it differs from what they give now (tests/unit/cli/test_startup.py), as it would for any other
generated file. It holds the rows of ``memsched list topologies|workloads|policies|scenarios`` and, per owner, the rows
of ``memsched list settings``; :class:`CatalogueSource` answers ``--policy``/``--workload``/``--scenario``
through the same selection code as the registries (:func:`memsched.cli.settings.select_owners`), so
unknown names fail with the same message.

It also records the names some commands' help texts list (:func:`names`: rt scenarios, preemption models,
pressure designs, scenarios and backends, action policies), so that building the typer command line does not
import the simulators either.

Only memsched's own policies can be recorded: an installed plug-in (an entry point of the group
``memsched.numa_policies`` or ``memsched.act_policies``) is listed by its registry, so :func:`load` returns
``None`` whenever a distribution on ``sys.path`` may declare one (found by reading ``entry_points.txt``
files, as ``importlib.metadata`` does, without its ~50 ms import), or when the file is missing or of another
format; ``memsched list`` then takes the ordinary path and :func:`names` asks the registries.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from memsched.registry import Registry, VersionedRegistry

__all__ = ["FORMAT", "PATH", "PLUGIN_GROUPS", "CatalogueSource", "build", "load", "names", "plugins_installed"]

#: The file, next to the topology presets (package data).
PATH = Path(__file__).resolve().parents[1] / "data" / "catalogue.json"
#: Bumped when the file's layout changes; a file of another format is not used.
FORMAT = 2
#: ``ENTRY_POINT_GROUP`` of ``memsched.policies.numa.registry`` and ``memsched.policies.act.registry`` (those
#: modules import importlib.metadata; a test checks that these agree).
PLUGIN_GROUPS = ("memsched.numa_policies", "memsched.act_policies")


def _rt_scenarios() -> list[str]:
    from memsched.workloads import rt as scenarios

    return scenarios.names()


def _preempt_models() -> list[str]:
    from memsched.sim.sched.preempt import MODELS

    return list(MODELS)


def _pressure_designs() -> list[str]:
    from memsched.workloads.pressure import DESIGNS

    return list(DESIGNS)


def _pressure_scenarios() -> list[str]:
    from memsched.workloads.pressure import list_scenarios

    return list_scenarios()


def _pressure_backends() -> list[str]:
    from memsched.live.pressure.backends import BACKENDS

    return list(BACKENDS)


def _act_policies() -> list[str]:
    from memsched.policies.act import registry as act_registry

    return act_registry.names()


#: Names the commands' help texts list (``names(key)``), and how the registries give them.
_NAMES = {
    "rt_scenarios": _rt_scenarios,
    "preempt_models": _preempt_models,
    "pressure_designs": _pressure_designs,
    "pressure_scenarios": _pressure_scenarios,
    "pressure_backends": _pressure_backends,
    "act_policies": _act_policies,
}


def build() -> dict[str, Any]:
    """The catalogue as the registries give it now (imports them: numpy, the simulators)."""
    from memsched.cli.listing import live_rows
    from memsched.cli.settings import setting_rows
    from memsched.policies.numa import registry as policies
    from memsched.sim.sched.sched import SchedConfig
    from memsched.workloads import base as workloads
    from memsched.workloads import rt as scenarios

    def rows_of(cls: type) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "owner"} for row in setting_rows([("", cls)])]

    doc = {
        "format": FORMAT,
        "topologies": live_rows("topologies"),
        "workloads": live_rows("workloads"),
        "policies": live_rows("policies"),
        "scenarios": live_rows("scenarios"),
        "settings": {
            "policies": [{"id": s.id, "version": s.version, "rows": rows_of(s.config_cls)} for s in policies.specs()],
            "workloads": [{"id": n, "rows": rows_of(workloads.get(n).config_cls)} for n in workloads.names()],
            "scenarios": [{"id": n, "rows": rows_of(scenarios.get(n).config_cls)} for n in scenarios.names()],
            "scheduler": rows_of(SchedConfig),
        },
        "names": {key: names_of() for key, names_of in _NAMES.items()},
    }
    if json.loads(dump(doc)) != doc:  # a tuple default would come back a list (and print as one)
        raise ValueError("the catalogue does not survive JSON: a row holds a value JSON changes")
    return doc


def dump(doc: dict[str, Any]) -> str:
    """The file's text (keys in the rows' own order: the first row's keys are a table's columns)."""
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _dist_dirs(entry: str) -> list[str]:
    try:
        names = os.listdir(entry or ".")
    except OSError:
        return []
    return [os.path.join(entry or ".", n) for n in names if n.lower().endswith((".dist-info", ".egg-info"))]


def plugins_installed(path: list[str] | None = None) -> bool:
    """Whether a distribution on ``path`` (default ``sys.path``) may declare an entry point of one of
    :data:`PLUGIN_GROUPS`: any ``entry_points.txt`` that mentions one, or a path entry this scan cannot read
    (a zip file), counts."""
    stdlib = os.path.join(sys.base_prefix, "")
    for entry in sys.path if path is None else path:
        if os.path.isfile(entry or "."):
            if not entry.startswith(stdlib):
                return True
            continue  # the standard library's own zip (lib/python311.zip): no distributions
        for dist in _dist_dirs(entry):
            try:
                with open(os.path.join(dist, "entry_points.txt"), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                if any(group in text for group in PLUGIN_GROUPS):
                    return True
            except OSError:
                continue
    return False


_loaded: list[dict[str, Any] | None] = []


def names(key: str) -> list[str]:
    """The names a command's help lists (``rt_scenarios``, ``preempt_models``, ``pressure_designs``,
    ``pressure_scenarios``, ``pressure_backends``, ``act_policies``): recorded, or else from the registries."""
    if not _loaded:
        _loaded.append(load())
    doc = _loaded[0]
    if doc is None:
        return _NAMES[key]()
    recorded: list[str] = doc["names"][key]
    return recorded


def load(path: Path = PATH) -> dict[str, Any] | None:
    """The recorded catalogue, or ``None`` when it cannot answer (no file, another format, plug-ins)."""
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or plugins_installed():
        return None
    return doc


class _Entry:
    """A registry entry as the catalogue recorded it: its id (and version) and its settings rows (a plain
    class: ``dataclasses`` alone takes ~15 ms to import)."""

    __slots__ = ("id", "rows", "version")

    def __init__(self, id: str, rows: list[dict[str, Any]], version: int = 1) -> None:
        self.id = id
        self.rows = rows
        self.version = version


def _table(kind: str, entries: list[dict[str, Any]]) -> Registry[_Entry]:
    table: Registry[_Entry] = Registry(kind)
    for e in entries:
        table.register(_Entry(e["id"], e["rows"]))
    return table


class CatalogueSource:
    """:class:`memsched.cli.listing.Source` over a loaded catalogue."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def rows(self, what: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.doc[what]
        return rows

    def settings(self, policy: str | None, workload: str | None, scenario: str | None) -> list[dict[str, Any]]:
        from memsched.cli.settings import select_owners

        recorded = self.doc["settings"]
        # The registries' kinds, which their "unknown name" messages name (memsched.policies.numa.registry,
        # memsched.workloads.base, memsched.workloads.rt.base).
        policies: VersionedRegistry[_Entry] = VersionedRegistry("policy")
        for e in recorded["policies"]:  # recorded in listing order
            policies.register(_Entry(e["id"], e["rows"], e["version"]))
        chosen = select_owners(
            policy, workload, scenario, policies=policies, workloads=_table("workload", recorded["workloads"]),
            scenarios=_table("taskset", recorded["scenarios"]), scheduler=recorded["scheduler"],
            settings_of=lambda entry: entry.rows,
        )  # fmt: skip
        return [{"owner": owner, **row} for owner, rows in chosen for row in rows]


def main(argv: list[str] | None = None) -> int:
    """``python -m memsched.cli.catalogue --write|--check``."""
    args = sys.argv[1:] if argv is None else argv
    if args not in (["--write"], ["--check"]):
        print("usage: python -m memsched.cli.catalogue --write|--check", file=sys.stderr)
        return 2
    text = dump(build())
    current = PATH.read_text(encoding="utf-8") if PATH.exists() else None
    if args == ["--check"]:
        if current != text:
            print(f"{PATH} is out of date: python -m memsched.cli.catalogue --write", file=sys.stderr)
            return 1
        return 0
    if current != text:
        PATH.write_text(text, encoding="utf-8")
        print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
