"""Why a run came out as it did: plain-language notes from a run's own counters.

For each balancing run of a comparison, the notes name the mechanisms that cost it time, measured against
the same workload's no-balancing run and its HARD_BIND reference: system time spent scanning, faulting and
migrating; pages migrated relative to the working set (a migration storm, or pages bouncing between
nodes); tasks moved or swapped relative to their number (bouncing); locality worse than no balancing; and
migrations the rate limit refused. Thresholds are reporting choices, not model parameters.

Notes about a loss start with the mechanism behind it, so a reader can tell them apart at a glance:

* ``lock contention:`` time spent spinning and asleep on the process's locks and in TLB-shootdown IPIs
  (``lock_spin_s``, ``lock_sleep_s``, ``tlb_ipi_s``, ``tlb_send_s`` of ``sim/numa/contention.py``);
* ``copy traffic:`` bytes the page migrations copied (``migrate_copy_bytes``) against the working set, and the
  time the copies took (``system_by_cause["copy"]``);
* ``bouncing:`` pages migrated many times over, or tasks moved and swapped many times per task;
* ``filtering:`` remote hinting faults that left their page where it was (``hint_faults_remote_kept``): the
  two-stage filter, the rate limit, or a memory policy without ``MPOL_F_MOF``.

With several seeds per cell (``compare --seeds``), a cell's notes are those of its median run (by score),
followed by how many of the seeds' runs show each mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsched.numeric import seq_sum
from memsched.record import RunRecord

__all__ = ["MECHANISMS", "diagnose", "diagnose_runs"]

GIB = 1 << 30
#: The mechanisms a note can name (its prefix).
MECHANISMS = ("lock contention", "copy traffic", "bouncing", "filtering")
#: Names of the system-time causes (``system_by_cause``) in notes.
_CAUSES = {
    "page_faults": "first-touch faults",
    "scanning": "PTE scanning",
    "hint_faults": "hinting faults",
    "migration": "migration bookkeeping",
    "copy": "page copies",
    "lock_spin": "spinning on locks",
    "tlb_flush": "sending TLB shootdowns",
    "tlb_ipi": "TLB-shootdown IPIs",
    "thp_split": "huge-page splits",
    "task_moves": "task moves",
    "kthreads": "kernel threads",
}


def _converged_at(rec: RunRecord, level: float) -> float | None:
    """First sample time from which the local-access fraction stays at or above ``level``."""
    tl = rec.get("timeline") or {}
    times, fracs = tl.get("t_s", []), tl.get("local_fraction", [])
    last_bad = None
    for t, f in zip(times, fracs, strict=False):
        if f is not None and f < level:
            last_bad = t
    if last_bad is None:
        return None
    later = [t for t in times if t > last_bad]
    return later[0] if later else None


def _concentration(rec: RunRecord, none: RunRecord | None) -> str | None:
    """Memory gathered onto fewer nodes than without balancing (less aggregate bandwidth)."""

    def share(r: RunRecord) -> tuple[int, float] | None:
        pages = (r.get("timeline") or {}).get("node_pages") or []
        if not pages or not sum(pages[-1]):
            return None
        last = pages[-1]
        node = max(range(len(last)), key=lambda n: last[n])
        return node, last[node] / sum(last)

    mine, theirs = share(rec), share(none) if none is not None else None
    if mine is None or theirs is None or mine[1] < theirs[1] + 0.2:
        return None
    return (
        f"memory concentrated: node {mine[0]} holds {100 * mine[1]:.0f}% of pages "
        f"(no balancing: {100 * theirs[1]:.0f}%)"
    )


def _crowding(rec: RunRecord) -> tuple[int, float, float] | None:
    """The node that ran far more than its share of the runnable tasks, averaged over the run."""
    rows = [r for r in (rec.get("timeline") or {}).get("node_tasks", []) if sum(r) > 0]
    if not rows:
        return None
    nodes = len(rows[0])
    avg = [seq_sum(r[n] for r in rows) / len(rows) for n in range(nodes)]
    fair = seq_sum(avg) / nodes
    worst = max(range(nodes), key=lambda n: avg[n])
    return (worst, avg[worst], fair) if nodes > 1 and avg[worst] > 1.5 * fair and avg[worst] - fair >= 2 else None


def _against(r: RunRecord, none: RunRecord | None, hard: RunRecord | None) -> list[str]:
    """How the run's score compares with no balancing and with the hard-bound reference."""
    score = r.get("score") or {"name": "elapsed s", "value": r["elapsed_s"], "higher_is_better": False}
    value, name, higher = score["value"], score["name"], score["higher_is_better"]
    if value is None:
        return []
    out = []

    def worse(a: float, b: float, margin: float = 1.0) -> bool:
        return a * margin < b if higher else a > b * margin

    if none is not None and none.get("score", {}).get("value") is not None:
        base = none["score"]["value"]
        if worse(value, base, 1.02):  # differences under 2 % are noise for a comparison
            out.append(f"loses to no balancing ({name} {value:g} vs {base:g})")
    if hard is not None and hard.get("score", {}).get("value"):
        ref = hard["score"]["value"]
        if worse(value, ref, 1.25):
            ratio = value / ref
            out.append(f"{ratio:.2f}x the hard-bound {name}")
    return out


