"""NUMA balancing policies by versioned id (``memsched list policies``); see ``registry`` for plug-ins."""

from memsched.policies.numa.registry import PolicySpec, get, names, register, specs, unregister

__all__ = ["PolicySpec", "get", "names", "register", "specs", "unregister"]
