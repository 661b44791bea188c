"""The simulated scheduler (the kernel's ``kernel/sched/``)."""
