"""Input the command line used to accept and act on though it contradicts itself or cannot be meant: each is
refused with one line naming the option or file, the field, the value and what is allowed, exit status 2, before
anything is run or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsched.cli import main


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of ``memsched ARGV``, which must exit 2 and print nothing on stdout."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", (rc, out, err)
    assert err.count("\n") == 1 and err.startswith("memsched: error: "), err
    return err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["-p", "balancenuma", "--set", "scan_period_min_ms=6000"],
            "'scan_period_min_ms' must be <= scan_period_max_ms (5000) (got 6000)",
        ),
        (
            ["-p", "homenode", "--set", "scan_period_max_ms=50"],
            "'scan_period_min_ms' must be <= scan_period_max_ms (50) (got 100)",
        ),
        (
            ["-p", "mainline", "--set", "scan_period_min_ms=70000"],
            "'scan_period_min_ms' must be <= scan_period_max_ms (60000)",
        ),
        (
            ["-p", "mainline", "--set", "group_active_out=0.5"],
            "'group_active_out' must be <= group_active_in (0.375)",
        ),
        (
            ["-t", "laptop-1n8", "--set", "first_touch_node=1"],
            "'first_touch_node' must be -1 or a node of topology laptop-1n8 (0..0) (got 1)",
        ),
    ],
)
def test_numa_settings_that_contradict_each_other_are_refused(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scan period minimum above its maximum, an inverted active-set hysteresis, a first-touch node the machine
    does not have: refused, not run with one of them silently winning."""
    assert needle in refused(capsys, "run", "numa01", *argv)


def _rt_app(tmp_path: Path, text: str) -> str:
    path = tmp_path / "t.json"
    path.write_text(text)
    return str(path)


_LONG = "1" + "0" * 5000


