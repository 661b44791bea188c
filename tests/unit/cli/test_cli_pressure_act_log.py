"""`memsched pressure act --log`: opened without blocking, so a FIFO nobody reads is refused at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memsched.cli.pressure_act import _open_log
from memsched.errors import ConfigError


def test_a_fifo_with_no_reader_is_refused_at_once(tmp_path: Path) -> None:
    """It used to block in open() before the run began, deaf to --duration and to SIGTERM's clean exit."""
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"'--log' cannot be opened for appending \(a FIFO with no reader\)"):
        _open_log(fifo)


def test_a_fifo_with_a_reader_and_a_file_are_written(tmp_path: Path) -> None:
    """With a reader the FIFO gets the lines (writes block as usual); a file is created, then appended to."""
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        out = _open_log(fifo)
        assert os.get_blocking(out.fileno())
        out.write('{"pid": 1}\n')
        out.close()
        assert os.read(reader, 100) == b'{"pid": 1}\n'
    finally:
        os.close(reader)
    log = tmp_path / "act.jsonl"
    for line in ("a\n", "b\n"):
        with _open_log(log) as out:
            out.write(line)
    assert log.read_text() == "a\nb\n"
    with pytest.raises(ConfigError, match="cannot be opened for appending"):
        _open_log(tmp_path)  # a directory
