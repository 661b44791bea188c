"""The live :class:`~memsched.policies.act.views.MemoryView`: what an action policy sees of the running kernel.

**Inside a memory cgroup with a limit** (the usual case: ``--cgroup`` names a subtree), the meminfo-like
figures are the cgroup's (a deviation every tool would need: earlyoom's thresholds are system-wide, lmkd's
watermarks are per zone):

| view | v1 (``memory.*``) | v2 |
|---|---|---|
| ``mem_total`` | ``limit_in_bytes`` (at most ``MemTotal``) | ``memory.max`` |
| ``mem_free`` | limit - ``usage_in_bytes`` | limit - ``memory.current`` |
| ``mem_available`` | free + file LRU - min(file LRU / 2, low watermark), as ``si_mem_available()`` | same |
| ``swap_total``/``swap_free`` | ``SwapTotal`` (at most ``memsw.limit - limit``) / - ``total_swap`` | ``swap.max`` |
| ``file_lru``, ``workingset_refault`` | ``total_{in,}active_file``, ``total_workingset_refault_file`` | ``stat`` |
| ``pgscan_direct`` | ``total_pgpgout`` (uncharges: reclaim, and frees; v1 prints no pgscan) | ``pgscan_direct`` |
| ``pgscan_kswapd`` | 0 (no kswapd for a memcg limit) | ``pgscan_kswapd`` |
| watermarks | min 1 % of the limit, low = min × 5/4, high = min × 3/2 (``__setup_per_zone_wmarks()`` ratios) | same |
| PSI | the v2 twin's ``memory.pressure`` (same path), else ``/proc/pressure/memory`` | ``memory.pressure`` |
| vmpressure | the v1 cgroup's ``memory.pressure_level`` (hierarchy mode) | none |

Without a limit the figures are the system's (``/proc/meminfo``, ``/proc/vmstat``, ``/proc/zoneinfo``).
Processes: every process of the subtree except the untouchable ones (``subtree.Subtree.untouchable``).
Cgroups: the subtree's root is the monitored cgroup (``ManagedOOMMemoryPressure=kill`` and
``ManagedOOMSwap=kill``); a cgroup holding an untouchable process is ``ManagedOOMPreference=omit``.
"""

from __future__ import annotations

import os
from pathlib import Path

from memsched.live.act.subtree import Protect, Subtree
from memsched.live.procfs import parse_flat_keyed, parse_psi, parse_task_stat
from memsched.live.roots import read_text
from memsched.policies.act.views import CgroupView, MemoryView, ProcView, ServiceView

__all__ = ["build_view"]

_NO_LIMIT = 1 << 60
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(p: Path) -> str | None:
    try:
        return read_text(p)
    except OSError:
        return None


def _int(p: Path, default: int = 0) -> int:
    text = _read(p)
    if text is None:
        return default
    text = text.strip()
    return _NO_LIMIT if text == "max" else int(text) if text.lstrip("-").isdigit() else default


def _kv(p: Path) -> dict[str, int]:
    text = _read(p)
    return parse_flat_keyed(text, source=str(p)) if text is not None else {}


def _meminfo(sub: Subtree) -> dict[str, int]:
    text = _read(sub.roots.proc("meminfo")) or ""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def _psi(sub: Subtree, directory: Path | None) -> tuple[float, float, int, int]:
    path = directory / "memory.pressure" if directory is not None else sub.roots.proc("pressure", "memory")
    text = _read(path)
    if text is None:
        return 0.0, 0.0, 0, 0
    st = parse_psi(text, source=str(path))
    full = st.full
    return st.some.avg10, full.avg10 if full else 0.0, st.some.total_us, full.total_us if full else 0


