"""``memsched sweep``, ``memsched results`` and ``memsched tune`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from helpers.sweeps import write_spec
from memsched.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tests' 12-cell spec, swept once into a database (with a report)."""
    folder = tmp_path_factory.mktemp("swept")
    spec = write_spec(folder)
    rc = main(["sweep", str(spec), "--db", str(folder / "r.duckdb"), "--jobs", "2", "--report",
               str(folder / "r.html"), "--json"])  # fmt: skip
    assert rc == 0
    return spec, folder / "r.duckdb"


def test_dry_run_counts_cells_and_estimates_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run prints the cells and an estimated wall time priced from the rates file; no database appears."""
    spec = write_spec(tmp_path)
    rc, out, err = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"), "--dry-run", "--jobs", "2")
    assert rc == 0 and err == ""
    assert "12 cells, 0 already in" in out and "12 to run on local x2" in out and "estimated wall time" in out
    assert not (tmp_path / "r.duckdb").exists()
    rc, out, _ = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"), "--dry-run", "--json")
    doc = json.loads(out)
    assert doc["to_run"] == 12 and doc["estimate_s"] > 0 and sum(doc["priced_from"].values()) == 12


def test_dry_run_after_a_sweep_prices_from_the_database(swept: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Cells already in the database are not counted; the rest are priced from its measured wall times."""
    spec, db = swept
    rc, out, _ = run(capsys, "sweep", str(spec), "--db", str(db), "--dry-run", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert (doc["cells"], doc["done"], doc["to_run"]) == (12, 12, 0)
    other = write_spec(db.parent, "seeds = [7]\nworkloads = ['numa02']\npolicies = ['none']\n"
                                  "topologies = ['laptop-1n8']\n", "other.toml")  # fmt: skip
    doc = json.loads(run(capsys, "sweep", str(other), "--db", str(db), "--dry-run", "--json")[1])
    assert doc["priced_from"] == {"this database": 1}


def test_sweep_summary_and_report(swept: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun skips every cell; the report has each section the issue asks for."""
    spec, db = swept
    rc, out, _ = run(capsys, "sweep", str(spec), "--db", str(db), "--json")
    assert rc == 0
    doc = json.loads(out)
    assert (doc["cells"], doc["skipped"], doc["ran"], doc["failed"]) == (12, 12, 0, 0)
    page = (db.parent / "r.html").read_text()
    for heading in ("Speed-up against each swept knob", "Two knobs at a time", "Winner per topology family",
                    "Which knobs matter"):  # fmt: skip
        assert heading in page
    assert page.count("<img") >= 1 and "set_scan_size_mb" in page


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("workloads = ['numa02']\npolicies = ['none']\ntopologies = ['laptop-1n8']\nseeds = -1\n", "'seeds'"),
        ("workloads = ['numa02'\n", "'SPEC'"),
        ("workloads = ['numa02']\npolicies = ['none']\ntopologies = ['laptop-1n8']\n[sets]\nscan_size_mb = [1]\n",
         "'sets.scan_size_mb'"),
    ],
)
def test_a_bad_spec_is_one_line_and_exit_2(text: str, where: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A spec mistake: one line naming the file (or the argument) and the field, exit 2, no database."""
    spec = write_spec(tmp_path, text)
    rc, out, err = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"))
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and where in err
    assert not (tmp_path / "r.duckdb").exists()


def test_results_show_export_query(swept: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """show lists the sweep; show --sweep groups its runs; export writes CSV or Parquet; query prints JSON."""
    _, db = swept
    rc, out, _ = run(capsys, "results", "show", "--db", str(db), "--json")
    assert rc == 0
    [row] = json.loads(out)
    assert (row["name"], row["cells"], row["ok"], row["missing"]) == ("fast", 12, 12, 0)
    rc, out, _ = run(capsys, "results", "show", "--db", str(db), "--sweep", "fast", "--json")
    groups = json.loads(out)
    assert len(groups) == 6 and {g["runs"] for g in groups} == {2}
    rc, _, err = run(capsys, "results", "export", "--db", str(db), "--csv", str(tmp_path / "r.csv"))
    assert rc == 0 and "wrote 12 runs" in err
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 13
    rc, _, _ = run(capsys, "results", "export", "--db", str(db), "--parquet", str(tmp_path / "r.parquet"))
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'r.parquet'}'").fetchall() == [(12,)]
    rc, out, _ = run(capsys, "results", "query", "SELECT policy, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1",
                     "--db", str(db), "--json")  # fmt: skip
    assert json.loads(out) == [{"policy": "mainline", "n": 8}, {"policy": "none", "n": 4}]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("results", "query", "SELECT nope FROM runs"), "'query'"),
        (("results", "export"), "'--csv/--parquet'"),
        (("results", "show", "--sweep", "nope"), "'--sweep'"),
        (("results", "export", "--csv", "x.csv", "--parquet", "x.pq"), "(got '--csv x.csv and --parquet x.pq')"),
        (("results", "query", "SELECT 1", "--json", "--csv"), "'--json/--csv' choose one of them"),
    ],
)
def test_results_bad_input(args: tuple[str, ...], where: str, swept: tuple[Path, Path],
                           capsys: pytest.CaptureFixture[str]) -> None:
    """A bad query, a missing format or an unknown sweep: one line, exit 2."""
    rc, out, err = run(capsys, *args, "--db", str(swept[1]))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and where in err


