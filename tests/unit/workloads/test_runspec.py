"""A RunSpec built in Python code with wrong types is refused when it is built, naming the field; run_one refuses
what is not a RunSpec (review 2: RunSpec("bogus", 123, None, seed="1") was accepted, run_one("numa02") raised
AttributeError)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memsched.errors import ConfigError
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"workload": 7}, "workload"),
        ({"workload": ""}, "workload"),
        ({"topology": 123}, "topology"),
        ({"policy": 1}, "policy"),
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": -1}, "seed"),
        ({"sets": {"scan_size_mb": 64}}, "sets"),
        ({"sets": ["a=1"]}, "sets"),
        ({"family": None}, "family"),
        ({"role": "baseline"}, "role"),
        ({"label": 3}, "label"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^'{field}' "):
        RunSpec(**{"workload": "numa02", **kwargs})


def test_good_specs_are_accepted() -> None:
    RunSpec("numa02", Path("box.toml"), "mainline", 4294967295, {"scan_size_mb": "64"}, role="reference")
    RunSpec("dl-periodic", policy=None, family="rt")
    import numpy as np

    seeded = RunSpec("numa02", seed=np.int64(3))  # type: ignore[arg-type]
    assert type(seeded.seed) is int and seeded.seed == 3  # (stored as an int: the record's JSON takes it)


def test_run_one_refuses_what_is_not_a_run_spec() -> None:
    with pytest.raises(ConfigError, match=r"'spec' must be a memsched\.workloads\.runspec\.RunSpec"):
        run_one("numa02")  # type: ignore[arg-type]