def _zone_watermarks(sub: Subtree) -> tuple[int, int, int]:
    text = _read(sub.roots.proc("zoneinfo")) or ""
    sums = {"min": 0, "low": 0, "high": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in sums and parts[1].isdigit():
            sums[parts[0]] += int(parts[1]) * 4096
    return sums["min"], sums["low"], sums["high"]


def _proc(sub: Subtree, pid: int) -> ProcView | None:
    try:
        st_text = read_text(sub.roots.proc(pid, "stat"), sub.roots)
        status = read_text(sub.roots.proc(pid, "status"), sub.roots)
        oom_score = int(read_text(sub.roots.proc(pid, "oom_score"), sub.roots))
        adj = int(read_text(sub.roots.proc(pid, "oom_score_adj"), sub.roots))
    except (OSError, ValueError):
        return None
    st = parse_task_stat(st_text)
    fields = st_text.rpartition(")")[2].split()
    start_ns = int(fields[19]) * 1_000_000_000 // _CLK_TCK if len(fields) > 19 else 0
    rss = swap = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmSwap:"):
            swap = int(line.split()[1]) * 1024
    return ProcView(pid, st.comm, sub.cgroup_of(pid) or "?", rss, swap, oom_score, adj, start_ns)


def build_view(
    sub: Subtree,
    protect: Protect,
    now_ns: int,
    *,
    vmpressure: str = "none",
    services: tuple[ServiceView, ...] = (),
) -> MemoryView:
    mi = _meminfo(sub)
    d = sub.directory
    dirs = sub.cgroup_dirs()
    untouchable: dict[int, str] = {}
    procs = []
    for pid in sub.pids():
        why = sub.untouchable(pid, protect)
        if why is not None:
            untouchable[pid] = why
            continue
        p = _proc(sub, pid)
        if p is not None:
            procs.append(p)
    v2_root = sub.v2_directory
    groups = []
    for path, gd in dirs:
        rel = gd.relative_to(d)
        twin = v2_root / rel if v2_root is not None and (v2_root / rel / "memory.pressure").exists() else v2_root
        some, full, _, _ = _psi(sub, twin)
        pids = sub.pids_of(gd, recursive=True)
        if sub.v1:
            stat = _kv(gd / "memory.stat")
            cur, swap = _int(gd / "memory.usage_in_bytes"), stat.get("total_swap", 0)
            pgscan = stat.get("total_pgpgout", 0)
        else:
            stat = _kv(gd / "memory.stat")
            cur, swap = _int(gd / "memory.current"), _int(gd / "memory.swap.current")
            pgscan = stat.get("pgscan", 0)
        root = gd == d
        groups.append(CgroupView(
            path, cur, swap, some, full, pgscan, managed_pressure=root, managed_swap=root,
            preference="omit" if any(p in untouchable for p in pids) else "none", nr_procs=len(pids)))
    some, full, some_total, full_total = _psi(sub, v2_root)
    total = mi.get("MemTotal", 0)
    limit = _int(d / ("memory.limit_in_bytes" if sub.v1 else "memory.max"), _NO_LIMIT)
    if limit < min(total, _NO_LIMIT):
        stat = _kv(d / "memory.stat")
        pre = "total_" if sub.v1 else ""
        usage = _int(d / ("memory.usage_in_bytes" if sub.v1 else "memory.current"))
        file_lru = stat.get(f"{pre}active_file", 0) + stat.get(f"{pre}inactive_file", 0)
        wmin = limit // 100
        wlow, whigh = wmin * 5 // 4, wmin * 3 // 2
        free = max(0, limit - usage)
        avail = free + file_lru - min(file_lru // 2, wlow)
        swap_total = mi.get("SwapTotal", 0)
        if sub.v1:
            memsw = _int(d / "memory.memsw.limit_in_bytes", _NO_LIMIT)
            swap_total = max(0, min(swap_total, memsw - limit))
            swap_used = stat.get("total_swap", 0)
            direct, kswapd = stat.get("total_pgpgout", 0), 0
        else:
            swap_total = min(swap_total, _int(d / "memory.swap.max", _NO_LIMIT))
            swap_used = _int(d / "memory.swap.current")
            direct, kswapd = stat.get("pgscan_direct", 0), stat.get("pgscan_kswapd", 0)
        refault = stat.get(f"{pre}workingset_refault_file", stat.get(f"{pre}workingset_refault", 0))
        mem_total, mem_free, mem_avail = limit, free, min(limit, avail)
        swap_free = max(0, swap_total - swap_used)
    else:
        vm = _kv(sub.roots.proc("vmstat"))
        wmin, wlow, whigh = _zone_watermarks(sub)
        mem_total, mem_free, mem_avail = total, mi.get("MemFree", 0), mi.get("MemAvailable", 0)
        swap_total, swap_free = mi.get("SwapTotal", 0), mi.get("SwapFree", 0)
        file_lru = (vm.get("nr_active_file", 0) + vm.get("nr_inactive_file", 0)) * 4096
        refault = vm.get("workingset_refault_file", vm.get("workingset_refault", 0))
        direct, kswapd = vm.get("pgscan_direct", 0), vm.get("pgscan_kswapd", 0)
    return MemoryView(
        now_ns=now_ns, mem_total=mem_total, mem_available=mem_avail, mem_free=mem_free, swap_total=swap_total,
        swap_free=swap_free, file_lru=file_lru, workingset_refault=refault, pgscan_kswapd=kswapd,
        pgscan_direct=direct, wmark_min=wmin, wmark_low=wlow, wmark_high=whigh, psi_some_avg10=some,
        psi_full_avg10=full, psi_some_total_us=some_total, psi_full_total_us=full_total, vmpressure=vmpressure,
        procs=tuple(procs), cgroups=tuple(groups), services=services,
    )
