"""memsched pressure watch/serve: bad input is one line and exit 2; watch --json streams JSON Lines."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from memsched.cli import main


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["pressure", "watch", "--level", "dire"], "'--level'"),
        (["pressure", "watch", "--duration", "0s"], "'--duration'"),
        (["pressure", "watch", "--duration", "5"], "'--duration'"),
        (["pressure", "watch", "--backend", "vmevent"], "'backend'"),
        (["pressure", "watch", "--set", "psi_low=some 1s"], "'psi_low'"),
        (["pressure", "watch", "--set", "nosuch=1"], "'nosuch'"),
        (["pressure", "serve", "--mode", "999"], "'--mode'"),
        (["pressure", "serve", "--mode", "01777"], "'--mode'"),
        (["pressure", "serve", "--group", "no-such-group-xyz"], "'--group'"),
        (["pressure", "serve", "--max-clients", "0"], "'--max-clients'"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], field: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad value is refused before any work, naming the option, with nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("memsched: error: ") and field in err


def _inject_later(fifo: Path, text: str, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, text.encode())
        os.close(fd)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def test_watch_json_is_json_lines_with_the_backend_report_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One sorted JSON object per event at or above --level; stderr names the backend and the others."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    t = _inject_later(fifo, "low medium critical\n", 0.3)
    argv = ["pressure", "watch", "--json", "--backend", "fifo", "--set", f"fifo_path={fifo}", "--level", "medium"]
    assert main([*argv, "--duration", "1500ms"]) == 0
    t.join()
    out, err = capsys.readouterr()
    lines = out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["level"] for e in events] == ["medium", "oom"]
    assert all(line == json.dumps(json.loads(line), sort_keys=True) for line in lines)
    assert events[1]["level_value"] == 1 << 30 and events[1]["backend"] == "fifo"
    assert events[0]["source"]["path"] == str(fifo) and events[0]["time"].endswith("Z")
    assert err.startswith("memsched: backend fifo: events written to") and "not memcg-v1:" in err


def test_watch_without_a_terminal_prints_one_line_per_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Piped without --json: a plain line per event (no live view), the report on stderr."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    t = _inject_later(fifo, "oom\n", 0.3)
    assert main(["pressure", "watch", "--backend", "fifo", "--set", f"fifo_path={fifo}", "--duration", "1s"]) == 0
    t.join()
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and " OOM " in out
    assert "backend fifo" in err


def test_watch_ends_with_a_clear_error_when_the_source_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A source that disappears ends watch with exit status 1 and one error line, before --duration."""
    path = tmp_path / "events"
    path.write_text("")

    def remove() -> None:
        time.sleep(0.3)
        path.unlink()

    threading.Thread(target=remove, daemon=True).start()
    start = time.monotonic()
    assert main(["pressure", "watch", "--json", "--backend", "fifo", "--set", f"fifo_path={path}", "-d", "60s"]) == 1
    assert time.monotonic() - start < 30
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == f"memsched: error: fifo: {path} was deleted"


def test_the_systemd_unit_runs_serve_with_options_it_accepts() -> None:
    """contrib/memsched-pressure.service starts `memsched pressure serve` with only options serve knows."""
    import shlex

    import typer.main

    from memsched.cli.pressure_live import serve

    unit = Path(__file__).resolve().parents[3] / "contrib" / "memsched-pressure.service"
    lines = dict(
        line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    argv = shlex.split(lines["ExecStart"])
    assert argv[0].endswith("memsched") and argv[1:3] == ["pressure", "serve"]
    params = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=serve), pretty_exceptions_short=False, rich_markup_mode=None
    ).params
    known = {opt for p in params for opt in p.opts}
    assert {a for a in argv[3:] if a.startswith("--")} <= known
    assert lines["RuntimeDirectory"] == "memsched" and "/run/memsched/pressure.sock" in argv


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_watch_refuses_a_cgroup_outside_the_hierarchies(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cgroup with '..' out of the hierarchy, or a plain directory holding the files of a memcg, is exit 2
    before any registration: the fake cgroup.event_control stays empty (review 2, item 2)."""
    from helpers.live_fixtures import cgroup_outside_the_hierarchies

    fake, spec = cgroup_outside_the_hierarchies(tmp_path, how)
    assert main(["pressure", "watch", "--backend", "memcg-v1", "--cgroup", spec, "--duration", "1s"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "'--cgroup' must be a cgroup inside a mounted" in err, err
    assert (fake / "cgroup.event_control").read_text() == ""


@pytest.mark.parametrize("kind", ["passwd", "nul bytes", "dev-zero", "directory"])
def test_a_bad_memory_pressure_watch_is_one_short_line(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """$MEMORY_PRESSURE_WATCH naming no PSI file, FIFO or socket: exit 2, one line naming it, at most a short
    escaped excerpt of what it holds (the contents were printed whole: a 20 KB line of NULs)."""
    watch = tmp_path / "watch"
    if kind == "passwd":
        watch.write_text("root:x:0:0:" + "A" * 100 + "TOPSECRET:/root:/bin/bash\nme:x:1000:1000::/home/me:/bin/sh\n")
    elif kind == "nul bytes":
        watch.write_bytes(b"\0" * 20_000)
    elif kind == "dev-zero":
        watch.symlink_to("/dev/zero")
    else:
        watch.mkdir()
    before = watch.read_bytes() if watch.is_file() else None
    monkeypatch.setenv("MEMORY_PRESSURE_WATCH", str(watch))
    assert main(["pressure", "watch", "--backend", "psi", "--duration", "1s"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("memsched: error: ") and str(watch) in err
    assert "TOPSECRET" not in err and "\\x00" * 20 not in err and "\0" not in err and len(err) < 300, err
    assert watch.is_symlink() or before is None or watch.read_bytes() == before  # no trigger written into it


@pytest.mark.parametrize("path", ["/dev/zero", "DIR"])
def test_a_fifo_path_that_is_no_fifo_socket_or_file_exits_2(
    path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--set fifo_path= naming a device or a directory is a bad --set value: exit 2 naming fifo_path (was 1)."""
    path = str(tmp_path) if path == "DIR" else path
    assert main(["pressure", "watch", "--backend", "fifo", "--set", f"fifo_path={path}", "--duration", "1s"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "'fifo_path' must be a FIFO, a socket or a regular file" in err
