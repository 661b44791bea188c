"""memsched's PEP 517 build backend: setuptools', which also compiles the exact scheduler where it can.

A wheel build (``pip install .``, ``pip wheel .``, an install from the sdist) asks for mypy (mypyc) in its build
environment when a C compiler is on this machine, and ``setup.py`` then compiles ``memsched.sim.sched``'s hot
modules with it; where that is not possible it builds the pure-Python package, with identical results.
An editable install (``pip install -e .``) and the sdist stay pure Python: compiled modules would shadow the
sources a developer edits. ``MEMSCHED_MYPYC=0`` never compiles; ``MEMSCHED_MYPYC=1`` must compile or fails.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sysconfig
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every other hook is setuptools' own

#: What ``setup.py`` reads to know that it runs for a wheel build (so "auto" may compile).
WHEEL_BUILD_FLAG = "MEMSCHED_WHEEL_BUILD"

#: What the compiled build needs in its build environment (``setup.py``): mypyc, and numpy, whose types mypyc
#: reads while it compiles the scheduler's modules (they import it).
MYPYC_REQUIREMENTS = ["mypy>=1.10", "numpy>=1.26"]


def compiler_command() -> str | None:
    """The C compiler a build would run (``$CC`` or Python's own ``CC``), if it is on ``PATH``."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    return shutil.which(words[0]) if words else None


def wants_mypyc() -> bool:
    """Whether a wheel build asks for mypyc: not with ``MEMSCHED_MYPYC=0``, nor without a C compiler."""
    return os.environ.get("MEMSCHED_MYPYC", "") != "0" and compiler_command() is not None


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    requires = list(_setuptools.get_requires_for_build_wheel(config_settings))
    return [*requires, *MYPYC_REQUIREMENTS] if wants_mypyc() else requires


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    old = os.environ.get(WHEEL_BUILD_FLAG)
    os.environ[WHEEL_BUILD_FLAG] = "1"
    try:
        return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))
    finally:
        if old is None:
            os.environ.pop(WHEEL_BUILD_FLAG, None)
        else:
            os.environ[WHEEL_BUILD_FLAG] = old
