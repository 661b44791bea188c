"""The fast path of ``memsched list``, ``memsched rt admit`` and ``memsched --version``: the same answer without
typer.

Building the typer command line costs more than the 150 ms these commands may take on a 2-core machine (on
this one: typer's import ~45 ms, building the 25-command tree ~40 ms, pydantic's import for typer's value
coercion ~60 ms, before any work), and ``memsched list`` would import the simulators to read their
registries. So :func:`run` reads ``sys.argv`` itself when it is one of these commands in a form it fully
understands, and runs the very code the typer commands run (:func:`memsched.cli.listing.list_command` over
the catalogue, :func:`memsched.cli.rt_admit.admit`, :func:`version_line` for ``--version`` alone or after
``--debug``), inside the same signal handling and error reporting
(:mod:`memsched.cli.outcome`). Anything else returns ``None`` and goes through typer: ``--help``, an
unknown or repeated option, a missing value or an option value that starts with ``-`` (whose meaning is
click's to decide), ``--`` and extra arguments, an ``--pid`` that is not a whole number, plug-ins installed
(the catalogue cannot list them).

tests/unit/cli/test_startup.py runs every ``list`` form and ``rt admit`` form through both paths and compares
stdout, stderr and the exit status byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Parsed", "execute", "parse", "run", "version_line"]

#: What :func:`parse` found: the command to run and whether ``--debug`` was given.
Parsed = tuple[Callable[[], int], bool]

#: ``memsched list`` options: long and short spellings -> parameter name (``--json`` is a flag).
_LIST_OPTIONS = {"--policy": "policy", "-p": "policy", "--workload": "workload", "-w": "workload",
                 "--scenario": "scenario"}  # fmt: skip
_ADMIT_OPTIONS = {"--runtime": "runtime", "--deadline": "deadline", "--period": "period", "--flags": "flags",
                  "--pid": "pid"}  # fmt: skip


def _options(args: list[str], valued: dict[str, str]) -> tuple[dict[str, str | bool], list[str]] | None:
    """click's reading of ``args`` for options ``valued`` plus the flag ``--json``: (options, positional
    arguments), or None for anything this reader leaves to click."""
    found: dict[str, str | bool] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        value: str | bool
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        if arg == "--json":
            name, value = "json", True
        elif arg.startswith("--"):
            option, eq, given = arg.partition("=")
            if option not in valued:
                return None
            if not eq:
                if i == len(args):
                    return None
                given = args[i]
                i += 1
            name, value = valued[option], given
        elif arg[:2] in valued:  # -p VALUE or -pVALUE
            name = valued[arg[:2]]
            if len(arg) > 2:
                value = arg[2:]
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                return None
        else:
            return None
        if name in found or (isinstance(value, str) and value.startswith("-")):
            return None
        found[name] = value
    return found, positional


def _list(args: list[str]) -> Callable[[], int] | None:
    read = _options(args, _LIST_OPTIONS)
    if read is None or len(read[1]) > 1:
        return None
    options, positional = read
    from memsched.cli.catalogue import CatalogueSource, load

    doc = load()
    if doc is None:
        return None

    def run() -> int:
        from memsched.cli.listing import list_command

        list_command(
            CatalogueSource(doc),
            positional[0] if positional else None,
            json_out=bool(options.get("json", False)),
            policy=_text(options.get("policy")),
            workload=_text(options.get("workload")),
            scenario=_text(options.get("scenario")),
        )
        return 0

    return run


def _text(value: str | bool | None) -> str | None:
    return value if isinstance(value, str) else None


def _admit(args: list[str]) -> Callable[[], int] | None:
    read = _options(args, _ADMIT_OPTIONS)
    if read is None or read[1]:
        return None
    options, _ = read
    runtime, deadline = _text(options.get("runtime")), _text(options.get("deadline"))
    if runtime is None or deadline is None:  # click's "Missing option" message
        return None
    pid_text = _text(options.get("pid"))
    pid = None
    if pid_text is not None:
        from memsched.cli.common import whole_number

        try:
            pid = whole_number(pid_text)
        except ValueError:  # typer's "Invalid value for '--pid'" message
            return None

    def run() -> int:
        from memsched.cli.rt_admit import admit

        return admit(
            runtime,
            deadline,
            _text(options.get("period")),
            _text(options.get("flags")) or "",
            pid,
            json_out=bool(options.get("json", False)),
        )

    return run


def version_line() -> str:
    """What ``memsched --version`` prints (the typer option's callback prints it too): the package's version and
    which builds of the two engines this installation runs, answered without importing either."""
    from memsched import __version__
    from memsched.sim.fluid import jit
    from memsched.sim.sched import compiled

    build = "compiled with mypyc" if compiled() else "pure Python"
    return f"memsched {__version__} (exact scheduler: {build}; fluid engine: {jit.status()})"


def _version() -> int:
    import sys

    sys.stdout.write(version_line() + "\n")
    return 0


def parse(argv: list[str]) -> Parsed | None:
    """``(the command, --debug)`` when ``argv`` is a ``list``, an ``rt admit`` or a ``--version`` this path runs,
    else None."""
    debug = bool(argv) and argv[0] == "--debug"
    args = argv[1:] if debug else argv
    if args == ["--version"]:
        return _version, debug
    if args[:1] == ["list"]:
        command = _list(args[1:])
    elif args[:2] == ["rt", "admit"]:
        command = _admit(args[2:])
    else:
        return None
    return None if command is None else (command, debug)


def run(argv: list[str]) -> int | None:
    """Run ``argv`` on the fast path and return its exit status, or None: typer must run it."""
    parsed = parse(argv)
    return None if parsed is None else execute(parsed)


def execute(parsed: Parsed) -> int:
    """Run a parsed command as :func:`memsched.cli.main` runs one: its exit status, errors reported."""
    command, debug = parsed
    from memsched.cli.outcome import exit_status, terminating_signals

    try:
        with terminating_signals():
            return command()
    except (Exception, KeyboardInterrupt) as e:
        return exit_status(e, debug=debug)
