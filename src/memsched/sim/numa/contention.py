"""Per-process serialisation of NUMA balancing: the locks its hinting faults, scans and migrations queue on,
and the TLB shootdowns they send to every CPU running the process.

The kernel paths (Linux 3.7/3.8 and the 2012 patch sets) and what they hold:

* ``mm->page_table_lock``, a spinlock of the whole process until split PMD locks (3.13): taken by a hinting
  fault on a huge PMD (``do_huge_pmd_numa_page()``, balancenuma V1 "mm: numa: Create basic numa page hinting
  infrastructure", Mel Gorman, 6 Nov 2012), by the scanner for every huge PMD it marks
  (``change_huge_pmd()``), by ``migrate_misplaced_transhuge_page()`` to recheck and install the PMD (3.8), and
  by ``split_huge_page()`` while it rewrites the PMD into 512 PTEs. 4 KiB PTEs use split PTE locks, which
  the model takes as uncontended.
* the ``anon_vma`` lock: every rmap walk of a page migration (``try_to_unmap()`` and
  ``remove_migration_ptes()``) and all of ``split_huge_page()`` hold it. Before 3.8 it is a mutex
  (``anon_vma->mutex``; 3.7's adaptive spinning waits in ``mutex_spin_on_owner()`` while the owner runs, and
  sleeps once the lock passes to another waiter first); from 3.8 an rwsem that migrations take for read, so
  they no longer serialise (Ingo Molnar, "mm/rmap: Convert the struct anon_vma::mutex to an rwsem" and
  "mm/rmap, migration: Make rmap_walk_anon() and try_to_unmap_anon() more scalable", 1-2 Dec 2012).
  ``split_huge_page()`` takes it for write in both.
* ``mmap_sem``, held for read by hinting faults and by ``task_numa_work()`` (kernel/sched/fair.c 3.8:
  ``down_read``): readers do not wait for each other, so it adds nothing here.
* TLB shootdowns (``flush_tlb_others()``): the scanner flushes once per range it marked
  (``change_protection()``; AutoNUMA's knuma_scand defers its flush to the end of a chunk), every 4 KiB page
  migration flushes once when ``try_to_unmap_one()`` clears the PTE the hinting fault had just made present
  again (``ptep_clear_flush()``), and a split flushes the PMD (``pmdp_splitting_flush()``). Each flush
  interrupts every other CPU that runs a thread of the process and waits for them all.

**Queueing.** A batch of faults and migrations of one process is spread over a window of ``W`` ns. Task
``i`` needs ``D_i`` ns of a lock; the others use it at utilisation ``rho = sum_{j != i} D_j / W``, and each
of ``i``'s acquisitions waits the mean residual work of the others, ``sum_{j != i} n_j h_j^2 / (2 W)``,
divided by ``1 - rho`` (the M/G/1 mean wait, ``rho`` capped at 0.95), but never more in total than the
others' whole demand ``sum_{j != i} D_j`` (with the lock saturated, it waits for everybody else once). So the
wait grows with the number of threads faulting and vanishes for a lone one. Waiting on a spinlock is system
time; on the 3.7 mutex a waiter spins for at most one hold of the current owner and sleeps the rest: it
leaves its CPU, and wakes through the scheduler's wake-up path (``sim/fluid/sched.py``).

Deviations from the kernel: waits come from the per-batch utilisation (a mean-value approximation), not from
ordering every acquisition; hold times and IPI costs are estimates (``ContentionCosts``), never fitted to a
policy's result; kernel threads' migrations (AutoNUMA's old knuma_migratedN, numad's ``migrate_pages``) send
shootdowns but do not queue on the process's locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memsched.config import cost_knob, validate
from memsched.numeric import seq_sum
from memsched.sim.fluid import jit

__all__ = ["NO_EVENTS", "BatchEvents", "Contention", "ContentionCosts", "Outcome", "add_totals", "outcome", "totals"]

RHO_CAP = 0.95


@dataclass(frozen=True)
class ContentionCosts:
    """Hold times and IPI costs (estimates of 2012 x86 servers; never fitted to a policy's results), each at most
    1 ms (:data:`memsched.config.LIMIT_EVENT_COST_NS`)."""

    ptl_huge_fault_ns: int = cost_knob(500, "page_table_lock held by one huge-PMD hinting fault (estimate)")
    ptl_scan_pmd_ns: int = cost_knob(100, "page_table_lock held per huge PMD the scanner marks (estimate)")
    ptl_thp_migrate_ns: int = cost_knob(1_000, "page_table_lock held by one native THP migration (estimate)")
    rmap_walk_ns: int = cost_knob(1_000, "anon_vma lock held by one rmap walk of a 4 KiB page (estimate)")
    split_anon_vma_ns: int = cost_knob(40_000, "anon_vma lock held by split_huge_page() (512 tail pages; estimate)")
    split_ptl_ns: int = cost_knob(15_000, "page_table_lock held by split_huge_page() (512 PTEs; estimate)")
    tlb_flush_ns: int = cost_knob(2_000, "flush_tlb_others(): send the IPIs and wait for the acks (estimate)")
    tlb_flush_per_cpu_ns: int = cost_knob(200, "sender's cost per CPU interrupted (estimate)")
    tlb_ipi_ns: int = cost_knob(1_500, "one TLB-flush IPI on the receiving CPU: entry, flush, exit (estimate)")
    min_sleep_ns: int = cost_knob(10_000, "waits on a sleeping lock shorter than this are spent spinning")

    def __post_init__(self) -> None:
        validate(self)


#: Task ids or counts: a list, or an int64 array (which the kernels take as it is).
Ints = list[int] | npt.NDArray[np.int64]
#: The rows of a batch with no slot yet, as :meth:`BatchEvents.rows` gives them (for the kernels that take a
#: pending batch's rows, or none).
NO_EVENTS = (np.zeros(0, dtype=np.int64), np.zeros((4, 0)), np.zeros((3, 0), dtype=np.int64))
_NO_FLUSHES = np.zeros(0, dtype=np.int64)  # (Contention.hold_each's kernel: no flushes)


def _ids(x: Ints) -> npt.NDArray[np.int64]:
    """``x`` as the contiguous int64 array the kernels are compiled for."""
    return np.ascontiguousarray(x, dtype=np.int64)


def _as_list(x: Ints) -> list[int]:
    """``x`` as a list of Python ints."""
    return x.tolist() if isinstance(x, np.ndarray) else x


#: The lists of a :class:`BatchEvents`, made from its rows when first read (:meth:`BatchEvents.from_rows`).
_LISTS = frozenset(("anon_n", "anon_ns", "anon_sq", "flushes", "ptl_n", "ptl_ns", "ptl_sq", "slot", "tids"))


class BatchEvents:
    """What the tasks (and kernel threads, task -1) did to one process in a batch, one slot per task in the order
    the tasks first came: each lock's hold time, sum of squared holds and number of holds, and TLB flushes.

    Either lists (the slots grow as the tasks come) or, from :meth:`from_rows`, the arrays :meth:`rows` gives,
    turned into lists only when something reads or adds to them."""

    __slots__ = ("_rows", *sorted(_LISTS))

    def __init__(self) -> None:
        self._rows: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None
        self.slot: dict[int, int] = {}
        self.tids: list[int] = []
        self.ptl_ns: list[float] = []
        self.ptl_n: list[int] = []
        self.ptl_sq: list[float] = []
        self.anon_ns: list[float] = []
        self.anon_n: list[int] = []
        self.anon_sq: list[float] = []
        self.flushes: list[int] = []

    def of(self, task: int) -> int:
        """``task``'s slot (a new one, all zeros, the first time)."""
        i = self.slot.get(task)
        if i is None:
            i = self.slot[task] = len(self.tids)
            self.tids.append(task)
            for col in (self.ptl_ns, self.ptl_sq, self.anon_ns, self.anon_sq):
                col.append(0.0)
            for icol in (self.ptl_n, self.anon_n, self.flushes):
                icol.append(0)
        return i

    @classmethod
    def from_rows(
        cls, tids: npt.NDArray[np.int64], f: npt.NDArray[np.float64], n: npt.NDArray[np.int64]
    ) -> BatchEvents:
        """The events :meth:`rows` gave (distinct ``tids``), kept as these arrays (which nobody may write) until
        something reads the lists: then the same Python floats and ints."""
        ev = cls.__new__(cls)
        ev._rows = (tids, f, n)
        return ev

    if not TYPE_CHECKING:  # (a type checker still sees only the attributes set in __init__)

        def __getattr__(self, name: str) -> object:
            """(Reached only for a slot not set: the lists of events made :meth:`from_rows`, made now.)"""
            rows = None if name == "_rows" else self._rows
            if rows is None or name not in _LISTS:
                raise AttributeError(name)
            tids, f, n = rows
            self._rows = None  # (the lists are the events from now on)
            self.tids = tids.tolist()
            self.slot = {t: i for i, t in enumerate(self.tids)}
            self.ptl_ns, self.ptl_sq, self.anon_ns, self.anon_sq = f.tolist()
            self.ptl_n, self.anon_n, self.flushes = n.tolist()
            return getattr(self, name)

    def rows(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The slots as arrays: task ids; the rows (ptl ns, ptl squares, anon ns, anon squares), shape (4, slots);
        the rows (ptl holds, anon holds, flushes), shape (3, slots)."""
        if self._rows is not None:
            return self._rows
        k = len(self.tids)
        f = np.array([self.ptl_ns, self.ptl_sq, self.anon_ns, self.anon_sq], dtype=np.float64)
        ints = np.array(self.tids + self.ptl_n + self.anon_n + self.flushes, dtype=np.int64)  # (one array, viewed)
        return ints[:k], f, ints[k:].reshape(3, k)


@dataclass(frozen=True)
class Outcome:
    """What a batch's contention costs each task: spin and shootdown sends (system time), sleep (off CPU), the
    CPU whose release wakes a sleeper, and TLB-flush IPIs received (system time)."""

    spin_ns: dict[int, float]
    send_ns: dict[int, float]
    sleep_ns: dict[int, float]
    waker: dict[int, int]
    ipi_ns: dict[int, float]
    flushes: int = 0
    ipis: int = 0


@dataclass
class Contention:
    """The lock and TLB-shootdown accounting of one machine's NUMA balancing."""

    costs: ContentionCosts
    anon_vma_mutex: bool
    #: The events of each process since its last settle, by mm, in the order the processes first had one.
    pending: dict[int, BatchEvents] = field(default_factory=dict)
    #: Totals over the run, for the record (:meth:`metrics`): (lock spin ns, lock sleep ns, IPI ns, TLB send ns) and
    #: (lock blocks, TLB shootdowns, IPIs), as arrays a settle's kernel adds to in place.
    sums: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(4))
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(3, dtype=np.int64))

    def hold(self, mm: int, task: int, lock: str, n: int, each_ns: float) -> None:
        """``task`` of ``mm`` holds ``lock`` (``"ptl"`` or ``"anon"``) ``n`` times, ``each_ns`` each (nothing when
        either is not positive, but ``task`` takes its slot)."""
        self.hold_each(mm, [task], lock, [n], each_ns)

    def hold_each(
        self,
        mm: int,
        tasks: Ints,
        lock: str,
        counts: Ints,
        each_ns: float,
        flushes: Ints | None = None,
    ) -> None:
        """:meth:`hold` by each of ``tasks`` in turn, ``counts[i]`` times for ``tasks[i]`` (a task whose count is
        not positive, or every task when ``each_ns`` is not, holds nothing but takes its slot), and, with
        ``flushes``, ``flushes[i]`` TLB shootdowns by ``tasks[i]`` (the same slots as :meth:`flush_each` after
        this call: holds and flushes are separate sums). Once the process uses the fluid engine's kernels, one
        of them adds to the batch's rows (``_kernels.add_holds``: the same slots and sums)."""
        k = len(tasks)
        if len(counts) != k or (flushes is not None and len(flushes) != k):
            raise ValueError(f"{len(counts)} counts and {k if flushes is None else len(flushes)} flushes for {k} tasks")
        kernels = jit.loaded()
        if kernels is not None:  # the batch's rows at once, as the lists below would hold them
            ev = self.pending.get(mm)
            tids, f, nn = NO_EVENTS if ev is None else ev.rows()
            self.pending[mm] = BatchEvents.from_rows(
                *kernels.add_holds(
                    tids, f, nn, _ids(tasks), _ids(counts), float(each_ns), lock != "ptl",
                    _NO_FLUSHES if flushes is None else _ids(flushes),
                )
            )  # fmt: skip
            return
        tasks = _as_list(tasks)  # (the lists hold Python ints)
        n, ns, sq = _held(_as_list(counts), each_ns)
        fl = [0] * k if flushes is None else _as_list(flushes)
        ev = self.pending.get(mm)
        if ev is None:
            if len(set(tasks)) == k:  # (a fresh batch of distinct tasks: its rows at once)
                self.pending[mm] = _fresh(tasks, lock, n, ns, sq, fl)
                return
            ev = self.pending[mm] = BatchEvents()
        if lock == "ptl":
            cols = ev.ptl_ns, ev.ptl_n, ev.ptl_sq
        else:
            cols = ev.anon_ns, ev.anon_n, ev.anon_sq
        ns_col, n_col, sq_col = cols
        of, slot, flush_col = ev.of, ev.slot, ev.flushes
        for i_task, task in enumerate(tasks):
            i = slot.get(task)
            if i is None:
                i = of(task)
            if fl[i_task]:
                flush_col[i] += fl[i_task]
            if n[i_task]:
                ns_col[i] += ns[i_task]
                n_col[i] += n[i_task]
                sq_col[i] += sq[i_task]

    def flush_each(self, mm: int, tasks: list[int], counts: list[int]) -> None:
        """:meth:`flush` by each of ``tasks`` in turn, ``counts[i]`` shootdowns by ``tasks[i]`` (:meth:`hold_each`
        with no hold)."""
        self.hold_each(mm, tasks, "ptl", [0] * len(tasks), 0.0, counts)

    def flush(self, mm: int, task: int, n: int) -> None:
        """``task`` of ``mm`` sends ``n`` TLB shootdowns."""
        self.flush_each(mm, [task], [n])

    def take(self, mm: int) -> BatchEvents | None:
        """The pending events of ``mm`` (None when it has none), which are pending no more."""
        return self.pending.pop(mm, None)

    def settle(self, mm: int, window_ns: float, cpus_of: dict[int, int]) -> Outcome:
        """Turn the pending events of ``mm`` into waits and IPIs, counted in the run's totals. ``cpus_of``: task
        of ``mm`` -> CPU it runs on (tasks not running are absent); the CPUs running a thread of ``mm`` are the
        shootdown targets."""
        ev = self.take(mm)
        if ev is None:
            return Outcome({}, {}, {}, {}, {})
        out, send_each = outcome(ev, window_ns, cpus_of, self.cost_ns(), self.anon_vma_mutex)
        self.count(*totals(out, send_each, float(self.sums[3])))
        return out

    def cost_ns(self) -> tuple[int, int, int, int]:
        """(``min_sleep_ns``, ``tlb_flush_ns``, ``tlb_flush_per_cpu_ns``, ``tlb_ipi_ns``): what :func:`outcome`
        reads of the costs besides the holds."""
        c = self.costs
        return c.min_sleep_ns, c.tlb_flush_ns, c.tlb_flush_per_cpu_ns, c.tlb_ipi_ns

    def count(self, sums: list[float], counts: list[int]) -> None:
        """Count a settle in the run's totals, as :func:`totals` gives them: ``sums`` (spins' sum, sleeps' sum,
        IPIs' sum, the TLB sends' total after its sends) and ``counts`` (sleepers, shootdowns, IPIs sent)."""
        add_totals(self.sums, self.counts, sums, counts)

    def metrics(self) -> dict[str, float]:
        spin_ns, sleep_ns, ipi_ns, send_ns = self.sums.tolist()
        blocks, shootdowns, ipis = self.counts.tolist()
        return {
            "lock_spin_s": round(spin_ns / 1e9, 6),
            "lock_sleep_s": round(sleep_ns / 1e9, 6),
            "lock_blocks": blocks,
            "tlb_shootdowns": shootdowns,
            "tlb_ipis": ipis,
            "tlb_ipi_s": round(ipi_ns / 1e9, 6),
            "tlb_send_s": round(send_ns / 1e9, 6),
        }


