"""The documentation site builds with warnings as errors, offline, with the API reference from docstrings."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
    if os.environ.get("CI"):  # .ci/run installs the docs extra: a missing install must fail there
        raise AssertionError("CI must install memsched[docs] (mkdocs, mkdocs-material, mkdocstrings[python])")
    pytest.skip("the docs extra is not installed: pip install -e '.[docs]'", allow_module_level=True)


@pytest.mark.slow
def test_site_builds_strict_and_offline(tmp_path: Path) -> None:
    """``mkdocs build --strict`` with every HTTP(S) request sent to a closed port: the build needs no network
    (no web fonts, no CDN assets); each API page has its modules' documented members."""
    env = {
        **os.environ,
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
        "NO_MKDOCS_2_WARNING": "1",
    }
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = (site / "api" / "runs.html").read_text()
    for anchor in ("workloads.runner.run_one", "workloads.runspec.RunSpec", "record.RunRecord"):
        assert f'id="memsched.{anchor}"' in runs, anchor  # a heading rendered from the docstring
    assert "TraceFormatError" in (site / "api" / "traces.html").read_text()
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html, page
    index = (site / "index.html").read_text()
    assert "memsched brings three pieces" in index  # the README is the home page
