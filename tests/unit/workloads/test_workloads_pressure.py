"""Pressure scenarios: TOML validation with clear errors, and what the designs change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memsched.errors import ConfigError
from memsched.workloads.pressure import list_scenarios, load_scenario, run_design, scenario_from_dict

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "pressure" / "tiny.toml"

#: Far above any field's limit and above 2**63 - 1 bytes or ns in any unit.
HUGE = "9" * 41

BASE = {
    "name": "t",
    "memory": "256MiB",
    "duration": "2s",
    "service": [{"name": "a", "kind": "cache", "size": "64MiB"}],
}


def _with(**changes: object) -> dict[str, object]:
    doc = {k: v for k, v in BASE.items()}
    doc.update(changes)
    return doc


def test_builtin_scenarios_load() -> None:
    """The built-in scenarios load and validate: default and memcg, with the four designs."""
    assert {"default", "memcg"} <= set(list_scenarios())
    sc = load_scenario("default")
    assert sc.designs == ("none", "rfc2012", "mainline", "psi")
    assert [s.kind for s in sc.services] == ["streamer", "cache", "allocator"]
    assert load_scenario("memcg").services[0].limit == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("doc", "field", "allowed"),
    [
        (_with(colour="red"), "colour", "not a key of a scenario"),
        (_with(duration="fast"), "duration", "duration with a unit"),
        (_with(memory="12MiB"), "memory", "at least 64MiB"),
        (_with(designs=["none", "vmevent"]), "designs", "must be one of"),
        (_with(service=[{"name": "a", "kind": "lru", "size": "64MiB"}]), "service.kind", "must be one of"),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "policy": "panic"}]),
            "service.policy",
            "one of",
        ),
        (_with(service=[{"name": "a", "kind": "cache", "size": "lots"}]), "service.size", "must be a size"),
        (_with(service=[{"name": "a", "kind": "cache"}]), "size", "is required"),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "shed_fraction": 2}]),
            "service.shed_fraction",
            "(0, 1]",
        ),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "limit": "8MiB"}]),
            "service.limit",
            "memcg",
        ),
        (_with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "speed": 3}]), "speed", "not a key"),
        (_with(topology="bogus"), "topology", "must be one of"),
        (_with(topology="/nonexistent/box.toml"), "topology", "readable TOML file"),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "memcg": "/x", "limit": "1B"}]),
            "service.limit",
            "at least one page",
        ),
        (_with(service=[]), "service", "at least one"),
        (_with(service=[BASE["service"][0], BASE["service"][0]]), "service.name", "unique"),  # type: ignore[index]
        (_with(psi={"medium": "some 100000 1000000", "privileged": False}), "psi", "multiple of 2000000"),
        (_with(psi={"critical": "all 1 2"}), "psi.critical", "PSI trigger"),
        (_with(sysctl={"dirty_ratio": 0}), "dirty_ratio", ">= 1"),
        (_with(rfc2012={"vmevent_window": 0}), "vmevent_window", ">= 1"),
        (_with(mainline={"vmpressure_level_critical": 120}), "vmpressure_level_critical", "<= 100"),
        (_with(sysctl={"swapiness": 60}), "swapiness", "not a setting"),
        # A bare 0 is a size and a duration (docs/pressure.md): the field's own range says what is wrong with it.
        (_with(memory="0"), "memory", "at least 64MiB"),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "chunk": "0"}]),
            "service.chunk",
            "multiple of 4 KiB in 4KiB..1GiB",
        ),
        (_with(duration="-1s"), "duration", "must be >= 0"),
        # A number too big for 64 bits is told the field's own limit, as one just above it is.
        (
            _with(service=[{"name": "a", "kind": "cache", "size": HUGE + "MiB"}]),
            "service.size",
            "must be at most 64GiB",
        ),
        (
            _with(service=[{"name": "a", "kind": "cache", "size": "64MiB", "start": HUGE + "s"}]),
            "service.start",
            "must be at most 600s",
        ),
        (_with(sysctl={"swap_bytes": HUGE + "MiB"}), "swap_bytes", "1099511627776"),
    ],
)
def test_bad_scenarios_name_the_key(doc: dict[str, object], field: str, allowed: str) -> None:
    """Every bad scenario value is a ConfigError naming the key and what is allowed, and the source."""
    with pytest.raises(ConfigError) as exc:
        scenario_from_dict(doc, source="bad.toml")
    assert exc.value.field == field
    assert allowed in str(exc.value)
    assert "bad.toml" in str(exc.value)


def test_an_error_inside_the_topology_file_names_that_file(tmp_path: Path) -> None:
    """A scenario's topology file with a bad key is that file's error, not the scenario's."""
    topo = tmp_path / "box.toml"
    topo.write_text('name = "box"\nsockets = 1\ncores_per_socket = 2\nnode_memory = "1 banana"\n')
    with pytest.raises(ConfigError) as exc:
        scenario_from_dict(_with(topology=str(topo)), source="scenario.toml")
    assert exc.value.field == "node_memory" and exc.value.source == str(topo)