def test_results_export_never_writes_over_its_database(swept: tuple[Path, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`export --csv` onto the --db file (or its .wal) was written, and the database became a CSV file."""
    db = swept[1]
    before = db.read_bytes()
    for dest in (str(db), f"{db}.wal"):
        rc, out, err = run(capsys, "results", "export", "--db", str(db), "--csv", dest)
        assert rc == 2 and out == "" and "must not be the database it exports" in err, err
    assert db.read_bytes() == before


def test_results_query_prints_list_columns(swept: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A LIST column in the table (pandas holds it as a numpy array) was an internal error (pd.isna of an array);
    it prints as DuckDB writes a LIST."""
    sql = "SELECT list(DISTINCT policy ORDER BY policy) AS p, []::INT[] AS e FROM runs"
    rc, out, err = run(capsys, "results", "query", sql, "--db", str(swept[1]))
    assert rc == 0, err
    assert "[mainline, none]" in out and "[]" in out


def test_results_of_a_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reading a database that does not exist is bad input naming --db (and does not create it)."""
    rc, _, err = run(capsys, "results", "show", "--db", str(tmp_path / "none.duckdb"))
    assert rc == 2 and "'--db'" in err and not (tmp_path / "none.duckdb").exists()


@pytest.mark.slow
def test_tune_prints_settings_sysctls_and_held_out_gain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three trials of mainline on numa02: --set lines, the sysctl snippet, a held-out comparison; the same
    command again replays every cell from the database."""
    args = ("tune", "--policy", "mainline", "--workloads", "numa02", "--topology", "sandybridge-2n32", "--trials",
            "3", "--holdout-seeds", "100", "--knobs", "scan_size_mb,scan_period_min_ms,group_active_in", "--db",
            str(tmp_path / "t.duckdb"), "--jobs", "2")  # fmt: skip
    rc, out, _ = run(capsys, *args, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["trials"] == 3 and doc["best_value"] >= doc["default_value"] > 0
    assert set(doc["best_params"]) == {"scan_size_mb", "scan_period_min_ms", "group_active_in"}
    assert set(doc["sysctls"]) == {"kernel.numa_balancing_scan_size_mb", "kernel.numa_balancing_scan_period_min_ms"}
    assert doc["holdout"]["seeds"] == [100] and doc["holdout"]["gain"] is not None
    assert doc["cells_run"] > 0
    rc, out, _ = run(capsys, *args)
    assert rc == 0
    assert "--set scan_size_mb=" in out and "kernel.numa_balancing_scan_size_mb = " in out
    assert "held-out seeds 100:" in out and "0 cells run" in out
    rc, out, _ = run(capsys, "results", "query", "SELECT count(*) AS n FROM trials", "--db", str(tmp_path / "t.duckdb"),
                     "--json")  # fmt: skip
    assert json.loads(out) == [{"n": 3}]


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (("--range", "scan_size_mb=10"), "'--range'"),
        (("--range", "scan_size_mb=0:10"), "'--range'"),
        (("--knobs", "colour"), "'--knobs'"),
        (("--objective", "fastest"), "'--objective'"),
        (("--holdout-seeds", "0"), "'--holdout-seeds'"),
        (("--workloads", "specjbb,nope"), "'workload'"),
        (("--trials", "100000000"), "'--trials'"),
        (("--trials", "0-3"), "'--trials'"),
        (("--sampler-seed", "-5"), "'--sampler-seed'"),
        (("--batch", "0"), "'--batch'"),
        # review 1: each of these used to run cells and write a study before failing (or not fail at all)
        (("--range", "scan_size_mb=nan:10"), "'--range'"),
        (("--range", "scan_size_mb=1:inf"), "'--range'"),
        (("--range", "group_active_in=0.1:nan"), "'--range'"),
        (("--range", "group_active_in=0.1:2"), "'--range'"),
        (("--range", "scan_size_mb=1:1e30"), "'--range'"),  # past the sysctl's INT_MAX
        (("--range", "scan_size_mb=1.2:1.5"), "'--range'"),  # no whole number for an int knob
        (("--range", "scan_size_mb=1:9", "--range", "scan_size_mb=2:9"), "'--range'"),
        (("--knobs", "scan_size_mb", "--range", "group_active_in=0.1:0.2"), "'group_active_in'"),
        (("--seeds", ""), "'--seeds'"),
        (("--seeds", "4294967296"), "'--seeds'"),
        (("--seeds", "1,1"), "'--seeds'"),
        (("--holdout-seeds", "4294967296"), "'--holdout-seeds'"),
        # a repeated workload counted twice in the geometric mean; an empty --knobs searched every knob
        (("--workloads", "numa02,numa02"), "'--workloads' names 'numa02' twice"),
        (("--knobs", ""), "'--knobs' must name at least one knob"),
        (("--knobs", "scan_size_mb,scan_size_mb"), "'--knobs' names 'scan_size_mb' twice"),
        (("--policy", "none"), "'--policy' has no knobs to search"),
    ],
)
def test_tune_bad_input(extra: tuple[str, ...], where: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """Bad ranges, knobs, objectives and seeds: one line, exit 2, before any run (no database is written)."""
    rc, out, err = run(capsys, "tune", "--policy", "mainline", "--workloads", "numa02", "--trials", "2",
                       "--db", str(tmp_path / "t.duckdb"), *extra)  # fmt: skip
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and where in err
    assert not (tmp_path / "t.duckdb").exists()


def test_tune_refuses_a_file_under_a_presets_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tuning run is stored under its machine's name (the study's name, the runs' topology column): a file that
    is another machine under a preset's name would be grouped with the preset's runs. A copy of the preset is the
    preset, and is accepted."""
    preset = (Path(__file__).parents[3] / "src/memsched/data/topologies/laptop-1n8.toml").read_text()
    other = tmp_path / "box.toml"
    other.write_text(preset.replace("controller_gibps = 40.0", "controller_gibps = 20.0"))
    rc, out, err = run(capsys, "tune", "--policy", "mainline", "--workloads", "numa02", "--trials", "2",
                       "--topology", str(other), "--db", str(tmp_path / "t.duckdb"))  # fmt: skip
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"'--topology' must not give two different machines one name: preset laptop-1n8 and file {other}" in err
    assert not (tmp_path / "t.duckdb").exists()
    from memsched.sweep.plan import Machine

    copy = tmp_path / "copy.toml"
    copy.write_text(preset)
    assert Machine.named(str(copy), tmp_path, field="--topology").name == "laptop-1n8"


def test_tune_never_splits_a_set_option_from_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a narrow terminal and piped, every --set stays on one line with its KEY=VALUE, one option per line
    joined by backslashes, and the sysctl lines are whole."""
    import io

    from rich.console import Console

    from memsched.cli import common
    from memsched.cli import tune as tune_cli

    params = {"scan_delay_ms": 1249, "scan_period_min_ms": 2690, "group_active_in": 0.4375872112626925}
    doc = {
        "policy": "mainline", "workloads": ["numa02"], "topology": "sandybridge-2n32", "trials": 2,
        "failed_trials": 0, "objective_text": "geometric-mean speed-up over none", "seeds": [0], "space": [],
        "not_searched": [], "best_trial": 1, "best_value": 1.5, "default_value": 1.4,
        "set_lines": [f"--set {k}={v}" for k, v in params.items()],
        "sysctls": {"kernel.numa_balancing_scan_delay_ms": 1249}, "holdout": {}, "wall_s": 1.0, "cells_run": 3,
        "cells_from_db": 0, "executor": "local", "workers": 1,
    }  # fmt: skip
    for width in (24, 80, 160):
        screen = io.StringIO()
        monkeypatch.setattr(common, "out_console", Console(file=screen, width=width), raising=False)
        tune_cli._print(doc)
        lines = screen.getvalue().splitlines()
        sets = [ln.strip() for ln in lines if "--set" in ln]
        assert sets == ["--set scan_delay_ms=1249 \\", "--set scan_period_min_ms=2690 \\",
                        "--set group_active_in=0.4375872112626925"], width  # fmt: skip
        assert "  kernel.numa_balancing_scan_delay_ms = 1249" in lines


def test_the_progress_bar_counts_cells_to_run_with_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal: the cells to run (those already in the database left out), elapsed, ETA and failures."""
    import io

    from rich.console import Console

    from memsched.cli import common
    from memsched.cli import sweep as sweep_cli
    from memsched.sweep.run import Progress

    screen = io.StringIO()
    monkeypatch.setattr(sweep_cli, "show_progress", lambda: True)
    monkeypatch.setattr(common, "err_console", Console(file=screen, force_terminal=True, width=120))
    with sweep_cli.sweep_progress(5, "sweep demo") as tick:
        tick(Progress(total=5, skipped=1, ran=3, ok=2, failed=1), [])
    drawn = screen.getvalue()
    assert "sweep demo" in drawn and "3/4" in drawn and "ETA" in drawn and "1 failed" in drawn
    monkeypatch.setattr(sweep_cli, "show_progress", lambda: False)  # not a terminal: nothing drawn
    screen.seek(0)
    screen.truncate()
    with sweep_cli.sweep_progress(5, "sweep demo") as tick:
        tick(Progress(total=5, skipped=1, ran=3, ok=2, failed=1), [])
    assert screen.getvalue() == ""


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (("--jobs", "5000"), "'--jobs'"),
        (("--jobs", "0-3"), "'--jobs'"),
        (("--retries", "1000"), "'--retries'"),
    ],
)
def test_sweep_executor_options_are_bounded_before_planning(
    extra: tuple[str, ...], where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also with --dry-run, which otherwise prices the cells for the workers asked for."""
    spec = write_spec(tmp_path)
    rc, out, err = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"), "--dry-run", *extra)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and where in err


def test_two_machines_under_one_name_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file named like the preset beside it, but another machine: one line naming both, exit 2, no database."""
    preset = Path(__file__).parents[3] / "src/memsched/data/topologies/laptop-1n8.toml"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "box.toml").write_text(
        preset.read_text().replace("controller_gibps = 40.0", "controller_gibps = 20.0")
    )
    spec = write_spec(tmp_path, "workloads = ['numa02']\npolicies = ['mainline']\n"
                                "topologies = ['laptop-1n8', 'a/box.toml']\n")  # fmt: skip
    for extra in ((), ("--dry-run",)):
        rc, out, err = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"), *extra)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert f"{spec}: 'topologies'" in err and "preset laptop-1n8 and file a/box.toml" in err
        assert not (tmp_path / "r.duckdb").exists()


def test_timelines_asked_for_cells_done_without_them_says_so(
    swept: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """--timelines over cells finished without timelines runs nothing, and says on stderr that they keep none."""
    spec, db = swept
    rc, out, err = run(capsys, "sweep", str(spec), "--db", str(db), "--timelines", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert (doc["skipped"], doc["ran"], doc["without_timeline"]) == (12, 0, 12)
    assert f"12 cells finished earlier without a timeline and keep none in {db}.timelines" in err
    assert "new --db" in err
    rc, _, err = run(capsys, "sweep", str(spec), "--db", str(db))
    assert rc == 0 and "without a timeline" not in err  # not asked for: nothing to say


def test_dry_run_with_a_report_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run runs nothing, so --report beside it would silently write nothing: refused, naming both."""
    spec = write_spec(tmp_path)
    rc, out, err = run(capsys, "sweep", str(spec), "--db", str(tmp_path / "r.duckdb"), "--dry-run", "--report",
                       str(tmp_path / "r.html"))  # fmt: skip
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "'--report'" in err and "--dry-run" in err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.duckdb").exists()
