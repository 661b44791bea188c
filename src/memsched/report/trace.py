"""Chrome / Perfetto trace export (the JSON "Trace Event Format", loadable in ui.perfetto.dev).

A NUMA run becomes counter tracks sampled over simulated time: the fraction of memory traffic served
locally, and the pages resident on each node. Timestamps are microseconds, as the format requires.
"""

from __future__ import annotations

from typing import Any

from memsched.record import RunRecord

__all__ = ["run_trace", "schedule_trace"]


def run_trace(record: RunRecord) -> dict[str, Any]:
    tl = record["timeline"]
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": f"{record['workload']} / {record['policy']}"}},
    ]
    for t_s, local, pages in zip(tl["t_s"], tl["local_fraction"], tl["node_pages"], strict=True):
        ts = round(t_s * 1e6)
        if local is not None:
            events.append({"name": "local access fraction", "ph": "C", "ts": ts, "pid": 1, "args": {"local": local}})
        events.append(
            {
                "name": "pages per node",
                "ph": "C",
                "ts": ts,
                "pid": 1,
                "args": {f"node{n}": p for n, p in enumerate(pages)},
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "metadata": {k: record[k] for k in ("workload", "policy", "topology", "seed")},
    }


def schedule_trace(
    title: str, nr_cpus: int, slices: list[tuple[int, int, int, int]], names: dict[int, str]
) -> dict[str, Any]:
    """A realtime schedule: one track per CPU, one complete ("X") event per run slice ``(cpu, task, start, end)``."""
    events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}}]
    for cpu in range(nr_cpus):
        events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": cpu, "args": {"name": f"CPU {cpu}"}})
    for cpu, tid, start, end in slices:
        events.append(
            {
                "name": names.get(tid, str(tid)),
                "ph": "X",
                "pid": 1,
                "tid": cpu,
                "ts": start / 1000,
                "dur": (end - start) / 1000,
                "args": {"task": tid},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ns"}
