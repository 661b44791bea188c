"""Hypothesis strategies for every input format memsched reads, shared by the fuzz tests and
``benchmarks/fuzz.py``.

Each format gets three sources of examples: documents built from the format's own keys with values drawn
from the awkward ones (NaN, infinity, 5,000-digit integers, 2**63, negative, zero, Unicode digits, units that
do not exist, wrong types), mutations of the valid seed files (characters inserted, deleted, replaced, lines
repeated), and arbitrary bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

from helpers.fuzz_targets import KINDS, SET_OWNERS

__all__ = ["STRATEGIES", "to_toml"]

# ---------------------------------------------------------------------------------------------- values

_EDGE_INTS = [
    0,
    1,
    -1,
    2,
    3,
    7,
    8,
    10,
    11,
    16,
    32,
    33,
    64,
    100,
    254,
    255,
    256,
    300,
    1000,
    1024,
    1025,
    4096,
    10**6,
    10**7,
    10**9,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    10**30,
]
_EDGE_FLOATS = [0.0, -0.0, 0.5, 1.5, 1e-300, 1e300, 1e9, -1.0, math.nan, math.inf, -math.inf, 5e-324]
_UNITS = [
    "",
    "ns",
    "us",
    "µs",
    "ms",
    "s",
    "m",
    "h",
    "B",
    "K",
    "k",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "PiB",
    "MB",
    "kB",
    "GB",
    "x",
    " ",
    "%",
    "ms ",
    " s",
]
_DIGITS = [
    "1",
    "0",
    "10",
    "²",
    "٣",
    "１",
    "1_0",
    "0x10",
    "1e3",
    "-5",
    "+5",
    ".5",
    "5.",
    "1.0000000001",
    "nan",
    "inf",
    "9" * 30,
    "9" * 400,
]


class Raw(str):
    """A number literal emitted as it is, however long (Python will not ``str()`` an int of 5,000 digits)."""


ints: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(_EDGE_INTS),
    st.integers(-(2**70), 2**70),
    st.integers(1, 6000).map(lambda n: Raw("9" * n)),
)
floats = st.one_of(st.sampled_from(_EDGE_FLOATS), st.floats(allow_nan=True, allow_infinity=True))
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "\0", "full", "some", "(null)", "SCHED_FIFO"]))
number_texts = st.one_of(
    st.builds(lambda d, u: d + u, st.sampled_from(_DIGITS), st.sampled_from(_UNITS)),
    st.builds(lambda i, u: f"{i}{u}", ints, st.sampled_from(_UNITS)),
    st.builds(lambda f, u: f"{f}{u}", floats, st.sampled_from(_UNITS)),
    texts,
)
scalars = st.one_of(ints, floats, number_texts, st.booleans())
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, delete count, insertion) edits to ``seed``."""
    data = bytearray(seed)
    for pos, delete, insert in edits:
        at = pos % (len(data) + 1)
        data[at : at + delete] = insert
    return bytes(data)


def mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    edit = st.tuples(
        st.integers(0, 1 << 16),
        st.integers(0, 8),
        st.one_of(
            st.binary(max_size=8), st.sampled_from([b"0", b"9" * 30, b"nan", b"[", b"]", b'"', b"\n", b"-", b"."])
        ),
    )
    return st.builds(_mutate, st.sampled_from(seeds), st.lists(edit, min_size=1, max_size=6))


# ---------------------------------------------------------------------------------------------- TOML