def _mechanisms(r: RunRecord, user: float, sys: float, mem: int) -> list[str]:
    """Lock contention, copy traffic and filtering notes from the run's own counters."""
    out: list[str] = []
    m = r.get("metrics", {})
    causes = r.get("system_by_cause") or {}
    spin, sleep = float(m.get("lock_spin_s", 0.0)), float(m.get("lock_sleep_s", 0.0))
    ipi = float(m.get("tlb_ipi_s", 0.0)) + float(m.get("tlb_send_s", 0.0))
    if user > 0 and spin + sleep + ipi > 0.005 * user:
        out.append(
            f"lock contention: {spin:.1f} s spinning and {sleep:.1f} s asleep on the process's locks "
            f"({int(m.get('lock_blocks', 0))} sleeps), {int(m.get('tlb_shootdowns', 0))} TLB shootdowns "
            f"costing {ipi:.1f} s of IPIs"
        )
    copied = int(m.get("migrate_copy_bytes", 0))
    copy_s = float(causes.get("copy", 0.0))
    if mem and copied > 0.5 * mem:
        out.append(
            f"copy traffic: migrations copied {copied / GIB:.1f} GiB ({copied / mem:.1f}x the {mem / GIB:.1f} GiB "
            f"in use), {copy_s:.1f} s of copying on the same controllers and links as the streams"
        )
    vm = r["vmstat"]
    remote = int(vm.get("numa_hint_faults", 0)) - int(vm.get("numa_hint_faults_local", 0))
    kept = int(m.get("hint_faults_remote_kept", 0))
    local = r["local_fraction"]
    if remote > 0 and kept > 0.5 * remote and local is not None and local < 0.8:
        why = []
        limited = int(m.get("migrate_ratelimited_pages", 0)) * 4096
        if limited:
            why.append(f"rate limit {limited / GIB:.1f} GiB")
        if int(m.get("migrate_refused_mof", 0)):
            why.append(f"no MPOL_F_MOF {int(m['migrate_refused_mof'])} pages")
        detail = f" ({', '.join(why)})" if why else " (the policy's own filter)"
        out.append(f"filtering: {kept} of {remote} remote hinting faults left their page in place{detail}")
    if sys > 0 and causes:
        top = max(causes, key=lambda c: causes[c])
        if causes[top] > 0.3 * sys:
            out.append(f"system time mostly {_CAUSES.get(top, top)} ({causes[top]:.1f} of {sys:.1f} s)")
    return out


