"""Optional compiled build of the exact scheduler; everything else about the package is in pyproject.toml.

A plain ``pip install .`` builds a pure-Python package and needs no compiler. With ``MEMSCHED_MYPYC=1`` the
exact scheduler's modules (``memsched.sim.sched``, :data:`MYPYC_MODULES`) are compiled to C extensions with
mypyc (shipped with mypy >= 1.10) and a C compiler; they give byte-identical results, about 2.5x faster
(``benchmarks/rt_sim_speed.py --mypyc``)::

    pip install "mypy>=1.10" "setuptools>=77" wheel
    MEMSCHED_MYPYC=1 pip install --no-build-isolation .

``memsched.sim.sched.compiled()`` says which one is imported.
"""

from __future__ import annotations

import os

from setuptools import setup

#: The modules compiled with ``MEMSCHED_MYPYC=1``: the scheduler's hot path.
MYPYC_MODULES = [
    f"src/memsched/sim/sched/{m}.py"
    for m in ("core", "deadline", "fair", "interp", "machine", "preempt", "program", "rt", "sched", "stop_task")
]


def _ext_modules() -> list[object]:
    if os.environ.get("MEMSCHED_MYPYC", "") in ("", "0"):
        return []
    from mypyc.build import mypycify  # needs mypy >= 1.10 in the build environment (--no-build-isolation)

    return list(mypycify(MYPYC_MODULES, opt_level="3"))


setup(ext_modules=_ext_modules())
