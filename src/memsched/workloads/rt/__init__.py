"""Realtime scenarios for the exact machine (``memsched rt sim``), by stable id.

One module per scenario, as the NUMA workloads are; the built-in ones are registered from
:data:`SCENARIOS` below, in the order ``memsched rt sim`` lists them (no discovery by file name):

* ``hackbench`` — SCHED_OTHER message passing through pipes (``hackbench.py``);
* ``cyclictest`` — periodic SCHED_FIFO timer wakeups per CPU measuring latency (``cyclictest.py``);
* ``hackbench+cyclictest`` — both at once: the question the preemption models answer (``mix.py``);
* ``dl-periodic`` / ``dl-sporadic`` — random SCHED_DEADLINE task sets under global EDF (``dlsets.py``);
* ``dhall`` — Dhall's effect (``dhall.py``);
* ``grub`` — the GRUB reclaiming example of sched-deadline.rst (``grub.py``);
* ``isolation`` — a poller on an isolated CPU vs one on a housekeeping CPU (``isolation.py``);
* ``kvm`` — a guest deadline task inside a KVM guest (``kvm.py``).

An rt-app JSON file runs instead of a scenario with ``load_rt_app`` (``rtapp.py``); ``run_rt_scenario``
(``run.py``) runs either and returns the run record.
"""

from memsched.workloads.rt import cyclictest, dhall, dlsets, grub, hackbench, isolation, kvm, mix
from memsched.workloads.rt.base import RtBuilt, RtScenario, get, names, register
from memsched.workloads.rt.cyclictest import CyclictestConfig, build_cyclictest
from memsched.workloads.rt.dlsets import DlSetConfig, dl_taskset, spawn_dl_set
from memsched.workloads.rt.hackbench import HackbenchConfig, build_hackbench
from memsched.workloads.rt.rtapp import load_rt_app
from memsched.workloads.rt.run import run_rt_scenario

__all__ = [
    "SCENARIOS",
    "CyclictestConfig",
    "DlSetConfig",
    "HackbenchConfig",
    "RtBuilt",
    "RtScenario",
    "build_cyclictest",
    "build_hackbench",
    "dl_taskset",
    "get",
    "load_rt_app",
    "names",
    "register",
    "run_rt_scenario",
    "spawn_dl_set",
]

#: The built-in scenarios, in listing order.
SCENARIOS: tuple[RtScenario, ...] = (
    hackbench.SCENARIO,
    cyclictest.SCENARIO,
    mix.SCENARIO,
    dlsets.PERIODIC,
    dlsets.SPORADIC,
    dhall.SCENARIO,
    grub.SCENARIO,
    isolation.SCENARIO,
    kvm.SCENARIO,
)
for _spec in SCENARIOS:
    register(_spec)
