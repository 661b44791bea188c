"""Live NUMA: topology, placement and locality of real processes, and running policies against them."""
