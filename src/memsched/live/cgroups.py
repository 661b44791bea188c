"""Control groups as the pressure backends see them: where the hierarchies are, which cgroup the caller is
in, and a disposable memory cgroup for live tests and benchmarks.

The files involved are parsed by :mod:`memsched.live.procfs`: ``/proc/<pid>/cgroup``
(:func:`~memsched.live.procfs.parse_proc_cgroup`), ``/proc/<pid>/mountinfo``
(:func:`~memsched.live.procfs.parse_mountinfo`, to find the v2 mount and the v1 ``memory`` mount without assuming
``/sys/fs/cgroup``) and the ``memory.*`` counter files (:func:`~memsched.live.procfs.parse_flat_keyed`).

Mount points in ``mountinfo`` are absolute paths of the running system; :func:`cgroup_mounts` maps those
under ``/sys`` through :class:`~memsched.live.roots.LiveRoots` so that fixture trees work.

A cgroup a user names (``--cgroup``, ``cgroup=``) goes through :func:`resolve_cgroup_dir`, the one check that
it is inside a mounted hierarchy: the path is resolved (``..`` and symlinks, :func:`os.path.realpath`) before it
is compared with the mount points, and on the running system ``statfs(2)`` must say cgroupfs. Before, ``..``
was joined as is and any absolute directory holding a ``cgroup.procs`` was taken, so an eventfd registration
went into an ordinary file (``--cgroup ../../../../tmp/x``) and ``pressure act`` took a plain directory for its
subtree.

:class:`MemcgV1Child` creates ``<memory mount>/<name>`` with a limit, starts short-lived child processes that
move **themselves** into it before they do anything (the caller is never put in the cgroup), and on exit
kills every task still inside, waits for the kernel to let go and removes the directory — also when the
body raised, and also on SIGTERM or SIGHUP: while the cgroup exists (and the signal's handler was the
default) they raise :class:`~memsched.errors.Terminated`, so the ``with`` block unwinds through the removal
(before, a ``kill`` left the cgroup and its children, and the next run under the same name failed with
"File exists"). Its children ask for SIGKILL when their parent dies (``PR_SET_PDEATHSIG``), so a ``kill -9``
of the owner leaves an empty cgroup at most; a later run with the same name removes an empty leftover and
refuses one that still has tasks.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import AccessDeniedError, ConfigError, KernelError, Terminated
from memsched.live.oserrors import send_signal
from memsched.live.procfs import parse_flat_keyed, parse_mountinfo, parse_proc_cgroup
from memsched.live.roots import LiveRoots, read_text, try_read_text

__all__ = [
    "CGROUP2_SUPER_MAGIC",
    "CGROUP_SUPER_MAGIC",
    "CgroupMounts",
    "MemcgV1Child",
    "OwnCgroups",
    "cgroup_mounts",
    "check_cgroup_exists",
    "check_cgroup_inside",
    "fs_type",
    "make_cgroup",
    "own_cgroups",
    "remove_cgroups",
    "resolve_cgroup_dir",
    "resolve_inside",
    "spawn_in_cgroups",
]


# --------------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """Where the unified (v2) hierarchy and the v1 ``memory`` hierarchy are mounted (None: not mounted), and
    every cgroup mount point (v2 and each v1 hierarchy), which decides what hierarchy a directory is in."""

    v2: Path | None
    v1_memory: Path | None
    all: tuple[Path, ...] = ()
    #: The mount points of ``all`` that are paths of the running system (not mapped into a fixture tree
    #: through the roots): a directory under one of them must be on a cgroup file system (``statfs``).
    real: tuple[Path, ...] = ()

    def mount_of(self, path: Path) -> Path | None:
        """The cgroup mount ``path`` is under (the longest mount point that contains it), or None."""
        real = Path(os.path.realpath(path))
        best: Path | None = None
        for m in self.all:
            mreal = Path(os.path.realpath(m))
            if _within(real, mreal) and (best is None or len(mreal.parts) > len(best.parts)):
                best = mreal
        return best

    def on_this_system(self, mount: Path) -> bool:
        """Whether the (resolved) mount point ``mount`` is one of the running system's, not a fixture's."""
        return any(Path(os.path.realpath(m)) == mount for m in self.real)

    def describe(self) -> str:
        """The hierarchies a user's cgroup may be in, for messages."""
        return " or ".join(str(h) for h in (self.v2, self.v1_memory) if h is not None) or "none is mounted"


