"""NUMA balancing policies by stable id (``memsched list policies``)."""

from memsched.policies.numa.registry import PolicySpec, get, names, register

__all__ = ["PolicySpec", "get", "names", "register"]
