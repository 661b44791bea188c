"""Render memsched's HTML reports in headless Chromium and save screenshots, to look at them as a reader does.

    python tools/screenshot_reports.py [--out DIR] [--width 1280] [REPORT.html ...]

Without report files it first writes the reports a new user meets: ``memsched compare --workloads numa02``,
``memsched pressure sim`` (the default scenario) and ``memsched pressure sim memcg``, into ``--out``. For
each report it saves two PNGs: ``NAME-top.png``, the first screen (``--width`` x 900, what a reader sees
first), and ``NAME-full.png``, the page down to ``--height`` pixels. Needs Chromium (Debian: ``apt-get install
chromium``); CI does not run this script. Look at the PNGs: the tests check structure, not looks.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: The reports written when none is given: (file name, memsched arguments).
DEFAULT_REPORTS = (
    ("compare-numa02.html", ["compare", "--workloads", "numa02"]),
    ("pressure-default.html", ["pressure", "sim"]),
    ("pressure-memcg.html", ["pressure", "sim", "memcg"]),
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("screenshot_reports: no Chromium found (Debian: apt-get install chromium)")


def write_reports(out: Path) -> list[Path]:
    paths = []
    for name, args in DEFAULT_REPORTS:
        path = out / name
        subprocess.run(
            [sys.executable, "-m", "memsched", *args, "--report", str(path)], check=True, stdout=subprocess.DEVNULL
        )
        paths.append(path)
    return paths


def screenshot(chromium: str, report: Path, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # root in a container has no user namespace for the sandbox
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                report.resolve().as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="*", type=Path, help="HTML reports (default: write the usual three)")
    ap.add_argument("--out", type=Path, default=Path("shots"), help="folder for reports and PNGs")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=6000, help="height of the full-page screenshot")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = _chromium()
    reports = args.reports or write_reports(args.out)
    for report in reports:
        for suffix, height in (("top", 900), ("full", args.height)):
            png = args.out / f"{report.stem}-{suffix}.png"
            screenshot(chromium, report, png, args.width, height)
            print(png)


if __name__ == "__main__":
    main()
