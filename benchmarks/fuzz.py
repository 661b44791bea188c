"""A long fuzzing campaign over every input format memsched reads; reports examples, crashes, hangs and
runaway allocations per format.

    python benchmarks/fuzz.py                       # 10,000 examples per format, atheris if it is installed
    python benchmarks/fuzz.py --examples 50000 --kinds rt-app,topology --engine hypothesis --json

The formats and their targets are the test suite's (``tests/helpers/fuzz_targets.py``): each input goes
through the command line's own entry points (loaders, ``Runner.check``) and, when accepted, a short stretch of
its run. A crash is an exception that is not memsched's own error type; a hang is an example over the time
cap; a runaway allocation one over the memory cap.

Engines:

``atheris`` (coverage-guided libFuzzer, ``pip install atheris``)
    One process per format, memsched instrumented, seeded with the format's valid inputs; libFuzzer's
    ``-timeout`` and ``-rss_limit_mb`` are the caps. A crash is recorded and the campaign goes on; a hang or
    an out-of-memory ends that process, is counted from its artifact, and fuzzing resumes in a new one.
    Bytes become an input as the format needs: files as they are, one value as UTF-8 text, ``--set`` as an
    owner byte and lines, the daemon protocol as a half-close bit and chunks.
``hypothesis`` (the test suite's strategies, ``helpers.fuzz_strategies``)
    Structured documents, mutations of the valid seeds and raw bytes, run in ``helpers.fuzz_worker``'s capped
    worker process.

At most two processes run at a time (the driver and one fuzzing process).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TIME_CAP_S = 20
MEMORY_CAP_MB = 2048
#: What every format reports, zero included.
_COUNTS = ("examples", "accepted", "refused", "crashes", "hangs", "runaway_allocations")


# ---------------------------------------------------------------------------------------------- bytes -> inputs


def decode(kind: str, data: bytes) -> Any:
    """The input of ``kind`` that atheris's bytes stand for."""
    if kind in ("topology", "scenario", "rt-app"):
        return data
    if kind == "set":
        owner = data[0] if data else 0
        return owner, data[1:].decode("utf-8", "replace").split("\n")[:8]
    if kind == "daemon-protocol":
        half = bool(data[:1] and data[0] & 1)
        return [c for c in data[1:].split(b"\xff\xfe")[:8]], half
    return data.decode("utf-8", "replace")


def encode(kind: str, payload: Any) -> bytes:
    """The bytes of a seed input (the inverse of :func:`decode`)."""
    if isinstance(payload, bytes):
        return payload
    if kind == "set":
        owner, items = payload
        return bytes([owner]) + "\n".join(items).encode()
    if kind == "daemon-protocol":
        chunks, half = payload
        return bytes([int(half)]) + b"\xff\xfe".join(chunks)
    return str(payload).encode()


# ---------------------------------------------------------------------------------------------- atheris


def atheris_child(kind: str, runs: int, workdir: Path) -> None:
    """In a fresh process: fuzz ``kind`` with atheris for ``runs`` inputs; stats and crashes go to workdir."""
    import atheris

    with atheris.instrument_imports(include=["memsched"]):
        import memsched.workloads.rt
        import memsched.workloads.runner  # noqa: F401
        from helpers.fuzz_targets import run_target
        from memsched.errors import MemschedError

    stats = collections.Counter()
    crashes = workdir / f"{kind}.crashes.jsonl"
    stats_file = workdir / f"{kind}.stats.json"

    def save() -> None:
        stats_file.write_text(json.dumps(stats))

    def one(data: bytes) -> None:
        stats["examples"] += 1
        try:
            run_target(kind, decode(kind, data))
            stats["accepted"] += 1
        except MemschedError:
            stats["refused"] += 1
        except Exception as e:  # a crash: record it and carry on
            stats["crashes"] += 1
            with crashes.open("a") as f:
                f.write(json.dumps({"error": f"{type(e).__name__}: {e}"[:500], "input": data.hex()[:4000]}) + "\n")
        save()  # every example: libFuzzer ends the process with exit(), past Python's atexit

    corpus = workdir / f"{kind}.corpus"
    argv = [
        sys.argv[0], f"-runs={runs}", f"-timeout={TIME_CAP_S}", f"-rss_limit_mb={MEMORY_CAP_MB}",
        "-max_len=8192", "-print_final_stats=1", f"-artifact_prefix={workdir}/{kind}.", str(corpus),
    ]  # fmt: skip
    atheris.Setup(argv, one)
    atheris.Fuzz()


