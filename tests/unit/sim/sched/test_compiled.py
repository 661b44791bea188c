"""The compiled build (a wheel build's default where a C compiler is found, ``setup.py``) gives the pure build's
results, byte for byte.

It builds a mypyc copy of this checkout in a temporary directory (about a minute of CPU), so it needs mypy >= 1.10,
setuptools >= 77 and a C compiler, as the build itself does; it skips, saying which is missing, where they are not
(the ``test`` extra installs the build tools, so CI runs it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import memsched.sim.sched

REPO = Path(__file__).resolve().parents[4]
RUNS = [
    ["dl-periodic", "--seed", "1", "--per-job"],
    ["hackbench+cyclictest", "--preempt", "lazy"],
    ["kvm", "--seed", "1"],
    ["isolation", "--preempt", "full"],
    ["grub"],
]


def _missing() -> str | None:
    if importlib.util.find_spec("mypyc") is None:
        return "mypy (mypyc) is not installed"
    try:
        setuptools = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed"
    if int(setuptools.split(".")[0]) < 77:
        return f"setuptools {setuptools} < 77"
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler"
    if not (REPO / "setup.py").is_file():
        return "not a source checkout"
    return None


def _sim(args: list[str], env: dict[str, str]) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "memsched", "rt", "sim", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.slow
def test_compiled_build_gives_identical_results(tmp_path: Path) -> None:
    why = _missing()
    if why is not None:
        pytest.skip(f"compiled build not possible here: {why}")
    assert not memsched.sim.sched.compiled()  # the suite runs on the pure build
    dst = tmp_path / "mypyc"
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copytree(REPO / "build_backend", dst / "build_backend", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / f, dst / f)
    # as a wheel build (pip install .) does by default: MEMSCHED_MYPYC unset, the build marked by the backend
    env = {k: v for k, v in os.environ.items() if k != "MEMSCHED_MYPYC"}
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=dst,
        capture_output=True,
        text=True,
        check=False,
        env=dict(env, MEMSCHED_WHEEL_BUILD="1", MEMSCHED_BUILD_BASE=str(tmp_path / "build-base")),
        timeout=1200,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert "building pure Python" not in build.stderr, build.stderr[-2000:]
    assert not (dst / "build").exists()  # (the build's files, mypyc's C included, went to the build base)
    compiled_env = dict(os.environ, PYTHONPATH=str(dst / "src"))
    check = "import memsched.sim.sched as s; print(s.compiled(), s.__file__)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=compiled_env, check=True)
    assert out.stdout.startswith(f"True {dst}"), out.stdout
    pure_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args in RUNS:
        assert _sim(args, compiled_env) == _sim(args, pure_env), args
