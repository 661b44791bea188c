"""Which CPUs the running kernel isolates: ``isolcpus``/cpuset domain isolation and ``nohz_full``.

Sources (Linux 6.18): ``drivers/base/cpu.c`` prints ``/sys/devices/system/cpu/isolated`` (CPUs outside the
scheduler domains: ``isolcpus=domain,...`` or the legacy ``isolcpus=<list>``) and, only with
``CONFIG_NO_HZ_FULL``, ``/sys/devices/system/cpu/nohz_full`` (``(null)`` when no ``nohz_full=`` was given);
``Documentation/admin-guide/cpu-isolation.rst`` for the boot parameters, read back from ``/proc/cmdline``.
Isolated CPUs are attached to the default root domain (``kernel/sched/topology.c``), so they do not share
deadline bandwidth with the housekeeping CPUs (used by :mod:`memsched.live.deadline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from memsched.live.roots import LiveRoots, read_text, try_read_text
from memsched.uapi.cpumask import format_cpulist, parse_cpulist

__all__ = ["ISOLATION_BOOT_PARAMS", "CpuIsolation", "cpu_isolation", "isolation_boot_params"]

#: Boot parameters that shape CPU isolation (cpu-isolation.rst, no_hz.rst, kernel-parameters.txt).
ISOLATION_BOOT_PARAMS = ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity", "nohz", "idle")


@dataclass(frozen=True, slots=True)
class CpuIsolation:
    """Online CPUs and which of them are isolated, as the kernel reports them.

    ``nohz_full`` is ``None`` when the kernel was built without ``CONFIG_NO_HZ_FULL`` (no sysfs file), and
    ``isolated`` is empty (not ``None``) when the file exists and lists nothing.
    """

    online: frozenset[int]
    isolated: frozenset[int]
    nohz_full: frozenset[int] | None
    boot_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def housekeeping(self) -> frozenset[int]:
        """Online CPUs in the scheduler domains (all online CPUs when every CPU is isolated)."""
        return (self.online - self.isolated) or self.online

    def describe(self, cpu: int) -> str:
        tags = []
        if cpu in self.isolated:
            tags.append("isolated")
        if self.nohz_full and cpu in self.nohz_full:
            tags.append("nohz_full")
        return ",".join(tags) or "-"

    def to_dict(self) -> dict[str, object]:
        return {
            "online": format_cpulist(self.online),
            "isolated": format_cpulist(self.isolated),
            "nohz_full": None if self.nohz_full is None else format_cpulist(self.nohz_full),
            "boot_params": dict(self.boot_params),
        }


def isolation_boot_params(cmdline: str) -> dict[str, str]:
    """The isolation-related ``key=value`` (or bare ``key``) words of ``/proc/cmdline``, before any ``--``."""
    out: dict[str, str] = {}
    for word in cmdline.split():
        if word == "--":
            break
        key, _, value = word.partition("=")
        if key in ISOLATION_BOOT_PARAMS:
            out[key] = value
    return out


def cpu_isolation(roots: LiveRoots | None = None) -> CpuIsolation:
    """Read online, isolated and nohz_full CPUs (``online`` must exist; the others are optional)."""
    roots = roots or LiveRoots()
    cpu_dir = roots.sys("devices", "system", "cpu")
    online = parse_cpulist(read_text(cpu_dir / "online", roots), field=str(cpu_dir / "online"))
    isolated_text, _ = try_read_text(cpu_dir / "isolated", roots)
    isolated = parse_cpulist(isolated_text, field="isolated") if isolated_text is not None else frozenset()
    nohz_text, _ = try_read_text(cpu_dir / "nohz_full", roots)
    nohz_full = parse_cpulist(nohz_text, field="nohz_full") if nohz_text is not None else None
    cmdline, _ = try_read_text(roots.proc("cmdline"), roots)
    return CpuIsolation(online, isolated, nohz_full, isolation_boot_params(cmdline or ""))
