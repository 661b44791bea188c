"""The fluid NUMA machine: tasks progress at rates computed from page placement, between discrete events.

This is one of memsched's two simulators (the other, per time slice, is ``memsched.sim.sched``). It runs the
long, bandwidth-bound benchmarks of the NUMA balancing debate and the memory-pressure scenarios. Import the
pieces from their modules (``memsched.sim.fluid.machine.FluidMachine``); this package keeps no state.
"""
