"""Memory-pressure scenarios: services filling a machine, each notification design, and what happens.

A scenario is a machine (topology, optionally smaller memory), the kernel's sysctls, and services. It is run
once per *notification design*:

``none``
    nobody listens; the kernel reclaims and, when it cannot, the OOM killer decides.
``rfc2012``
    each shedding service opens ``vmpressure_fd(threshold = VMPRESSURE_MEDIUM)`` (system-wide, the RFC's only
    mode) and reads the level: MEDIUM -> shed, OOM -> drop everything.
``mainline``
    each shedding service registers two eventfds on its memcg's ``memory.pressure_level`` through
    ``cgroup.event_control`` (``medium`` and ``critical``, default mode; the root memcg unless the service
    has its own): the eventfds count, so the service learns the level from which eventfd fired.
``psi``
    each shedding service arms two PSI triggers on ``/proc/pressure/memory`` (by default ``some 100000
    1000000`` -> medium and ``full 100000 1000000`` -> critical, privileged, as lmkd's defaults) and waits
    for ``POLLPRI``.

Service kinds (every one may ``ignore`` notifications or ``shed``: on MEDIUM give back ``shed_fraction`` of
what it holds, on OOM/critical give back everything; a ``cooldown`` after a shed ignores further MEDIUMs):

``streamer``
    writes a file through the page cache in ``chunk`` pieces as fast as dirty throttling lets it (the disk's
    write bandwidth once ``dirty_ratio`` is reached). Throughput in MiB/s. Shedding = ``POSIX_FADV_DONTNEED``
    on what it has written (clean pages only).
``cache``
    a memcached-like service cycling over ``size / chunk`` keys, one chunk of requests per step: a present
    chunk costs ``hit_cost``, an absent one ``miss_cost`` and is (re)filled, so the cache grows to ``size``.
    Throughput in steps/s. Shedding = ``MADV_DONTNEED`` on the most recently used chunks.
``allocator``
    an anonymous allocator (a batch job) that allocates ``size`` at ``rate`` and then keeps working on it.
    Throughput in MiB allocated per second. Shedding = freeing its most recent chunks.

Every service program is finite (sized for the scenario's duration); the run stops at ``duration``.
Scenario files are TOML (see ``memsched/data/scenarios/*.toml``); unknown keys and bad values are
:class:`~memsched.errors.ConfigError` naming the key, the value, what is allowed, and the file.

Modules: ``scenario.py`` (what a scenario is, and loading it), ``services.py`` (the services on a machine
under one design, and the figures of the run), ``run.py`` (the ``pressure`` family's runner).
"""

from memsched.workloads.pressure.run import PressureRunner, run_design
from memsched.workloads.pressure.scenario import (
    DESIGNS,
    KINDS,
    LEVELS,
    Scenario,
    ServiceSpec,
    list_scenarios,
    load_scenario,
    scenario_from_dict,
)
from memsched.workloads.pressure.services import PressureRun

__all__ = [
    "DESIGNS",
    "KINDS",
    "LEVELS",
    "PressureRun",
    "PressureRunner",
    "Scenario",
    "ServiceSpec",
    "list_scenarios",
    "load_scenario",
    "run_design",
    "scenario_from_dict",
]
