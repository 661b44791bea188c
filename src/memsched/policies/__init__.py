"""Pure decision logic shared by the simulator and the live backend: NUMA balancing policies.

A policy imports only ``memsched.uapi``, ``memsched.policies.numa.views`` and ``memsched.policies.numa.actions``
(plus the standard library and numpy), so the same object can drive the simulated kernel and, through the
live backend's views, a real machine.
"""
