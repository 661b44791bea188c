"""The simulator's own knob classes (reclaim sysctls, SLUB, NUMA costs, housekeeping noise) bound every number above:
the kernel's limit for a sysctl, else a product limit (1 ms per CPU cost, 1 s per latency, 1 h per interval, 1 TiB);
a scenario's ``[sysctl]`` value past one is a single line naming the file, the key and the bound."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from memsched.errors import ConfigError
from memsched.sim.mm.migrate import MigrationCosts
from memsched.sim.mm.slub import SlubConfig
from memsched.sim.mm.sysctl import ReclaimConfig
from memsched.sim.numa.balancing import NumaCosts
from memsched.sim.numa.contention import ContentionCosts
from memsched.sim.sched.isolation import NoiseModel
from memsched.workloads.pressure import scenario_from_dict

CLASSES = [ReclaimConfig, SlubConfig, ContentionCosts, NumaCosts, MigrationCosts, NoiseModel]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_numeric_knob_has_a_maximum(cls: type) -> None:
    """Ints and floats of each class are bounded above, and its defaults are accepted."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] in (int, float):
            assert f.metadata.get("max") is not None, f"{cls.__name__}.{f.name} has no maximum"
    cls()


@pytest.mark.parametrize(("cls", "key", "value", "bound"), [
    (ReclaimConfig, "min_free_kbytes", 1 << 31, (1 << 31) - 1),  # proc_dointvec_minmax: INT_MAX
    (ReclaimConfig, "dirty_expire_centisecs", 1 << 31, (1 << 31) - 1),
    (ReclaimConfig, "sched_base_slice_ns", 1 << 32, (1 << 32) - 1),  # a debugfs u32
    (ReclaimConfig, "reclaim_scan_ns", 1_000_001, 1_000_000),
    (ReclaimConfig, "swapin_ns", 10**14, 10**9),
    (ReclaimConfig, "sample_interval_ns", 3_600 * 10**9 + 1, 3_600 * 10**9),
    (ReclaimConfig, "swap_bytes", (1 << 40) + 1, 1 << 40),
    (ReclaimConfig, "max_reclaim_retries", 10_000, 1_000),
    (SlubConfig, "objects_per_slab", 32768, 32767),  # MAX_OBJS_PER_PAGE
    (ContentionCosts, "tlb_ipi_ns", 10**12, 1_000_000),
    (NumaCosts, "hint_fault_ns", 10**12, 1_000_000),
    (MigrationCosts, "task_migrate_ns", 10**12, 1_000_000),
    (NoiseModel, "timer_rate_hz", 1e9, 10000.0),
])  # fmt: skip
def test_values_past_a_maximum_are_refused(cls: type, key: str, value: float, bound: float) -> None:
    """A value above the maximum is a ConfigError naming the key, the bound and the value."""
    with pytest.raises(ConfigError, match=rf"^'{key}' must be <= {bound} \(got {value}\)"):
        cls(**{key: value})


@pytest.mark.parametrize(("key", "value", "floor"), [
    ("flusher_tick_ns", 1_000, 1_000_000),  # 1 us ticks: a 10 s scenario ran past 60 s
    ("sample_interval_ns", 1, 10_000_000),  # 1 ns samples: 600 billion timeline rows in 600 s
])  # fmt: skip
def test_the_finest_ticks_are_bounded_below(key: str, value: int, floor: int) -> None:
    """The disk pipeline's tick and the timeline's interval have floors the run can honour."""
    with pytest.raises(ConfigError, match=rf"^'{key}' must be >= {floor} \(got {value}\)"):
        ReclaimConfig(**{key: value})
    ReclaimConfig(**{key: floor})


def test_a_scenario_sysctl_past_its_maximum_is_one_line_naming_the_file() -> None:
    """[sysctl] swapin_ns = "100000s" (a day per page read back) is refused before anything runs."""
    doc = {"name": "t", "memory": "128MiB", "duration": "1s", "sysctl": {"swapin_ns": "100000s"},
           "service": [{"name": "a", "kind": "allocator", "size": "8MiB", "chunk": "4MiB"}]}
    with pytest.raises(ConfigError, match=r"'swapin_ns' must be <= 1000000000 \(got 100000000000000\)") as info:
        scenario_from_dict(doc, source="slow.toml")
    assert "slow.toml" in str(info.value) and "\n" not in str(info.value)
