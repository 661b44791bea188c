"""memsched's PEP 517 build backend: setuptools', which also compiles the exact scheduler where it can.

A wheel build (``pip install .``, ``pip wheel .``, an install from the sdist) asks for mypy (mypyc) and numpy in
its build environment when a C compiler on this machine compiles a test file against Python's headers, and
``setup.py`` then compiles ``memsched.sim.sched``'s hot modules with it; where that is not possible it builds the
pure-Python package, with identical results. An editable install (``pip install -e .``) and the sdist stay pure
Python: compiled modules would shadow the sources a developer edits. ``MEMSCHED_MYPYC=0`` never compiles;
``MEMSCHED_MYPYC=1`` must compile or fails. A wheel is built under a temporary directory, so an install leaves no
``build/`` in the source tree.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sysconfig
import tempfile
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every other hook is setuptools' own

#: What ``setup.py`` reads to know that it runs for a wheel build (so "auto" may compile).
WHEEL_BUILD_FLAG = "MEMSCHED_WHEEL_BUILD"

#: Where ``setup.py`` puts the build's files (setuptools' ``build/``, mypyc's C) during a wheel build.
BUILD_BASE = "MEMSCHED_BUILD_BASE"

#: What the compiled build needs in its build environment (``setup.py``): mypyc, and numpy, whose types mypyc
#: reads while it compiles the scheduler's modules (they import it).
MYPYC_REQUIREMENTS = ["mypy>=1.10", "numpy>=1.26"]


def compiler_command() -> list[str] | None:
    """The C compiler a build would run (``$CC`` or Python's own ``CC``, with its arguments), if it is on ``PATH``."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    found = shutil.which(words[0]) if words else None
    return [found, *words[1:]] if found else None


def why_no_compiler() -> str | None:
    """Why this machine cannot compile a C extension, or None: no compiler on ``PATH``, or one that cannot compile a
    test file against Python's headers with the build's own flags (``CC=false`` is on ``PATH`` too). The one probe
    of the build: :func:`wants_mypyc` asks it, and so does ``setup.py`` before it compiles."""
    if compiler_command() is None:
        return "no C compiler ($CC or cc) on PATH"
    from distutils.ccompiler import new_compiler  # setuptools' distutils (setuptools is imported above)
    from distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <Python.h>\nint memsched_probe(void) { return 0; }\n")
        try:
            cc.compile([src], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]])
        except Exception as e:  # CompileError, or the compiler could not be run
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            return f"the C compiler cannot build against Python's headers ({why[:120]})"
    return None


def wants_mypyc() -> bool:
    """Whether a wheel build asks for mypyc: always with ``MEMSCHED_MYPYC=1`` (it must compile), never with ``0``,
    else where the C compiler works."""
    value = os.environ.get("MEMSCHED_MYPYC", "")
    if value in ("0", "1"):
        return value == "1"
    return why_no_compiler() is None


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    requires = list(_setuptools.get_requires_for_build_wheel(config_settings))
    return [*requires, *MYPYC_REQUIREMENTS] if wants_mypyc() else requires


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    saved = {name: os.environ.get(name) for name in (WHEEL_BUILD_FLAG, BUILD_BASE)}
    with tempfile.TemporaryDirectory(prefix="memsched-build-") as base:
        os.environ[WHEEL_BUILD_FLAG] = "1"
        os.environ[BUILD_BASE] = base
        try:
            return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