def _timer(period: str) -> str:
    return '{"tasks": {"t": {"run": 100, "timer": {"ref": "a", "period": ' + period + "}}}}"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_timer("0"), "'tasks.t.timer.period' must be a number of microseconds > 0 (got 0)"),
        (_timer("-5"), "'tasks.t.timer.period' must be a number of microseconds > 0 (got -5)"),
        ('{"tasks": {"t": {"run": 100, "run": 200, "sleep": 100}}}', "(key 'run' appears twice in one object)"),
        (
            '{"tasks": {"t": {"run": ' + _LONG + ', "sleep": 100}}}',
            "'tasks.t.run' must be in 0..3600000000 microseconds (3600 s) (got a number of 5001 digits)",
        ),
        (
            '{"tasks": {"t": {"run": 100, "sleep": 100, "priority": -' + _LONG + "}}}",
            "'tasks.t.priority' must be in -20..19 (got a number of 5001 digits)",
        ),
    ],
)
def test_rt_app_files_that_cannot_be_meant_are_refused(
    text: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timer of period 0 (it was run as 1 ns), a key given twice (the parser kept the last), a 5000-digit
    number (Python's own message about sys.set_int_max_str_digits()): one line naming the key."""
    err = refused(capsys, "rt", "sim", "--rt-app", _rt_app(tmp_path, text))
    assert needle in err and "set_int_max_str_digits" not in err


_PRINTABLE = "must be a non-empty {} of printable characters (no control characters)"
_LAPTOP = Path(__file__).parents[3] / "src/memsched/data/topologies/laptop-1n8.toml"
_TINY = Path(__file__).parents[2] / "fixtures/pressure/tiny.toml"


@pytest.mark.parametrize("bad", ["", "a\tb", "a\nb", "red\x1b[31m", "rtl\u202eb"])
def test_names_with_control_characters_are_refused_where_they_are_loaded(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty name, or one with a tab, a newline, an escape sequence or a bidi override, in a topology, a
    pressure scenario, an rt-app thread or mutex, or a sweep: refused when the file is read, not printed raw
    later in a report."""
    topo = tmp_path / "topo.toml"
    topo.write_text(_LAPTOP.read_text().replace('name = "laptop-1n8"', f"name = {json.dumps(bad)}"))
    err = refused(capsys, "run", "numa02", "-t", str(topo))
    assert "'name' " + _PRINTABLE.format("name") in err
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(_TINY.read_text().replace('name = "tiny"', f"name = {json.dumps(bad)}"))
    assert "'name' " + _PRINTABLE.format("name") in refused(capsys, "pressure", "sim", str(scenario))
    thread = _rt_app(tmp_path, json.dumps({"tasks": {bad: {"run": 100, "sleep": 100}}}))
    assert _PRINTABLE.format("thread name") in refused(capsys, "rt", "sim", "--rt-app", thread)
    mutex = _rt_app(tmp_path, json.dumps({"tasks": {"t": {"lock": bad, "run": 100, "unlock": bad, "sleep": 100}}}))
    assert "'tasks.t.lock' " + _PRINTABLE.format("mutex name") in refused(capsys, "rt", "sim", "--rt-app", mutex)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'name = {json.dumps(bad)}\nworkloads = ["numa02"]\npolicies = ["none"]\ntopologies = ["laptop-1n8"]\n'
    )
    err = refused(capsys, "sweep", str(sweep), "--db", str(tmp_path / "db.duckdb"))
    assert "'name' " + _PRINTABLE.format("name") in err and not (tmp_path / "db.duckdb").exists()


def test_an_rt_app_file_name_with_control_characters_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rt-app file's path goes into the report as it is: a tab or an escape in it is refused."""
    path = tmp_path / "a\x1b[2Jb.json"
    path.write_text('{"tasks": {"t": {"run": 100, "sleep": 100}}}')
    assert "'--rt-app' " + _PRINTABLE.format("file name") in refused(capsys, "rt", "sim", "--rt-app", str(path))


def test_preempt_given_twice_with_different_models_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--preempt full with --set preempt=none: refused naming both (--preempt silently won); the same model
    twice is accepted."""
    err = refused(capsys, "rt", "sim", "grub", "--preempt", "full", "--set", "preempt=none")
    assert "'--set preempt' contradicts --preempt full" in err and "(got 'none')" in err


_READER = '\n[[service]]\nname = "cat"\nkind = "reader"\nchunk = "1MiB"\nsize = "8MiB"\n'


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            _READER + 'file = "streamr"\n',
            "'service.file' must name a streamer of this scenario (streamers: streamer) or be the path of a file",
        ),
        (_READER + 'memcg = "/../.."\n', "'service.memcg' must be a child cgroup path such as /cache (no empty"),
        (_READER + 'memcg = "/box/./x"\n', "(got '/box/./x')"),
        (_READER + 'memcg = "/box//x"\n', "(got '/box//x')"),
    ],
)
def test_pressure_scenario_services_that_cannot_be_meant_are_refused(
    extra: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reader of a file named like a service that does not exist (a typo ran as a file on disk), a memcg
    path that climbs out of the hierarchy or has empty or '.' components: refused before any design runs."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(_TINY.read_text() + extra)
    assert needle in refused(capsys, "pressure", "sim", str(scenario))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["rt", "sim", "grub", "--trace", ""], "Invalid value for '--trace': must name a file (got '')"),
        (["run", "numa02", "--trace", "-"], "Invalid value for '--trace': must be a file path, not - (stdout holds"),
        (["rt", "sim", "grub", "--trace", "-"], "(got '-')"),
        (["pressure", "sim", "--report", ""], "Invalid value for '--report': must name a file (got '')"),
        (["compare", "--workloads", "numa02", "--report", "-"], "Invalid value for '--report': must be a file path"),
    ],
)
def test_an_empty_or_dash_output_file_is_refused_as_given(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--trace '' was told as the directory '.', and --trace - wrote a file named '-' (stdout holds the report):
    both refused, showing the value given, and nothing written."""
    monkeypatch.chdir(tmp_path)
    assert needle in refused(capsys, *argv)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_range_to_infinity_is_refused_as_inf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """max = inf in a range was told as "got nan" (the grid's points): it is refused as the end it is."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        'workloads = ["numa02"]\npolicies = ["mainline"]\ntopologies = ["laptop-1n8"]\n'
        "[sets]\nscan_size_mb = {min = 1, max = inf, steps = 3}\n"
    )
    err = refused(capsys, "sweep", str(sweep), "--db", str(tmp_path / "db.duckdb"), "--dry-run")
    assert "'sets.scan_size_mb.max' must be a finite number" in err and err.endswith("(got inf)\n")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["pressure", "sim", "--designs", "psi,psi"], "'--designs' names 'psi' twice (got 'psi,psi')"),
        (["pressure", "act-sim", "--policies", "lmkd,lmkd"], "'--policies' names 'lmkd' twice (got 'lmkd,lmkd')"),
        (["pressure", "act-sim", "--policies", "lmkd,lmkd-v1"], "'--policies' names lmkd-v1 twice (lmkd and lmkd-v1)"),
    ],
)
def test_a_comma_list_that_names_something_twice_is_refused(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A design or an action policy given twice was run, and reported, twice."""
    assert needle in refused(capsys, *argv)


@pytest.mark.parametrize("value", ["", "/tmp/"])
def test_pressure_serve_names_an_empty_socket_path(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--socket '' failed at bind() with status 1 ("cannot listen on ."), naming no option: now status 2 naming
    --socket and the value given."""
    err = refused(capsys, "pressure", "serve", "--socket", value)
    assert "Invalid value for '--socket': must name a socket file" in err and f"(got {value!r})" in err