def test_unknown_scenario_and_bad_toml(tmp_path: Path) -> None:
    """An unknown built-in lists the valid ones; a broken TOML file says so."""
    with pytest.raises(ConfigError, match="default"):
        load_scenario("no-such-scenario")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_scenario(str(bad))


def test_shedding_on_medium_avoids_the_oom_kill() -> None:
    """Same scenario, same seed, on the 3.10 kernel the RFC was written for: without notifications the
    growing cache is OOM-killed; with the RFC's vmpressure_fd it sheds on MEDIUM, gives memory back, and
    nobody is killed."""
    sc = load_scenario(str(TINY))
    sc = dataclasses.replace(sc, reclaim=dataclasses.replace(sc.reclaim, kernel="3.10"))
    none = run_design(sc, "none")
    rfc = run_design(sc, "rfc2012")
    assert none["oom_kills"] >= 1 and none["events"] == {"low": 0, "medium": 0, "critical": 0}
    assert rfc["oom_kills"] < none["oom_kills"]
    assert rfc["events"]["medium"] >= 1 and rfc["app_released_mib"] > 0
    assert rfc["services"]["cache"]["sheds"] >= 1 and not rfc["services"]["cache"]["oom_killed"]
    assert rfc["kernel_events"]["medium"] >= 1
    # the streamer's page cache alone only ever gave low-level windows before the squeeze
    first_medium = rfc["index"]["rfc2012"]["first_s"]["medium"]
    assert rfc["index"]["rfc2012"]["first_s"]["low"] < first_medium
    for key in ("free_mib", "file_mib", "anon_mib", "index_rfc2012"):
        assert rfc["timeline"][key]


def test_same_seed_same_record() -> None:
    """Determinism: running a design twice with the same seed gives the same record."""
    sc = scenario_from_dict(_with(duration="1s"), source="t")
    a = run_design(sc, "mainline", seed=3)
    b = run_design(sc, "mainline", seed=3)
    assert a == b


def test_psi_design_delivers_when_its_threshold_is_met() -> None:
    """The PSI design wakes the service when stall time crosses its trigger (here 1 ms per 1 s)."""
    import dataclasses

    from memsched.uapi.pressure import PsiTrigger

    sc = dataclasses.replace(load_scenario(str(TINY)), psi_medium=PsiTrigger("some", 1000, 1_000_000))
    rec = run_design(sc, "psi")
    assert rec["kernel_events"]["medium"] >= 1 and rec["events"]["medium"] >= 1
    assert rec["services"]["cache"]["sheds"] >= 1


def test_large_folios_take_the_rfc_medium_away() -> None:
    """The same scenario on 6.18: the streamer's page cache is reclaimed in whole large folios (ext4, 6.16+)
    and its dirty pages are moved out of the way, so its windows stay low: no window of its own is MEDIUM (the
    EEVDF kworker may merge several windows up to a tick into one snapshot, which can be), the cache sheds
    late, refills, and is killed."""
    from memsched.uapi.pressure import VmpressureLevel
    from memsched.workloads.pressure.services import PressureRun

    sc = load_scenario(str(TINY))
    assert sc.reclaim.kernel == "6.18"
    run = PressureRun(sc, "rfc2012", 0)
    rfc = run.run()
    samples = [w for w in run.r.vmpressure.samples if w.flavour == "rfc2012"]
    medium = [w for w in samples if w.level == VmpressureLevel.MEDIUM]
    assert rfc["index"]["rfc2012"]["levels"]["medium"] == len(medium) <= 1
    assert all(w.scanned > 512 and w.t_ns % 4_000_000 == 1_000 for w in medium)  # merged up to a tick
    assert rfc["index"]["rfc2012"]["levels"]["critical"] > 0
    assert rfc["services"]["cache"]["sheds"] >= 1 and rfc["oom_kills"] == 1
