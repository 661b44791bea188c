"""The exact (per-slice) scheduler simulator, mirroring the kernel's ``kernel/sched/``.

``sched.py`` (the shared types, as ``sched.h``), ``core.py``, the classes ``stop_task.py``, ``deadline.py``,
``rt.py`` and ``fair.py``, ``preempt.py``, ``program.py`` (task programs) and ``interp.py`` (their
interpreter), ``isolation.py``, ``machine.py`` (``RtMachine``) and ``kvm.py`` (``KvmGuest``). The fluid NUMA
machine is the other simulator (``memsched.sim.fluid``).
"""
