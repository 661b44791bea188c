"""Workloads that run on the simulated machine, by stable id (``memsched list workloads``)."""

from memsched.workloads import autonumabench, mixed, perfbench, specjbb
from memsched.workloads.base import Built, WorkloadSpec, get, names, register

__all__ = ["Built", "WorkloadSpec", "autonumabench", "get", "mixed", "names", "perfbench", "register", "specjbb"]
