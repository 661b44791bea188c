"""Who takes the NUMA hinting fault on each marked page, and when: the geometry of streaming sweeps.

A task streaming over a buffer touches byte ``x`` of it ``delay + ((x - cursor) mod size) / rate`` nanoseconds
from now (``delay``: the kernel work it must finish first, its CPU debt and a page copy in its context), so
the first task to reach a marked page (and take its hinting fault) follows from the tasks' cursors, rates
and delays (``FluidProgress.sweep_rows``). :func:`first_touchers` answers it for every marked page of a scan
window at once.

Computing every (task, page) pair costs tasks x pages, which for a 256 MB window of 4 KiB runs is a million
entries per scan. Between two pages the arrival time of each task is linear in the page index unless the
task's cursor or one end of its region lies between them, and the set of pages where one linear function is
the lowest of several is an interval. So the arrival times are evaluated on every ``stride``-th page only;
between two such samples where the same task comes first at both ends and no task's cursor or region end
lies in between, that task comes first on every page in between. The remaining gaps are evaluated page by
page. The result is exact (it is the same minimum), at a cost of tasks x (pages / stride + the pages of the
few gaps that hold a discontinuity).

:func:`scan_hits` keeps the pages reached before the window is scanned again, in the order they are reached;
:func:`reach_rows` later splits them into those their sweep has really come to (a task slowed by kernel work
comes less far than its rate promised) and the rest, with when to look at those again. Each of the three has a
compiled twin in ``memsched.sim.fluid._kernels`` that gives the same bits (``memsched.sim.fluid.jit``).

No kernel counterpart: in the kernel the faults happen; this predicts them from the fluid model's sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from memsched.sim.fluid import jit

__all__ = ["STRIDE", "Sweep", "first_touchers", "median", "reach_rows", "scan_hits"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The pages between two samples of :func:`first_touchers`.
STRIDE = 32

#: (task id, region start byte, region bytes, first page, end page, cursor byte, rate bytes/ns, delay ns)
Sweep = tuple[int, int, int, int, int, float, float, float]


def _wrap(x: FloatArray, nbytes: FloatArray) -> FloatArray:
    """``x % nbytes`` for ``-nbytes < x < nbytes`` (``nbytes > 0``), bit for bit, without the division and ``fmod``
    (2x to 7x faster): ``x``, or ``x + nbytes`` where ``x < 0``, which is what numpy's floor remainder computes
    there (its ``fmod`` returns ``x`` unchanged when ``|x| < nbytes``, then it adds ``nbytes`` to a negative
    remainder; ``-0.0 + 0.0`` gives its ``+0.0``). A covered page's offset in its region and the sweep's cursor
    both lie in ``[0, nbytes)``, so their difference does; other entries are masked out by the caller. In place:
    ``x`` (already of the broadcast shape) is overwritten and returned."""
    x += (x < 0) * nbytes
    return x


def _when(pages: IntArray, page_size: int, cols: FloatArray) -> FloatArray:
    """Arrival time (ns) of every sweep (rows) at every page (columns); ``inf`` where a sweep does not cover."""
    return _arrival(pages, (pages * page_size).astype(np.float64), tuple(cols.T[1:8, :, None]))


def _arrival(
    pages: npt.NDArray[np.int64 | np.float64] | None, starts: FloatArray, c: tuple[FloatArray, ...]
) -> FloatArray:
    """:func:`_when` from the pages' first bytes (``starts``, float64) and the sweeps' columns 1 to 7 as seven
    (sweeps, 1) views (``tuple(cols.T[1:8, :, None])``, taken once per call of :func:`first_touchers`), or as
    seven per-page columns (one sweep for each page: the arrival times along ``starts``);
    ``pages`` (their numbers, as integers or as floats: the same comparisons) is None when every sweep covers
    every page."""
    rstart, nbytes, p0, p1, cursor, rate, delay = c
    # delay + _wrap(max(starts, rstart) - rstart - cursor, nbytes) / rate, in place (a + b is b + a, bit for bit)
    when: FloatArray = np.maximum(starts, rstart)
    when -= rstart
    when -= cursor
    _wrap(when, nbytes)
    when /= rate
    when += delay
    if pages is not None:
        when[(pages < p0) | (pages >= p1)] = np.inf  # (integral page numbers: not covered)
    return when


def first_touchers(
    pages: IntArray, page_size: int, sweeps: Sequence[Sweep] | FloatArray, *, stride: int = STRIDE
) -> tuple[IntArray, FloatArray]:
    """For each page of ``pages`` (sorted, ascending): the index into ``sweeps`` of the first sweep to reach
    it and the time (ns from now) it gets there (``inf`` and -1 where no sweep covers the page). ``sweeps``
    may be given as their float64 array already (one row per sweep; columns after a ``Sweep``'s are ignored)."""
    cols = sweeps if isinstance(sweeps, np.ndarray) else np.array(sweeps, dtype=np.float64)
    return _first_touchers(pages, page_size, cols, stride)


@jit.compiled_as("first_touchers")
def _first_touchers(pages: IntArray, page_size: int, cols: FloatArray, stride: int) -> tuple[IntArray, FloatArray]:
    """:func:`first_touchers` of the sweeps' float64 rows."""
    n = pages.shape[0]
    nsw = cols.shape[0]
    if n == 0 or nsw == 0:
        return np.full(n, -1, dtype=np.int64), np.full(n, np.inf)
    # (Called once per scan on a few dozen sweeps and about a thousand pages: numpy's per-call overhead, not
    # the arithmetic, is most of the cost, so each step below takes as few calls as it can.)
    c = tuple(cols.T[1:8, :, None])
    starts = (pages * page_size).astype(np.float64)
    # Page numbers for the coverage tests (floats: no conversion in each comparison), None when every sweep
    # covers every page (tasks walking the whole buffer): then nothing is masked.
    everywhere = cols[:, 3].max() <= pages[0] and cols[:, 4].min() > pages[-1]
    pf = None if everywhere else pages.astype(np.float64)
    if n * nsw <= 8192 or n <= 2 * stride or nsw == 1:
        when = _arrival(pf, starts, c)
        who = when.argmin(axis=0)
        t = when[who, np.arange(n)]
        return np.where(np.isfinite(t), who, -1).astype(np.int64), t
    # Samples: every stride-th page and the last (idx[k] == k * stride but for the last).
    idx = np.arange(0, n - 1 + stride, stride)
    idx[-1] = n - 1
    m = idx.shape[0]
    pages_s = pages[idx]
    who_s = _arrival(None if pf is None else pf[idx], starts[idx], c).argmin(axis=0)
    # Pages where some sweep's arrival time jumps: just after its cursor (the time wraps to zero there) and
    # at the ends of its region. A jump j lies in gap k - 1 (pages_s[k - 1] < j <= pages_s[k]) for the k
    # that searchsorted finds, 0 < k < m.
    cursor_page = (cols[:, 1] + cols[:, 5]) // page_size
    jumps = np.concatenate([cursor_page, cursor_page + 1, cols[:, 3], cols[:, 4]]).astype(np.int64)
    ambiguous = np.bincount(pages_s.searchsorted(jumps), minlength=m + 1)[1:m] > 0
    ambiguous |= who_s[:-1] != who_s[1:]
    who = np.empty(n, dtype=np.int64)
    who[:-1] = who_s[:-1].repeat(stride)[: n - 1]
    who[-1] = who_s[-1]
    if np.count_nonzero(ambiguous):
        # The pages of the ambiguous gaps, ends included, as runs [lo, hi] (adjacent gaps share their end).
        runs: list[list[int]] = []
        for g in ambiguous.nonzero()[0].tolist():
            lo, hi = g * stride, min(g * stride + stride, n - 1)
            if runs and runs[-1][1] == lo:
                runs[-1][1] = hi
            else:
                runs.append([lo, hi])
        if len(runs) == 1:
            lo, hi = runs[0]
            pf_run = None if pf is None else pf[lo : hi + 1]
            who[lo : hi + 1] = _arrival(pf_run, starts[lo : hi + 1], c).argmin(axis=0)
        else:
            sel = np.concatenate([np.arange(lo, hi + 1) for lo, hi in runs])
            who[sel] = _arrival(None if pf is None else pf[sel], starts[sel], c).argmin(axis=0)
    # Arrival time of the chosen sweep at each page: its columns, one per page (one gather).
    chosen = cols.take(who, axis=0).T[1:8]
    t = _arrival(None, starts, tuple(chosen))
    if pf is None:
        return who, t
    covered = (pf >= chosen[2]) & (pf < chosen[3])
    if np.count_nonzero(covered) == n:
        return who, t
    return np.where(covered, who, -1), np.where(covered, t, np.inf)


@jit.compiled_as("scan_hits")
def scan_hits(
    pages: IntArray, page_size: int, cols: FloatArray, stride: int, horizon: float
) -> tuple[IntArray, FloatArray, float]:
    """The faults a scan of ``pages`` (sorted) predicts from the sweeps' rows ``cols``: the pages some sweep
    reaches within ``horizon`` ns (the others stay marked and are looked at again when their window is scanned
    again), in the order they are reached (a stable sort), the index of that sweep, the time it gets there and
    how far the page is ahead of its cursor (bytes: it faults once the sweep has come that far), as two arrays,
    ``[pages | sweeps]`` and ``[times | ahead]`` (the form :func:`reach_rows` takes); last, the median of those
    times (0.0 when no page is reached in time)."""
    first, t_first = _first_touchers(pages, page_size, cols, stride)
    hit = (first >= 0) & (t_first <= horizon)
    nhit = np.count_nonzero(hit)
    if not nhit:
        return pages[:0], t_first[:0], 0.0
    if nhit != hit.shape[0]:
        pages, first, t_first = pages[hit], first[hit], t_first[hit]
    order = t_first.argsort(kind="stable")
    pages, first, t_first = pages[order], first[order], t_first[order]
    ahead = (t_first - cols[:, 7].take(first)) * cols[:, 6].take(first)
    return np.concatenate((pages, first)), np.concatenate((t_first, ahead)), median(t_first, is_sorted=True)


def median(x: FloatArray, *, is_sorted: bool = False) -> float:
    """``float(np.median(x))`` of a non-empty array without NaN, without its generic reduction machinery: the
    middle value, or the mean of the two middle values, ``(a + b) / 2`` as ``np.mean`` computes it."""
    n = x.shape[0]
    s = x if is_sorted else np.sort(x)
    h = n // 2
    if n % 2:
        return float(s[h])
    return float((s[h - 1] + s[h]) / 2.0)


def _empty(dtype: type) -> npt.NDArray[Any]:
    out: npt.NDArray[Any] = np.zeros(0, dtype=dtype)
    out.flags.writeable = False  # (shared by every call that has no rest)
    return out


_NO_REST: tuple[IntArray, IntArray, FloatArray, FloatArray, float, int] = (
    _empty(np.int64), _empty(np.int64), _empty(np.float64), _empty(np.float64), 0.0, 0
)


@jit.compiled_as("reach_rows")
def reach_rows(
    cols: FloatArray,
    tids: IntArray,
    still: npt.NDArray[np.bool_],
    came_known: bool,
    rem: FloatArray,
    ints: IntArray,
    floats: FloatArray,
    again: bool,
    rate: FloatArray,
    share: FloatArray,
    oncpu: IntArray,
    debt: FloatArray,
    copy_left: FloatArray,
) -> tuple[Any, ...]:
    """Which of a scan's predicted faults (``ints``: ``[pages | first]``, their pages and sweeps; ``floats``:
    ``[offsets | ahead]``, as :func:`scan_hits` gives them) their sweep has really come to by now, and when to
    look at the rest again.

    Sweep ``k`` (row ``k`` of ``cols``, task ``tids[k]``) has come ``(work - rem - done) * part`` bytes since the
    scan (``cols[k, 8:11]``; ``rem`` synced) where its task is still in the phase of the sweep (``still[k]``;
    ``still`` empty: every one is) and ``came_known``; inf where it has left it. For the rest, when ``again``: the
    kernel work before its sweep moves again (its CPU debt at its share, a copy in its context at its rate, the
    task arrays ``rate``, ``share``, ``oncpu``, ``debt``, ``copy_left``) plus the bytes still ahead at its rate
    now; inf for a sweep that does not move. Returns two arrays, ``[pages | first | rest's pages | rest's first]``
    and ``[offsets | rest's offsets | rest's ahead]``, with the number reached, the number of the rest (those with a
    finite time) and the latest of those times: the rest's two parts are this function's ``ints`` and ``floats``
    for the second look. (Two arrays, not seven: numba boxes each array its kernel returns.)"""
    n = ints.shape[0] // 2
    pages, first, offsets, ahead = ints[:n], ints[n:], floats[:n], floats[n:]
    if came_known:
        came = (cols[:, 8] - rem.take(tids) - cols[:, 9]) * cols[:, 10]
        if still.shape[0]:
            came[~still] = np.inf
    else:
        came = np.full(tids.shape[0], np.inf)
    ok = ahead <= (came + 1.0)[first]  # (the same sums, per sweep)
    nok = int(np.count_nonzero(ok))
    if nok == n:
        return ints, offsets, n, 0, 0.0
    rest = ~ok
    look = _NO_REST
    if again:
        look = _look_again(
            pages[rest], first[rest], offsets[rest], ahead[rest], came, cols, tids, rate, share, oncpu, debt, copy_left
        )
    r_pages, r_first, r_offsets, r_ahead, t_max, nr = look
    return (
        np.concatenate((pages[ok], first[ok], r_pages, r_first)), np.concatenate((offsets[ok], r_offsets, r_ahead)),
        nok, nr, t_max,
    )  # fmt: skip


def _look_again(
    pages: IntArray,
    first: IntArray,
    offsets: FloatArray,
    ahead: FloatArray,
    came: FloatArray,
    cols: FloatArray,
    tids: IntArray,
    rate_all: FloatArray,
    share_all: FloatArray,
    oncpu: IntArray,
    debt: FloatArray,
    copy_left: FloatArray,
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, float, int]:
    """:func:`reach_rows`' rest: those with a finite time, the latest time, how many."""
    rate = rate_all.take(tids)
    share = share_all.take(tids)
    rate_part = rate * cols[:, 10]
    moving = (rate_part > 0) & (share > 0) & (oncpu.take(tids) >= 0)
    # Kernel work before the sweep moves again (ns) and ns per byte of it at its rate now: inf for a sweep
    # that does not move (nothing divided there).
    inf = np.full(tids.shape[0], np.inf)
    delay = np.divide(debt.take(tids), share, out=inf.copy(), where=moving)
    delay += np.divide(copy_left.take(tids), rate, out=inf.copy(), where=moving)
    per_byte = np.divide(1.0, rate_part, out=inf, where=moving)
    t = delay[first] + np.maximum(ahead - came[first], 0.0) * per_byte[first]
    finite = np.isfinite(t)
    nfinite = int(np.count_nonzero(finite))
    if not nfinite:
        return _NO_REST
    if nfinite != finite.shape[0]:
        pages, first, offsets, ahead = pages[finite], first[finite], offsets[finite], ahead[finite]
        t = t[finite]
    return pages, first, offsets, ahead, float(t.max()), nfinite
