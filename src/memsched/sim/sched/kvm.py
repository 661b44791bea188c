"""A KVM guest whose vCPUs are host threads: realtime inside a virtual machine.

Models the vCPU life cycle of ``virt/kvm/kvm_main.c`` and ``arch/x86/kvm/x86.c`` (v6.x, as concepts: VM
entry, ``kvm_vcpu_halt`` on ``HLT``, ``kvm_vcpu_kick``) and paravirtual steal time.

Each vCPU is a host task running ``VcpuRun`` (KVM's ``vcpu_run`` loop): while the host runs it, the guest's
CPU runs; while the host runs something else the guest CPU is frozen (its running task makes no progress,
its timer interrupts wait), and when the guest CPU has nothing to do it executes ``HLT``, the vCPU thread
blocks on the host (``kvm_vcpu_halt``) and a guest timer or IPI wakes it again (``kvm_vcpu_kick``). The guest
has its own exact scheduler (an :class:`~memsched.sim.sched.machine.RtMachine` on the host's engine), so a
guest deadline or FIFO task's latency depends on how the host schedules its vCPU: SCHED_OTHER next to other
host work, SCHED_FIFO (libvirt's ``<vcpusched scheduler='fifo'>``, which libvirt's "KVM Real Time Guest
Config", libvirt.org/kbase/kvm-realtime.html, gives pinned realtime vCPUs) or a SCHED_DEADLINE reservation.

Time frozen while a vCPU is descheduled is stolen from the guest CPU (paravirtual steal time), so guest
budgets and vruntime are not charged for it; each VM entry costs ``vm_entry_ns``.

Deviations from KVM: no emulator threads, no posted interrupts or halt polling, no PV spinlocks; guest
timer expiries are delivered the moment the vCPU runs again (no lapic timer advance); one guest per vCPU
thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memsched.errors import ConfigError
from memsched.sim.engine import Event, Prio
from memsched.sim.sched.machine import RtMachine
from memsched.sim.sched.preempt import Point
from memsched.sim.sched.program import VcpuRun
from memsched.sim.sched.sched import Rq, SchedConfig, SchedTask, SchedTaskState
from memsched.uapi.sched import SchedAttr

__all__ = ["KvmGuest"]


class KvmGuest:
    """A virtual machine of ``nr_vcpus`` on ``host``; ``guest`` is the machine that runs inside it."""

    def __init__(
        self,
        host: RtMachine,
        nr_vcpus: int,
        *,
        config: SchedConfig | None = None,
        vcpu_attr: SchedAttr | None = None,
        pin: Sequence[int] | None = None,
        vm_entry_ns: int = 1_500,
        name: str = "vm",
    ) -> None:
        if nr_vcpus < 1:
            raise ConfigError("vcpus", nr_vcpus, "must be >= 1")
        if pin is not None and len(pin) != nr_vcpus:
            raise ConfigError("pin", list(pin), f"must give one host CPU per vCPU ({nr_vcpus})")
        self.host = host
        self.vm_entry_ns = vm_entry_ns
        self.guest = RtMachine(nr_vcpus, config, engine=host.engine)
        core = self.guest.core
        core.hooks_vcpu = self
        core.at = self._gated_at
        self.running = [False] * nr_vcpus
        self.pause_start = [0] * nr_vcpus
        self.pending: list[list[Event]] = [[] for _ in range(nr_vcpus)]
        for rq in core.rqs:
            rq.paused = True
        self.vcpus: list[SchedTask] = []
        for i in range(nr_vcpus):
            t = host.spawn(
                f"{name}/vcpu{i}", (VcpuRun(i),), attr=vcpu_attr, affinity=[pin[i]] if pin else None
            )
            t.guest = self
            self.vcpus.append(t)
        self.halts = 0
        self.entries = 0

    # ---- guest events gated on their vCPU -------------------------------------------------------------------
    def _gated_at(self, time: int, prio: int, fn: Callable[..., Any], *args: Any) -> Event:
        ev = self.host.engine.at(time, prio, self._deliver, None, fn, args)
        ev.args = (ev, fn, args)
        return ev

    @staticmethod
    def _cpu_of(args: tuple[Any, ...]) -> int:
        a = args[0] if args else None
        if isinstance(a, Rq | SchedTask):
            return max(a.cpu, 0)
        return 0

    def _deliver(self, ev: Event, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        cpu = self._cpu_of(args)
        if self.running[cpu]:
            fn(*args)
            self._maybe_halt(cpu)
        else:
            self.pending[cpu].append(ev)
            self.kick(self.guest.core.rqs[cpu])

    def kick(self, rq: Rq) -> None:
        """``kvm_vcpu_kick``: wake a halted vCPU thread."""
        t = self.vcpus[rq.cpu]
        if t.state == SchedTaskState.BLOCKED:
            self.host.core.wake_up(t, t.cpu, Point.IRQ_EXIT)

    # ---- host side: the vCPU thread is switched in and out ------------------------------------------------------
    def enter(self, t: SchedTask, vcpu: int) -> None:
        self.host.engine.at(self.host.engine.now, Prio.WAKEUP, self._resume, t, vcpu)

    def _resume(self, t: SchedTask, vcpu: int) -> None:
        host_rq = self.host.core.rqs[t.cpu]
        if host_rq.curr is not t or self.running[vcpu]:
            return
        now = self.host.engine.now
        core = self.guest.core
        rq = core.rqs[vcpu]
        d = now - self.pause_start[vcpu]
        rq.paused = False
        self.running[vcpu] = True
        self.entries += 1
        if d > 0:  # the frozen interval is steal time: shift the frozen completion and budget
            rq.stolen += d
            for attr in ("complete_ev", "budget_ev"):
                ev = getattr(rq, attr)
                if ev is not None:
                    ev.cancel()
                    if attr == "complete_ev":
                        rq.run_until += d
                        setattr(rq, attr, core.at(rq.run_until, ev.prio, *ev.args[1:2], *ev.args[2]))
                    else:
                        rq.budget_at += d
                        setattr(rq, attr, core.at(rq.budget_at, ev.prio, *ev.args[1:2], *ev.args[2]))
            if rq.ovh_until > self.pause_start[vcpu]:
                rq.ovh_until += d
        core.steal(rq, self.vm_entry_ns, 0)
        pend, self.pending[vcpu] = self.pending[vcpu], []
        for ev in pend:
            if not ev.cancelled and self.running[vcpu]:
                ev.cancel()
                ev.args[1](*ev.args[2])
        curr = rq.curr
        if curr is None:
            if core.pick_next(rq) is not None:
                core.schedule(rq)
        elif rq.need_resched and core.model.allows(
            rq.need_resched, Point.IRQ_EXIT, curr.user, curr.preempt_count, curr.lazy_count
        ):
            core.schedule(rq)
        self._maybe_halt(vcpu)

    def leave(self, t: SchedTask) -> None:
        vcpu = self.vcpus.index(t)
        if not self.running[vcpu]:
            return
        self.running[vcpu] = False
        self.pause_start[vcpu] = self.host.engine.now
        self.guest.core.rqs[vcpu].paused = True

    def _maybe_halt(self, vcpu: int) -> None:
        rq = self.guest.core.rqs[vcpu]
        if self.running[vcpu] and rq.curr is None and rq.nr_running == 0:
            self.host.engine.at(self.host.engine.now, Prio.DEFERRED, self._halt, vcpu)

    def _halt(self, vcpu: int) -> None:
        rq = self.guest.core.rqs[vcpu]
        t = self.vcpus[vcpu]
        host_rq = self.host.core.rqs[t.cpu]
        if not self.running[vcpu] or rq.curr is not None or rq.nr_running or host_rq.curr is not t:
            return
        self.halts += 1
        self.host.core.block(host_rq, t)
