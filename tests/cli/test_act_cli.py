"""``memsched pressure act``: bad input is one line and exit 2, before anything is read or signalled."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsched.cli import main


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--policy", "oomd-classic", "--cgroup", "/x"], "oomd-classic"),
        (["--policy", "earlyoom", "--cgroup", "/x", "--set", "mem_term_percent=200"], "mem_term_percent"),
        (["--policy", "earlyoom", "--cgroup", "/x", "--set", "nope=1"], "nope"),
        (["--policy", "earlyoom", "--cgroup", "/x", "--set", "prefer=("], "prefer"),
        (["--policy", "lmkd", "--cgroup", "/x", "--protect", "a/b"], "protect"),
        (["--policy", "lmkd", "--cgroup", "/x", "--protect", "-5"], "'--protect' must be a pid in 1..4194303"),
        (["--policy", "lmkd", "--cgroup", "/x", "--protect", "web,0"], "'--protect' must be a pid"),
        (["--policy", "lmkd", "--cgroup", "/x", "--protect", "9" * 5000], "'--protect' must be a pid"),
        (["--policy", "lmkd", "--cgroup", "/x", "--duration", "0s"], "--duration"),
        (["--policy", "lmkd", "--cgroup", "/memsched-surely-not-a-cgroup"], "cgroup"),
        (["--policy", "lmkd", "--cgroup", "/"], "cgroup"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], word: str, capsys: pytest.CaptureFixture[str]) -> None:
    from memsched.live.cgroups import cgroup_mounts

    mounts = cgroup_mounts()
    if word == "cgroup" and mounts.v1_memory is None and mounts.v2 is None:
        pytest.skip("no cgroup hierarchy is mounted")
    rc = main(["pressure", "act", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and word in err[0], err


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_cgroup_outside_the_hierarchies_is_not_a_subtree(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--cgroup with '..' out of the hierarchy, or a plain directory holding a cgroup.procs, is exit 2: it is
    not taken for the subtree to act in (review 2, item 2)."""
    from helpers.live_fixtures import cgroup_outside_the_hierarchies

    _, spec = cgroup_outside_the_hierarchies(tmp_path, how)
    rc = main(["pressure", "act", "--policy", "earlyoom", "--cgroup", spec, "--dry-run", "--duration", "1s"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "'--cgroup' must be a cgroup inside a mounted" in err[0], err


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--jobs", "0"], "--jobs"),
        (["--jobs", "0-3"], "--jobs"),
        (["--seed", "0-3"], "--seed"),
        (["--policies", "nope"], "--policies"),
        (["act-nope"], "act-nope"),
    ],
)
def test_act_sim_bad_input_exits_2_before_running(
    args: list[str], word: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["pressure", "act-sim", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and word in err[0], err


def test_act_sim_policies_all_runs_every_action_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``act-sim FILE --policies all`` runs every registered action policy, not the file's own list (its help
    says ``POLICY[,POLICY…]|all``; 'all' used to be an unknown policy, exit 2)."""
    import json

    from memsched.policies.act import registry

    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        'name = "tiny"\nmemory = "128MiB"\nduration = "100ms"\npolicies = ["lmkd"]\n'
        '[[service]]\nname = "a"\nkind = "allocator"\nsize = "8MiB"\nchunk = "4MiB"\n'
    )
    rc = main(["pressure", "act-sim", str(scenario), "--policies", "all", "--json", "--jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    ran = [run["policy"] for run in json.loads(out)["runs"]]
    assert ran == [spec.versioned_id for spec in registry.specs()]
