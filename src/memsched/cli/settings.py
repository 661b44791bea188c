"""``memsched list settings``: every ``--set`` key with its type, default, allowed range, unit and source.

The facts come from the config dataclasses themselves (:func:`memsched.config.knob`: default, help line
citing where the default comes from, bounds, choices), so the list cannot drift from what ``--set`` accepts.
Whose keys a command takes is decided by :func:`memsched.config.split_sets`: ``run``/``compare`` give them to
the workload and the policy, ``rt sim`` to the scenario and the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from memsched.errors import UnknownNameError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from memsched.report.fit import FitTable

__all__ = ["owners", "select_owners", "setting_rows", "settings_table"]

T = TypeVar("T")


class _Table(Protocol):
    """What :func:`select_owners` asks of a registry (:class:`memsched.registry.Registry`'s methods)."""

    def get(self, name: str) -> Any: ...

    def names(self) -> list[str]: ...


class _VersionedTable(_Table, Protocol):
    def specs(self) -> Sequence[Any]: ...



def owners(policy: str | None, workload: str | None, scenario: str | None) -> list[tuple[str, type]]:
    """``(owner, config class)`` for the names given; with none, every policy, workload and rt scenario."""
    from memsched.policies.numa import registry as policies
    from memsched.sim.sched.sched import SchedConfig
    from memsched.workloads import base as workloads
    from memsched.workloads import rt as scenarios

    def config_cls(spec: Any) -> type:
        cls: type = spec.config_cls
        return cls

    return select_owners(
        policy, workload, scenario, policies=policies, workloads=workloads, scenarios=scenarios,
        scheduler=SchedConfig, settings_of=config_cls,
    )  # fmt: skip


def select_owners(
    policy: str | None,
    workload: str | None,
    scenario: str | None,
    *,
    policies: _VersionedTable,
    workloads: _Table,
    scenarios: _Table,
    scheduler: T,
    settings_of: Callable[[Any], T],
) -> list[tuple[str, T]]:
    """``(owner, settings_of(spec))`` for the names given (unknown names raise as the registries do); with
    none, every policy, workload and rt scenario, then the scheduler. The live registries give config classes
    (:func:`owners`); the catalogue of :mod:`memsched.cli.catalogue` gives the rows it recorded from them."""
    if policy is None and workload is None and scenario is None:
        return [
            *((f"policy {s.id}", settings_of(s)) for s in policies.specs()),
            *((f"workload {n}", settings_of(workloads.get(n))) for n in workloads.names()),
            *((f"rt scenario {n}", settings_of(scenarios.get(n))) for n in scenarios.names()),
            ("the rt scheduler (rt sim)", scheduler),
        ]
    out: list[tuple[str, T]] = []
    if policy is not None:
        spec = policies.get(policy)
        out.append((f"policy {spec.id}", settings_of(spec)))
    if workload is not None:
        out.append((f"workload {workload}", settings_of(workloads.get(workload))))
    if scenario is not None:
        if scenario not in scenarios.names():
            raise UnknownNameError("--scenario", scenario, scenarios.names())
        out.append((f"rt scenario {scenario}", settings_of(scenarios.get(scenario))))
        out.append(("the rt scheduler (rt sim)", scheduler))
    return out


def _unit(name: str) -> str:
    from memsched.units import unit_of_key

    return unit_of_key(name)


def _range(meta: Mapping[str, Any], kind: str) -> str:
    """The allowed values as a user reads them: the bounds in full (``0..1048576``, not ``%g``'s
    ``0..1.04858e+06``, which hid the real maximum)."""
    from memsched.config import format_bound

    if meta.get("choices"):
        return "|".join(meta["choices"])
    if kind == "bool":
        return "true|false"
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{format_bound(lo)}..{format_bound(hi)}"
    if lo is not None:
        return f">= {format_bound(lo)}"
    if hi is not None:
        return f"<= {format_bound(hi)}"
    return "any" if kind in ("int", "float") else ""


def setting_rows(owner_list: list[tuple[str, type]]) -> list[dict[str, Any]]:
    """One row per ``--set`` key of each owner (the ``--json`` document of ``list settings``)."""
    import dataclasses
    import typing

    rows = []
    for owner, cls in owner_list:
        types = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = getattr(types.get(f.name), "__name__", str(types.get(f.name)))
            rows.append(
                {
                    "owner": owner,
                    "key": f.name,
                    "type": kind,
                    "default": f.default,
                    "range": _range(f.metadata, kind),
                    "min": f.metadata.get("min"),
                    "max": f.metadata.get("max"),
                    "choices": list(f.metadata["choices"]) if f.metadata.get("choices") else None,
                    "unit": _unit(f.name),
                    "source": f.metadata.get("help", ""),
                }
            )
    return rows


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_table(rows: list[dict[str, Any]]) -> FitTable:
    from memsched.report.fit import Column, FitTable

    t = FitTable(
        "--set keys (key=value)",
        [
            Column("key"),
            Column("type"),
            Column("default", right=True),
            Column("range", "allowed values", wrap=True),
            Column("unit"),
            Column("source", "what the key is and where its default comes from", wrap=True),
        ],
    )
    groups: dict[str, list[list[str]]] = {}
    for row in rows:
        if row["owner"] not in groups:
            groups[row["owner"]] = t.add_group(row["owner"])
        groups[row["owner"]].append(
            [row["key"], row["type"], _default_text(row["default"]), row["range"] or "-", row["unit"] or "-",
             row["source"] or "-"]
        )
    return t
