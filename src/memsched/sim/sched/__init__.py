"""The exact (per-slice) scheduler simulator, mirroring the kernel's ``kernel/sched/``.

``sched.py`` (the shared types, as ``sched.h``), ``core.py``, the classes ``stop_task.py``, ``deadline.py``,
``rt.py`` and ``fair.py``, ``preempt.py``, ``program.py`` (task programs) and ``interp.py`` (their
interpreter), ``isolation.py``, ``machine.py`` (``RtMachine``) and ``kvm.py`` (``KvmGuest``). The fluid NUMA
machine is the other simulator (``memsched.sim.fluid``).

A wheel build (``pip install .``) compiles the hot modules with mypyc where a C compiler is found, with the same
results; an editable install, a machine without a compiler and ``MEMSCHED_MYPYC=0`` give pure Python (``setup.py``).
"""

from __future__ import annotations


def compiled() -> bool:
    """Whether the scheduler core imported here is the mypyc-compiled build (``setup.py``) rather than the
    pure-Python modules; the two give identical results. Answered from where the module is found, without
    importing it (``memsched --version`` asks, and the core imports numpy)."""
    import importlib.util

    spec = importlib.util.find_spec("memsched.sim.sched.core")
    return spec is not None and not (spec.origin or "").endswith(".py")
