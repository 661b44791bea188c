"""One hook driver for both backends, and the actuator protocol through which actions take effect.

A NUMA policy is driven the same way in the simulator (``memsched.sim.numa``) and on the running machine
(``memsched.live.numa``): the backend supplies a *fault source* — it scans, produces :class:`FaultBatch`es and
says when a scan pass over an address space completes — and an :class:`Actuator` that carries out actions.
:class:`HookDriver` calls the hooks the policy overrides, always in this order:

1. a scan pass over ``mm`` completed (``numa_scan_seq`` went up): ``on_scan_pass(mm, node_pages)``, then
   ``on_placement(task)`` for every live task of ``mm`` (``task_numa_placement()``, which 3.8+ runs when a
   task sees a new ``numa_scan_seq``, before the faults of the new pass are accounted);
2. a batch of hinting faults: ``on_faults(batch)``, then ``after_faults(batch, migrated)`` where
   ``migrated`` says which faults' pages the ``on_faults`` actions moved (``task_numa_fault()``'s
   ``migrated`` argument);
3. every ``tick_interval_ns`` (the simulator) or every sample (live): ``on_tick``.

``lb_score`` is asked by the simulated load balancer only (user space cannot hook the kernel's).

Every action goes through ``Actuator.apply(action) -> ActionResult``: the result says what happened
(``applied``, ``partial``, ``queued``, ``no-op``, ``skipped``, ``failed``, ``dry-run``, ``recorded``) and, when
it was not carried out in full, why. A hook that returns something other than a sequence of actions is a bug
in the policy: :class:`~memsched.errors.PolicyError` names the policy.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from memsched.errors import PolicyError
from memsched.policies.numa.actions import (
    ACTION_TYPES,
    Action,
    MigrateMmNodes,
    MigratePages,
    MigrateTask,
    SetAffinity,
    SetPreferredNode,
    SetScanPeriod,
    SwapTasks,
)
from memsched.policies.numa.base import NumaPolicy, overridden_hooks
from memsched.policies.numa.views import BoolArray, FaultBatch, PolicyContext

__all__ = ["ActionHandlers", "ActionRangeError", "ActionResult", "Actuator", "HookDriver", "Status"]

IntArray = npt.NDArray[np.int64]
Status = Literal["applied", "partial", "queued", "no-op", "skipped", "failed", "dry-run", "recorded"]


@dataclass(frozen=True, slots=True, eq=False)
class ActionResult:
    """What became of one action.

    ``target`` names who it was for, ``detail`` what was asked, ``message`` what happened or why not.
    ``moved_pages`` are the page ids a page migration moved at once (``None`` for other actions). ``hook``
    is the hook that returned the action (set by the driver) and ``sample`` the live balancer's sample.
    """

    action: str
    target: str
    detail: str
    status: Status
    message: str = ""
    hook: str = ""
    sample: int = 0
    moved_pages: IntArray | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "sample": self.sample,
            "hook": self.hook,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "status": self.status,
            "message": self.message,
        }

    def line(self) -> str:
        msg = f": {self.message}" if self.message else ""
        return f"[{self.sample}] {self.hook:<12} {self.action:<16} {self.target}: {self.detail} -> {self.status}{msg}"


class ActionRangeError(Exception):
    """An action names a task, page, node, CPU or mm the machine does not have (raised by an actuator before it
    changes anything; :class:`HookDriver` turns it into a :class:`~memsched.errors.PolicyError` naming the
    policy and the hook). The message says which field, the value and what is allowed."""


class Actuator(Protocol):
    """Carries out a policy's actions on one backend, with that backend's costs and refusal rules."""

    def apply(self, action: Action) -> ActionResult: ...


class ActionHandlers:
    """An :class:`Actuator` with one method per kind of action; a backend implements the methods."""

    def apply(self, action: Action) -> ActionResult:
        if isinstance(action, MigratePages):
            return self.migrate_pages(action)
        if isinstance(action, MigrateMmNodes):
            return self.migrate_mm_nodes(action)
        if isinstance(action, MigrateTask):
            return self.migrate_task(action)
        if isinstance(action, SwapTasks):
            return self.swap_tasks(action)
        if isinstance(action, SetAffinity):
            return self.set_affinity(action)
        if isinstance(action, SetPreferredNode):
            return self.set_preferred_node(action)
        assert isinstance(action, SetScanPeriod)
        return self.set_scan_period(action)

    def migrate_pages(self, action: MigratePages) -> ActionResult:
        raise NotImplementedError

    def migrate_mm_nodes(self, action: MigrateMmNodes) -> ActionResult:
        raise NotImplementedError

    def migrate_task(self, action: MigrateTask) -> ActionResult:
        raise NotImplementedError

    def swap_tasks(self, action: SwapTasks) -> ActionResult:
        raise NotImplementedError

    def set_affinity(self, action: SetAffinity) -> ActionResult:
        raise NotImplementedError

    def set_preferred_node(self, action: SetPreferredNode) -> ActionResult:
        raise NotImplementedError

    def set_scan_period(self, action: SetScanPeriod) -> ActionResult:
        raise NotImplementedError


class HookDriver:
    """Calls one policy's overridden hooks in one order and hands every action to an actuator."""

    def __init__(self, policy: NumaPolicy, ctx: PolicyContext, actuator: Actuator) -> None:
        self.policy = policy
        self.ctx = ctx
        self.actuator = actuator
        self.hooks = frozenset(overridden_hooks(policy))

    # ---- the fault source's events ------------------------------------------------------------------------
    def scan_pass(self, mm: int) -> list[ActionResult]:
        """A scan pass over ``mm`` completed: ``on_scan_pass``, then ``on_placement`` for each of its tasks."""
        out: list[ActionResult] = []
        ctx, policy = self.ctx, self.policy
        if "on_scan_pass" in self.hooks:
            node_pages = tuple(int(x) for x in ctx.mm_node_pages(mm))
            out += self._apply("on_scan_pass", policy.on_scan_pass(ctx, mm, node_pages))
        if "on_placement" in self.hooks:
            for task in ctx.mm_tasks(mm):
                out += self._apply("on_placement", policy.on_placement(ctx, task))
        return out

    def faults(self, batch: FaultBatch) -> list[ActionResult]:
        """A batch of hinting faults: ``on_faults``, then ``after_faults`` with what those actions moved."""
        done: list[tuple[Action, ActionResult]] = []
        if "on_faults" in self.hooks:
            done = self._run("on_faults", self.policy.on_faults(self.ctx, batch))
        out = [r for _, r in done]
        if "after_faults" in self.hooks:
            migrated = _migrated(batch, done)
            out += self._apply("after_faults", self.policy.after_faults(self.ctx, batch, migrated))
        return out

    def tick(self) -> list[ActionResult]:
        if "on_tick" not in self.hooks:
            return []
        return self._apply("on_tick", self.policy.on_tick(self.ctx))

    def lb_score(self, task: int, src_cpu: int, dst_cpu: int, dst_idle: bool) -> float | None:
        score: object = self.policy.lb_score(self.ctx, task, src_cpu, dst_cpu, dst_idle)
        if score is not None and type(score) is not float and not isinstance(score, numbers.Real):
            raise PolicyError(self.policy.id, f"lb_score returned {score!r}, not None or a number")
        return score  # type: ignore[return-value]

    # ---- actions ------------------------------------------------------------------------------------------
    def _apply(self, hook: str, actions: Iterable[Action] | None) -> list[ActionResult]:
        return [r for _, r in self._run(hook, actions)]

    def _run(self, hook: str, actions: Iterable[Action] | None) -> list[tuple[Action, ActionResult]]:
        if actions is None:
            return []
        try:
            items = iter(actions)
        except TypeError:
            raise PolicyError(self.policy.id, f"{hook} returned {actions!r}, not a sequence of actions") from None
        out = []
        apply = self.actuator.apply
        for action in items:
            if not isinstance(action, ACTION_TYPES):
                raise PolicyError(
                    self.policy.id,
                    f"{hook} returned {action!r}, which is not an action of memsched.policies.numa.actions",
                )
            try:
                r = apply(action)  # a new result with the hook set (dataclasses.replace costs 3x more on this path)
            except ActionRangeError as e:
                raise PolicyError(self.policy.id, f"{hook} returned {type(action).__name__} {e}") from None
            r = ActionResult(r.action, r.target, r.detail, r.status, r.message, hook, r.sample, r.moved_pages)
            out.append((action, r))
        return out


def _migrated(batch: FaultBatch, done: Sequence[tuple[Action, ActionResult]]) -> BoolArray:
    """Which faults of ``batch`` had their page moved by the page migrations among ``done``."""
    moved = [
        r.moved_pages
        for a, r in done
        if isinstance(a, MigratePages | MigrateMmNodes) and a.mm == batch.mm and r.moved_pages is not None
    ]
    pages = batch.page
    wanted = np.concatenate(moved) if len(moved) > 1 else (moved[0] if moved else pages[:0])
    if wanted.shape[0] == 0:
        mask = np.zeros(batch.size, dtype=bool)
    elif wanted.dtype == pages.dtype and pages.dtype.kind in "iu":
        # np.isin(pages, wanted) by binary search: for integers, pages[i] is among the sorted ids exactly when
        # the first id not below it equals it (the same booleans in fewer, cheaper calls).
        ids = np.sort(wanted)
        at = np.searchsorted(ids, pages)
        np.minimum(at, ids.shape[0] - 1, out=at)
        mask = ids[at] == pages
    else:
        mask = np.isin(pages, wanted)
    mask.flags.writeable = False
    return mask
