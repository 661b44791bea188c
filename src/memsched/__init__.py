"""memsched: automatic NUMA balancing, memory-pressure notification and the realtime roadmap, in a fast
simulated kernel (``memsched.sim``) and against the running one (``memsched.live``)."""

__version__ = "0.1.0"
