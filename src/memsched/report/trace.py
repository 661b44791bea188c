"""Chrome / Perfetto trace export (the JSON "Trace Event Format", loadable in ui.perfetto.dev).

Two traces, both with a ``pid`` and ``tid`` on every event and metadata events naming each process and thread;
timestamps are microseconds, as the format requires:

* a NUMA run (``memsched run --trace``): the :class:`~memsched.report.numa_trace.NumaTraceRecorder`'s task
  tracks, balancing instants and node counters, plus the timeline's local-access fraction;
* a realtime schedule (``memsched rt sim --trace``): process 1 has one track per CPU with a complete ("X")
  slice per run slice, including the slice still running when the simulation ends; process 2 has one track
  per task with an instant at each job's release and absolute deadline, and each job as an async
  ("b"/"e") slice from its release to its end, marked ``missed`` when it ended past its deadline.

:func:`memsched.report.trace_format.validate` checks a document against the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memsched.record import RunRecord

__all__ = ["CPU_PID", "TASK_PID", "run_trace", "schedule_trace"]

#: The realtime trace's processes: the CPUs' schedule, and the tasks' jobs.
CPU_PID = 1
TASK_PID = 2


def run_trace(record: RunRecord) -> dict[str, Any]:
    """The NUMA run's trace: the recorder's document (``NumaOptions(trace=True)``) and the local fraction."""
    from memsched.report.numa_trace import MACHINE_PID, NumaTraceRecorder

    recorder = record.extras.get("trace")
    if not isinstance(recorder, NumaTraceRecorder):
        raise ValueError("run_trace needs a record of a run with NumaOptions(trace=True)")
    doc = recorder.document(
        f"{record['workload']} / {record['policy']}", {k: record[k] for k in ("workload", "policy", "topology", "seed")}
    )
    tl = record["timeline"]
    for t_s, local in zip(tl["t_s"], tl["local_fraction"], strict=True):
        if local is not None:
            doc["traceEvents"].append(
                {"name": "local access fraction", "ph": "C", "ts": round(t_s * 1e6), "pid": MACHINE_PID, "tid": 0,
                 "args": {"local": local}}
            )
    return doc


def schedule_trace(
    title: str,
    nr_cpus: int,
    slices: Sequence[tuple[int, int, int, int]],
    names: dict[int, str],
    jobs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A realtime schedule: run slices ``(cpu, task, start, end)`` per CPU, and the ``jobs`` per task
    (records of :meth:`~memsched.sim.sched.machine.RtMachine.job_records`)."""
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": CPU_PID, "tid": 0, "args": {"name": f"CPUs: {title}"}},
        {"name": "process_name", "ph": "M", "pid": TASK_PID, "tid": 0, "args": {"name": "tasks: jobs"}},
    ]
    for cpu in range(nr_cpus):
        events.append({"name": "thread_name", "ph": "M", "pid": CPU_PID, "tid": cpu, "args": {"name": f"CPU {cpu}"}})
    ids = {name: tid for tid, name in names.items()}
    for tid, name in sorted(names.items()):
        events.append({"name": "thread_name", "ph": "M", "pid": TASK_PID, "tid": 1000 + tid, "args": {"name": name}})
    for cpu, tid, start, end in slices:
        events.append(
            {
                "name": names.get(tid, str(tid)),
                "cat": "sched",
                "ph": "X",
                "pid": CPU_PID,
                "tid": cpu,
                "ts": start / 1000,
                "dur": (end - start) / 1000,
                "args": {"task": tid},
            }
        )
    for n, j in enumerate(jobs):
        tid = 1000 + ids.get(j["task"], 0)
        job = f"{j['task']} job {j['job']}"
        common = {"pid": TASK_PID, "tid": tid, "cat": "job"}
        events.append({"name": "release", "ph": "i", "s": "t", "ts": j["release_ns"] / 1000, **common,
                       "args": {"job": j["job"]}})
        events.append({"name": "deadline", "ph": "i", "s": "t", "ts": j["deadline_ns"] / 1000, **common,
                       "args": {"job": j["job"], "missed": j["missed"]}})
        args = {k: j[k] for k in ("response_ns", "missed", "preemptions", "migrations")}
        events.append({"name": job, "ph": "b", "id": n + 1, "ts": j["release_ns"] / 1000, **common, "args": args})
        events.append({"name": job, "ph": "e", "id": n + 1, "ts": j["finish_ns"] / 1000, **common})
    return {"traceEvents": events, "displayTimeUnit": "ns"}