def _within(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or below it (both already resolved: a lexical test on resolved paths)."""
    return path == root or root in path.parents


def resolve_inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved (``..``, symlinks: :func:`os.path.realpath`) and expressed under ``root`` as given, or
    None when it is not ``root`` or below it. ``Path.is_relative_to`` is lexical: ``root/../..`` passes it."""
    real, rroot = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return root.joinpath(real.relative_to(rroot)) if _within(real, rroot) else None


def _under_roots(mount_point: str, roots: LiveRoots) -> Path:
    """An absolute path of the running system as seen through ``roots`` (``/sys/...`` -> ``sys_root/...``)."""
    p = Path(mount_point)
    if p.parts[:2] == ("/", "sys"):
        return roots.sys(*p.parts[2:])
    if p.parts[:2] == ("/", "proc"):
        return roots.proc(*p.parts[2:])
    return p


def cgroup_mounts(roots: LiveRoots | None = None) -> CgroupMounts:
    """Find the hierarchies in ``/proc/self/mountinfo`` (a bind mount of a sub-tree is skipped: its root is
    not ``/``, so paths from ``/proc/self/cgroup`` would not resolve under it)."""
    roots = roots or LiveRoots()
    text, _ = try_read_text(roots.proc("self", "mountinfo"), roots)
    v2 = v1_memory = None
    every: list[Path] = []
    real: list[Path] = []
    for m in parse_mountinfo(text or ""):
        if m.root != "/" or m.fstype not in ("cgroup", "cgroup2"):
            continue
        where = _under_roots(m.mount_point, roots)
        every.append(where)
        if where == Path(m.mount_point):
            real.append(where)
        if m.fstype == "cgroup2" and v2 is None:
            v2 = where
        elif m.fstype == "cgroup" and "memory" in m.super_options and v1_memory is None:
            v1_memory = where
    return CgroupMounts(v2, v1_memory, tuple(every), tuple(real))


@dataclass(frozen=True, slots=True)
class OwnCgroups:
    """The caller's cgroups as directories (None where the hierarchy is not mounted or not joined)."""

    v2: Path | None
    v2_path: str | None
    v1_memory: Path | None
    v1_memory_path: str | None


def own_cgroups(roots: LiveRoots | None = None, *, pid: int | str = "self") -> OwnCgroups:
    """The v2 cgroup and v1 memory cgroup of ``pid`` (default: the caller), resolved under the mounts."""
    roots = roots or LiveRoots()
    mounts = cgroup_mounts(roots)
    text, _ = try_read_text(roots.proc(pid, "cgroup"), roots)
    v2 = v1 = None
    v2_path = v1_path = None
    for m in parse_proc_cgroup(text or ""):
        # The kernel writes normalised paths; a fixture tree's may leave the mount, and is then not joined.
        if m.is_v2 and mounts.v2 is not None:
            v2_path = m.path
            v2 = resolve_inside(mounts.v2.joinpath(*Path(m.path).parts[1:]), mounts.v2)
        elif "memory" in m.controllers and mounts.v1_memory is not None:
            v1_path = m.path
            v1 = resolve_inside(mounts.v1_memory.joinpath(*Path(m.path).parts[1:]), mounts.v1_memory)
    return OwnCgroups(v2, v2_path if v2 is not None else None, v1, v1_path if v1 is not None else None)


def resolve_cgroup_dir(
    spec: str | os.PathLike[str], hierarchy: Path, mounts: CgroupMounts, *, field: str = "cgroup"
) -> Path:
    """A user's ``--cgroup`` as a directory of ``hierarchy``: an absolute path to an existing cgroup directory
    (has ``cgroup.procs``), a path starting ``./`` or ``../`` to one from the current directory (as a shell
    would read it), or else a path inside ``hierarchy`` (``/`` is its root, ``a/b`` and ``/a/b`` the same
    child). The result is resolved (``..``, symlinks) and expressed under ``hierarchy`` as given.

    The resolved directory must be inside a mounted cgroup hierarchy (``mounts``), and a path inside
    ``hierarchy`` must stay inside it (``a/../b`` is ``b``; ``../x`` leaves it); on the running system it must
    also be on a cgroup file system (``statfs`` ``f_type``). Otherwise :class:`~memsched.errors.ConfigError`
    naming ``field``: it is the user's value that is wrong, whatever the backend.

    A directory belongs to the hierarchy of the mount it is under, not to whichever hierarchy its files
    resemble: on a hybrid system (v1 at ``/sys/fs/cgroup/memory``, v2 at ``/sys/fs/cgroup/unified``) a v1
    memcg also has ``memory.stat`` and used to pass for v2. A directory under another cgroup mount raises
    :class:`~memsched.errors.KernelError` (``ENOENT``: not in this hierarchy; another backend may serve it)."""
    text = os.fspath(spec)
    if "\0" in text:
        raise ConfigError(field, text, "must be a cgroup path (it holds a NUL byte)")
    p = Path(spec)
    if text in (".", "..") or text.startswith(("./", "../")):  # a directory named from the current one
        p = Path(os.path.abspath(text))
        if not (p / "cgroup.procs").exists():
            raise ConfigError(
                field, text, f"must be a cgroup directory ({p} has no cgroup.procs): './' and '../' name a "
                "directory from the current one; a path in a hierarchy is written /app or app"
            )
    existing = p.is_absolute() and (p / "cgroup.procs").exists()
    candidate = p if existing else hierarchy.joinpath(*(p.parts[1:] if p.is_absolute() else p.parts))
    real = Path(os.path.realpath(candidate))
    mount = mounts.mount_of(real)
    inside = resolve_inside(candidate, hierarchy)
    if mount is None or (inside is None and not existing):
        raise ConfigError(
            field,
            os.fspath(spec),
            f"must be a cgroup inside a mounted cgroup hierarchy ({mounts.describe()}): a directory there, or a "
            f"path in one such as /app, which '..' may not leave (it resolves to {real})",
        )
    if inside is None or mount != Path(os.path.realpath(hierarchy)):
        raise KernelError(errno.ENOENT, f"{p} is in the cgroup hierarchy mounted at {mount}, not at {hierarchy}")
    if mounts.on_this_system(mount):
        v2 = mounts.v2 is not None and Path(os.path.realpath(mounts.v2)) == mount
        _check_cgroupfs(real if real.exists() else mount, v2=v2, spec=spec, field=field)
    return inside


def check_cgroup_inside(spec: str | os.PathLike[str], mounts: CgroupMounts, *, field: str = "cgroup") -> None:
    """:func:`resolve_cgroup_dir` in every mounted hierarchy: a cgroup outside them all, or a path that
    leaves them, is :class:`~memsched.errors.ConfigError` before any backend opens a file there (one in
    another hierarchy is left to the backends to explain)."""
    for h in (mounts.v2, mounts.v1_memory):
        if h is not None:
            with contextlib.suppress(KernelError):
                resolve_cgroup_dir(spec, h, mounts, field=field)


def check_cgroup_exists(spec: str, mounts: CgroupMounts) -> None:
    """Refuse a ``--cgroup`` that is a directory in no mounted hierarchy (a user's error, exit 2)."""
    candidates = [h for h in (mounts.v2, mounts.v1_memory) if h is not None]
    for h in candidates:
        with contextlib.suppress(KernelError):
            if resolve_cgroup_dir(spec, h, mounts, field="--cgroup").is_dir():
                return
    where = " or ".join(str(h) for h in candidates) or "no mounted hierarchy"
    raise ConfigError("--cgroup", spec, f"must be an existing cgroup: a directory, or a path under {where}")


# --------------------------------------------------------------------------------------------- statfs

#: ``statfs(2)`` ``f_type`` of cgroup v1 and of cgroup2 (include/uapi/linux/magic.h).
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270

#: ``struct statfs`` begins with ``f_type``, a ``__fsword_t``: a ``long`` on every Linux ABI glibc supports but
#: s390x, where it is an ``unsigned int`` (glibc sysdeps/unix/sysv/linux/{,s390/}bits/statfs.h). x32's is an
#: 8-byte little-endian word whose low half a 4-byte ``long`` reads correctly. 256 bytes hold the whole struct
#: (120 on x86-64).
_F_TYPE = ctypes.c_uint if platform.machine().startswith("s390") else ctypes.c_long
_STATFS_SIZE = 256


def fs_type(path: Path) -> int:
    """``statfs(path).f_type`` (Python's ``os.statvfs`` does not report it); ``OSError`` as the kernel says."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if libc.statfs(os.fsencode(path), buf) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))
    return int(_F_TYPE.from_buffer(buf).value)


def _check_cgroupfs(path: Path, *, v2: bool, spec: str | os.PathLike[str], field: str) -> None:
    """``path`` of the running system is on the cgroup file system of its mount (something mounted over a
    cgroup directory, or a stale ``mountinfo``, is not a cgroup)."""
    want, name = (CGROUP2_SUPER_MAGIC, "cgroup2") if v2 else (CGROUP_SUPER_MAGIC, "cgroup")
    try:
        got = fs_type(path)
    except OSError as e:
        code = e.errno or errno.EIO
        raise KernelError(code, f"cannot statfs {path}: {os.strerror(code)}") from e
    if got != want:
        raise ConfigError(
            field, os.fspath(spec), f"must be a cgroup: {path} is not on a {name} file system (statfs f_type {got:#x})"
        )


# --------------------------------------------------------------------------------------------- a test cgroup

#: Run in the child before the workload: move this very process into each ``cgroup.procs`` given (writing
#: ``0`` moves the writer), then exec the workload. Only the child ever joins the cgroup.
#: The child first asks for SIGKILL when its parent dies (``PR_SET_PDEATHSIG`` = 1, kept across exec) and exits
#: if the parent is already gone (argv[1] is the parent's pid).
_BOOT = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None).prctl(1,9,0,0,0)\n"
    "if os.getppid()!=int(sys.argv[1]): os._exit(137)\n"
    "i=sys.argv.index('--')\n"
    "for p in sys.argv[2:i]:\n"
    "    fd=os.open(p,os.O_WRONLY)\n"
    "    os.write(fd,b'0')\n"
    "    os.close(fd)\n"
    "os.execv(sys.argv[i+1],sys.argv[i+1:])\n"
)


def spawn_in_cgroups(procs_files: Sequence[Path], argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that first moves itself into every ``cgroup.procs`` of ``procs_files`` (and
    is killed if the caller dies)."""
    cmd = [sys.executable, "-c", _BOOT, str(os.getpid()), *map(str, procs_files), "--", *argv]
    return subprocess.Popen(cmd, **popen)  # type: ignore[call-overload,no-any-return]


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


class TerminationGuard:
    """SIGTERM and SIGHUP while a live cgroup exists: they raise :class:`Terminated` in the main thread (so the
    owner's ``finally`` removes it), and while it is being removed they are held and raised afterwards (a second
    SIGTERM must not cut the removal short). A signal the caller ignores, or handles itself, is left alone."""

    def __init__(self) -> None:
        self._handlers: dict[int, object] = {}

    def catch(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                self._handlers[sig] = signal.signal(sig, _raise_terminated)

    def release(self) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._handlers.clear()

    def removing(self, remove: Callable[[], None]) -> None:
        """Run ``remove`` with the caught signals held, give the signals back, then raise the first one held."""
        held: list[int] = []
        for sig in self._handlers:
            signal.signal(sig, lambda signum, frame: held.append(signum))
        try:
            remove()
        finally:
            self.release()
        if held:
            raise Terminated(held[0])


def remove_cgroups(created: list[Path], deadline: float) -> None:
    """``rmdir`` the cgroups a run created, innermost first, dropping each one removed from ``created``; one still
    busy (its killed tasks not yet released) stays listed for another try until ``deadline`` (monotonic)."""
    for d in list(reversed(created)):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise KernelError(e.errno or errno.EIO, f"cannot remove cgroup {d}: {e.strerror}") from e
            continue
        created.remove(d)


def make_cgroup(d: Path) -> None:
    """``mkdir`` a cgroup for a run; an empty leftover of a killed run is removed first, a busy one refused."""
    try:
        d.mkdir()
    except FileExistsError:
        text, _ = try_read_text(d / "cgroup.procs")
        if text is None or text.split():
            raise KernelError(
                errno.EEXIST, f"cgroup {d} exists and has tasks (another run is using it); choose another name"
            ) from None
        d.rmdir()  # left by a run that was killed with SIGKILL
        d.mkdir()


class MemcgV1Child:
    """A disposable child of the v1 memory hierarchy with a limit (and an optional v2 twin for PSI).

    >>> with MemcgV1Child("memsched-test", limit_bytes=64 << 20) as cg:   # doctest: +SKIP
    ...     cg.run([sys.executable, "-c", "..."]).wait()

    On exit every task still inside is killed, the children started here are reaped, and the directories
    are removed (retrying while the kernel still holds the last references), even when the body raised.
    ``v2=True`` also creates ``<v2 mount>/<name>`` and moves the children there, so that its
    ``memory.pressure`` carries their stall (PSI accounts tasks by their v2 cgroup, with or without the v2
    memory controller).
    """

    def __init__(
        self,
        name: str,
        *,
        limit_bytes: int,
        v2: bool = False,
        roots: LiveRoots | None = None,
        memsw: bool = True,
    ) -> None:
        mounts = cgroup_mounts(roots)
        if mounts.v1_memory is None:
            raise KernelError(errno.ENOENT, "the cgroup v1 memory controller is not mounted")
        if v2 and mounts.v2 is None:
            raise KernelError(errno.ENOENT, "the cgroup v2 hierarchy is not mounted")
        self.path = mounts.v1_memory / name
        self.v2_path = (mounts.v2 / name) if v2 and mounts.v2 is not None else None
        self.limit_bytes = limit_bytes
        self.memsw = memsw
        self._children: list[subprocess.Popen[bytes]] = []
        self._created: list[Path] = []
        self._signals = TerminationGuard()

    # -- lifetime -------------------------------------------------------------------------------------
    def _make(self, d: Path) -> None:
        make_cgroup(d)
        self._created.append(d)

    def __enter__(self) -> MemcgV1Child:
        self._signals.catch()
        try:
            self._make(self.path)
            (self.path / "memory.limit_in_bytes").write_text(str(self.limit_bytes))
            if self.memsw and (self.path / "memory.memsw.limit_in_bytes").exists():
                # With swap accounting, also cap memory+swap so an anonymous load cannot escape to swap.
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit_bytes))
            if self.v2_path is not None:
                self._make(self.v2_path)
        except KernelError:
            self.remove()
            self._signals.release()
            raise
        except OSError as e:
            self.remove()
            self._signals.release()
            raise KernelError(e.errno or errno.EIO, f"cannot set up cgroup {self.path}: {e.strerror}") from e
        except BaseException:
            self.remove()
            self._signals.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._signals.removing(self.remove)

    @property
    def procs_files(self) -> list[Path]:
        files = [self.path / "cgroup.procs"]
        if self.v2_path is not None:
            files.append(self.v2_path / "cgroup.procs")
        return files

    def run(self, argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the cgroup(s); the process moves itself in before running the workload."""
        child = spawn_in_cgroups(self.procs_files, argv, **popen)
        self._children.append(child)
        return child

    def child(self, name: str, *, limit_bytes: int | None = None, v2: bool = False) -> Path:
        """Create a nested v1 memcg ``name`` (removed with this one, first); returns its directory. ``v2=True``
        also creates ``name`` under the v2 twin (for its own ``memory.pressure``)."""
        d = self.path / name
        try:
            d.mkdir()
            self._created.append(d)
            if limit_bytes is not None:
                (d / "memory.limit_in_bytes").write_text(str(limit_bytes))
            if v2 and self.v2_path is not None:
                (self.v2_path / name).mkdir()
                self._created.append(self.v2_path / name)
        except OSError as e:
            raise KernelError(e.errno or errno.EIO, f"cannot set up cgroup {d}: {e.strerror}") from e
        return d

    def run_in(self, directory: Path, argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the nested memcg ``directory`` (see :meth:`child`), and in its v2 twin if any."""
        files = [directory / "cgroup.procs"]
        if self.v2_path is not None and directory.parent == self.path:
            twin = self.v2_path / directory.name / "cgroup.procs"
            if twin.exists():
                files.append(twin)
        child = spawn_in_cgroups(files, argv, **popen)
        self._children.append(child)
        return child

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for d in self._created:
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in read_text(d / "cgroup.procs").split())
        return sorted(pids)

    def stat(self) -> Mapping[str, int]:
        return parse_flat_keyed(read_text(self.path / "memory.stat"), source=str(self.path / "memory.stat"))

    def remove(self, *, timeout_s: float = 20.0) -> None:
        """Kill what is inside, reap our children, remove the directories (idempotent)."""
        deadline = time.monotonic() + timeout_s
        while self._created:
            for pid in self.pids():
                with contextlib.suppress(AccessDeniedError):
                    send_signal(pid, signal.SIGKILL)
            for child in self._children:
                if child.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(timeout=max(0.1, deadline - time.monotonic()))
            remove_cgroups(self._created, deadline)
            if self._created:
                time.sleep(0.02)  # the kernel releases a killed task's cgroup reference asynchronously
        self._children.clear()
