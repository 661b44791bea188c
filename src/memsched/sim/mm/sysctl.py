"""The sysctls and hardware figures of the simulated memory manager (``vm.*`` and the machine's disk).

:class:`ReclaimConfig` is what a scenario's ``[sysctl]`` table sets: the ``vm.*`` sysctls reclaim and
writeback read (mm/page_alloc.c watermarks, mm/page-writeback.c dirty ratios, mm/vmscan.c), the kernel version
whose rules apply (``sim/mm/version.py``), the disk, and the CPU costs of reclaim work (estimates). Defaults
are Linux's or cite their estimate. Every number has a maximum: a sysctl's is the kernel's own (``INT_MAX`` for the
``proc_dointvec`` ones), the rest are the product limits of :mod:`memsched.config` (1 ms per CPU cost, 1 s per
latency, 1 h per interval, 1 TiB per size or bandwidth).

Deviations from the kernel: the costs are per page and per pass, not measured per code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memsched.config import (
    LIMIT_BYTES,
    LIMIT_INTERVAL_NS,
    LIMIT_LATENCY_NS,
    cost_knob,
    knob,
    validate,
)
from memsched.errors import ConfigError
from memsched.pressure.index import MainlineVmpressureConfig, Rfc2012VmpressureConfig
from memsched.sim.mm.version import KERNELS, behaviour
from memsched.units import KIB, MIB, NSEC_PER_MSEC, PAGE_SIZE_4K

__all__ = [
    "MAX_RECLAIM_RETRIES",
    "MIN_FLUSHER_TICK_NS",
    "MIN_SAMPLE_INTERVAL_NS",
    "RECLAIM_RETRIES_LIMIT",
    "SYSCTL_INT_MAX",
    "ReclaimConfig",
]

#: Rounds of reclaim without progress before OOM (``MAX_RECLAIM_RETRIES``, mm/internal.h, 4.7+).
MAX_RECLAIM_RETRIES = 16
#: ``min_free_kbytes``, ``dirty_expire_centisecs`` and ``dirty_writeback_centisecs`` are ``int`` sysctls written
#: through ``proc_dointvec`` / ``proc_dointvec_minmax`` with only ``extra1 = SYSCTL_ZERO`` (mm/page_alloc.c
#: ``min_free_kbytes_sysctl_handler()``, mm/page-writeback.c ``dirty_writeback_centisecs_handler()``, 6.x; before
#: 5.8 the same entries in kernel/sysctl.c), which refuse anything above ``INT_MAX``: the kernel's own limit.
SYSCTL_INT_MAX = (1 << 31) - 1
#: ``base_slice_ns`` is a ``debugfs_create_u32`` file (kernel/sched/debug.c, 6.6+).
U32_MAX = (1 << 32) - 1
#: The kernel's ``MAX_RECLAIM_RETRIES`` is a constant; as a knob, at most 1,000: every fruitless round is a whole
#: reclaim pass (up to 64 per retry), and act-sim's leak to the OOM killer takes 5.1 s with 16, 6.4 s with 1,000 and
#: 19.7 s with 10,000.
RECLAIM_RETRIES_LIMIT = 1_000
#: The finest disk-pipeline tick: 1 ms (a jiffy at HZ=1000). Each tick is an event whether or not anything is
#: written: on the default scenario cut to 10 s, 20 ms (the default) takes 2.3 s, 1 ms 2.8 s, 100 us 7 s, and 1 us
#: did not finish in 60 s.
MIN_FLUSHER_TICK_NS = NSEC_PER_MSEC
#: The finest pressure timeline: 10 ms, so the longest scenario (600 s) keeps at most 60,000 samples (a 100 us
#: interval held 290 MB after 10 s).
MIN_SAMPLE_INTERVAL_NS = 10 * NSEC_PER_MSEC


@dataclass(frozen=True, slots=True)
class ReclaimConfig:
    """Sysctls and hardware figures of the memory-pressure machinery (Linux defaults or estimates)."""

    swap_bytes: int = knob(
        0, "swap space; 0 = no swap (the default, as on most servers)", min=0, max=LIMIT_BYTES, limit=True
    )
    min_free_kbytes: int = knob(
        0, "vm.min_free_kbytes; 0 = the kernel's int_sqrt(lowmem_kb * 16)", min=0, max=SYSCTL_INT_MAX, limit=True
    )
    watermark_scale_factor: int = knob(10, "vm.watermark_scale_factor (4.6+ default 10)", min=1, max=3000)
    dirty_ratio: int = knob(20, "vm.dirty_ratio, % of dirtyable memory (default 20)", min=1, max=100)
    dirty_background_ratio: int = knob(10, "vm.dirty_background_ratio (default 10)", min=0, max=100)
    dirty_expire_centisecs: int = knob(
        3000, "vm.dirty_expire_centisecs (default 3000 = 30 s)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    dirty_writeback_centisecs: int = knob(
        500, "vm.dirty_writeback_centisecs (default 500 = 5 s)", min=1, max=SYSCTL_INT_MAX, limit=True
    )
    disk_write_bytes_per_s: int = knob(
        200 * MIB, "disk write bandwidth (estimate: a SATA SSD, 200 MiB/s)", min=1, max=LIMIT_BYTES, limit=True
    )
    flusher_tick_ns: int = knob(
        20 * NSEC_PER_MSEC, "granularity of the simulated disk pipeline",
        min=MIN_FLUSHER_TICK_NS, max=LIMIT_INTERVAL_NS, limit=True,
    )
    swapin_ns: int = knob(
        100_000, "cost of reading one page back from swap (estimate: SSD, 100 us)",
        min=0, max=LIMIT_LATENCY_NS, limit=True,
    )
    reclaim_scan_ns: int = cost_knob(400, "CPU ns per page isolated by reclaim (estimate)")
    reclaim_free_ns: int = cost_knob(1_000, "CPU ns per page freed by reclaim (estimate)")
    reclaim_move_ns: int = cost_knob(200, "CPU ns per page moved between LRU lists (estimate)")
    shrink_node_ns: int = cost_knob(2_000, "CPU ns of fixed work per shrink_node pass (estimate)")
    kswapd_wakeup_ns: int = knob(
        20_000, "latency from wakeup_kswapd() to kswapd running (estimate)", min=0, max=LIMIT_LATENCY_NS, limit=True
    )
    workqueue_latency_ns: int = knob(
        2_000,
        "latency from the reschedule that lets the kworker in to the work running: the reclaimer's next "
        "cond_resched(), before its next shrink pass (measured on a 2-CPU 6.18 guest in the memcg charge "
        "loop with benchmarks/pressure_vs_kernel_trace.py: median 2 us); when that reschedule comes is the "
        "scheduler's rule (see sim/mm/vmpressure.py)",
        min=0,
        max=LIMIT_LATENCY_NS,
        limit=True,
    )
    kworker_run_ns: int = knob(
        2_000,
        "CPU time of one vmpressure work item on its kworker, which the kworker's EEVDF vruntime accrues "
        "(measured as above in the memcg charge loop: median 2-3 us; 4-10 us where the reclaimer writes)",
        min=0,
        max=NSEC_PER_MSEC,
    )
    sched_hz: int = knob(
        250,
        "CONFIG_HZ (Kconfig default 250): the scheduler tick, where EEVDF (6.6+) checks the running task's "
        "deadline and lets a woken kworker in",
        min=100,
        max=1000,
    )
    sched_base_slice_ns: int = knob(
        0,
        "EEVDF base slice; 0: the kernel's (6.15+: 0.70 ms x (1 + ilog2(min(CPUs, 8))), kernel/sched/fair.c)",
        min=0,
        max=U32_MAX,
        limit=True,
    )
    max_reclaim_retries: int = knob(
        MAX_RECLAIM_RETRIES,
        "MAX_RECLAIM_RETRIES of the page allocator's slow path (4.7+: 16); the memcg count follows 'kernel'",
        min=1,
        max=RECLAIM_RETRIES_LIMIT,
        limit=True,
    )
    kernel: str = knob(
        "6.18", "kernel whose memcg charge loop, dirty-page and throttling rules apply", choices=tuple(KERNELS)
    )
    cgroup_v2: bool = knob(
        False, "memory controller on cgroup v2 (socket pressure, writeback_throttling_sane); false: v1"
    )
    disk_read_bytes_per_s: int = knob(
        500 * MIB, "disk read bandwidth for page-cache misses (estimate: a SATA SSD, 500 MiB/s)",
        min=1, max=LIMIT_BYTES, limit=True,
    )
    page_cache_folio_kib: int = knob(
        0,
        "page-cache folio a read()/write() fills and charges at once; 0: the kernel's (4 KiB, 6.16+ ext4 "
        "large folios: the I/O size up to 2 MiB)",
        min=0,
        max=2048,
    )
    psi_hz: int = knob(1000, "CONFIG_HZ for PSI_FREQ = 2*HZ+1 jiffies", min=100, max=1000)
    sample_interval_ns: int = knob(
        100 * NSEC_PER_MSEC, "interval of the pressure timeline samples",
        min=MIN_SAMPLE_INTERVAL_NS, max=LIMIT_INTERVAL_NS, limit=True,
    )
    rfc: Rfc2012VmpressureConfig = field(default_factory=Rfc2012VmpressureConfig)
    mainline: MainlineVmpressureConfig = field(default_factory=MainlineVmpressureConfig)

    def __post_init__(self) -> None:
        validate(self)
        if self.dirty_background_ratio >= self.dirty_ratio:
            raise ConfigError(
                "dirty_background_ratio",
                self.dirty_background_ratio,
                f"must be < dirty_ratio ({self.dirty_ratio})",
            )
        if self.page_cache_folio_kib % 4:
            raise ConfigError("page_cache_folio_kib", self.page_cache_folio_kib, "must be a multiple of 4")

    def folio_pages(self, io_pages: int) -> int:
        """Pages of one page-cache folio for an I/O of ``io_pages`` (see ``page_cache_folio_kib``)."""
        if self.page_cache_folio_kib:
            return self.page_cache_folio_kib * KIB // PAGE_SIZE_4K
        return min(io_pages, 512) if behaviour(self.kernel).large_folios else 1
