"""When the fluid engine uses its compiled kernels (numba, ``pip install 'memsched[fast]'``).

The kernels (:mod:`memsched.sim.fluid._kernels`) give the pure numpy code's bits, so whether a run uses them
changes its time, never its results; numba stays an optional extra. Importing numba and loading the cached
machine code costs about 0.35-0.55 s a process, which a short run would not earn back, so ``MEMSCHED_JIT`` says:

* ``auto`` (the default): switch to the kernels once this process has solved the rates :data:`AUTO_AFTER`
  times, or simulated :data:`AUTO_PURE_S` of CPU time in the pure code, if numba is installed and its cache
  holds them (the long runs: MORON's numa01 solves the rates about 62,000 times). Compiling them costs about
  50 s, a hundred times a load, so a run does not compile them in its middle: :func:`load_ahead` does, for
  work known to be long enough to earn that back, and so does ``python -m memsched.sim.fluid.jit``;
* ``1``: from the first solve or the first call of a fault-path function that has a kernel (an error if numba
  is not installed or cannot compile them);
* ``0``: never.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TextIO, TypeVar

from memsched.errors import ConfigError

__all__ = [
    "AUTO_AFTER",
    "ENV",
    "check_env",
    "compiled_as",
    "copy_rows_kernel",
    "load_ahead",
    "loaded",
    "solve_kernel",
    "status",
    "stream_table_kernel",
    "undecided",
]

ENV = "MEMSCHED_JIT"
#: Pure solves before ``auto`` loads the kernels: about as many as it takes to earn back their loading (the
#: rule that keeps a run within twice the best choice made knowing its length). Loading costs about 0.45 s; the
#: kernels save about 190 us of the run per solve (MORON numa01 on westmere-ex-4n48: 24.2 s pure, 12.5 s with
#: them, over 61,700 solves), so about 2,400 solves earn it back.
AUTO_AFTER = 2500
#: CPU seconds of simulation in the pure code (from the first call of a :func:`compiled_as` function, the fault
#: path's kernels) after which ``auto`` loads the kernels whatever the solves: a run whose faults are many and
#: whose rates are solved seldom pays the pure code's time as it goes (mainline numa01 with 4 KiB pages on
#: x86-8n64 took 12.1 s under the solves' rule alone, 10.3 s with the kernels from the start). The pure code takes
#: about twice the kernels' time, so a second of it has cost about the kernels' load. (The moment depends on
#: the machine's speed; the results do not, as for any switch.)
AUTO_PURE_S = 1.0


class _Gate:
    """This process's choice: the mode read, the pure solves left to count and when its pure simulation began,
    the kernels once loaded."""

    __slots__ = ("copy_rows", "kernels", "left", "since", "stream_table")

    def __init__(self) -> None:
        #: The kernels' module, once loaded; its stream table and copy rows unless this numpy's SIMD dots add in
        #: another order (``_kernels.self_check``).
        self.kernels: ModuleType | None = None
        self.stream_table: Callable[..., Any] | None = None
        self.copy_rows: Callable[..., Any] | None = None
        #: Pure solves left before loading the kernels; None: never (``0``, or numba is not installed or could
        #: not compile them); -1: ``MEMSCHED_JIT`` not read yet.
        self.left: int | None = -1
        #: The process's CPU time at the first :func:`compiled_as` call while undecided.
        self.since: float | None = None


_gate = _Gate()
#: The kernels whose dots follow numpy's SIMD order (left off alone where this numpy's differs).
_DOTS = frozenset({"stream_table", "copy_rows"})


def _mode() -> str:
    value = os.environ.get(ENV, "auto")
    if value not in ("auto", "0", "1"):
        raise ConfigError(ENV, value, "must be auto, 1 (use the compiled kernels) or 0 (never)")
    return value


def check_env() -> None:
    """Raise :class:`ConfigError` now if ``MEMSCHED_JIT`` has a value it does not allow."""
    _mode()


def _refuse(required: bool, why: str) -> None:
    """Stay pure from now on; under ``MEMSCHED_JIT=1`` say why instead."""
    _gate.left = None
    if required:
        raise ConfigError(ENV, "1", f"must be auto or 0 here: {why}")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (as it was after): importing numba and loading the kernels make
    tens of thousands of objects that live on, and the collections they set off (about 220 young, 20 middle and
    one full one in a load of every kernel) find nothing to free. Without them ``load_ahead(every=True)`` took
    0.67 s against 0.73 s (median of 8 fresh interpreters each; import and lazy load: 0.35 s against 0.39 s).
    Collection only frees memory, so a run's results do not depend on it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load(required: bool, every: bool = False, may_compile: bool = True) -> Callable[..., Any] | None:
    """Import the kernels and compile them (or load them from numba's cache) on small inputs of the types the
    engine passes, and check them against this numpy; on failure stay pure (``auto``) or say why (``1``). When
    numba's cache has every kernel, each loads at its first call, unless ``every`` (``_kernels.warm``). Unless
    ``may_compile``, stay pure where the cache lacks one of them. The garbage collector waits meanwhile
    (:func:`_gc_paused`)."""
    with _gc_paused():
        return _load_kernels(required, every, may_compile)


def _load_kernels(required: bool, every: bool, may_compile: bool) -> Callable[..., Any] | None:
    """:func:`_load`'s work."""
    try:
        module = importlib.import_module("memsched.sim.fluid._kernels")
    except ImportError as e:
        _refuse(required, f"numba is not installed ({e}); pip install 'memsched[fast]'")
        return None
    if not required and getattr(getattr(sys.modules.get("numba"), "config", None), "DISABLE_JIT", False):
        _gate.left = None  # NUMBA_DISABLE_JIT=1 (debugging): the kernels would run as slow Python loops
        return None
    try:
        with _compile_notice():
            ready = module.warm(every, may_compile or required)
        if not ready:  # (auto, work too short to earn back a compile: about 50 s, against a 0.5 s load)
            _gate.left = None
            terminal = _terminal()
            if terminal is not None:
                print(COLD_NOTICE, file=terminal, flush=True)
            return None
        bad = module.self_check()
    except Exception as e:  # a numba or LLVM that cannot build them here: the pure code gives the same bits
        _refuse(required, f"numba could not compile the kernels ({type(e).__name__}: {e})")
        return None
    if set(bad) - _DOTS:  # this numpy adds its sums in another order: the kernels would move results
        _refuse(required, f"this numpy's sums differ from the kernels' ({', '.join(bad)})")
        return None
    gate = _gate
    gate.kernels = module
    gate.stream_table = None if "stream_table" in bad else module.stream_table
    gate.copy_rows = None if "copy_rows" in bad else module.copy_rows
    return module.solve  # type: ignore[no-any-return]


#: What a process says on a terminal when numba starts to compile a kernel (its cache lacks one).
COMPILE_NOTICE = "memsched: compiling the fluid engine's numba kernels, once (about 50 s on 2 cores; then cached)"
#: What a process says on a terminal when it stays pure because numba's cache lacks a kernel and the work ahead
#: is too short to earn back a compile.
COLD_NOTICE = (
    "memsched: the fluid engine's numba kernels are not compiled yet, so this runs without them; "
    "python -m memsched.sim.fluid.jit compiles them once (about 50 s on 2 cores)"
)


def _terminal() -> TextIO | None:
    """stderr when it is a terminal and this is the main process (not a worker of a pool, whose parent may be
    drawing a progress bar), else None: where the notices go."""
    import multiprocessing

    stream = sys.stderr
    if multiprocessing.parent_process() is not None or stream is None or not stream.isatty():
        return None
    return stream


def _compile_notice() -> contextlib.AbstractContextManager[Any]:
    """While the kernels load: on a terminal (:func:`_terminal`), say :data:`COMPILE_NOTICE` once when numba starts
    its first compile (its ``numba:compile`` event, which a load from its cache does not raise); elsewhere
    nothing."""
    stream = _terminal()
    if stream is None:
        return contextlib.nullcontext()
    from numba.core import event

    class Notice(event.Listener):
        said = False

        def on_start(self, ev: Any) -> None:
            if not self.said:
                self.said = True
                print(COMPILE_NOTICE, file=stream, flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    return event.install_listener("numba:compile", Notice())


def solve_kernel() -> Callable[..., Any] | None:
    """The compiled ``MemModel.solve_base`` when this solve should use it, else None (and one pure solve
    counted)."""
    gate = _gate
    if gate.kernels is not None:
        return gate.kernels.solve  # type: ignore[no-any-return]
    left = gate.left
    if left is None:
        return None
    if left == -1:
        mode = _first_read()
        if mode == "0":
            return None
        if mode == "1":
            return _load(required=True)
        left = AUTO_AFTER
    left -= 1
    gate.left = left
    return _load(required=False, may_compile=False) if left <= 0 else None


def _first_read() -> str:
    """Read ``MEMSCHED_JIT`` at the process's first solve or ``compiled_as`` call: under ``0`` the process stays
    pure from now on, under ``auto`` it starts counting (``1`` is for the caller to load)."""
    mode = _mode()
    if mode == "0":
        _gate.left = None
    elif mode == "auto":
        _gate.left = AUTO_AFTER
    return mode


def undecided() -> bool:
    """Whether :func:`load_ahead` could still change anything: the kernels are not in use and this process has
    not settled on the pure code (a caller can skip estimating its work otherwise)."""
    return _gate.kernels is None and _gate.left is not None


def load_ahead(every: bool = False, may_compile: bool = True) -> bool:
    """Load the kernels now, not after :data:`AUTO_AFTER` solves, for a caller that knows the work ahead is long
    (:mod:`memsched.workloads.runner`, before a long run in this process, or before it forks its workers, which
    then inherit them instead of each loading them and solving their first runs' rates in pure code). Each
    kernel loads at its first call, unless ``every`` (before a fork: then each is loaded once, in the parent).
    Under ``auto``, unless ``may_compile`` (work too short to earn back a compile), only from numba's cache: where
    it lacks one, the process stays pure. Under ``0``, or where numba is missing or cannot build them, nothing
    happens (under ``1`` that is an error now, as at the first solve). Returns whether the kernels are in use."""
    gate = _gate
    if gate.kernels is None and gate.left is not None:
        mode = _mode()
        if mode == "0":
            gate.left = None
        else:
            _load(required=mode == "1", every=every, may_compile=may_compile)
    return gate.kernels is not None


def loaded() -> ModuleType | None:
    """The kernels' module when this process uses it (the rate solves decide when, :func:`solve_kernel`), else
    None: the other kernels follow the solve's."""
    return _gate.kernels


_F = TypeVar("_F", bound=Callable[..., Any])


def compiled_as(name: str) -> Callable[[_F], _F]:
    """Decorate a pure numpy function that ``_kernels.<name>`` reproduces bit for bit (same positional
    arguments, same results and writes): calls run the kernel once this process uses the kernels
    (:func:`loaded`), else the function, which stays reachable as ``__wrapped__``."""

    def wrap(pure: _F) -> _F:
        @functools.wraps(pure)
        def call(*args: Any) -> Any:
            gate = _gate
            kernels = gate.kernels
            if kernels is not None:
                return getattr(kernels, name)(*args)
            if gate.left is not None:
                _undecided_call()
                kernels = gate.kernels
                if kernels is not None:
                    return getattr(kernels, name)(*args)
            return pure(*args)

        return call  # type: ignore[return-value]

    return wrap


def _undecided_call() -> None:
    """A :func:`compiled_as` function is called while the process has not decided: under ``auto``, load the kernels
    once it has simulated :data:`AUTO_PURE_S` of CPU time since the first such call; under ``1``, load them now
    (as the first solve would)."""
    gate = _gate
    if gate.left == -1:
        mode = _first_read()
        if mode == "0":
            return
        if mode == "1":
            _load(required=True)
            return
    now = time.process_time()
    if gate.since is None:
        gate.since = now
    elif now - gate.since >= AUTO_PURE_S:
        _load(required=False, may_compile=False)


def stream_table_kernel() -> Callable[..., Any] | None:
    """``_kernels.stream_table`` when the kernels are in use and this numpy's SIMD sums match it (its dots are
    numpy's x86-64 baseline build's order; ``_kernels.self_check`` decides at load), else None."""
    return _gate.stream_table


def copy_rows_kernel() -> Callable[..., Any] | None:
    """``_kernels.copy_rows`` on the same terms as :func:`stream_table_kernel`."""
    return _gate.copy_rows


def status() -> str:
    """What ``memsched --version`` says of the fluid engine's kernels (without importing numba)."""
    try:
        mode = _mode()
    except ConfigError:
        mode = "auto"
    if mode == "0":
        return f"pure numpy ({ENV}=0)"
    if importlib.util.find_spec("numba") is None:
        return "pure numpy (numba not installed)"
    if mode == "1":
        return "numba kernels from the first solve"
    # (auto never compiles them in a run's middle: see load_ahead; the cache is not read here, which imports numba)
    return (
        f"numba kernels after {AUTO_AFTER} solves or {AUTO_PURE_S:g} s of pure simulation, once compiled "
        "(python -m memsched.sim.fluid.jit)"
    )


def reset() -> None:
    """Forget the mode read, the solves counted and the kernels loaded (tests that change ``MEMSCHED_JIT``)."""
    _gate.__init__()  # type: ignore[misc]


def main() -> int:
    """``python -m memsched.sim.fluid.jit``: compile the kernels now (or check numba's cache has them), so that
    the first long run does not pay it; prints what it did. Exit status 2 if numba is missing or cannot compile."""
    import time

    t0 = time.perf_counter()
    try:
        _load(required=True, every=True)
    except ConfigError as e:
        print(f"memsched: error: {e}", file=sys.stderr)
        return 2
    print(f"memsched: the fluid engine's numba kernels are ready ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
