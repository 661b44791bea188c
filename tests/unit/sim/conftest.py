"""Fixtures for the simulated memory-pressure machinery: small 4 KiB-page machines with reclaim attached."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from memsched.sim.fluid.machine import FluidMachine, MachineConfig
from memsched.sim.mm.reclaim import Reclaim, ReclaimConfig
from memsched.topology import load_topology
from memsched.units import MIB

MachineFactory = Callable[..., tuple[FluidMachine, Reclaim]]


@pytest.fixture
def pressure_machine() -> MachineFactory:
    """``make(memory_mib=128, **reclaim_config)`` -> (machine, reclaim) on a one-node, four-CPU machine."""

    def make(memory_mib: int = 128, seed: int = 0, **cfg: object) -> tuple[FluidMachine, Reclaim]:
        topo = load_topology("pressure-1n4")
        node = dataclasses.replace(topo.nodes[0], memory_bytes=memory_mib * MIB)
        topo = dataclasses.replace(topo, nodes=(node,))
        m = FluidMachine(topo, seed=seed, config=MachineConfig(thp=False))
        r = Reclaim(m, ReclaimConfig(**cfg))  # type: ignore[arg-type]
        m.add_instrument(r)
        return m, r

    return make