def _toml_key(k: str) -> str:
    return k if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return str.__str__(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(doc: dict[str, Any]) -> bytes:
    """A TOML document: scalars and lists first, then tables, then arrays of tables."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict | tuple)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{_toml_key(k)}]")
            lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items()]
        elif isinstance(v, tuple):  # an array of tables
            for table in v:
                lines.append(f"[[{_toml_key(k)}]]")
                lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in table.items()]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------- formats

_TOPOLOGY_GOOD = {
    "name": "fuzz",
    "sockets": 2,
    "cores_per_socket": 4,
    "threads_per_core": 2,
    "node_memory": "8GiB",
    "controller_gibps": 9.2,
    "link_gibps": 5.5,
    "latency_local_ns": 135,
    "latency_hop_ns": 63,
    "core_mlp_bytes": 640,
}
_TOPOLOGY_KEYS = [*_TOPOLOGY_GOOD, "nodes_per_socket", "links", "distance", "smt_yield", "description", "colour"]


def _topology_doc(changes: dict[str, Any], drop: list[str]) -> bytes:
    doc = {k: v for k, v in _TOPOLOGY_GOOD.items() if k not in drop} | changes
    return to_toml(doc)


topology = st.one_of(
    st.builds(
        _topology_doc,
        st.dictionaries(
            st.sampled_from(_TOPOLOGY_KEYS),
            st.one_of(values, st.lists(st.lists(ints, max_size=4), max_size=4), st.lists(number_texts, max_size=4)),
            max_size=4,
        ),
        st.lists(st.sampled_from(list(_TOPOLOGY_GOOD)), max_size=2),
    ),
    mutations(KINDS["topology"].seeds()),
    st.binary(max_size=200),
)

_SERVICE_KEYS = [
    "name",
    "kind",
    "size",
    "chunk",
    "start",
    "policy",
    "shed_fraction",
    "cooldown",
    "memcg",
    "limit",
    "oom_score_adj",
    "hit_cost",
    "miss_cost",
    "rate",
    "bogus",
]
_SERVICE_GOOD = {"name": "svc", "kind": "cache", "size": "64MiB", "chunk": "4MiB"}
_SCENARIO_TOP = ["name", "description", "topology", "memory", "duration", "designs", "extra"]


def _scenario_doc(top: dict[str, Any], services: list[dict[str, Any]], sections: dict[str, dict[str, Any]]) -> bytes:
    doc: dict[str, Any] = {"duration": "50ms", **top}
    doc.update(sections)
    doc["service"] = tuple(_SERVICE_GOOD | s for s in services)
    return to_toml(doc)


scenario = st.one_of(
    st.builds(
        _scenario_doc,
        st.dictionaries(
            st.sampled_from(_SCENARIO_TOP),
            st.one_of(values, st.sampled_from(["pressure-1n4", "westmere-ex-4n48", "16GiB", "100000TiB", "5", "1s"])),
            max_size=3,
        ),
        st.lists(
            st.dictionaries(
                st.sampled_from(_SERVICE_KEYS),
                st.one_of(values, st.sampled_from(["cache", "streamer", "allocator", "shed", "/cg"])),
                max_size=4,
            ),
            max_size=3,
        ),
        st.dictionaries(
            st.sampled_from(["sysctl", "psi", "rfc2012", "mainline"]),
            st.dictionaries(
                st.sampled_from(
                    ["min_free_kbytes", "swap_bytes", "medium", "critical", "privileged", "vmevent_window", "x_ns"]
                ),
                scalars,
                max_size=3,
            ),
            max_size=2,
        ),
    ),
    mutations(KINDS["scenario"].seeds()),
    st.binary(max_size=200),
)

_RT_THREAD_KEYS = [
    "instance",
    "loop",
    "policy",
    "priority",
    "dl-runtime",
    "dl-period",
    "dl-deadline",
    "cpus",
    "delay",
    "run",
    "runtime",
    "sleep",
    "timer",
    "lock",
    "unlock",
    "yield",
    "phases",
    "mem",
]
_RT_VALUES = st.one_of(
    values,
    st.sampled_from(["SCHED_FIFO", "SCHED_DEADLINE", "SCHED_OTHER", "SCHED_IDLE", "m", "SCHED_RR"]),
    st.fixed_dictionaries({"ref": st.just("t"), "period": st.one_of(ints, floats)}),
    st.lists(ints, max_size=4),
)


def _json(doc: Any) -> bytes:
    """JSON with NaN/Infinity as Python writes them and :class:`Raw` numbers verbatim."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(str.__str__(v))
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    text = json.dumps(swap(doc), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


def _rt_doc(glob: dict[str, Any], threads: dict[str, dict[str, Any]]) -> bytes:
    return _json({"global": glob, "tasks": threads})


rt_app = st.one_of(
    st.builds(
        _rt_doc,
        st.dictionaries(
            st.sampled_from(["duration", "default_policy", "calibration"]),
            st.one_of(values, st.floats(0.001, 2.0)),
            max_size=2,
        ),
        st.dictionaries(
            st.text(max_size=4),
            st.one_of(
                st.dictionaries(st.sampled_from(_RT_THREAD_KEYS), _RT_VALUES, max_size=6),
                st.dictionaries(st.sampled_from(_RT_THREAD_KEYS), _RT_VALUES, max_size=3).map(
                    lambda d: {**d, "phases": {"p": {"loop": 2, "run": 100, "sleep": 100}, "q": d}}
                ),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    mutations(KINDS["rt-app"].seeds()),
    st.binary(max_size=200),
)

_SET_KEYS = [
    "scan_delay_ms",
    "scan_size_mb",
    "scan_period_min_ms",
    "group_active_in",
    "txn_cpu_us",
    "groups",
    "fds",
    "loops",
    "tasks",
    "duration_ms",
    "duration_s",
    "utilisation",
    "preempt",
    "hz",
    "layout",
    "mem",
    "warehouses",
    "psi_low",
    "reclaim_interval_ms",
    "fifo_level",
    "sample_interval_s",
    "nope",
    "a-b",
]
set_items = st.tuples(
    st.integers(0, len(SET_OWNERS) - 1),
    st.lists(
        st.one_of(
            st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_SET_KEYS), number_texts),
            st.text(max_size=30),
        ),
        max_size=4,
    ),
)

duration = st.one_of(number_texts, st.text(max_size=70))
size = st.one_of(number_texts, st.text(max_size=70))
level = st.one_of(
    st.sampled_from(
        ["low", "MEDIUM", "oom", "critical", "VMPRESSURE_OOM", "1<<10", "1 << 20", "1<<30", "1<<99", "1<<" + "9" * 50]
    ),
    number_texts,
)
psi_trigger = st.one_of(
    st.builds(
        lambda k, a, b: f"{k} {a} {b}",
        st.sampled_from(["some", "full", "none", "SOME", ""]),
        number_texts,
        number_texts,
    ),
    st.text(max_size=50),
)
cpulist = st.one_of(
    st.lists(
        st.one_of(st.builds(lambda a, b: f"{a}-{b}", ints, ints), ints.map(str), st.sampled_from(_DIGITS)), max_size=5
    ).map(",".join),
    st.text(max_size=40),
)
daemon_protocol = st.tuples(
    st.lists(
        st.one_of(
            st.binary(max_size=16),
            st.sampled_from(
                [b"\x08\0\0\0\0\x04\0\0", b"\x08\0\0\0\0\0\x10\0", b"\x08\0\0\0\0\0\0\x40", b"\x09\0\0\0", b"VMPD"]
            ),
        ),
        max_size=5,
    ),
    st.booleans(),
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "topology": topology,
    "scenario": scenario,
    "rt-app": rt_app,
    "set": set_items,
    "duration": duration,
    "size": size,
    "level": level,
    "psi-trigger": psi_trigger,
    "cpulist": cpulist,
    "daemon-protocol": daemon_protocol,
}
assert set(STRATEGIES) == set(KINDS)
