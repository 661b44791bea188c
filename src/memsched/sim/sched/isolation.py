"""CPU isolation: housekeeping noise on every CPU, and what isolcpus / nohz_full / rcu_nocbs remove.

Models ``Documentation/admin-guide/cpu-isolation.rst`` and ``Documentation/timers/no_hz.rst`` (v6.x;
``kernel/sched/isolation.c`` for the housekeeping masks) with the magnitudes the example run of
``Documentation/trace/osnoise-tracer.rst`` shows (an 8-vCPU VM at HZ 1000: IRQ noise 1002–1016 per second,
softirqs 16–49, threads 0–41, single noises of 9–202 µs):

* **tick**: an IRQ of ``tick_irq_ns`` (osnoise ``local_timer``: 1.8–2.8 µs) on every tick of a busy CPU.
  ``nohz_full`` stops it when ``sched_can_stop_tick()`` allows (no deadline task queued, not two fair or RR
  tasks; see ``core.py``), leaving the residual 1 Hz tick;
* **RCU callbacks** (softirq, osnoise 16–49 per second): ``rcu_nocbs`` offloads them to ``rcuo`` kthreads
  that run on housekeeping CPUs;
* **kworkers** (thread noise, 0–41 per second) and **timers** (unbound, deferrable): ``isolcpus`` (the
  ``domain`` flag) moves unbound work to housekeeping CPUs and takes the CPU out of load balancing.

Each interruption steals its duration from the CPU (the running task finishes later, its budget is not
charged) and adds ``pollution_ns`` of cache refill to the interrupted task — the cache-locality cost to which
Thomas Gleixner's ELC-E 2012 talk "Real-Time Linux (PREEMPT-RT)" is said to have attributed a 3–4 % isolation
gain (reported second-hand only; no written source found). Interruptions arrive as Poisson
processes with exponentially distributed durations; ``scale`` multiplies every rate (the noise model's
"magnitude"), and work removed from an isolated CPU is added to the housekeeping CPUs.

Deviations from the kernel: noise sources are interruptions, not scheduled kthreads (a kworker does not
appear as a task that could be migrated or preempted); nohz_full's dearer kernel entry/exit is not charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from memsched.config import cost_knob, knob, validate
from memsched.errors import ConfigError
from memsched.sim.engine import Prio
from memsched.units import NSEC_PER_SEC

if TYPE_CHECKING:
    from memsched.sim.sched.core import SchedCore
    from memsched.sim.sched.sched import Rq

__all__ = ["MAX_NOISE_RATE_HZ", "MAX_NOISE_SCALE", "IsolationConfig", "NoiseModel", "install_noise"]

#: Product limit of a noise source's rate per CPU: 10 kHz, the fastest tick the scheduler takes (``hz`` <= 10000)
#: and ten times the osnoise example's IRQ rate; each interruption is an event of the run.
MAX_NOISE_RATE_HZ = 10_000.0
#: Product limit of ``scale``: the ``isolation`` scenario's ``noise_scale`` maximum.
MAX_NOISE_SCALE = 1000.0


@dataclass(frozen=True)
class NoiseModel:
    """Housekeeping noise per CPU (magnitudes of the osnoise-tracer.rst example run). Maxima: 1 ms per interruption
    (:data:`memsched.config.LIMIT_EVENT_COST_NS`), :data:`MAX_NOISE_RATE_HZ`, :data:`MAX_NOISE_SCALE`."""

    tick_irq_ns: int = cost_knob(2_300, "tick IRQ duration (osnoise local_timer 1.8-2.8 us)")
    rcu_rate_hz: float = knob(
        30.0, "RCU callback softirqs per second per CPU (osnoise SoftIRQ 16-49/s)",
        min=0.0, max=MAX_NOISE_RATE_HZ, limit=True,
    )
    rcu_ns: int = cost_knob(6_000, "mean RCU softirq duration (assumed; osnoise max single noise 9-202 us)")
    kworker_rate_hz: float = knob(
        20.0, "kworker runs per second per CPU (osnoise thread 0-41/s)", min=0.0, max=MAX_NOISE_RATE_HZ, limit=True
    )
    kworker_ns: int = cost_knob(12_000, "mean kworker run incl. its context switches (assumed)")
    timer_rate_hz: float = knob(
        25.0, "unbound timer callbacks per second per CPU (assumed)", min=0.0, max=MAX_NOISE_RATE_HZ, limit=True
    )
    timer_ns: int = cost_knob(3_000, "mean timer callback duration (assumed)")
    pollution_ns: int = cost_knob(4_000, "cache refill the interrupted task pays per interruption (assumed)")
    scale: float = knob(
        1.0, "multiplies every rate: the noise model's magnitude", min=0.0, max=MAX_NOISE_SCALE, limit=True
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class IsolationConfig:
    """Boot parameters: ``isolcpus=domain,<list>``, ``nohz_full=<list>``, ``rcu_nocbs=<list>``."""

    isolcpus: tuple[int, ...] = field(default=())
    nohz_full: tuple[int, ...] = field(default=())
    rcu_nocbs: tuple[int, ...] = field(default=())

    def check(self, nr_cpus: int) -> None:
        for name in ("isolcpus", "nohz_full", "rcu_nocbs"):
            cpus = getattr(self, name)
            bad = [c for c in cpus if not 0 <= c < nr_cpus]
            if bad:
                raise ConfigError(name, bad[0], f"must be CPU ids in 0..{nr_cpus - 1}")
        if 0 in self.nohz_full:
            raise ConfigError("nohz_full", 0, "must not contain the boot CPU 0")
        if len(set(self.isolcpus)) >= nr_cpus:
            raise ConfigError("isolcpus", list(self.isolcpus), "must leave at least one housekeeping CPU")


def install_noise(core: SchedCore, noise: NoiseModel, iso: IsolationConfig) -> None:
    """Mark isolated CPUs, set the tick cost, and start the Poisson noise sources of every CPU."""
    iso.check(core.nr_cpus)
    housekeeping = tuple(c for c in core.all_cpus if c not in iso.isolcpus)
    core.housekeeping = housekeeping
    for rq in core.rqs:
        rq.isolated = rq.cpu in iso.isolcpus
        rq.nohz_full = rq.cpu in iso.nohz_full
    core.tick_cost_ns = noise.tick_irq_ns
    core.tick_pollution_ns = noise.pollution_ns
    n_iso = core.nr_cpus - len(housekeeping)
    share = (core.nr_cpus / len(housekeeping)) if n_iso else 1.0
    offloaded = [c for c in core.all_cpus if c in iso.rcu_nocbs]
    rcu_hk_share = 1.0 + len(offloaded) / max(1, len(housekeeping))
    for rq in core.rqs:
        c = rq.cpu
        is_hk = c in housekeeping
        rcu = noise.rcu_rate_hz * (0.0 if c in iso.rcu_nocbs else 1.0) * (rcu_hk_share if is_hk else 1.0)
        unbound = share if is_hk else 0.0
        for name, base_rate, mean in (
            ("rcu", rcu, noise.rcu_ns),
            ("kworker", noise.kworker_rate_hz * unbound, noise.kworker_ns),
            ("timer", noise.timer_rate_hz * unbound, noise.timer_ns),
        ):
            rate = base_rate * noise.scale
            if rate <= 0 or mean <= 0:
                continue
            rng = core.engine.rng(f"noise/{name}/{c}")
            first = core.engine.now + int(rng.exponential(NSEC_PER_SEC / rate))
            core.at(first, Prio.TIMER, _fire, core, rq, rng, rate, mean, noise.pollution_ns)


def _fire(core: SchedCore, rq: Rq, rng: np.random.Generator, rate: float, mean: int, pollution: int) -> None:
    d = max(1, int(rng.exponential(mean)))
    core.steal(rq, d, pollution if rq.curr is not None else 0)
    core.at(
        core.engine.now + max(1, int(rng.exponential(NSEC_PER_SEC / rate))),
        Prio.TIMER,
        _fire,
        core,
        rq,
        rng,
        rate,
        mean,
        pollution,
    )
