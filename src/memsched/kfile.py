"""Bounded reads of kernel files: ``/proc`` and ``/sys``, and the copies of them a user points memsched at.

Every ``/proc`` or ``/sys`` file memsched reads, in ``memsched.live`` and in
:func:`memsched.topology.sysfs.topology_from_sysfs`, goes through :func:`read_kernel_file`, because the same
readers also read trees a user gives (``--proc-root``/``--sys-root``, a :class:`~memsched.live.roots.LiveRoots`),
and such a tree may hold anything: a FIFO (reading it would wait forever), ``/dev/zero`` (endless), a sparse
4 GiB file, a symlink to ``/etc/shadow`` or to the real ``/proc/1``. So a read:

* opens with ``O_NONBLOCK`` (opening a FIFO for reading would otherwise wait for a writer) and accepts only a
  regular file, checked with ``fstat`` on the open descriptor: procfs and sysfs files are regular files
  (``S_IFREG``, though ``st_size`` is 0 in procfs and 4096 in sysfs, so the size is not known before reading);
* reads in chunks and stops one byte past a cap (:func:`read_limit`), never taking the whole file first;
* inside a copied tree (``root`` given), resolves the path and refuses it if a symlink leads outside the tree.
  The real ``/proc`` and ``/sys`` are read without that check: their own links (``/proc/self``, sysfs's
  ``device`` links) are the kernel's.

Anything refused is a :class:`~memsched.errors.KernelFileError` naming the file (exit status 2: the input's
fault); an ``OSError`` of ``open``/``read`` itself (no such file, permission denied, the process exited) is left
to the caller, which knows what it means for that file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from memsched.errors import KernelFileError

__all__ = [
    "MAX_KERNEL_FILE_BYTES",
    "MAX_LISTING_BYTES",
    "decode_kernel_text",
    "file_kind",
    "open_kernel_file",
    "pread_kernel_file",
    "read_kernel_file",
    "read_limit",
]

#: The cap of an ordinary kernel file (the design's limit for input files). A sysfs attribute is at most a page
#: (``sysfs_kf_seq_show``, fs/sysfs/file.c); ``/proc/vmstat``, ``meminfo``, ``stat``, ``status`` are a few KiB.
MAX_KERNEL_FILE_BYTES = 1 << 20

#: The cap of the files that grow with one line per VMA, mount, pid, or interrupt and CPU (:data:`_LISTINGS`).
#: ``numa_maps`` and ``maps``: ``vm.max_map_count`` allows 65,530 VMAs by default; a line is about 100 bytes
#: plus the mapped file's path (escaped; commonly under 200 bytes), about 20 MiB for such a process, so 64 MiB
#: leaves room for long paths. ``cgroup.procs``/``tasks``: ``pid_max`` is at most 4,194,304, 8 bytes a line,
#: 32 MiB. ``/proc/interrupts``: 11 bytes per CPU and interrupt line, 8 MiB for 1,024 CPUs and 700 lines.
MAX_LISTING_BYTES = 64 << 20

#: Names of the kernel files capped by :data:`MAX_LISTING_BYTES` instead of :data:`MAX_KERNEL_FILE_BYTES`.
_LISTINGS = frozenset(
    {"numa_maps", "maps", "smaps", "mountinfo", "mounts", "interrupts", "softirqs", "cgroup.procs", "cgroup.threads",
     "tasks"}
)

_CHUNK = 1 << 16

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_limit(path: Path) -> int:
    """The most bytes :func:`read_kernel_file` reads of ``path`` (by its name: see :data:`MAX_LISTING_BYTES`)."""
    return MAX_LISTING_BYTES if path.name in _LISTINGS else MAX_KERNEL_FILE_BYTES


def file_kind(mode: int) -> str:
    """What ``st_mode`` is, for a message: ``a FIFO``, ``a character device``, ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _confined(path: Path, root: Path) -> Path:
    """``path`` with every symlink resolved, or :class:`KernelFileError` if that leads outside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise KernelFileError(path, f"a symlink leads outside the tree {root} (to {real}): refused")
    return Path(real)


def open_kernel_file(path: Path, *, root: Path | None = None) -> int:
    """A descriptor of kernel file ``path``, opened ``O_NONBLOCK`` and checked to be a regular file (confined to
    the tree ``root`` when given), for readers that keep it open and ``pread`` it again (:func:`pread_kernel_file`).
    Refusals are :class:`KernelFileError`; ``OSError`` of ``open`` propagates."""
    target = _confined(path, root) if root is not None else path
    # O_NOFOLLOW: the resolved path must not turn into a symlink between the check and the open.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if root is not None else 0)
    fd = os.open(target, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KernelFileError(path, f"must be a regular file, as the kernel's are (it is {file_kind(mode)})")
    except BaseException:
        os.close(fd)
        raise
    return fd


def pread_kernel_file(fd: int, path: Path, *, limit: int | None = None) -> bytes:
    """The contents of the kernel file open on ``fd`` from offset 0 (``pread``: the file position is left alone),
    at most ``limit`` bytes (default :func:`read_limit` of ``path``, which messages name); more is a
    :class:`KernelFileError`."""
    return _read_capped(lambda n, offset: os.pread(fd, n, offset), path, limit)


def read_kernel_file(path: Path, *, root: Path | None = None, limit: int | None = None) -> bytes:
    """The bytes of kernel file ``path``, at most ``limit`` (default :func:`read_limit`).

    ``root``: the copied tree ``path`` belongs to; a symlink on the way that leaves it is refused. Refusals
    (outside the tree, not a regular file, larger than ``limit``) are :class:`KernelFileError`; ``OSError`` of
    ``open`` and ``read`` propagates.
    """
    fd = open_kernel_file(path, root=root)
    try:
        return _read_capped(lambda n, offset: os.read(fd, n), path, limit)
    finally:
        os.close(fd)


def _read_capped(read: Callable[[int, int], bytes], path: Path, limit: int | None) -> bytes:
    """Chunks from ``read(size, offset)`` until end of file, stopping one byte past the cap."""
    cap = read_limit(path) if limit is None else limit
    chunks = []
    size = 0
    while size <= cap:
        chunk = read(min(_CHUNK, cap + 1 - size), size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > cap:
        raise KernelFileError(path, f"is larger than {cap >> 20} MiB, more than the kernel writes there")
    return b"".join(chunks)


def decode_kernel_text(data: bytes) -> str:
    """A kernel file's text. ``surrogateescape``, as ``os.fsdecode``: the kernel prints names as raw bytes
    (``comm``, mapped files' and mount points' paths), which need not be UTF-8 and must reach the OS again
    unchanged; a bad byte where a number belongs becomes a character no number parses, so the parser names the
    file (never a ``UnicodeDecodeError``)."""
    return data.decode("utf-8", "surrogateescape")
