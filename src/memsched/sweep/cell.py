"""A sweep cell and the one function every executor runs on it.

A :class:`Cell` is a :class:`~memsched.workloads.runspec.RunSpec` plus what the results database needs to know
about it: its key and its identity document. The key is the first 32 hex digits (128 bits) of the SHA-256 of
the cell's full description — the machine as :meth:`Topology.to_mapping` gives it (so a preset, a file and a
generated member are told apart by content, not name), workload, policy and its version, seed, ``--set``
values, role, base, label, run options — and :data:`~memsched.record.MODEL_VERSION`: the same cell under the
same model always has the same key, and a rerun skips it.

:func:`run_cell` is the cell function of the local pool and of Ray alike: it writes a file or generated topology
where the run can load it, calls :func:`~memsched.workloads.runner.run_one`, and returns an
:class:`~memsched.results.Outcome` with the record (or the error: a failing cell does not stop a sweep), the wall
time, the host and the process. The record does not depend on where it ran, so both executors give the same
bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memsched.record import MODEL_VERSION
from memsched.results.store import Outcome
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["Cell", "cell_key", "run_cell", "serve", "topology_file"]

_TOPOLOGY_FILES: dict[str, str] = {}


@dataclass(frozen=True)
class Cell:
    """One run of a sweep. ``doc`` is its identity as the results database stores it (``family``, ``workload``,
    ``policy``, ``policy_version``, ``label``, ``role``, ``base``, ``topology``, ``topology_family``,
    ``topology_params``, ``seed``, ``sets``, ``options``, ``model_version``); ``topology_toml`` the text of a file
    or generated topology, which the worker writes where ``run_one`` can load it."""

    key: str
    spec: RunSpec
    doc: dict[str, Any]
    topology_toml: str | None = None


def cell_key(description: dict[str, Any]) -> str:
    """The key of a cell: SHA-256 (first 32 hex digits) of its canonical description."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def run_cell(cell: Cell) -> Outcome:
    """Simulate one cell; never raises for a failing run (the error is the outcome)."""
    start = time.perf_counter()
    record, error = None, None
    try:
        if cell.doc.get("model_version") != MODEL_VERSION:
            raise RuntimeError(
                f"this worker runs model {MODEL_VERSION}, the sweep was planned with {cell.doc.get('model_version')}"
            )
        spec = cell.spec
        if cell.topology_toml is not None:
            spec = dataclasses.replace(spec, topology=topology_file(cell.topology_toml))
        record = run_one(spec)
    except Exception as e:  # a failing cell is recorded with its error and the sweep goes on
        error = f"{type(e).__name__}: {e}"
    return Outcome(
        key=cell.key,
        cell=cell.doc,
        record=record,
        error=error,
        wall_s=time.perf_counter() - start,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def topology_file(text: str) -> str:
    """A file holding ``text``, named by its hash, in this user's temporary folder (written once per host)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = _TOPOLOGY_FILES.get(digest)
    if path is not None and Path(path).is_file():
        return path
    folder = _private_folder()
    target = folder / f"{digest}.toml"
    if not target.is_file() or target.read_text() != text:
        tmp = folder / f".{digest}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target)
    _TOPOLOGY_FILES[digest] = str(target)
    return str(target)


_PRIVATE: list[Path] = []


def _private_folder() -> Path:
    """This user's ``memsched-topologies-UID`` in the temporary folder, shared by the workers of one host, if it
    is this user's own directory that nobody else may write (a name in a world-writable /tmp can be made first
    by anyone: a sweep would then write, and read back, topologies in a directory another user controls);
    otherwise a private directory of this process."""
    if _PRIVATE:
        return _PRIVATE[0]
    folder = Path(tempfile.gettempdir()) / f"memsched-topologies-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
        ours = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022
    except OSError:
        ours = False
    if not ours:
        folder = Path(tempfile.mkdtemp(prefix="memsched-topologies-"))
    _PRIVATE.append(folder)
    return folder


def serve(conn: Connection) -> None:
    """A local pool worker: run each cell received on ``conn`` and send its outcome back, until ``None`` or the
    parent goes away. Ctrl-C is the parent's to handle (it ends the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            cell = conn.recv()
        except (EOFError, OSError):
            return
        if cell is None:
            return
        try:
            conn.send(run_cell(cell))
        except OSError:
            return
