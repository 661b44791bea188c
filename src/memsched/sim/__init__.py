"""The simulated kernel, twice: the fluid NUMA machine (``memsched.sim.fluid``) for long bandwidth-bound runs
and memory pressure, and the exact per-slice scheduler (``memsched.sim.sched``) for the realtime questions.

Both run on one discrete-event engine (``memsched.sim.engine``). Import the pieces from their modules
(``memsched.sim.fluid.machine.FluidMachine``); this package keeps no state.
"""
