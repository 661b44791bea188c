"""The pressure daemon's listening socket: created so that no path is trusted after it is made.

The daemon usually runs as root and the socket's directory may be writable by other users (a group-writable
``/run/app``, a sticky ``/tmp``). Anything done *by path* after creating a file there can be redirected: the
first version bound the socket in a private ``.memsched-XXXX`` directory and then ``chmod``/``chown``\\ ed
``<dir>/.memsched-XXXX/s``; a user who could rename entries in ``<dir>`` swapped the private directory for a
symlink between the ``bind()`` and the ``chmod()`` (inotify + ``renameat2(RENAME_EXCHANGE)``), and the root
daemon changed the mode or group of any file on the system. So:

* the socket's directory is opened once (``O_PATH | O_DIRECTORY``) and every later name is looked up relative
  to that descriptor; a directory that others may write to and that is not sticky is refused outright
  (anyone could replace the socket there);
* the private directory is created (``mkdirat``, 0700) and opened with ``O_NOFOLLOW``, and must be owned by
  us: from then on it is reached through its descriptor only (``bind()`` to ``/proc/self/fd/<dir>/s``);
* the socket file is opened ``O_PATH | O_NOFOLLOW``, checked to be a socket, and its mode and group are set
  through that descriptor (``chmod``/``chown`` of ``/proc/self/fd/<fd>``, systemd's ``fchmod_opath()`` in
  src/basic/fs-util.c: ``fchmod()`` on the socket's own descriptor would change the socket inode, not the
  file), then it is renamed into place with ``renameat(dirfd, "s", parentfd, name)``;
* removal at exit (``unlinkat``) happens only if the name still holds the inode we created.

An existing socket is probed with a non-blocking ``connect()``: refused means stale (replaced), accepted or
``EAGAIN`` (a full backlog, which used to hang the probe) means a live daemon (``EADDRINUSE``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket
import stat
from pathlib import Path

from memsched.errors import ConfigError, KernelError

__all__ = ["ListeningSocket", "check_directory_mode"]

log = logging.getLogger(__name__)

_PRIVATE = 0o700
#: Why ``mkdirat`` in the socket's directory fails when that directory is the wrong place for a socket
#: (``EROFS``: a read-only mount; ``ENOENT``: ``/proc``; ``EPERM``/``EACCES``: ``/sys``, or no permission),
#: as opposed to a system short of something (``ENOSPC``, ``EDQUOT``, ``EMLINK``), which stays a KernelError.
_NOT_WRITABLE = frozenset({errno.EROFS, errno.ENOENT, errno.EPERM, errno.EACCES})


def _fd_path(fd: int, name: str = "") -> str:
    return f"/proc/self/fd/{fd}" + (f"/{name}" if name else "")


def _kernel_error(e: OSError, what: str) -> KernelError:
    code = e.errno or errno.EIO
    return KernelError(code, f"{what}: {os.strerror(code)}")


def check_directory_mode(st: os.stat_result, path: Path) -> None:
    """Refuse a socket directory that others may write to and that is not sticky."""
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise ConfigError(
            "--socket", str(path),
            f"is in a directory anyone may write to (mode {stat.S_IMODE(st.st_mode):04o}, not sticky): another "
            "user could replace the socket; use a directory only the daemon's user may write to",
        )  # fmt: skip


class ListeningSocket:
    """The bound, listening socket at ``path`` (``open()``; ``close()`` removes it if it is still ours)."""

    def __init__(self, path: Path, *, mode: int, group: int | None, backlog: int = 128) -> None:
        self.path = path
        self.mode = mode
        self.group = group
        self.backlog = backlog
        self.sock: socket.socket | None = None
        self.made_dir: Path | None = None
        self._dir_fd = -1
        self._ino: int | None = None

    # -- the directory ----------------------------------------------------------------------------------
    def _open_directory(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            try:
                parent.mkdir(mode=0o755)
            except OSError as e:
                why = f"needs a directory that can be created ({e.strerror})"
                raise ConfigError("--socket", str(self.path), why) from e
            self.made_dir = parent
        try:
            self._dir_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError("--socket", str(self.path), f"must be in a directory ({e.strerror})") from None
        check_directory_mode(os.fstat(self._dir_fd), parent)

    def _probe_existing(self) -> None:
        name = self.path.name
        try:
            st = os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError("--socket", str(self.path), "exists and is not a socket (refusing to replace it)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            code = probe.connect_ex(_fd_path(self._dir_fd, name))
        finally:
            probe.close()
        if code in (errno.ECONNREFUSED, errno.ENOENT):
            log.info("replacing stale socket %s", self.path)
            return
        busy = " (its backlog is full)" if code in (errno.EAGAIN, errno.EINPROGRESS) else ""
        if code in (0, errno.EAGAIN, errno.EINPROGRESS):
            raise KernelError(errno.EADDRINUSE, f"another daemon is already serving on {self.path}{busy}")
        raise KernelError(code, f"cannot probe the existing socket {self.path}: {os.strerror(code)}")

    # -- creation ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Open the directory and probe an existing socket (every check, nothing created but the folder)."""
        try:
            self._open_directory()
            self._probe_existing()
        except BaseException:
            self.close()
            raise

    def bind(self) -> socket.socket:
        """Create, secure and publish the listening socket (after :meth:`prepare`)."""
        try:
            self.sock = self._bind()
        except BaseException:
            self.close()
            raise
        return self.sock

    def _bind(self) -> socket.socket:
        private = f".memsched-{secrets.token_hex(8)}"
        try:
            os.mkdir(private, _PRIVATE, dir_fd=self._dir_fd)
        except OSError as e:
            if e.errno in _NOT_WRITABLE:  # the user's path: a read-only mount, /proc, /sys, no permission
                why = f"must be in a writable directory (no directory can be created there: {e.strerror})"
                raise ConfigError("--socket", str(self.path), why) from None
            raise _kernel_error(e, f"cannot create a private directory in {self.path.parent}") from e
        try:
            return self._bind_in(private)
        finally:
            try:
                os.rmdir(private, dir_fd=self._dir_fd)
            except OSError as e:  # someone renamed it (or replaced it): we never follow it, but say so
                log.warning("could not remove %s/%s: %s", self.path.parent, private, os.strerror(e.errno or 0))

    def _bind_in(self, private: str) -> socket.socket:
        flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            dfd = os.open(private, flags, dir_fd=self._dir_fd)
        except OSError as e:
            raise _kernel_error(e, f"the private directory {private} was replaced before it could be opened") from e
        try:
            st = os.fstat(dfd)
            if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != _PRIVATE:
                raise KernelError(errno.EPERM, f"the private directory {private} in {self.path.parent} was replaced")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(_fd_path(dfd, "s"))
                self._set_permissions(dfd)
                sock.listen(self.backlog)
                sock.setblocking(False)
                os.rename("s", self.path.name, src_dir_fd=dfd, dst_dir_fd=self._dir_fd)
                self._ino = os.stat(self.path.name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino
            except BaseException:
                sock.close()
                with contextlib.suppress(OSError):
                    os.unlink("s", dir_fd=dfd)
                raise
        except OSError as e:
            if isinstance(e, KernelError):
                raise
            raise _kernel_error(e, f"cannot listen on {self.path}") from e
        finally:
            os.close(dfd)
        return sock

    def _set_permissions(self, dfd: int) -> None:
        """Mode and group of the socket file, through an ``O_PATH`` descriptor of that very file."""
        sfd = os.open("s", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            if not stat.S_ISSOCK(os.fstat(sfd).st_mode):
                raise KernelError(errno.EPERM, "the socket file was replaced before its permissions were set")
            os.chmod(_fd_path(sfd), self.mode)
            if self.group is not None:
                os.chown(_fd_path(sfd), -1, self.group)
        finally:
            os.close(sfd)

    # -- teardown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the socket; remove its file if the name still holds our inode; remove a directory we made."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._ino is not None and self._dir_fd >= 0:
            with contextlib.suppress(OSError):
                if os.stat(self.path.name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino == self._ino:
                    os.unlink(self.path.name, dir_fd=self._dir_fd)
            self._ino = None
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        if self.made_dir is not None:
            with contextlib.suppress(OSError):
                self.made_dir.rmdir()  # only if empty
            self.made_dir = None
