"""Helpers shared by the command groups: JSON on stdout, progress on stderr, output files checked before the
work and written atomically with the caller's umask, and the memory limit of a simulation.

**Memory limit.** A simulation's input is bounded where it is validated (topology, scenario, rt-app file,
``--cpus``), but a workload's own settings can still ask for more than this computer has. So that such a run
stops with one line instead of meeting the OOM killer, :func:`simulation_memory_limit` caps the process's data
segment (``RLIMIT_DATA``: heap and private anonymous mappings, which is where numpy's arrays live) at three
quarters of what is available when the command starts — the lower of ``MemAvailable`` and the headroom of
the caller's memory cgroup — divided among the parallel runs; ``$MEMSCHED_MEMORY_LIMIT`` (a size such as
``4GiB``) sets it instead. An allocation beyond it raises ``MemoryError``, which the command line reports
with the limit and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memsched.errors import ConfigError, KernelError

__all__ = [
    "check_writable",
    "emit_json",
    "err_console",
    "memory_budget",
    "memory_error_message",
    "no_repeats",
    "out_console",
    "out_width",
    "output_file",
    "print_tables",
    "progress_bar",
    "seed_number",
    "simulation_memory_limit",
    "socket_file",
    "whole_number",
    "write_atomic",
]

if TYPE_CHECKING:
    from rich.console import Console

    from memsched.report.fit import FitTable

    #: stdout's and stderr's rich consoles, made on first use (``rich`` takes ~40 ms to import; ``memsched list``
    #: with ``--json`` and ``rt admit`` never need it): see :func:`__getattr__`.
    out_console: Console
    err_console: Console

#: The width tables get off a terminal when ``$COLUMNS`` does not say (see :func:`out_width`).
PIPE_WIDTH = 160


def _fixed_out_width() -> int | None:
    """Off a terminal (pipes, CI logs) rich would lay tables out for 80 columns; give them room instead, unless
    $COLUMNS says how wide the reader's screen is (rich reads it when ``width`` is None)."""
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH


def out_width() -> int:
    """The width of :data:`out_console`, without importing rich when it is the fixed :data:`PIPE_WIDTH`."""
    fixed = _fixed_out_width()
    if fixed is not None and "out_console" not in globals():
        return fixed
    width: int = _console("out_console").width
    return width


def print_tables(tables: list[FitTable]) -> None:
    """Print ``tables`` on stdout, a blank line between two. Off a terminal, where rich would print plain
    characters, they are computed without importing rich (``report/plain.py``: rich's own layout rules, held to
    rich by the tests), unless :data:`out_console` exists already (two writers to one stream) or a table holds
    what only rich lays out for sure."""
    if "out_console" not in globals():
        from memsched.report.plain import plain_out_width, plain_text

        width = plain_out_width(_fixed_out_width())
        texts = [plain_text(t, width) for t in tables] if width is not None else [None]
        if all(text is not None for text in texts):
            sys.stdout.write("\n".join(texts))  # type: ignore[arg-type]
            sys.stdout.flush()
            return
    console = _console("out_console")
    for i, table in enumerate(tables):
        if i:
            console.print()
        console.print(table)


def _console(name: str) -> Console:
    """``out_console`` or ``err_console`` (a bare name inside this module does not reach :func:`__getattr__`)."""
    console: Console = globals()[name] if name in globals() else __getattr__(name)
    return console


