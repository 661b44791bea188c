"""Registers the built-in NUMA policies, in the order reports list them."""

from memsched.policies.numa import (  # noqa: F401
    autonuma,
    balancenuma,
    homenode,
    mainline,
    moron,
    none,
    numacore,
    numad,
)
