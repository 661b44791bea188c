"""The simulated memory manager held against the running kernel on the same workloads
(``benchmarks/pressure_vs_kernel.py``).

A workload is described once (:mod:`.describe`) and run for real in fresh cgroups (:mod:`.real`: a v1 memcg
with vmpressure eventfds, or a v2 cgroup with PSI triggers, stall samples and ``memory.events``; :mod:`.v2`,
:mod:`.watch`) and in the simulator from the same description (:mod:`.sim`); :mod:`.compare` cuts the runs into
phases and compares them.
"""

from memsched.workloads.pressure.vskernel.compare import agreement, compare, phase_stats, phases, within
from memsched.workloads.pressure.vskernel.describe import LEVELS, Proc, Trace, Workload
from memsched.workloads.pressure.vskernel.real import (
    CGROUP_MODES,
    DISK_METHOD,
    cgroup_modes,
    kernel_config,
    measure_disk_mib_s,
    pick_mode,
    run_real,
)
from memsched.workloads.pressure.vskernel.sim import TOP, run_sim, scenario_doc
from memsched.workloads.pressure.vskernel.v2 import V2Cgroup, v2_memory_controller
from memsched.workloads.pressure.vskernel.watch import PSI_TRIGGERS, Watcher, read_counters

__all__ = [
    "CGROUP_MODES",
    "DISK_METHOD",
    "LEVELS",
    "PSI_TRIGGERS",
    "TOP",
    "Proc",
    "Trace",
    "V2Cgroup",
    "Watcher",
    "Workload",
    "agreement",
    "cgroup_modes",
    "compare",
    "kernel_config",
    "measure_disk_mib_s",
    "phase_stats",
    "phases",
    "pick_mode",
    "read_counters",
    "run_real",
    "run_sim",
    "scenario_doc",
    "v2_memory_controller",
    "within",
]
