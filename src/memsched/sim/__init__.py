"""The simulated kernel: a NUMA machine, its memory manager and scheduler, driven by one event engine.

Import the pieces from their modules (``memsched.sim.machine.Machine``); this package keeps no state.
"""
