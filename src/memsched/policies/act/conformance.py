"""The conformance checker for action policies (the NUMA checker's counterpart, ``memsched.conformance``).

``check_act_policy(policy_id)`` runs a registered policy over a small synthetic machine (1 GiB, 256 MiB of
swap, a leaking service in a managed cgroup, a protected-looking database with ``oom_score_adj`` -1000 and a
web service that registered a shed callback) whose memory runs out over a minute, applying the policy's kills
and sheds to the synthetic state, and verifies:

1. **Config**: the default config builds and every default goes back through ``--set`` unchanged.
2. **Well-formed**: every ``on_sample`` returns a sequence of :data:`~memsched.policies.act.actions.ACTION_TYPES`;
   every target exists in the view it was given (a pid of ``view.procs``, a cgroup of ``view.cgroups``, a
   service of ``view.services``); ``next_interval_ns`` is a positive int.
3. **Views not mutated**: each view equals a copy taken before the call.
4. **Determinism**: two runs give identical action lists.

It is pure (no simulator): the test suite runs it over every registered policy, and
:func:`load_policy` runs it on first load of any policy that is not built in.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from memsched.config import from_sets
from memsched.errors import PolicyError
from memsched.policies.act import registry
from memsched.policies.act.actions import ACTION_TYPES, Action, KillCgroup, KillProcess, Shed
from memsched.policies.act.base import ActPolicy
from memsched.policies.act.views import CgroupView, MemoryView, ProcView, ServiceView
from memsched.units import GIB, MIB, NSEC_PER_SEC

__all__ = ["ActConformanceReport", "check_act_policy", "load_policy", "synthetic_run"]


@dataclass
class ActConformanceReport:
    policy: str
    problems: list[str] = field(default_factory=list)
    samples: int = 0
    actions: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _State:
    leak_alive: bool = True
    web_cache: int = 256 * MIB
    killed: list[str] = field(default_factory=list)


def _view(t_ns: int, st: _State) -> MemoryView:
    total, swap_total = 1 * GIB, 256 * MIB
    t = t_ns / NSEC_PER_SEC
    leak = int(min(1400 * MIB, 64 * MIB + t * 24 * MIB)) if st.leak_alive else 0
    db, web = 96 * MIB, 64 * MIB + st.web_cache
    used = leak + db + web
    swap_used = min(swap_total, max(0, used - int(0.9 * total)))
    resident = used - swap_used
    free = max(0, total - resident)
    tight = 1.0 - free / total
    psi = max(0.0, (tight - 0.8) * 400) if st.leak_alive else 0.0
    psi = min(psi, 95.0)
    procs = [ProcView(200, "db", "/system/db", db, 0, 0, -1000, 0),
             ProcView(300, "web", "/apps/web", web, 0, 100 + web * 1000 // total, 100, 1)]
    if st.leak_alive:
        procs.append(ProcView(400, "leaker", "/apps/leak", leak - swap_used, swap_used, leak * 1000 // total, 0, 2))
    cgroups = (
        CgroupView("/apps", used - db, swap_used, psi, psi, int(t * 1000), managed_pressure=True, nr_procs=0),
        CgroupView("/apps/web", web, 0, psi / 2, psi / 4, int(t * 10), nr_procs=1),
        CgroupView("/apps/leak", leak, swap_used, psi, psi, int(t * 900), managed_swap=True,
                   nr_procs=1 if st.leak_alive else 0),
        CgroupView("/system/db", db, 0, 0.0, 0.0, 0, preference="omit", nr_procs=1),
    )
    stall = int(psi / 100 * t_ns / 1000)
    return MemoryView(
        now_ns=t_ns, mem_total=total, mem_available=free + st.web_cache // 8, mem_free=free,
        swap_total=swap_total, swap_free=swap_total - min(swap_total, swap_used),
        file_lru=st.web_cache + 32 * MIB, workingset_refault=int(max(0.0, tight - 0.7) * t * 4000),
        pgscan_kswapd=int(t * 100 * tight), pgscan_direct=int(t * 50 * max(0.0, tight - 0.85)),
        wmark_min=16 * MIB, wmark_low=20 * MIB, wmark_high=24 * MIB,
        psi_some_avg10=min(100.0, psi * 1.3), psi_full_avg10=psi,
        psi_some_total_us=int(stall * 1.3), psi_full_total_us=stall,
        vmpressure="critical" if tight > 0.95 else "medium" if tight > 0.85 else "low" if tight > 0.7 else "none",
        procs=tuple(procs), cgroups=cgroups, services=(ServiceView("web", "/apps/web", st.web_cache),),
    )


def _apply(action: Action, st: _State) -> None:
    if (isinstance(action, KillProcess) and action.pid == 400) or (isinstance(action, KillCgroup) and (
        action.path in ("/apps/leak", "/apps")
    )):
        st.leak_alive = False
    if isinstance(action, Shed):
        st.web_cache = max(0, st.web_cache - action.bytes)
    st.killed.append(type(action).__name__)


def _problems_of(view: MemoryView, result: object) -> list[str]:
    if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
        return [f"on_sample returned {type(result).__name__}, not a sequence of actions"]
    out = []
    for a in list(result):
        if not isinstance(a, ACTION_TYPES):
            out.append(f"on_sample returned a {type(a).__name__}, not an action")
        elif isinstance(a, KillProcess) and view.proc(a.pid) is None:
            out.append(f"KillProcess of pid {a.pid}, which is not in the view")
        elif isinstance(a, KillCgroup) and view.cgroup(a.path) is None:
            out.append(f"KillCgroup of {a.path}, which is not in the view")
        elif isinstance(a, Shed) and all(s.name != a.service for s in view.services):
            out.append(f"Shed of service {a.service!r}, which is not in the view")
    return out


def synthetic_run(policy: ActPolicy, *, duration_s: float = 90.0,
                  report: ActConformanceReport | None = None) -> list[tuple[int, Action]]:
    """Run ``policy`` over the synthetic machine; returns ``(time, action)`` pairs."""
    st = _State()
    t = 0
    out: list[tuple[int, Action]] = []
    end = int(duration_s * NSEC_PER_SEC)
    while t <= end:
        view = _view(t, st)
        before = copy.deepcopy(view)
        result = policy.on_sample(view)
        if report is not None:
            report.samples += 1
            if view != before:
                report.problems.append(f"the view was changed by on_sample at t={t / NSEC_PER_SEC:.3f}s")
            report.problems.extend(_problems_of(view, result))
            if report.problems:
                return out
        for a in result:
            if isinstance(a, ACTION_TYPES):
                out.append((t, a))
                _apply(a, st)
        step = policy.next_interval_ns(view)
        if not isinstance(step, int) or isinstance(step, bool) or step <= 0:
            if report is not None:
                report.problems.append(f"next_interval_ns returned {step!r}, not a positive int")
            return out
        t += step
    return out


def check_act_policy(policy_id: str, sets: Mapping[str, str] | None = None) -> ActConformanceReport:
    spec = registry.get(policy_id)
    report = ActConformanceReport(spec.versioned_id)
    try:
        default = spec.config_cls()
        values = {f.name: (str(getattr(default, f.name)).lower() if isinstance(getattr(default, f.name), bool)
                           else str(getattr(default, f.name))) for f in dataclasses.fields(default)}
        if from_sets(spec.config_cls, values, owner=spec.id) != default:
            report.problems.append("defaults changed after a round trip through --set")
    except Exception as e:
        report.problems.append(f"config: {e}")
        return report
    config = spec.make_config(sets or {})
    first = synthetic_run(spec.make(config), report=report)
    if report.problems:
        return report
    report.actions = len(first)
    second = synthetic_run(spec.make(config))
    if [(t, repr(a)) for t, a in first] != [(t, repr(a)) for t, a in second]:
        report.problems.append("two runs of the same trace gave different actions")
    return report


_checked: set[str] = set()


def load_policy(name: str, sets: Mapping[str, str] | None = None) -> ActPolicy:
    """The policy ``name`` with ``sets`` applied; a policy that is not built in must pass the checker first."""
    spec = registry.get(name)
    config = spec.make_config(sets or {})
    if not registry.is_builtin(spec) and spec.versioned_id not in _checked:
        report = check_act_policy(spec.versioned_id, sets)
        if not report.ok:
            raise PolicyError(spec.id, "fails the action-policy conformance check: " + "; ".join(report.problems[:3]))
        _checked.add(spec.versioned_id)
    return spec.make(config)
