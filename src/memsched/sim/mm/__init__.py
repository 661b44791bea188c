"""The simulated memory manager (the kernel's ``mm/``): address spaces, page allocator, memory policies,
migration and ``/proc/vmstat`` counters."""