def diagnose_runs(records: Sequence[RunRecord]) -> dict[tuple[str, str, int], list[str]]:
    """``(workload, label, seed) -> notes`` for every run that is not a reference, against the same seed's
    no-balancing and HARD_BIND runs."""
    by_base: dict[tuple[str, int], dict[str, RunRecord]] = {}
    for r in records:
        by_base.setdefault((r.base, r.seed), {})[r.label] = r
    out: dict[tuple[str, str, int], list[str]] = {}
    for (base, seed), runs in by_base.items():
        none, hard = runs.get("none"), runs.get("HARD_BIND")
        for label, r in runs.items():
            if r.is_reference or label == "none":
                continue
            notes: list[str] = []
            notes += _against(r, none, hard)
            user, sys = r["user_s"] or 0.0, r["system_s"] or 0.0
            if user > 0 and sys > 0.03 * user:
                notes.append(f"system time {sys:.0f} s, {100 * sys / user:.1f}% of user time")
            vm = r["vmstat"]
            moved = vm.get("numa_pages_migrated", 0) * 4096
            mem = r.get("memory_bytes") or 0
            if mem and moved > 2 * mem:
                notes.append(
                    f"bouncing: {moved / GIB:.0f} GiB migrated, {moved / mem:.0f}x the {mem / GIB:.1f} GiB in use"
                )
            m = r.get("metrics", {})
            task_moves = int(m.get("numa_task_migrations", 0)) + int(m.get("numa_task_swaps", 0))
            tasks = int(r.get("tasks") or 0)
            if tasks and task_moves > 5 * tasks:
                notes.append(f"bouncing: tasks moved or swapped {task_moves} times for {tasks} tasks")
            node_moves = int(r.get("task_node_moves") or 0)
            base_moves = int((none.get("task_node_moves") if none is not None else 0) or 0)
            if node_moves > max(50, 3 * base_moves) and not (tasks and task_moves > 5 * tasks):
                notes.append(f"{node_moves} cross-node task moves (no balancing: {base_moves}), each a cache refill")
            notes += _mechanisms(r, user, sys, mem)
            conc = _concentration(r, none)
            if conc is not None:
                notes.append(conc)
            if (
                none is not None
                and r["local_fraction"] is not None
                and none["local_fraction"] is not None
                and r["local_fraction"] < none["local_fraction"] - 0.02
            ):
                notes.append(f"locality fell to {r['local_fraction']:.2f} from {none['local_fraction']:.2f}")
            late = _converged_at(r, 0.8)
            if late is not None and late > 0.25 * r["elapsed_s"]:
                notes.append(f"converged late: 80% local only after {late:.0f} s of {r['elapsed_s']:.0f} s")
            crowd = _crowding(r)
            if crowd is not None:
                node, avg, fair = crowd
                notes.append(f"crowding: node {node} averaged {avg:.0f} tasks where an even spread gives {fair:.0f}")
            limited = int(m.get("migrate_ratelimited_pages", 0)) * 4096
            if limited > 0.1 * moved and limited > 0:
                notes.append(f"rate limit refused {limited / GIB:.1f} GiB of migrations")
            out[(base, label, seed)] = notes
    return out


def diagnose(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[str]]:
    """``(workload, label) -> notes`` for every cell that is not a reference: the notes of its run (of its
    median run by score, with several seeds, followed by the count of seeds showing each mechanism)."""
    per_run = diagnose_runs(records)
    runs: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        if (r.base, r.label, r.seed) in per_run:
            runs.setdefault((r.base, r.label), []).append(r)
    out: dict[tuple[str, str], list[str]] = {}
    for (base, label), rs in runs.items():
        if len(rs) == 1:
            out[(base, label)] = per_run[(base, label, rs[0].seed)]
            continue
        ranked = sorted(rs, key=lambda r: (r["score"]["value"] is None, r["score"]["value"] or 0.0, r.seed))
        mid = ranked[(len(ranked) - 1) // 2]
        notes = list(per_run[(base, label, mid.seed)])
        counts = []
        for mech in MECHANISMS:
            k = sum(any(n.startswith(mech + ":") for n in per_run[(base, label, r.seed)]) for r in rs)
            if k:
                counts.append(f"{mech} {k}/{len(rs)}")
        lost = sum(any(n.startswith("loses") for n in per_run[(base, label, r.seed)]) for r in rs)
        if lost:
            counts.append(f"loses to no balancing {lost}/{len(rs)}")
        if counts:
            notes.append(f"(notes of seed {mid.seed}, the median of {len(rs)}; over the seeds: {', '.join(counts)})")
        out[(base, label)] = notes
    return out
