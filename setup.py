"""The compiled build of the exact scheduler; everything else about the package is in pyproject.toml.

The exact scheduler's hot modules (``memsched.sim.sched``, :data:`MYPYC_MODULES`) can be compiled to C extensions
with mypyc (shipped with mypy >= 1.10); they give byte-identical results, about 2x faster
(``benchmarks/rt_sim_speed.py --mypyc``). ``MEMSCHED_MYPYC`` chooses:

* unset: a wheel build (``pip install .``, an install from the sdist; ``build_backend/memsched_build.py`` asks for
  mypy then) compiles when the C compiler builds a test file against Python's headers and mypyc is importable;
  otherwise, or if compiling fails, the package is pure Python, and the build says why. Editable installs
  (``pip install -e .``) stay pure: compiled modules would shadow the sources being edited. Only the commands that
  build (``build_ext``, ``bdist_wheel``) compile: the metadata pip asks for first never does. A wheel build's files
  go to the backend's temporary directory, not ``build/``.
* ``0``: pure Python.
* ``1``: compile or fail (also in ``python setup.py build_ext --inplace``, as the tests and benchmarks do).

``memsched.sim.sched.compiled()`` (and ``memsched --version``) say which one is imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).resolve().parent / "build_backend"))
from memsched_build import BUILD_BASE, WHEEL_BUILD_FLAG, why_no_compiler  # (the in-tree backend's module)

#: The modules compiled: the scheduler's hot path.
MYPYC_MODULES = [
    f"src/memsched/sim/sched/{m}.py"
    for m in ("core", "deadline", "fair", "interp", "machine", "preempt", "program", "rt", "sched", "stop_task")
]


def _say(msg: str) -> None:
    print(f"memsched build: {msg}", file=sys.stderr)


#: The setup.py commands that build extensions. The others (``egg_info``, ``dist_info``, ``sdist``,
#: ``editable_wheel``: the metadata pip asks for, before the build's requirements are even installed) compile nothing.
_BUILDING = frozenset({"build_ext", "bdist_wheel", "build", "install"})


def _mode() -> str:
    """``"on"`` (compile or fail), ``"auto"`` (compile where possible) or ``"off"``."""
    value = os.environ.get("MEMSCHED_MYPYC", "")
    if value not in ("", "0", "1"):
        raise SystemExit(f"memsched build: MEMSCHED_MYPYC={value!r}: expected 0, 1 or unset")
    if value == "0" or not _BUILDING & set(sys.argv[1:]):
        return "off"
    if value == "1":
        return "on"
    return "auto" if os.environ.get(WHEEL_BUILD_FLAG) == "1" else "off"


def _cannot_compile() -> str | None:
    """Why this machine cannot build a C extension (no compiler, no Python headers, no mypyc), or None."""
    why = why_no_compiler()
    if why is None and importlib.util.find_spec("mypyc") is None:
        why = "mypyc (mypy >= 1.10) is not importable"
    return why


class OptionalBuildExt(build_ext):
    """``build_ext`` that, when compiling is optional, leaves a pure-Python package if a module fails to compile
    (and removes what it built, since a compiled module that imports a missing one would not import)."""

    optional = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:
            if not self.optional:
                raise
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            _say(f"compiling the exact scheduler failed ({type(e).__name__}: {e}); building pure Python")


def _ext_modules() -> list[Any]:
    mode = _mode()
    if mode == "off":
        return []
    why = _cannot_compile()
    if why is not None:
        if mode == "on":
            raise SystemExit(f"memsched build: MEMSCHED_MYPYC=1 but {why}")
        _say(f"{why}: building pure Python (identical results, the exact scheduler about 2x slower)")
        return []
    OptionalBuildExt.optional = mode == "auto"
    try:
        from mypyc.build import mypycify

        return list(mypycify(MYPYC_MODULES, opt_level="3", target_dir=os.path.join(_build_base(), "mypyc")))
    except (Exception, SystemExit) as e:  # mypyc failed (it exits on type errors, e.g. a stub it cannot find)
        if mode == "on":
            raise
        _say(f"mypyc failed ({type(e).__name__}: {e}); building pure Python")
        return []


def _build_base() -> str:
    """Where the build's files go: the wheel build's temporary directory (``build_backend/memsched_build.py``), so
    that an install leaves nothing in the source tree, else setuptools' ``build``."""
    return os.environ.get(BUILD_BASE) or "build"


if __name__ == "__main__":  # (setuptools runs this file as __main__; the tests import it for OptionalBuildExt)
    setup(
        ext_modules=_ext_modules(),
        cmdclass={"build_ext": OptionalBuildExt},
        options={"build": {"build_base": _build_base()}},
    )
