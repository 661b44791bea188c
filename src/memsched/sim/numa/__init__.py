"""Automatic NUMA balancing mechanism (PTE scanning, hinting faults) in the simulated kernel."""
