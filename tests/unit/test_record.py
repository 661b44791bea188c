"""record: the one typed run record — read-only figures, identity in --json, picklable across processes."""

from __future__ import annotations

import json
import pickle

import pytest

from memsched.config import split_sets
from memsched.errors import ConfigError
from memsched.record import MODEL_VERSION, RunRecord


def test_record_is_read_only_and_serialises_with_its_identity() -> None:
    """Figures cannot be changed; to_json adds base, role and the versions; extras never travel."""
    rec = RunRecord("numa", "numa01_HARD_BIND", "none", "HARD_BIND", 3, {"elapsed_s": 1.5}, role="reference",
                    base="numa01", policy_version=1, extras={"machine": object()})
    with pytest.raises(TypeError):
        rec.figures["elapsed_s"] = 2.0  # type: ignore[index]
    assert rec["elapsed_s"] == 1.5 and "elapsed_s" in rec and rec.is_reference
    doc = rec.to_json()
    assert doc == {"elapsed_s": 1.5, "base": "numa01", "role": "reference", "model_version": MODEL_VERSION,
                   "policy_version": 1}
    json.dumps(doc)
    back = pickle.loads(pickle.dumps(rec))
    assert back.to_json() == doc and not back.extras
    with pytest.raises(TypeError):
        iter(rec)  # type: ignore[call-overload]


def test_record_defaults_its_base_and_refuses_unknown_roles() -> None:
    """A policy run's base is its own workload; a family or role outside the list is refused."""
    assert RunRecord("rt", "grub", "lazy", "lazy", 0, {}).base == "grub"
    with pytest.raises(ValueError, match="family"):
        RunRecord("gpu", "x", "y", "y", 0, {})
    with pytest.raises(ValueError, match="role"):
        RunRecord("rt", "x", "y", "y", 0, {}, role="baseline")  # type: ignore[arg-type]


def test_split_sets_hands_keys_to_their_owners() -> None:
    """Each key goes to the owners with that field; an unknown key names every owner and every valid key."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class A:
        x: int = 1

    @dataclass(frozen=True)
    class B:
        y: int = 2

    assert split_sets({"x": "3", "y": "4"}, (("a", A), ("b", B))) == [{"x": "3"}, {"y": "4"}]
    with pytest.raises(ConfigError, match=r"'z' is not a setting of a or b; valid settings: x, y"):
        split_sets({"z": "1"}, (("a", A), ("b", B)))
