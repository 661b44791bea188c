"""Memory policies: which node a newly touched page should come from.

Models ``mm/mempolicy.c`` as of Linux 3.7/3.8 (the kernels of the NUMA balancing debate):

- ``MPOL_DEFAULT`` / ``MPOL_LOCAL``: the node of the CPU that takes the fault (first touch).
- ``MPOL_PREFERRED``: the preferred node, falling back along that node's zonelist.
- ``MPOL_BIND``: *node-local within the allowed nodemask* (``policy_zonelist()`` returns the local node's
  zonelist and ``policy_nodemask()`` filters it), so a task on a node in the mask allocates locally, and a
  task elsewhere gets the nearest node of the mask. Allocation never leaves the mask.
- ``MPOL_INTERLEAVE``: for mapped memory, ``offset_il_node()`` picks the ``(page offset in the VMA) %
  weight``-th node of the mask, so placement is a function of the page index, not of time.

Zonelists (``build_zonelists()``, mm/page_alloc.c) order nodes by SLIT distance, with the kernel's
``node_load`` round-robin among nodes at equal distance (see :func:`zonelists`).

``MPOL_F_MOF`` ("migrate on fault", mm/mempolicy.c 3.8): only the default policy a task falls back to when it
has none of its own (``preferred_node_policy[]``) carries it, so :attr:`Mempolicy.mof` is true only for
``MPOL_DEFAULT``; ``mpol_misplaced()`` never migrates a page faulted under any other policy.

Deviations from the kernel: no per-VMA policies (``mbind``) yet; a policy is per task. ``MPOL_F_STATIC_NODES``
and ``MPOL_F_RELATIVE_NODES`` do not apply because simulated cpusets never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError
from memsched.policies.numa.views import MempolicyView
from memsched.uapi.mempolicy import MpolMode

__all__ = ["Mempolicy", "zonelists"]


@dataclass(frozen=True, slots=True)
class Mempolicy:
    """A task's memory policy: a mode and a node set (empty for DEFAULT / LOCAL)."""

    mode: MpolMode = MpolMode.DEFAULT
    nodes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.mode in (MpolMode.DEFAULT, MpolMode.LOCAL):
            if self.nodes:
                raise ConfigError("nodes", self.nodes, f"must be empty for MPOL_{self.mode.name}")
        elif self.mode is MpolMode.PREFERRED:
            if len(self.nodes) != 1:
                raise ConfigError("nodes", self.nodes, "must name exactly one node for MPOL_PREFERRED")
        elif self.mode in (MpolMode.BIND, MpolMode.INTERLEAVE):
            if not self.nodes:
                raise ConfigError("nodes", self.nodes, f"must not be empty for MPOL_{self.mode.name}")
        else:
            raise ConfigError("mode", self.mode.name, "must be DEFAULT, LOCAL, PREFERRED, BIND or INTERLEAVE")
        if len(set(self.nodes)) != len(self.nodes) or tuple(sorted(self.nodes)) != self.nodes:
            object.__setattr__(self, "nodes", tuple(sorted(set(self.nodes))))

    @classmethod
    def bind(cls, nodes: tuple[int, ...] | list[int]) -> Mempolicy:
        return cls(MpolMode.BIND, tuple(nodes))

    @classmethod
    def interleave(cls, nodes: tuple[int, ...] | list[int]) -> Mempolicy:
        return cls(MpolMode.INTERLEAVE, tuple(nodes))

    @classmethod
    def preferred(cls, node: int) -> Mempolicy:
        return cls(MpolMode.PREFERRED, (node,))

    @property
    def mof(self) -> bool:
        """``MPOL_F_MOF``: a NUMA hinting fault may migrate pages faulted under this policy (only the default
        ``preferred_node_policy[]`` has it; a task's own ``set_mempolicy(2)`` policy never does, 3.8)."""
        return self.mode is MpolMode.DEFAULT

    def view(self) -> MempolicyView:
        """What a NUMA policy sees of this policy."""
        return MempolicyView(self.mode.name.lower(), self.nodes, mof=self.mof)

    def validate_nodes(self, nr_nodes: int) -> None:
        bad = [n for n in self.nodes if not 0 <= n < nr_nodes]
        if bad:
            raise ConfigError("nodes", bad[0], f"must be a node id in 0..{nr_nodes - 1}")

    def allowed(self, nr_nodes: int) -> npt.NDArray[np.bool_]:
        """Nodes allocation may use at all (the mask for BIND, every node otherwise)."""
        mask = np.zeros(nr_nodes, dtype=bool)
        if self.mode is MpolMode.BIND:
            mask[list(self.nodes)] = True
        else:
            mask[:] = True
        return mask

    def target_nodes(
        self, cpu_node: int, page_index: npt.NDArray[np.int64], zonelist: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """The node each page should come from, before fallback (``policy_node()`` / ``offset_il_node()``).

        ``page_index`` is the index of each page inside its mapping; ``zonelist`` is ``zonelists(...)[cpu_node]``.
        """
        n = page_index.shape[0]
        if self.mode is MpolMode.INTERLEAVE:
            nodes = np.asarray(self.nodes, dtype=np.int64)
            return np.asarray(nodes[page_index % nodes.shape[0]], dtype=np.int64)
        if self.mode is MpolMode.PREFERRED:
            return np.full(n, self.nodes[0], dtype=np.int64)
        if self.mode is MpolMode.BIND and cpu_node not in self.nodes:
            allowed = set(self.nodes)
            first = next(int(z) for z in zonelist if int(z) in allowed)
            return np.full(n, first, dtype=np.int64)
        return np.full(n, cpu_node, dtype=np.int64)

    def describe(self) -> str:
        if not self.nodes:
            return self.mode.name.lower()
        return f"{self.mode.name.lower()}:{','.join(map(str, self.nodes))}"


def zonelists(distance: npt.NDArray[np.int64], *, max_numnodes: int = 1024) -> npt.NDArray[np.int64]:
    """Row ``n``: all nodes in fallback order from node ``n``, as ``build_zonelists()`` orders them.

    ``find_next_best_node()`` (mm/page_alloc.c, 3.7) picks, after the local node, the node of smallest
    ``(distance + (n < node) + PENALTY_FOR_NODE_WITH_CPUS) * (MAX_NODE_LOAD * MAX_NUMNODES) + node_load[n]``,
    and ``build_zonelists()`` charges ``node_load`` to the first node of each distance group, so nodes at
    equal distance are taken round-robin ("prefer the next node") instead of always the lowest id.
    ``node_load`` persists across the nodes, which are built in id order. Every modelled node has CPUs, so
    the CPU penalty is a constant here.
    """
    nr = distance.shape[0]
    max_node_load = nr
    node_load = [0] * nr
    out = np.empty((nr, nr), dtype=np.int64)
    for local in range(nr):
        used = [False] * nr
        order: list[int] = []
        load = nr
        prev = local
        for _ in range(nr):
            if not used[local]:
                node = local
            else:
                best, best_val = -1, None
                for n in range(nr):
                    if used[n]:
                        continue
                    val = int(distance[local, n]) + (1 if n < local else 0) + 1
                    val = val * (max_node_load * max_numnodes) + node_load[n]
                    if best_val is None or val < best_val:
                        best, best_val = n, val
                node = best
            used[node] = True
            if distance[local, node] != distance[local, prev]:
                node_load[node] = load
            prev = node
            load -= 1
            order.append(node)
        out[local] = order
    return out
