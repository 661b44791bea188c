"""Workloads that run on the simulated machine, by stable id (``memsched list workloads``)."""

from memsched.workloads import autonumabench
from memsched.workloads.base import Built, WorkloadSpec, get, names, register

__all__ = ["Built", "WorkloadSpec", "autonumabench", "get", "names", "register"]
