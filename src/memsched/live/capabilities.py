"""``live.capabilities()``: the one place that answers "does this kernel (and do we) have X?".

Every capability is a :class:`Capability` — ``available`` and a ``reason`` that says why in words (what was
read, what was missing) — so a command or a test that cannot proceed can print the reason, and a live test can
``pytest.skip(cap.reason)``.

**Adding a capability** (PSI triggers, cgroup v1 ``memory.pressure_level``, NUMA nodes, ...): add a field to
:class:`Capabilities`, write a probe ``def _probe_x(ctx: ProbeContext) -> Capability`` that reads through
``ctx.roots`` (never a hard-coded ``/proc``), and register it in ``_PROBES`` under the field's name. A unit
test checks that every field has exactly one probe. Probes must not change the system (no mounts, no
writes) and must not raise for an absent feature: absence is an answer.

Facts used here: ``CAP_SYS_NICE`` = 23 and ``CAP_SYS_RESOURCE`` = 24 (include/uapi/linux/capability.h), read
from ``CapEff`` in ``/proc/self/status`` (fs/proc/array.c); SCHED_DEADLINE privilege rules from
kernel/sched/syscalls.c (6.18, see :mod:`memsched.live.dl_explain`); PSI trigger rules from kernel/sched/psi.c
(``psi_trigger_create()``: 6.5+ lets openers without CAP_SYS_RESOURCE arm triggers whose window is a multiple
of 2 s; 5.13-6.4 refuse them with EPERM at open; triggers exist since 5.2); memcg v1 pressure levels from
mm/vmpressure.c and Documentation/admin-guide/cgroup-v1/memory.rst (section 11, "Memory Pressure").
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from memsched.admission import BW_UNIT, DlBandwidth
from memsched.errors import KernelError, MemschedError, UnsupportedError
from memsched.live.deadline import dl_sysctls, fair_servers, root_domain
from memsched.live.dl_explain import deadline_privilege
from memsched.live.isolation import cpu_isolation
from memsched.live.procfs import (
    CAP_SYS_RESOURCE,
    kernel_version,
    parse_flat_keyed,
    parse_int,
    parse_psi,
    parse_status,
)
from memsched.live.roots import LiveRoots, try_read_text
from memsched.live.sched_attr import sched_getattr
from memsched.uapi.cpumask import format_cpulist, parse_cpulist
from memsched.uapi.sched import SchedAttr

__all__ = [
    "Capabilities",
    "Capability",
    "ProbeContext",
    "cap_effective",
    "capabilities",
    "probe",
    "psi_privileged",
]


@dataclass(frozen=True, slots=True)
class Capability:
    """Whether a mechanism is usable here, and why (or why not)."""

    available: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"available": self.available, "reason": self.reason}

    def require(self, name: str) -> None:
        """Raise :class:`UnsupportedError` with the reason when this capability (called ``name``) is not
        available."""
        if not self.available:
            raise UnsupportedError(name.replace("_", " "), self.reason)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the running kernel offers and what this process may do with it. One field per capability."""

    sched_deadline: Capability
    """The kernel has SCHED_DEADLINE and ``sched_getattr`` works on this ABI."""
    sched_deadline_permitted: Capability
    """This process may make a task SCHED_DEADLINE (CAP_SYS_NICE, affinity covers the root domain,
    bandwidth > 0)."""
    fair_server_params: Capability
    """The per-CPU fair_server reservations are readable from debugfs (otherwise defaults are assumed)."""
    nohz_full: Capability
    """Some CPUs run tickless (``nohz_full=``; needs ``CONFIG_NO_HZ_FULL``)."""
    isolated_cpus: Capability
    """Some CPUs are outside the scheduler domains (``isolcpus=`` or an isolated cpuset partition)."""

    # ---- memory pressure ---------------------------------------------------------------------------------
    psi: Capability
    """PSI memory accounting is on (``/proc/pressure/memory`` is readable)."""
    psi_triggers: Capability
    """This process may arm PSI triggers on ``/proc/pressure/memory`` (the reason states the window rule)."""
    psi_cgroup: Capability
    """The caller's own cgroup v2 has a ``memory.pressure`` this process may arm triggers on."""
    memcg_v1_pressure_level: Capability
    """cgroup v1 ``memory.pressure_level`` + ``cgroup.event_control`` are usable in the caller's memcg."""
    cgroup_v2_memory_stat: Capability
    """The caller's cgroup v2 has ``memory.stat`` with ``pgscan``/``pgsteal`` (a per-cgroup reclaim index)."""
    reclaim_counters: Capability
    """``/proc/vmstat`` has the scan/steal counters the user-space reclaim index needs."""

    # ---- NUMA (memsched.live.numa) ----------------------------------------------------------------------
    numa_nodes: Capability
    """More than one NUMA node is online (otherwise there is nothing to balance: every move is a no-op)."""
    numa_maps: Capability
    """``/proc/<pid>/numa_maps`` exists (a kernel with ``CONFIG_NUMA``): per-process memory per node."""
    numa_balancing: Capability
    """The kernel's own automatic NUMA balancing is on (``kernel.numa_balancing``), which a user-space
    balancer then runs alongside."""

    def require(self, name: str) -> None:
        """Raise :class:`UnsupportedError` with the reason when capability ``name`` is not available."""
        getattr(self, name).require(name)

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {f.name: getattr(self, f.name).to_dict() for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a probe may use: the roots to read and the system calls (injectable for tests)."""

    roots: LiveRoots
    getattr_fn: Callable[[int], SchedAttr]


# --------------------------------------------------------------------------------------------- probes


def _probe_sched_deadline(ctx: ProbeContext) -> Capability:
    try:
        attr = ctx.getattr_fn(0)
    except UnsupportedError as e:
        return Capability(False, e.reason)
    except KernelError as e:
        return Capability(False, f"sched_getattr(0) failed: {e}")
    release, _ = try_read_text(ctx.roots.proc("sys", "kernel", "osrelease"), ctx.roots)
    kernel = f"kernel {release.strip()}" if release else "this kernel"
    return Capability(True, f"sched_getattr works on {kernel} (this thread: policy {attr.sched_policy})")


def _probe_sched_deadline_permitted(ctx: ProbeContext) -> Capability:
    base = _probe_sched_deadline(ctx)
    if not base.available:
        return base
    priv = deadline_privilege(ctx.roots)
    problems = priv.problems()
    if priv.has_cap_sys_nice is None:
        problems.append(f"cannot read CapEff from {ctx.roots.proc('self', 'status')}")
    if problems:
        return Capability(False, "; ".join(problems))
    sysctls = dl_sysctls(ctx.roots)
    domain = root_domain(ctx.roots)
    limit = DlBandwidth(domain.capacities, sysctls.rt_runtime_us, sysctls.rt_period_us).limit
    bandwidth = "unlimited (sched_rt_runtime_us = -1)" if limit is None else f"{limit / BW_UNIT:.3f} CPUs"
    affinity = format_cpulist(priv.affinity) if priv.affinity is not None else "?"
    return Capability(
        True,
        f"CAP_SYS_NICE held; affinity {affinity} covers root domain {domain.cpulist}; "
        f"deadline limit {bandwidth} "
        f"(sched_rt_runtime_us {sysctls.rt_runtime_us} / sched_rt_period_us {sysctls.rt_period_us})",
    )


def _probe_fair_server_params(ctx: ProbeContext) -> Capability:
    domain = root_domain(ctx.roots)
    servers = fair_servers(domain.cpus, ctx.roots)
    return Capability(servers.source == "debugfs", servers.reason)


def _probe_nohz_full(ctx: ProbeContext) -> Capability:
    iso = cpu_isolation(ctx.roots)
    path = ctx.roots.sys("devices", "system", "cpu", "nohz_full")
    if iso.nohz_full is None:
        return Capability(False, f"{path} does not exist: kernel built without CONFIG_NO_HZ_FULL")
    if not iso.nohz_full:
        return Capability(False, f"{path} lists no CPU (no nohz_full= on the kernel command line)")
    return Capability(True, f"nohz_full CPUs: {format_cpulist(iso.nohz_full)}")


def _probe_isolated_cpus(ctx: ProbeContext) -> Capability:
    iso = cpu_isolation(ctx.roots)
    if not iso.isolated:
        return Capability(
            False, f"no CPU is isolated ({ctx.roots.sys('devices', 'system', 'cpu', 'isolated')} is empty)"
        )
    return Capability(True, f"isolated CPUs: {format_cpulist(iso.isolated)}")


# --------------------------------------------------------------------------------------------- memory pressure


def cap_effective(roots: LiveRoots | None = None) -> int | None:
    """The caller's effective capability mask (``CapEff``), or None if it cannot be read."""
    path = (roots or LiveRoots()).proc("self", "status")
    text, _ = try_read_text(path, roots)
    return parse_status(text, source=str(path)).cap_eff if text is not None else None


def psi_privileged(roots: LiveRoots | None = None) -> bool:
    """Whether PSI treats this process as privileged (``CAP_SYS_RESOURCE`` in its effective set)."""
    caps = cap_effective(roots)
    return caps is not None and bool(caps >> CAP_SYS_RESOURCE & 1)


def _kernel_version(roots: LiveRoots) -> tuple[int, int] | None:
    text, _ = try_read_text(roots.proc("sys", "kernel", "osrelease"), roots)
    if text is None:
        return None
    try:
        return kernel_version(text)
    except KernelError:
        return None


def _psi_window_rule(roots: LiveRoots) -> str:
    if psi_privileged(roots):
        return "CAP_SYS_RESOURCE held: any trigger window up to 10 s"
    return "without CAP_SYS_RESOURCE: trigger windows must be multiples of 2 s"


def _probe_openable_rw(path: Path) -> str | None:
    """Open for writing without writing (a PSI open checks privilege; nothing changes until a write)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot open {path} for writing: {os.strerror(e.errno or errno.EIO)}"
    os.close(fd)
    return None


def _probe_psi(ctx: ProbeContext) -> Capability:
    path = ctx.roots.proc("pressure", "memory")
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, f"{why} (kernel without CONFIG_PSI, or booted with psi=0)")
    try:
        parse_psi(text, source=str(path))
    except KernelError as e:
        return Capability(False, str(e))
    return Capability(True, f"{path} is readable")


def _probe_psi_triggers(ctx: ProbeContext) -> Capability:
    base = _probe_psi(ctx)
    if not base.available:
        return base
    version = _kernel_version(ctx.roots)
    if version is not None and version < (5, 2):
        return Capability(False, f"kernel {version[0]}.{version[1]} predates PSI triggers (5.2)")
    path = ctx.roots.proc("pressure", "memory")
    problem = _probe_openable_rw(path)
    if problem is not None:
        return Capability(False, problem + " (kernels 5.13-6.4 require CAP_SYS_RESOURCE to write triggers)")
    return Capability(True, f"{path} accepts triggers; {_psi_window_rule(ctx.roots)}")


def _probe_psi_cgroup(ctx: ProbeContext) -> Capability:
    from memsched.live.cgroups import own_cgroups  # (imported by the probes that read cgroups: see probe())

    own = own_cgroups(ctx.roots)
    if own.v2 is None:
        return Capability(False, "the caller is in no cgroup v2 (the unified hierarchy is not mounted)")
    path = own.v2 / "memory.pressure"
    if not path.exists():
        return Capability(False, f"{path} does not exist (kernel without CONFIG_PSI or cgroup PSI disabled)")
    problem = _probe_openable_rw(path)
    if problem is not None:
        return Capability(False, problem)
    where = "the root cgroup (system-wide, as /proc/pressure/memory)" if own.v2_path == "/" else own.v2_path
    return Capability(True, f"{path} of {where} accepts triggers; {_psi_window_rule(ctx.roots)}")


def _probe_memcg_v1_pressure_level(ctx: ProbeContext) -> Capability:
    from memsched.live.cgroups import cgroup_mounts, own_cgroups

    own = own_cgroups(ctx.roots)
    if own.v1_memory is None:
        mounts = cgroup_mounts(ctx.roots)
        if mounts.v1_memory is None:
            return Capability(
                False,
                "the cgroup v1 memory controller is not mounted (cgroup v2 has no memory.pressure_level; "
                "CONFIG_MEMCG_V1 defaults to n since 6.11)",
            )
        return Capability(False, "the caller has no v1 memory cgroup in /proc/self/cgroup")
    level = own.v1_memory / "memory.pressure_level"
    control = own.v1_memory / "cgroup.event_control"
    if not level.exists():
        return Capability(False, f"{level} does not exist")
    if not control.exists():
        return Capability(False, f"{control} does not exist")
    if not os.access(control, os.W_OK):
        return Capability(False, f"{control} is not writable by this process")
    return Capability(True, f"{level} with eventfd registration through {control}")


def _probe_cgroup_v2_memory_stat(ctx: ProbeContext) -> Capability:
    from memsched.live.cgroups import own_cgroups  # (imported by the probes that read cgroups: see probe())

    own = own_cgroups(ctx.roots)
    if own.v2 is None:
        return Capability(False, "the caller is in no cgroup v2 (the unified hierarchy is not mounted)")
    path = own.v2 / "memory.stat"
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, f"{why} (the v2 memory controller is not enabled for this cgroup)")
    stat = parse_flat_keyed(text, source=str(path))
    missing = [k for k in ("pgscan", "pgsteal") if k not in stat]
    if missing:
        return Capability(False, f"{path} lacks {', '.join(missing)}")
    return Capability(True, f"{path} has pgscan/pgsteal")


def _probe_reclaim_counters(ctx: ProbeContext) -> Capability:
    path = ctx.roots.proc("vmstat")
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, why)
    vmstat = parse_flat_keyed(text, source=str(path))
    need = ("pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file")
    missing = [k for k in need if k not in vmstat]
    if missing:
        return Capability(False, f"{path} lacks {', '.join(missing)} (kernel older than 5.8?)")
    extra = "; proactive reclaim is subtracted" if "pgscan_proactive" in vmstat else ""
    return Capability(True, f"{path} has {', '.join(need)}{extra}")


# ---- NUMA probes ---------------------------------------------------------------------------------------------
# Formats: ``/sys/devices/system/node/online`` is a node list (drivers/base/node.c ``print_nodes_state``);
# ``/proc/sys/kernel/numa_balancing`` is 0 (off), 1 (NUMA_BALANCING_NORMAL) or 2 (NUMA_BALANCING_MEMORY_TIERING),
# or 3 for both (kernel/sched/core.c ``sysctl_numa_balancing``, 5.18+; 0/1 before). Neither probe imports
# ``memsched.live.numa``: capabilities stay below the NUMA balancer.


def _probe_numa_nodes(ctx: ProbeContext) -> Capability:
    path = ctx.roots.sys("devices", "system", "node", "online")
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, f"{why}: kernel without CONFIG_NUMA, or sysfs not mounted")
    nodes = parse_cpulist(text, field=str(path))
    if len(nodes) < 2:
        return Capability(
            False,
            f"{len(nodes)} NUMA node online ({format_cpulist(nodes)}): every placement is local, moves are no-ops",
        )
    return Capability(True, f"{len(nodes)} NUMA nodes online ({format_cpulist(nodes)})")


def _probe_numa_maps(ctx: ProbeContext) -> Capability:
    path = ctx.roots.proc("self", "numa_maps")
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, f"{why}: kernel without CONFIG_NUMA (no per-node memory of processes)")
    return Capability(True, f"{path} is readable")


_NUMA_BALANCING_MODES = {1: "NUMA_BALANCING_NORMAL", 2: "NUMA_BALANCING_MEMORY_TIERING", 3: "normal + memory tiering"}


def _probe_numa_balancing(ctx: ProbeContext) -> Capability:
    path = ctx.roots.proc("sys", "kernel", "numa_balancing")
    text, why = try_read_text(path, ctx.roots)
    if text is None:
        return Capability(False, f"{why}: kernel without CONFIG_NUMA_BALANCING")
    try:
        mode = parse_int(text, source=str(path))
    except KernelError as e:
        return Capability(False, str(e))
    if mode == 0:
        return Capability(False, f"{path} is 0: the kernel's automatic NUMA balancing is off")
    name = _NUMA_BALANCING_MODES.get(mode, "unknown mode")
    return Capability(
        True, f"the kernel's automatic NUMA balancing is on ({path} = {mode}, {name}): it moves pages and tasks too"
    )


_PROBES: Mapping[str, Callable[[ProbeContext], Capability]] = {
    "sched_deadline": _probe_sched_deadline,
    "sched_deadline_permitted": _probe_sched_deadline_permitted,
    "fair_server_params": _probe_fair_server_params,
    "nohz_full": _probe_nohz_full,
    "isolated_cpus": _probe_isolated_cpus,
    # memory pressure
    "psi": _probe_psi,
    "psi_triggers": _probe_psi_triggers,
    "psi_cgroup": _probe_psi_cgroup,
    "memcg_v1_pressure_level": _probe_memcg_v1_pressure_level,
    "cgroup_v2_memory_stat": _probe_cgroup_v2_memory_stat,
    "reclaim_counters": _probe_reclaim_counters,
    "numa_nodes": _probe_numa_nodes,
    "numa_maps": _probe_numa_maps,
    "numa_balancing": _probe_numa_balancing,
}


def capabilities(
    roots: LiveRoots | None = None, *, getattr_fn: Callable[[int], SchedAttr] | None = None
) -> Capabilities:
    """Probe everything; a probe that hits an unexpected kernel error reports it as its reason."""
    ctx = ProbeContext(roots or LiveRoots(), getattr_fn or sched_getattr)
    return Capabilities(**{name: _run_probe(name, ctx) for name in _PROBES})


def probe(
    name: str, roots: LiveRoots | None = None, *, getattr_fn: Callable[[int], SchedAttr] | None = None
) -> Capability:
    """The one capability ``name`` (a field of :class:`Capabilities`), as :func:`capabilities` answers it, without
    the others' probes: ``memsched rt admit`` asks for two of fourteen (and so does not import the cgroup
    readers, which only the cgroup probes use)."""
    if name not in _PROBES:
        raise ValueError(f"no capability {name!r}; the capabilities: {', '.join(_PROBES)}")
    return _run_probe(name, ProbeContext(roots or LiveRoots(), getattr_fn or sched_getattr))


def _run_probe(name: str, ctx: ProbeContext) -> Capability:
    """Probe ``name``; an unexpected kernel error is its reason."""
    try:
        return _PROBES[name](ctx)
    except MemschedError as e:
        return Capability(False, f"probe failed: {e}")
    except OSError as e:
        return Capability(False, f"probe failed: {e.strerror or errno.errorcode.get(e.errno or 0, e)}")
