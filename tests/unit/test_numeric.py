"""Float sums in one order on every Python (``memsched.numeric``)."""

from __future__ import annotations

import functools
import math
import operator
import random
import subprocess
import sys

from memsched.numeric import seq_sum


def test_seq_sum_adds_left_to_right() -> None:
    """``seq_sum`` is the left-to-right sum Python 3.11's ``sum()`` computes, where a compensated or correctly
    rounded sum (Python 3.12's ``sum()``, ``math.fsum``) gives other bits."""
    assert seq_sum([1.0, 1e-16, 1e-16]) == 1.0
    assert math.fsum([1.0, 1e-16, 1e-16]) != 1.0
    assert seq_sum(x for x in (2.5, 0.25)) == 2.75
    assert type(seq_sum([])) is int and seq_sum([]) == 0  # as sum([]): a record prints 0, not 0.0
    rng = random.Random(7)
    for _ in range(200):
        xs = [rng.uniform(0, 1e9) * rng.choice((1e-9, 1.0, 1e6)) for _ in range(rng.randint(1, 40))]
        assert seq_sum(xs) == functools.reduce(operator.add, xs, 0.0)


# Runs the command with builtins.sum adding floats correctly rounded (as Python 3.12's compensated sum may).
_COMPENSATED = """
import builtins, math, sys
_sum = builtins.sum
def compensated(it, start=0):
    items = list(it)
    if items and all(type(x) is float for x in items) and type(start) in (int, float):
        return math.fsum([float(start), *items])
    return _sum(items, start)
builtins.sum = compensated
from memsched.__main__ import console
sys.argv = ["memsched", *sys.argv[1:]]
console()
"""


def test_results_do_not_depend_on_how_sum_adds_floats() -> None:
    """A run whose figures moved under Python 3.12 (MORON's migrations on specjbb: one byte of
    ``migrate_copy_bytes``) gives the same ``--json`` whatever algorithm the builtin ``sum()`` uses."""
    argv = ["run", "specjbb", "-t", "sandybridge-2n32", "-p", "moron", "--seed", "0", "--json"]
    argv += ["--set", "duration_s=60", "--set", "warmup_s=5"]
    plain = subprocess.run([sys.executable, "-m", "memsched", *argv], capture_output=True, check=True, timeout=300)
    other = subprocess.run([sys.executable, "-c", _COMPENSATED, *argv], capture_output=True, check=True, timeout=300)
    assert other.stdout == plain.stdout
