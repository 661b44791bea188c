"""rt-app JSON files on the exact machine (``memsched rt sim --rt-app FILE``).

Reads the format of rt-app (``scheduler-tools/rt-app``, ``doc/tutorial.txt``): ``{"global": {...},
"tasks": {"name": {...}}}`` with every time in µs. Thread keys: ``instance``, ``loop``, ``policy``,
``priority`` (the nice value for SCHED_OTHER), ``dl-runtime`` / ``dl-period`` (default: the runtime) /
``dl-deadline`` (default: the period), ``cpus``, ``delay`` and ``phases``; events: ``run`` and ``runtime``,
``sleep`` (``Nanosleep``), ``timer`` (an absolute periodic release, ``Timer``), ``lock`` / ``unlock`` and
``yield``. Since 6.12 rt-app passes ``dl-runtime`` as ``sched_runtime`` for fair threads too, which sets a
custom EEVDF slice. The same file drives rt-app on a real kernel.

Not supported: rt-app's other events (``mem``, ``iorun``, ``wait``/``signal``, barriers, ...) and a
``global.duration`` of -1; ``run`` (calibrated loops) and ``runtime`` (wall time) are both CPU time here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memsched.errors import ConfigError, UnknownNameError
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.program import Lock, Nanosleep, Phase, Run, Timer, Unlock, Yield
from memsched.sim.sched.sched import SchedTask
from memsched.uapi.sched import SchedAttr, SchedPolicy
from memsched.units import NSEC_PER_SEC, NSEC_PER_USEC
from memsched.workloads.rt.base import RtBuilt

__all__ = ["load_rt_app"]

_POLICIES = {
    "SCHED_OTHER": SchedPolicy.NORMAL,
    "SCHED_NORMAL": SchedPolicy.NORMAL,
    "SCHED_BATCH": SchedPolicy.BATCH,
    "SCHED_IDLE": SchedPolicy.IDLE,
    "SCHED_FIFO": SchedPolicy.FIFO,
    "SCHED_RR": SchedPolicy.RR,
    "SCHED_DEADLINE": SchedPolicy.DEADLINE,
}
_THREAD_KEYS = {
    "instance", "loop", "policy", "priority", "dl-runtime", "dl-period", "dl-deadline", "cpus", "delay",
    "phases", "util_min", "util_max", "nodes_membind", "taskgroup",
}  # fmt: skip


def _us(v: Any, field_: str, src: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(field_, v, "must be a number of microseconds >= 0", source=src)
    return round(v * NSEC_PER_USEC)


def _events(obj: Mapping[str, Any], src: str, where: str) -> list[Phase]:
    out: list[Phase] = []
    for key, val in obj.items():
        if key in _THREAD_KEYS:
            continue
        if key.startswith("runtime"):
            out.append(Run(_us(val, f"{where}.{key}", src)))  # wall-clock run, approximated as CPU time
        elif key.startswith("run"):
            out.append(Run(_us(val, f"{where}.{key}", src)))
        elif key.startswith("sleep"):
            out.append(Nanosleep(_us(val, f"{where}.{key}", src)))
        elif key.startswith("timer"):
            if not isinstance(val, Mapping) or "period" not in val:
                raise ConfigError(f"{where}.{key}", val, 'must be {"ref": ..., "period": us}', source=src)
            out.append(Timer(max(1, _us(val["period"], f"{where}.{key}.period", src))))
        elif key.startswith("unlock"):
            out.append(Unlock(str(val)))
        elif key.startswith("lock"):
            out.append(Lock(str(val)))
        elif key.startswith("yield"):
            out.append(Yield())
        else:
            raise ConfigError(
                f"{where}.{key}",
                val,
                "is not a supported rt-app event (run, runtime, sleep, timer, lock, unlock, yield)",
                source=src,
            )
    return out


def load_rt_app(path: Path | str, m: RtMachine, *, duration_ns: int | None = None) -> RtBuilt:
    """Create the threads of an rt-app JSON file (``doc/tutorial.txt``; times in µs) on ``m``."""
    src = str(path)
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError("--rt-app", src, f"must be a readable file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ConfigError("--rt-app", src, f"must be valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tasks"), Mapping) or not doc["tasks"]:
        raise ConfigError(
            "tasks",
            doc.get("tasks") if isinstance(doc, Mapping) else doc,
            "must be a non-empty object of threads",
            source=src,
        )
    glob = doc.get("global", {})
    if not isinstance(glob, Mapping):
        raise ConfigError("global", glob, "must be an object", source=src)
    default_policy = str(glob.get("default_policy", "SCHED_OTHER"))
    dur = duration_ns
    if dur is None:
        d = glob.get("duration", 10)
        if isinstance(d, bool) or not isinstance(d, int | float) or d <= 0:
            raise ConfigError(
                "global.duration", d, "must be a number of seconds > 0 (-1 is not supported)", source=src
            )
        dur = int(d * NSEC_PER_SEC)
    tasks: list[SchedTask] = []
    for name, spec in doc["tasks"].items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"tasks.{name}", spec, "must be an object", source=src)
        pol_name = str(spec.get("policy", default_policy))
        if pol_name not in _POLICIES:
            raise UnknownNameError(f"tasks.{name}.policy", pol_name, list(_POLICIES))
        policy = _POLICIES[pol_name]
        if "phases" in spec:
            if not isinstance(spec["phases"], Mapping):
                raise ConfigError(f"tasks.{name}.phases", spec["phases"], "must be an object", source=src)
            prog: list[Phase] = []
            for pname, ph in spec["phases"].items():
                evs = _events(ph, src, f"tasks.{name}.phases.{pname}")
                prog += evs * int(ph.get("loop", 1))
        else:
            prog = _events(spec, src, f"tasks.{name}")
        if not prog:
            raise ConfigError(f"tasks.{name}", dict(spec), "must have at least one event", source=src)
        loops = int(spec.get("loop", -1))
        prio = int(spec.get("priority", 0))
        attr: SchedAttr | None
        job_deadline = 0
        if policy == SchedPolicy.DEADLINE:
            rt = _us(spec.get("dl-runtime", 0), f"tasks.{name}.dl-runtime", src)
            per = _us(spec.get("dl-period", spec.get("dl-runtime", 0)), f"tasks.{name}.dl-period", src)
            dl = _us(
                spec.get("dl-deadline", spec.get("dl-period", spec.get("dl-runtime", 0))),
                f"tasks.{name}.dl-deadline",
                src,
            )
            attr = SchedAttr.deadline(rt, dl, per)
            job_deadline = dl
        elif policy in (SchedPolicy.FIFO, SchedPolicy.RR):
            attr = SchedAttr(sched_policy=policy, sched_priority=prio)
        else:
            # rt-app passes dl-runtime as sched_runtime for fair threads too: a custom EEVDF slice (6.12+)
            slice_ns = 0
            if "dl-runtime" in spec and policy != SchedPolicy.IDLE:
                slice_ns = _us(spec["dl-runtime"], f"tasks.{name}.dl-runtime", src)
            attr = SchedAttr(
                sched_policy=policy,
                sched_nice=prio if policy != SchedPolicy.IDLE else 0,
                sched_runtime=slice_ns,
            )
        cpus = spec.get("cpus")
        delay = _us(spec.get("delay", 0), f"tasks.{name}.delay", src)
        for i in range(int(spec.get("instance", 1))):
            tname = name if int(spec.get("instance", 1)) == 1 else f"{name}-{i}"
            tasks.append(
                m.spawn(
                    tname,
                    prog,
                    loops=loops,
                    attr=attr,
                    affinity=cpus,
                    start_ns=delay,
                    job_deadline_ns=job_deadline,
                )
            )
    return RtBuilt({"rt-app": tasks}, dur)