def _held(counts: list[int], each_ns: float) -> tuple[list[int], list[float], list[float]]:
    """Each task's holds, hold time and squared holds for ``counts[i]`` holds of ``each_ns`` (0, 0.0, 0.0 when
    either is not positive): the amounts :meth:`Contention.hold_each` adds to a slot, each summed from 0.0 as the
    slot's first add would (``x + (0.0 + a)`` is ``x + a`` for every ``x`` a slot holds)."""
    if each_ns <= 0:
        k = len(counts)
        return [0] * k, [0.0] * k, [0.0] * k
    n = [c if c > 0 else 0 for c in counts]
    ns = [0.0 + c * each_ns if c > 0 else 0.0 for c in counts]
    sq = [0.0 + c * each_ns * each_ns if c > 0 else 0.0 for c in counts]
    return n, ns, sq


def _fresh(
    tasks: list[int], lock: str, n: list[int], ns: list[float], sq: list[float], flushes: list[int]
) -> BatchEvents:
    """A batch of the distinct ``tasks`` alone, with these holds (:func:`_held`) of ``lock`` and flushes, as
    :meth:`BatchEvents.rows`' arrays: the slots in the tasks' order, the other lock's columns zero."""
    k = len(tasks)
    none = [0.0] * k
    nil = [0] * k
    held_f, held_n = (ns + sq + none + none, n + nil) if lock == "ptl" else (none + none + ns + sq, nil + n)
    ints = np.array([*tasks, *held_n, *flushes], dtype=np.int64)  # (one array, viewed, as BatchEvents.rows)
    return BatchEvents.from_rows(ints[:k], np.array(held_f, dtype=np.float64).reshape(4, k), ints[k:].reshape(3, k))


