"""Where the live readers look — injectable ``/proc``, ``/sys``, debugfs — and how they read.

Every reader in ``memsched.live`` takes a :class:`LiveRoots` so that tests feed committed fixture trees
(``tests/fixtures/live/...``) and a user can point the tools at a copied ``/proc`` or a container's view.
Reading goes through :func:`read_text`, which turns ``OSError`` into the project's errors with the path and the
reason in the message (psutil's ``_pslinux`` pattern): a file that must exist and is missing is a
:class:`~memsched.errors.KernelError`, never a silent 0. Every read is bounded and takes only regular files
(:func:`memsched.kfile.read_kernel_file`); given the roots, a read inside a copied tree also refuses a symlink
that leads out of it (:meth:`LiveRoots.tree_of`). Files of a process are read by
:func:`memsched.live.procfs.read_process_file` instead, where ``ENOENT`` means the process is gone; the formats
themselves are parsed in :mod:`memsched.live.procfs`.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from memsched.errors import ConfigError, KernelError, KernelFileError
from memsched.kfile import decode_kernel_text, read_kernel_file

__all__ = ["LiveRoots", "read_text", "try_read_text"]


def _root(field: str, value: object) -> Path:
    """A root given as ``str`` or ``os.PathLike`` as a :class:`Path`; anything else is a :class:`ConfigError`."""
    path = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(path, str) or not path:  # None, a number, a bytes path, ""
        raise ConfigError(field, value, "must be a directory path (a non-empty str or os.PathLike of str)")
    return Path(path)


@dataclass(frozen=True, slots=True, init=False)
class LiveRoots:
    """The kernel's file systems as seen by the live readers.

    Each root is a path (``str`` or ``os.PathLike``, kept as a :class:`Path`); ``debugfs_root`` defaults to
    ``<sys_root>/kernel/debug`` (where debugfs is usually mounted). A root of another type is refused here,
    with a :class:`~memsched.errors.ConfigError` naming it, not by the first reader that uses it.
    """

    proc_root: Path
    sys_root: Path
    debugfs_root: Path | None

    def __init__(
        self,
        proc_root: str | os.PathLike[str] = "/proc",
        sys_root: str | os.PathLike[str] = "/sys",
        debugfs_root: str | os.PathLike[str] | None = None,
    ) -> None:
        object.__setattr__(self, "proc_root", _root("proc_root", proc_root))
        object.__setattr__(self, "sys_root", _root("sys_root", sys_root))
        debugfs = None if debugfs_root is None else _root("debugfs_root", debugfs_root)
        object.__setattr__(self, "debugfs_root", debugfs)

    def proc(self, *parts: str | int) -> Path:
        return self.proc_root.joinpath(*map(str, parts))

    def sys(self, *parts: str | int) -> Path:
        return self.sys_root.joinpath(*map(str, parts))

    def debugfs(self, *parts: str | int) -> Path:
        return self._debugfs_root().joinpath(*map(str, parts))

    def _debugfs_root(self) -> Path:
        return self.debugfs_root if self.debugfs_root is not None else self.sys_root / "kernel" / "debug"

    def tree_of(self, path: Path) -> Path | None:
        """The copied tree ``path`` lies in (a root other than the real ``/proc``, ``/sys`` or debugfs), whose
        symlinks must not lead outside it; ``None`` for the real file systems and for paths under no root."""
        trees = ((self._debugfs_root(), "/sys/kernel/debug"), (self.proc_root, "/proc"), (self.sys_root, "/sys"))
        for root, real in trees:
            if path.is_relative_to(root):
                return None if root == Path(real) else root
        return None

    def read_bytes(self, path: Path) -> bytes:
        """``path``'s bytes through :func:`memsched.kfile.read_kernel_file`, confined to its tree."""
        return read_kernel_file(path, root=self.tree_of(path))


def read_text(path: Path, roots: LiveRoots | None = None) -> str:
    """The whole file (bounded, regular files only; with ``roots``, confined to its copied tree); ``OSError``
    becomes a :class:`KernelError` naming the path and the reason."""
    try:
        return decode_kernel_text((roots or _REAL).read_bytes(path))
    except OSError as e:
        if isinstance(e, KernelError):
            raise
        code = e.errno if e.errno is not None else errno.EIO
        raise KernelError(code, f"cannot read {path}: {os.strerror(code)}") from e


def try_read_text(path: Path, roots: LiveRoots | None = None) -> tuple[str | None, str]:
    """``(text, "")`` or ``(None, reason)``: for optional files whose absence is an answer, not an error. A
    file refused by :func:`read_text`'s bounds is such an answer too, with the refusal as the reason."""
    try:
        return decode_kernel_text((roots or _REAL).read_bytes(path)), ""
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except KernelFileError as e:
        return None, f"reading {e}"
    except OSError as e:
        code = e.errno if e.errno is not None else errno.EIO
        return None, f"reading {path} failed: {os.strerror(code)}"


#: The real file systems: paths read without roots are read unconfined (still bounded).
_REAL = LiveRoots()
