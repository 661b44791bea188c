"""Action policies on the simulated kernel: small scenarios, one behaviour each, and the scenario file checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsched.cli import main
from memsched.errors import ConfigError, UnknownNameError
from memsched.workloads.act import list_act_scenarios, load_act_scenario, run_policy

LEAK = """
name = "tiny-leak"
topology = "pressure-1n4"
memory = "128MiB"
duration = "14s"
culprit = ["leaker"]
managed = ["/apps", "/"]

[[service]]
name = "web"
kind = "cache"
size = "16MiB"
chunk = "4MiB"
hit_cost = "4ms"
miss_cost = "12ms"
memcg = "/apps/web"
oom_score_adj = -900
policy = "shed"
protected = true

[[service]]
name = "leaker"
kind = "allocator"
size = "256MiB"
chunk = "4MiB"
rate = "12MiB"
memcg = "/apps/leak"
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(LEAK)
    return p


def test_builtin_scenarios_load() -> None:
    assert list_act_scenarios() == ["burst", "caches", "forkbomb", "leak", "thrash"]
    fb = load_act_scenario("forkbomb")
    assert sum(1 for s in fb.pressure.services if s.name.startswith("bomb-")) == 160
    assert fb.protected == {"web"} and fb.culprit == {"bomb"}


def test_kernel_oom_lets_the_kernel_kill_earlyoom_kills_first(tiny: Path) -> None:
    sc = load_act_scenario(str(tiny))
    base = run_policy(sc, "kernel-oom")["score"]
    assert base["kernel_oom_kills"] >= 1 and base["user_kill_count"] == 0 and base["first_action_s"] is None
    early = run_policy(sc, "earlyoom")
    s = early["score"]
    assert s["user_kills"] == ["leaker"] and s["kernel_oom_kills"] == 0 and s["verdict"] == "right"
    assert early["actions"][0]["signal"] == "SIGTERM"
    assert s["first_action_s"] is not None and s["first_action_s"] < 14
    assert not s["protected"]["killed"]


def test_trouble_is_the_instant_memory_got_tight_not_the_next_sample(tiny: Path) -> None:
    """A leak without swap stalls nobody before its allocation fails: memory first gets tight at the instant of
    the kernel's OOM kill, and trouble_s says so (the 1 s timeline samples read it up to a second later, after
    the kill had freed the memory, or never); vmpressure-shed's shed at that moment is then not 'before trouble'."""
    fig = run_policy(load_act_scenario(str(tiny)), "kernel-oom")
    (kill,) = fig["oom_victims"]
    trouble = fig["score"]["trouble_s"]
    assert trouble is not None and kill["t_s"] - 0.01 <= trouble <= kill["t_s"], (trouble, kill)


def test_vmpressure_shed_asks_the_service_before_the_kernel_kills(tiny: Path) -> None:
    fig = run_policy(load_act_scenario(str(tiny)), "vmpressure-shed")
    s = fig["score"]
    assert s["sheds"] >= 1 and s["user_kill_count"] == 0
    assert fig["services"]["web"]["released_mib"] > 0
    assert all(a["action"] == "shed" and a["target"] == "web" for a in fig["actions"])


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ('culprit = ["nobody"]', "culprit"),
        ('policies = ["oomd-classic"]', "policies"),
        ("[policy.earlyoom]\nmem_term_percent = 200", "policy.earlyoom.mem_term_percent"),
        ("[[service]]\nname='x'\nkind='allocator'\nsize='4MiB'\nforks=3", "service.x.forks"),
        ("[[service]]\nname='y'\nkind='allocator'\nsize='4MiB'\nprotected='yes'", "service.y.protected"),
        ("[[service]]\nname='z'\nkind='forkbomb'\nsize='4MiB'\nforks=0", "service.z.forks"),
    ],
)
def test_bad_scenarios_name_the_file_and_the_key(
    tmp_path: Path, patch: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = LEAK + "\n" + patch + "\n" if patch.startswith("[") else LEAK.replace('culprit = ["leaker"]', patch)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_act_scenario(str(p))
    assert e.value.field == key and str(p) in str(e.value)
    rc = main(["pressure", "act-sim", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and key in err


def test_unknown_scenario_and_policy_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownNameError):
        load_act_scenario("nope")
    assert main(["pressure", "act-sim", "leak", "--policies", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_act_sim_cli_json_and_report(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.html"
    args = ["pressure", "act-sim", str(tiny), "--policies", "kernel-oom,earlyoom", "--json", "--report", str(report)]
    rc = main(args)
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert [r["policy"] for r in doc["runs"]] == ["kernel-oom-v1", "earlyoom-v1"]
    assert "earlyoom" in report.read_text() and "<table" in report.read_text()
