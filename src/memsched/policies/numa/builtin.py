"""The built-in NUMA policies: one table, in the order reports list them.

Each policy's id and version are written here and nowhere else: the policy object learns its id from its spec
when it is made. Entry points are ``module:Class`` strings, so this table imports no policy module.
"""

from __future__ import annotations

from memsched.policies.numa.spec import PolicySpec

__all__ = ["BUILTIN"]

BUILTIN: tuple[PolicySpec, ...] = (
    PolicySpec(
        id="none",
        version=1,
        entry_point="memsched.policies.numa.none:NoBalancing",
        config_entry_point="memsched.policies.numa.none:NoneConfig",
        description="no automatic NUMA balancing: first touch and the load balancer only",
        models="vanilla v3.7 (numa_balancing=0)",
        rank=0,
    ),
    PolicySpec(
        id="moron",
        version=1,
        entry_point="memsched.policies.numa.moron:Moron",
        config_entry_point="memsched.policies.numa.moron:MoronConfig",
        description="migrate a page to the faulting CPU's node on every misplaced hinting fault",
        models="balancenuma V1 (Mel Gorman, 6 Nov 2012): MPOL_F_MORON",
        rank=10,
    ),
    PolicySpec(
        id="balancenuma",
        version=1,
        entry_point="memsched.policies.numa.balancenuma:Balancenuma",
        config_entry_point="memsched.policies.numa.balancenuma:BalancenumaConfig",
        description="MORON + two-stage last_nid filter + 128 MB/100 ms rate limit + scan slow-down (3.8)",
        models="Linux v3.8 automatic NUMA balancing (balancenuma v10+, Mel Gorman)",
        rank=20,
    ),
    PolicySpec(
        id="homenode",
        version=1,
        entry_point="memsched.policies.numa.homenode:Homenode",
        config_entry_point="memsched.policies.numa.homenode:HomenodeConfig",
        description="balancenuma + home node per task, CPU follows memory, home-node-aware load balancing",
        models="balancenuma V2/V3 (Mel Gorman, Nov 2012): home node + 'CPU follows memory'",
        rank=30,
    ),
    PolicySpec(
        id="autonuma",
        version=1,
        entry_point="memsched.policies.numa.autonuma:Autonuma",
        config_entry_point="memsched.policies.numa.autonuma:AutonumaConfig",
        description="knuma_scand + last_nid filter + async per-node migration + sched_autonuma_balance task exchange",
        models="AutoNUMA v27/v28 (Andrea Arcangeli, 2012)",
        rank=40,
    ),
    PolicySpec(
        id="numacore",
        version=1,
        entry_point="memsched.policies.numa.numacore:Numacore",
        config_entry_point="memsched.policies.numa.numacore:NumacoreConfig",
        description="whole-address-space scans, last_cpu private/shared, memory follows task, adaptive affinity",
        models="numa/core v16+ adaptive affinity (Peter Zijlstra, 12 Nov 2012)",
        rank=50,
    ),
    PolicySpec(
        id="mainline",
        version=1,
        entry_point="memsched.policies.numa.mainline:Mainline",
        config_entry_point="memsched.policies.numa.mainline:MainlineConfig",
        description="3.13+ numa_balancing: preferred node, task_numa_migrate move/swap, NUMA groups, 3/4 rule",
        models="Linux 3.13-3.17 kernel/sched/fair.c (Gorman, van Riel, Zijlstra)",
        rank=60,
    ),
    PolicySpec(
        id="numad",
        version=1,
        entry_point="memsched.policies.numa.numad:Numad",
        config_entry_point="memsched.policies.numa.numad:NumadConfig",
        description="user-space daemon: sample CPU and memory per process, bind the best candidate to its best nodes",
        models="numad 20121015 (Red Hat), sched_setaffinity + migrate_pages",
        rank=70,
    ),
)