def run_atheris(kind: str, examples: int, workdir: Path, seeds: list[Any]) -> dict[str, Any]:
    corpus = workdir / f"{kind}.corpus"
    corpus.mkdir(exist_ok=True)
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(encode(kind, seed))
    totals: collections.Counter[str] = collections.Counter(dict.fromkeys(_COUNTS, 0))
    started = time.monotonic()
    while totals["examples"] < examples:
        stats_file = workdir / f"{kind}.stats.json"
        stats_file.unlink(missing_ok=True)
        before = {p.name for p in workdir.glob(f"{kind}.*-*")}
        proc = subprocess.run(
            [sys.executable, __file__, "--atheris-child", kind, "--examples", str(examples - totals["examples"]),
             "--workdir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        stats = json.loads(stats_file.read_text() or "{}") if stats_file.exists() else {}
        totals.update(stats)
        artifacts = {p.name for p in workdir.glob(f"{kind}.*-*")} - before
        hung = sum(a.startswith(f"{kind}.timeout-") for a in artifacts)
        oom = sum(a.startswith(f"{kind}.oom-") for a in artifacts)
        totals["hangs"] += hung
        totals["runaway_allocations"] += oom
        if proc.returncode != 0 and not (hung or oom):
            totals["crashes"] += 1  # the process itself died (a signal, an abort)
            (workdir / f"{kind}.died.txt").write_text(proc.stderr[-4000:])
        if not stats and not (hung or oom):
            break  # no progress: do not loop forever
        if not (hung or oom) and proc.returncode == 0:
            break
    totals["seconds"] = round(time.monotonic() - started, 1)
    return dict(totals)


# ---------------------------------------------------------------------------------------------- hypothesis


def run_hypothesis(kind: str, examples: int, workdir: Path, seeds: list[Any]) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    from helpers.fuzz_strategies import STRATEGIES
    from helpers.fuzz_worker import FuzzWorker

    totals: collections.Counter[str] = collections.Counter(dict.fromkeys(_COUNTS, 0))
    failures: list[dict[str, str]] = []
    worker = FuzzWorker(time_cap=TIME_CAP_S, memory_cap=MEMORY_CAP_MB << 20)
    started = time.monotonic()

    def record(payload: Any) -> None:
        out = worker.run(kind, payload)
        totals["examples"] += 1
        key = {
            "ok": "accepted",
            "refused": "refused",
            "crash": "crashes",
            "hang": "hangs",
            "memory": "runaway_allocations",
        }
        totals[key[out.status]] += 1
        if out.failed:
            failures.append({"status": out.status, "detail": out.detail, "input": repr(payload)[:2000]})

    try:
        for seed in seeds:
            record(seed)

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(STRATEGIES[kind])
        def campaign(payload: Any) -> None:
            record(payload)

        campaign()
    finally:
        worker.close()
    if failures:
        (workdir / f"{kind}.failures.json").write_text(json.dumps(failures, indent=1))
    totals["worker_restarts"] = worker.restarts
    totals["seconds"] = round(time.monotonic() - started, 1)
    return dict(totals)


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    from helpers.fuzz_targets import KINDS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, help="examples per format")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated formats: " + ", ".join(KINDS))
    ap.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    ap.add_argument("--workdir", type=Path, default=None, help="corpus, crashes and artifacts (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--atheris-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memsched-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.atheris_child:
        sys.argv = [sys.argv[0]]
        atheris_child(args.atheris_child, args.examples, workdir)
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown formats: {', '.join(unknown)}")
    results = {}
    for kind in kinds:
        run = run_atheris if engine == "atheris" else run_hypothesis
        results[kind] = run(kind, args.examples, workdir, KINDS[kind].seeds())
        if not args.json:
            r = results[kind]
            print(
                f"{kind:16} {r.get('examples', 0):>7} examples  {r.get('accepted', 0):>6} accepted  "
                f"{r.get('refused', 0):>7} refused  {r.get('crashes', 0)} crashes  {r.get('hangs', 0)} hangs  "
                f"{r.get('runaway_allocations', 0)} runaway allocations  {r.get('seconds', 0)} s",
                flush=True,
            )
    failed = sum(r.get(k, 0) for r in results.values() for k in ("crashes", "hangs", "runaway_allocations"))
    doc = {
        "engine": engine,
        "caps": {"time_s": TIME_CAP_S, "memory_mb": MEMORY_CAP_MB},
        "workdir": str(workdir),
        "formats": results,
        "failures": failed,
    }
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(f"engine {engine}; caps {TIME_CAP_S} s, {MEMORY_CAP_MB} MiB; {failed} failure(s); details in {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT / "tests"))
    sys.exit(main())
