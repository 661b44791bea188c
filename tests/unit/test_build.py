"""The build: a wheel compiles the exact scheduler where this machine can, and is pure Python where it cannot.

``build_backend/memsched_build.py`` asks for mypy only for a wheel build on a machine with a C compiler, and marks
the build so that ``setup.py`` may compile; ``setup.py`` builds pure Python, saying why, without a compiler or
Python's headers, or when a module fails to compile. The compiled build itself is held to the pure one's results
by ``tests/unit/sim/sched/test_compiled.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def backend() -> ModuleType:
    return _load("memsched_build", REPO / "build_backend" / "memsched_build.py")


def test_pyproject_names_the_in_tree_backend() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'build-backend = "memsched_build"' in text and 'backend-path = ["build_backend"]' in text


def test_a_wheel_build_asks_for_mypy_only_with_a_working_compiler(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A compiler that is missing, or on PATH but failing (CC=false), asks for nothing more than setuptools: an
    offline install then needs no mypy (review 3). MEMSCHED_MYPYC=1 always asks (it must compile), =0 never."""
    works, fails = tmp_path / "cc-ok", tmp_path / "cc-fails"
    works.write_text("#!/bin/sh\nexit 0\n")
    fails.write_text("#!/bin/sh\nexit 1\n")
    for cc in (works, fails):
        cc.chmod(0o755)
    mypyc = set(backend.MYPYC_REQUIREMENTS)
    monkeypatch.delenv("MEMSCHED_MYPYC", raising=False)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert backend.compiler_command() is None and not mypyc & set(backend.get_requires_for_build_wheel())
    monkeypatch.setenv("CC", f"{fails} -O2")
    assert backend.compiler_command() == [str(fails), "-O2"]
    assert backend.why_no_compiler().startswith("the C compiler cannot build against Python's headers")
    assert not mypyc & set(backend.get_requires_for_build_wheel())
    monkeypatch.setenv("CC", f"{works} -O2")
    assert backend.why_no_compiler() is None and mypyc <= set(backend.get_requires_for_build_wheel())
    monkeypatch.setenv("MEMSCHED_MYPYC", "0")
    assert not mypyc & set(backend.get_requires_for_build_wheel())
    monkeypatch.setenv("MEMSCHED_MYPYC", "1")
    monkeypatch.setenv("CC", f"{fails}")
    assert mypyc <= set(backend.get_requires_for_build_wheel())
    # editable installs never compile: their hooks are setuptools' own, without mypy
    assert not mypyc & set(backend.get_requires_for_build_editable())


