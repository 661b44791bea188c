"""Action policies: what a user-space OOM killer or a shedding service does about memory pressure.

Pure plug-ins in the style of the NUMA policies (``memsched.policies.numa``): a policy reads a
:class:`~memsched.policies.act.views.MemoryView` and returns typed actions
(:mod:`memsched.policies.act.actions`); the simulator (``memsched.sim.act``) and the running kernel
(``memsched.live.act``) build the views and apply the actions. See ``registry`` for the ids.
"""