def add_totals(sums: npt.NDArray[np.float64], counts: npt.NDArray[np.int64], part: list[float], nrs: list[int]) -> None:
    """:meth:`Contention.count` on its arrays ``sums`` and ``counts``, in place (a settle's kernel does the same)."""
    spin, sleep, ipi, send = part
    # (an empty part's sum is 0, which leaves these non-negative totals as they are)
    sums[0] += spin
    sums[1] += sleep
    sums[2] += ipi
    sums[3] = send
    counts += nrs


def outcome(
    ev: BatchEvents, window_ns: float, cpus_of: dict[int, int], cost_ns: tuple[int, int, int, int], anon_vma_mutex: bool
) -> tuple[Outcome, list[int]]:
    """The waits and IPIs of one process's batch ``ev`` (see :meth:`Contention.settle`; ``cost_ns``:
    :meth:`Contention.cost_ns`), and the shootdown sends' ns in the order of the tasks' slots."""
    min_sleep_ns, tlb_flush_ns, tlb_flush_per_cpu_ns, tlb_ipi_ns = cost_ns
    spin: dict[int, float] = {}
    send_ns: dict[int, float] = {}
    sleep: dict[int, float] = {}
    waker: dict[int, int] = {}
    ipi: dict[int, float] = {}
    send_each: list[int] = []
    flushes_now = ipis_now = 0
    w = max(float(window_ns), 1.0)
    tids = ev.tids
    # Both locks' hold totals: each is seq_sum of its column, in slot order (from the integer 0).
    ptl_total = seq_sum(ev.ptl_ns)
    anon_total = seq_sum(ev.anon_ns)
    if not (ptl_total <= 0 and anon_total <= 0):  # (some lock was held: else no task waited)
        for lock, total, ns_of, sq_of, n_of in (
            ("ptl", ptl_total, ev.ptl_ns, ev.ptl_sq, ev.ptl_n),
            ("anon", anon_total, ev.anon_ns, ev.anon_sq, ev.anon_n),
        ):
            if total <= 0:
                continue
            total_sq = seq_sum(sq_of)
            total_n = sum(n_of)
            mutex = lock == "anon" and anon_vma_mutex
            for i, task in enumerate(tids):
                n_i = n_of[i]
                if task < 0 or n_i == 0:
                    continue
                others = total - ns_of[i]
                if others <= 0:
                    continue
                rho = min(others / w, RHO_CAP)
                residual = (total_sq - sq_of[i]) / (2 * w)
                wait = min(n_i * residual / (1.0 - rho), others)
                if mutex:
                    mean_hold = others / max(total_n - n_i, 1)
                    spun = min(wait, n_i * mean_hold)
                    slept = wait - spun
                    if slept < min_sleep_ns:
                        spun, slept = wait, 0.0
                else:
                    spun, slept = wait, 0.0
                spin[task] = spin.get(task, 0.0) + spun
                if slept > 0:
                    sleep[task] = sleep.get(task, 0.0) + slept
                    # The waiter is woken by whoever releases the lock last before it: the heaviest other user.
                    heavy = max(
                        (j for j, t in enumerate(tids) if t >= 0 and t != task), key=ns_of.__getitem__, default=-1
                    )
                    if heavy >= 0 and tids[heavy] in cpus_of:
                        waker[task] = cpus_of[tids[heavy]]
    flushes = {t: n for t, n in zip(tids, ev.flushes, strict=True) if n}
    if flushes:
        total_flush = sum(flushes.values())
        mm_set = set(cpus_of.values())
        nr_mm_cpus = len(mm_set)
        for task, n in flushes.items():
            # every CPU of the mm but the sender's own (mm_cpus holds each CPU once)
            targets = nr_mm_cpus - (cpus_of.get(task, -1) in mm_set)
            if task >= 0:
                send = n * (tlb_flush_ns + tlb_flush_per_cpu_ns * targets)
                send_ns[task] = send_ns.get(task, 0.0) + send
                send_each.append(send)
            flushes_now += n
            ipis_now += n * targets
        ipi_ns = float(tlb_ipi_ns)
        # Every running task of the mm receives every flush but its own (in cpus_of's order, without a Python
        # step per task that sent none).
        ipi = dict.fromkeys(cpus_of, total_flush * ipi_ns)
        for task, n in flushes.items():
            if task in ipi:
                received = total_flush - n
                if received > 0:
                    ipi[task] = received * ipi_ns
                else:
                    del ipi[task]
    return Outcome(spin, send_ns, sleep, waker, ipi, flushes_now, ipis_now), send_each


def totals(out: Outcome, send_each: list[int], send_ns: float) -> tuple[list[float], list[int]]:
    """What a settle's outcome ``out`` adds to the run's totals (:meth:`Contention.count`): (spins' sum, sleeps'
    sum, IPIs' sum, ``send_ns`` plus each send of ``send_ns`` in turn) and (sleepers, shootdowns, IPIs sent)."""
    for send in send_each:
        send_ns += send
    sums = [seq_sum(out.spin_ns.values()), seq_sum(out.sleep_ns.values()), seq_sum(out.ipi_ns.values()), send_ns]
    return sums, [len(out.sleep_ns), out.flushes, out.ipis]
