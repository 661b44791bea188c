"""The simulated scheduler (the kernel's ``kernel/sched/``).

The exact (per-slice) scheduler: ``sched.py`` (the shared types, as ``sched.h``), ``core.py``, the classes
``stop_task.py``, ``deadline.py``, ``rt.py`` and ``fair.py``, ``preempt.py``, ``program.py`` (task programs),
``isolation.py``, ``machine.py`` (``RtMachine``) and ``kvm.py`` (``KvmGuest``). The fluid NUMA machine's
load balancer and scheduling domains are ``balance.py`` and ``domains.py``; its CPU shares are
``fair.fluid_shares``.
"""
