"""The one run record: what every simulated run returns, whatever its workload family.

A :class:`RunRecord` says what was run — the family (``numa``, ``rt``, ``pressure``), the workload or
scenario, the policy under test (a NUMA policy, a preemption model, a notification design), the seed — what
the run is for in a comparison (its :attr:`~RunRecord.role`: a ``policy`` run, or a ``reference`` such as
HARD_BIND that the others are measured against; its :attr:`~RunRecord.base`: the workload it is compared
within; its :attr:`~RunRecord.label` in tables), which model produced it (:data:`MODEL_VERSION` and the
policy's version), and its figures.

``--json`` prints :meth:`RunRecord.to_json`: the figures exactly as the family computes them (the document
memsched has always printed, so tools that read it keep working) plus the identity keys ``base``, ``role``,
``model_version`` and ``policy_version``. Reports, traces, sweeps and the results database read records,
never re-deriving a run's role or base from its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["MODEL_VERSION", "Role", "RunRecord"]

#: Revision of the simulated model. It changes whenever a simulated figure can change for the same inputs,
#: so results of different models are never mixed up.
MODEL_VERSION = "2026.12-1"

Role = Literal["policy", "reference"]
FAMILIES = ("numa", "rt", "pressure")


@dataclass(frozen=True)
class RunRecord:
    """One simulated run: identity, place in a comparison, model version and figures (read-only)."""

    family: str
    workload: str
    policy: str
    label: str
    seed: int
    figures: Mapping[str, Any]
    role: Role = "policy"
    base: str = ""
    policy_version: int | None = None
    model_version: str = MODEL_VERSION
    #: Objects a caller may want besides the figures (the machine, for a trace); never serialised.
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES} (got {self.family!r})")
        if self.role not in ("policy", "reference"):
            raise ValueError(f"role must be 'policy' or 'reference' (got {self.role!r})")
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))
        if not self.base:
            object.__setattr__(self, "base", self.workload)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Records cross process boundaries (``run_many``) without their ``extras``."""
        return (
            RunRecord,
            (
                self.family,
                self.workload,
                self.policy,
                self.label,
                self.seed,
                dict(self.figures),
                self.role,
                self.base,
                self.policy_version,
                self.model_version,
            ),
        )

    @property
    def is_reference(self) -> bool:
        return self.role == "reference"

    def __getitem__(self, key: str) -> Any:
        """A figure by its ``--json`` name (``rec["elapsed_s"]``)."""
        return self.figures[key]

    def __contains__(self, key: object) -> bool:
        return key in self.figures

    #: A record is not a sequence of figures (without this, ``__getitem__`` would make it iterable).
    __iter__ = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.figures.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document of this run."""
        doc = dict(self.figures)
        doc["base"] = self.base
        doc["role"] = self.role
        doc["model_version"] = self.model_version
        if self.policy_version is not None:
            doc["policy_version"] = self.policy_version
        return doc
