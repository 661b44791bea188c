"""``memsched pressure act``: run an action policy (``memsched.policies.act``) against one cgroup subtree of
the running kernel (``memsched.live.act``).

Every action is one JSON line (on stdout, or appended to ``--log``) with the policy's evidence, the result and
the pids signalled; a summary goes to stderr at the end. SIGINT/SIGTERM end the loop cleanly (exit 0).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Annotated

import typer

from memsched.cli.catalogue import names as registry_names
from memsched.cli.common import no_repeats, output_file, seed_number, whole_number
from memsched.cli.pressure import pressure_app
from memsched.errors import ConfigError
from memsched.units import NSEC_PER_SEC, parse_duration

#: Help texts that list registry names (memsched.cli.catalogue.names: no simulator import).
_POLICY_HELP = "action policy: " + ", ".join(registry_names("act_policies"))



@pressure_app.command("act")
def act(
    policy: Annotated[str, typer.Option("--policy", help=_POLICY_HELP)],
    cgroup: Annotated[
        str, typer.Option("--cgroup", help="the subtree to act in: a directory (./x from here) or a path (/app)")
    ],
    protect: Annotated[
        list[str] | None, typer.Option("--protect", help="pid or comm name never to signal (repeatable, a,b)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="log the actions instead of taking them")] = False,
    sets: Annotated[list[str] | None, typer.Option("--set", help="policy knob key=value (repeatable)")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="append the JSON lines to this file")] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="stop after this long (e.g. 30s)")] = None,
) -> None:
    """Kill or shed inside one cgroup subtree as earlyoom, systemd-oomd, lmkd ... would."""
    from memsched.config import parse_set_args
    from memsched.live.act import LiveActor, Protect, open_subtree
    from memsched.policies.act.conformance import load_policy

    knobs = parse_set_args(sets or [])
    chosen = load_policy(policy, knobs)
    prot = Protect.parse(protect or [])
    end_s = None if duration is None else parse_duration(duration, field="--duration") / NSEC_PER_SEC
    if end_s is not None and end_s <= 0:
        raise ConfigError("--duration", duration, "must be > 0")
    sub = open_subtree(cgroup, field="--cgroup")
    out: IO[str]
    if log is not None:
        out = _open_log(log)
    else:
        out = sys.stdout
    actor = LiveActor(chosen, sub, protect=prot, dry_run=dry_run, log=out)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    print(f"memsched pressure act: {chosen.id} on {sub.path} ({sub.directory})"
          + (" [dry run]" if dry_run else ""), file=sys.stderr)
    try:
        actor.run(duration_s=end_s, stop=stop)
    finally:
        actor.close()
        for s, h in previous.items():
            signal.signal(s, h)
        if log is not None:
            with contextlib.suppress(OSError):
                out.close()
    by_status: dict[str, int] = {}
    for r in actor.results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "no action"
    print(f"memsched pressure act: {actor.samples} samples, {summary}", file=sys.stderr)


def _open_log(log: Path) -> IO[str]:
    """``--log`` opened for appending (created with the umask's mode if missing). It is opened without blocking:
    a FIFO nobody reads would otherwise hold the command at ``open()`` before it starts, deaf to ``--duration``;
    such a FIFO is refused (ENXIO), one with a reader is written to as usual (blocking writes)."""
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as e:
        why = "a FIFO with no reader" if e.errno == errno.ENXIO else e.strerror
        raise ConfigError("--log", str(log), f"cannot be opened for appending ({why})") from None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


def _act_sim_one(args: tuple[str, str, int]) -> dict[str, object]:
    from memsched.workloads.act import load_act_scenario, run_policy

    ref, policy, seed = args
    from memsched.record import MODEL_VERSION

    fig = run_policy(load_act_scenario(ref), policy, seed=seed)
    fig.pop("timeline", None)
    fig["model_version"] = MODEL_VERSION  # which model made the figures, as every run record says
    return fig


def _act_policy_list(text: str) -> list[str]:
    """act-sim's ``--policies``: ``all`` (every registered action policy, as ``compare --policies all`` runs
    every NUMA policy) or a comma-separated list of ids, each known and named once."""
    from memsched.errors import UnknownNameError
    from memsched.policies.act import registry as act_registry

    if text.strip() == "all":
        return act_registry.names()
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    if not chosen:
        raise ConfigError(
            "--policies", text, "must be 'all' or a comma-separated list of: " + ", ".join(act_registry.names())
        )
    for p in chosen:
        if p not in act_registry.names() and p not in [s.versioned_id for s in act_registry.specs()]:
            raise UnknownNameError("--policies", p, act_registry.names())
    no_repeats("--policies", chosen, lambda p: act_registry.get(p).versioned_id)
    return chosen


@pressure_app.command("act-sim")
def act_sim(
    scenario: Annotated[
        str | None, typer.Argument(help="built-in action scenario or a TOML file (default: every built-in one)")
    ] = None,
    policies: Annotated[
        str | None, typer.Option("--policies", help="comma-separated action policies, or all (default: the scenario's)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of every random choice", parser=seed_number)] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout alone")] = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="write a self-contained HTML report", parser=output_file),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="parallel runs (default: one per CPU)", parser=whole_number)
    ] = None,
) -> None:
    """Score every action policy on the same simulated scenarios: thrashing, time to act, who was killed."""
    from concurrent.futures import ProcessPoolExecutor

    from memsched.cli.common import check_writable, emit_json, out_console, simulation_memory_limit, write_atomic
    from memsched.config import check_seed
    from memsched.report.act import act_html, act_table
    from memsched.workloads.act import list_act_scenarios, load_act_scenario
    from memsched.workloads.runner import pool_worker_init

    refs = [scenario] if scenario is not None else list_act_scenarios()
    scs = [load_act_scenario(r) for r in refs]
    chosen = None if policies is None else _act_policy_list(policies)
    check_seed(seed, "--seed")
    if jobs is not None and not 1 <= jobs <= 1024:
        raise ConfigError("--jobs", jobs, "must be in 1..1024")
    if report is not None:
        check_writable(report, "--report")
    work = [(r, p, seed) for r, sc in zip(refs, scs, strict=True) for p in (chosen or list(sc.policies))]
    workers = min(jobs or os.cpu_count() or 1, len(work))
    with simulation_memory_limit(workers):
        if workers <= 1:
            runs = [_act_sim_one(w) for w in work]
        else:
            with ProcessPoolExecutor(  # workers die with memsched, also when it is SIGKILLed
                max_workers=workers, initializer=pool_worker_init, initargs=(os.getpid(),)
            ) as pool:
                runs = list(pool.map(_act_sim_one, work))
    if report is not None:
        write_atomic(report, act_html(runs))
    if json_out:
        from memsched.record import MODEL_VERSION

        emit_json({"seed": seed, "model_version": MODEL_VERSION, "runs": runs})
    else:
        out_console.print(act_table(runs))