def test_build_wheel_marks_the_build_for_setup_py_and_unmarks_it(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The wheel build runs marked, with its build directory in a temporary one (review 3: a plain install left
    15 MB of build/ in the checkout), and both are gone afterwards."""
    seen: list[tuple[str | None, bool]] = []

    def fake_build_wheel(directory: str, config: Any = None, metadata: Any = None) -> str:
        base = os.environ.get(backend.BUILD_BASE)
        seen.append((os.environ.get(backend.WHEEL_BUILD_FLAG), base is not None and Path(base).is_dir()))
        seen.append((base, False))
        return "memsched-0-py3-none-any.whl"

    monkeypatch.delenv(backend.WHEEL_BUILD_FLAG, raising=False)
    monkeypatch.delenv(backend.BUILD_BASE, raising=False)
    monkeypatch.setattr(backend._setuptools, "build_wheel", fake_build_wheel)
    assert backend.build_wheel(str(tmp_path)) == "memsched-0-py3-none-any.whl"
    assert seen[0] == ("1", True) and not Path(str(seen[1][0])).exists()
    assert backend.WHEEL_BUILD_FLAG not in os.environ and backend.BUILD_BASE not in os.environ


def _checkout(tmp_path: Path) -> Path:
    """setup.py, pyproject.toml and the backend in a directory of their own, with an empty package."""
    dst = tmp_path / "checkout"
    shutil.copytree(REPO / "build_backend", dst / "build_backend", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / f, dst / f)
    (dst / "src" / "memsched").mkdir(parents=True)
    (dst / "src" / "memsched" / "__init__.py").write_text("")
    return dst


def _setup_py(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("MEMSCHED_MYPYC", "MEMSCHED_WHEEL_BUILD", "CC")}
    return subprocess.run(
        [sys.executable, "setup.py", "-q", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_wheel_build_without_a_working_compiler_is_pure_python(tmp_path: Path) -> None:
    dst = _checkout(tmp_path)
    res = _setup_py(dst, {"MEMSCHED_WHEEL_BUILD": "1", "CC": "false"}, "build_ext", "--inplace")
    assert res.returncode == 0, res.stderr
    assert "memsched build: the C compiler cannot build against Python's headers" in res.stderr
    assert "building pure Python" in res.stderr
    assert not list(dst.rglob("*.so"))
    # the same machine with MEMSCHED_MYPYC=1 must compile, so it fails, naming why
    res = _setup_py(dst, {"MEMSCHED_MYPYC": "1", "CC": "false"}, "build_ext", "--inplace")
    assert res.returncode != 0 and "MEMSCHED_MYPYC=1 but the C compiler cannot build" in res.stderr


def test_metadata_never_compiles_even_with_memsched_mypyc_1(tmp_path: Path) -> None:
    """pip asks for the build's requirements and metadata (egg_info, dist_info) before mypy is installed in the
    build environment; with MEMSCHED_MYPYC=1 those steps had already failed, "mypyc is not importable", so the
    documented way to force the compiled build could not work under pip (review 3). Only building compiles."""
    dst = _checkout(tmp_path)
    for command in ("egg_info", "dist_info"):
        res = _setup_py(dst, {"MEMSCHED_MYPYC": "1", "CC": "false"}, command)
        assert res.returncode == 0 and "memsched build" not in res.stderr, res.stderr


def test_an_unknown_memsched_mypyc_is_refused(tmp_path: Path) -> None:
    res = _setup_py(_checkout(tmp_path), {"MEMSCHED_MYPYC": "yes"}, "--name")
    assert res.returncode != 0 and "MEMSCHED_MYPYC='yes': expected 0, 1 or unset" in res.stderr


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_a_module_that_fails_to_compile_leaves_pure_python_when_optional(tmp_path: Path) -> None:
    """What ``OptionalBuildExt`` does when mypyc's C does not compile: nothing built is left behind (a compiled
    module importing a missing one would not import); when compiling was asked for, the build fails."""
    from setuptools import Distribution, Extension
    from setuptools.errors import CompileError

    setup_py = _load("memsched_setup_probe", _checkout(tmp_path) / "setup.py")
    (tmp_path / "good.c").write_text(
        '#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "good"};\n'
        "PyMODINIT_FUNC PyInit_good(void) { return PyModule_Create(&m); }\n"
    )
    (tmp_path / "bad.c").write_text("this is not C\n")
    for optional in (True, False):
        exts = [Extension("good", [str(tmp_path / "good.c")]), Extension("bad", [str(tmp_path / "bad.c")])]
        dist = Distribution({"ext_modules": exts})
        cmd = setup_py.OptionalBuildExt(dist)
        cmd.optional = optional
        cmd.build_lib = str(tmp_path / f"lib{optional}")
        cmd.build_temp = str(tmp_path / f"tmp{optional}")
        cmd.ensure_finalized()
        if optional:
            cmd.run()
            assert not list((tmp_path / "libTrue").rglob("*.so"))
        else:
            with pytest.raises(CompileError):
                cmd.run()


@pytest.mark.skipif(
    (shutil.which("cc") is None and shutil.which("gcc") is None) or importlib.util.find_spec("mypyc") is None,
    reason="no C compiler or no mypyc",
)
def test_a_wheel_build_whose_mypyc_run_fails_is_pure_python(tmp_path: Path) -> None:
    """mypyc exits on what it cannot compile (here: the scheduler's modules are missing from the checkout); a
    default wheel build then falls back to pure Python, and MEMSCHED_MYPYC=1 fails."""
    dst = _checkout(tmp_path)
    res = _setup_py(dst, {"MEMSCHED_WHEEL_BUILD": "1"}, "build_ext", "--inplace")
    assert res.returncode == 0, res.stderr
    assert "memsched build: mypyc failed" in res.stderr and "building pure Python" in res.stderr
    assert not list(dst.rglob("*.so"))
    assert _setup_py(dst, {"MEMSCHED_MYPYC": "1"}, "build_ext", "--inplace").returncode != 0