def __getattr__(name: str) -> Any:
    """``out_console`` and ``err_console``, made (once) on first use."""
    if name not in ("out_console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    if name == "out_console":
        console = Console(width=_fixed_out_width())
    else:
        console = Console(stderr=True)
    globals()[name] = console
    return console


#: An integer option: optional sign, then ASCII digits; its value must fit a signed 64-bit integer.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def whole_number(value: str | int) -> int:
    """The parser of every integer option (``typer.Option(parser=whole_number)``).

    typer converts an ``int`` option with pydantic's lax mode, which drops leading zeros and so reads
    ``--cpus 0-3`` as -3 (and ``3.0`` as 3): an integer option is written in digits, or refused; and it fits a
    signed 64-bit integer (each option checks its own range after this).

    typer runs the parser as a pydantic validator, which puts "Value error, " before a ``ValueError``'s
    message; the error raised is pydantic's own custom error (a ``ValueError`` too), whose message is shown
    as it is: ``Invalid value for '--seed': must be ...``."""
    if isinstance(value, int):  # a default
        return value
    text = value.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise _option_error("must be a whole number written in digits", value)
    digits = text.lstrip("+-").lstrip("0")
    number = int(text) if len(digits) <= 19 else None  # int() of thousands of digits is refused, and slow
    if number is None or not INT64_MIN <= number <= INT64_MAX:
        raise _option_error(f"must be a whole number in {INT64_MIN}..{INT64_MAX}", value)
    return number


def seed_number(value: str | int) -> int:
    """The parser of every ``--seed``: :func:`whole_number`, except that a number beyond a 64-bit integer is told
    the seed range (``config.MAX_SEED``), as the command's own check tells one inside it."""
    try:
        return whole_number(value)
    except ValueError:
        from memsched.config import MAX_SEED

        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
            raise _option_error(f"must be in 0..{MAX_SEED}", value) from None
        raise


def no_repeats(field: str, names: Sequence[str], versioned_id: Callable[[str], str] | None = None) -> None:
    """Refuse a comma-separated list that names something twice: it would run, and report, the same thing
    twice. With ``versioned_id`` (a registry's name -> exact id), an alias and its exact id (``mainline`` and
    ``mainline-v1``) are the same thing too."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(field, ",".join(names), f"names {name!r} twice")
        seen.add(name)
    if versioned_id is None:
        return
    exact: dict[str, str] = {}
    for name in names:
        versioned = versioned_id(name)
        if versioned in exact:
            raise ConfigError(field, ",".join(names), f"names {versioned} twice ({exact[versioned]} and {name})")
        exact[versioned] = name


def output_file(value: str | Path) -> Path:
    """The parser of every output-file option (``--trace``, ``--report``): the path as given. An empty one is
    refused here, as typed (``Path("")`` is ``.``, which :func:`check_writable` would show as the directory
    ``.``), and so is ``-``: it is not stdout, which holds the report, but a file named ``-``."""
    if isinstance(value, Path):  # a default
        return value
    if not value:
        raise _option_error("must name a file", value)
    if value == "-":
        raise _option_error("must be a file path, not - (stdout holds the report; write ./- for a file named -)", value)
    return Path(value)


def socket_file(value: str | Path) -> Path:
    """The parser of ``--socket``: a path that names a file. An empty one (``Path("")`` is ``.``) or one ending in
    ``/`` only failed at ``bind()``, as "cannot listen on ." with status 1 and no option named."""
    if isinstance(value, Path):  # a default
        return value
    if not value or value.endswith("/"):
        raise _option_error("must name a socket file (a path such as /run/memsched/pressure.sock)", value)
    return Path(value)


def _option_error(allowed: str, value: str) -> ValueError:
    """The error of an option's parser: ``allowed``, then the value given (its start, when long)."""
    from pydantic_core import PydanticCustomError  # only on an error: `rt admit`'s fast path does not import it

    shown = value if len(value) <= 40 else value[:37] + "..."
    return PydanticCustomError("memsched_option", allowed + " (got {value})", {"value": repr(shown)})


def emit_json(doc: Any) -> None:
    """The one JSON document of a ``--json`` run: sorted keys, so the same run gives the same bytes.

    ``allow_nan=False``: a NaN or an infinity is not JSON; inputs that could produce one are refused, so one
    here is a bug to report, not a document to print."""
    sys.stdout.write(json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n")
    sys.stdout.flush()


def show_progress() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress_bar(total: float | None, description: str) -> Iterator[Callable[[float], None]]:
    """Yield ``advance_to(x)``; draws a bar on stderr only when stdout is a terminal.

    With ``total=None`` the bar is indeterminate and ``x`` (simulated seconds) is shown in its text.
    """
    if not show_progress():
        yield lambda x: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns.append(MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=_console("err_console"), transient=True) as bar:
        task = bar.add_task(description, total=total)
        if total is None:
            yield lambda x: bar.update(task, description=f"{description}: {x:,.0f} simulated s")
        else:
            yield lambda x: bar.update(task, completed=x)


def check_writable(path: Path, field: str) -> None:
    """Fail before any work if ``path`` cannot be written: its folder must exist and be writable, and the path
    itself must be absent or a regular file (a directory, a device or a FIFO is refused, not replaced).

    Writable means that the temporary file :func:`write_atomic` makes there can be made (and it is removed
    again): ``access(2)`` alone says yes to root on ``/proc`` and ``/sys``, where no file can be created."""
    if not path.name or str(path).endswith(os.sep):
        raise ConfigError(field, str(path), "must name a file, not a directory")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ConfigError(field, str(path), f"must be a writable file ({e.strerror})") from None
    else:
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(field, str(path), "is a directory; it must name a file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(field, str(path), "must be a regular file (it would be replaced)")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ConfigError(field, str(path), "must be in an existing directory")
    if not os.access(parent, os.W_OK):
        raise ConfigError(field, str(path), "must be in a writable directory")
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
    except OSError as e:
        why = f"must be in a writable directory (no file can be created there: {e.strerror})"
        raise ConfigError(field, str(path), why) from None
    os.close(fd)
    os.unlink(probe)


def _umask() -> int:
    """The process's umask (``Umask:`` in /proc/self/status, 4.7+; else set and restored)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write through a temporary file and rename, so an interrupted run leaves no half-written file.

    The file gets the mode ``open()`` would give a new file (0666 less the umask): ``mkstemp`` creates 0600.
    A failure of the system (a full disk, after :func:`check_writable` passed) is a ``KernelError`` naming
    ``path``."""
    raw = data.encode() if isinstance(data, str) else data
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
                f.write(raw)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        if isinstance(e, KernelError):
            raise
        raise KernelError(e.errno or 0, f"cannot write {path}: {e.strerror or e}") from e


# ---- the memory limit of a simulation ------------------------------------------------------------------------

#: The last limit set (bytes of data segment beyond what the process held), for the message: the exception
#: reaches the command line's handler after the limit has been lifted again.
_last_limit: list[int] = []
#: Below this, a limit would refuse even the smallest simulation; a smaller machine is left to itself.
_MIN_LIMIT = 256 << 20  # 256 MiB


def _meminfo_available() -> int | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def _cgroup_headroom() -> int | None:
    """Limit minus usage of the caller's memory cgroup (v2 ``memory.max``, else v1 ``memory.limit_in_bytes``)."""
    from memsched.live.cgroups import own_cgroups

    with contextlib.suppress(OSError, ValueError):
        own = own_cgroups()
        pairs = []
        if own.v2 is not None:
            pairs.append((own.v2 / "memory.max", own.v2 / "memory.current"))
        if own.v1_memory is not None:
            pairs.append((own.v1_memory / "memory.limit_in_bytes", own.v1_memory / "memory.usage_in_bytes"))
        for limit_file, usage_file in pairs:
            if limit_file.exists() and usage_file.exists():
                limit = limit_file.read_text().strip()
                if limit != "max" and int(limit) < (1 << 60):
                    return max(0, int(limit) - int(usage_file.read_text()))
    return None


def _data_size() -> int:
    """The process's current data segment (``VmData``), which the limit is added to."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_budget(jobs: int = 1, environ: dict[str, str] | None = None) -> int | None:
    """Bytes each of ``jobs`` simulations may allocate (None: nothing to go by, no limit)."""
    env = os.environ if environ is None else environ
    text = env.get("MEMSCHED_MEMORY_LIMIT")
    if text:
        from memsched.units import parse_size

        return parse_size(text, field="MEMSCHED_MEMORY_LIMIT", unit_required=True)
    known = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not known:
        return None
    return max(_MIN_LIMIT, min(known) * 3 // 4 // max(1, jobs))


@contextmanager
def simulation_memory_limit(jobs: int | None = 1) -> Iterator[None]:
    """Cap the data segment while a simulation runs (see the module docstring); restored afterwards."""
    budget = memory_budget(jobs or os.cpu_count() or 1)
    if budget is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = _data_size() + budget
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft <= want:
        yield  # already tighter
        return
    resource.setrlimit(resource.RLIMIT_DATA, (want, hard))
    _last_limit[:] = [budget]
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def memory_error_message() -> str:
    """What to say when an allocation failed (under :func:`simulation_memory_limit` or not)."""
    if _last_limit:
        from memsched.units import format_bytes

        limit = _last_limit[0]
        return (
            f"out of memory: the simulation needed more than its limit of {format_bytes(limit)} "
            "(3/4 of the memory available when it started, or $MEMSCHED_MEMORY_LIMIT); "
            "simulate a smaller machine or workload"
        )
    return "out of memory: this computer could not hold the simulation; simulate a smaller machine or workload"


