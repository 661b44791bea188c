"""Who takes the NUMA hinting fault on each marked page, and when: the geometry of streaming sweeps.

A task streaming over a buffer touches byte ``x`` of it ``delay + ((x - cursor) mod size) / rate`` nanoseconds
from now (``delay``: the kernel work it must finish first, its CPU debt and a page copy in its context), so
the first task to reach a marked page (and take its hinting fault) follows from the tasks' cursors, rates
and delays (``FluidProgress.sweeps_of``). :func:`first_touchers` answers it for every marked page of a scan
window at once.

Computing every (task, page) pair costs tasks x pages, which for a 256 MB window of 4 KiB runs is a million
entries per scan. Between two pages the arrival time of each task is linear in the page index unless the
task's cursor or one end of its region lies between them, and the set of pages where one linear function is
the lowest of several is an interval. So the arrival times are evaluated on every ``stride``-th page only;
between two such samples where the same task comes first at both ends and no task's cursor or region end
lies in between, that task comes first on every page in between. The remaining gaps are evaluated page by
page. The result is exact (it is the same minimum), at a cost of tasks x (pages / stride + the pages of the
few gaps that hold a discontinuity).

No kernel counterpart: in the kernel the faults happen; this predicts them from the fluid model's sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Sweep", "first_touchers"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: (task id, region start byte, region bytes, first page, end page, cursor byte, rate bytes/ns, delay ns)
Sweep = tuple[int, int, int, int, int, float, float, float]


def _wrap(x: FloatArray, nbytes: FloatArray) -> FloatArray:
    """``x % nbytes`` for ``-nbytes < x < nbytes`` (``nbytes > 0``), bit for bit, without the division and ``fmod``
    (2x to 7x faster): ``x``, or ``x + nbytes`` where ``x < 0``, which is what numpy's floor remainder computes
    there (its ``fmod`` returns ``x`` unchanged when ``|x| < nbytes``, then it adds ``nbytes`` to a negative
    remainder; ``-0.0 + 0.0`` gives its ``+0.0``). A covered page's offset in its region and the sweep's cursor
    both lie in ``[0, nbytes)``, so their difference does; other entries are masked out by the caller."""
    return x + (x < 0) * nbytes


def _when(pages: IntArray, page_size: int, cols: FloatArray) -> FloatArray:
    """Arrival time (ns) of every sweep (rows) at every page (columns); ``inf`` where a sweep does not cover."""
    rstart, nbytes, p0, p1, cursor, rate, delay = (cols[:, k : k + 1] for k in range(1, 8))
    starts = (pages * page_size).astype(np.float64)[None, :]
    offset = np.maximum(starts, rstart) - rstart
    when = delay + _wrap(offset - cursor, nbytes) / rate
    cover = (pages[None, :] >= p0) & (pages[None, :] < p1)
    return np.where(cover, when, np.inf)


def first_touchers(
    pages: IntArray, page_size: int, sweeps: Sequence[Sweep] | FloatArray, *, stride: int = 32
) -> tuple[IntArray, FloatArray]:
    """For each page of ``pages`` (sorted, ascending): the index into ``sweeps`` of the first sweep to reach
    it and the time (ns from now) it gets there (``inf`` and -1 where no sweep covers the page). ``sweeps``
    may be given as their float64 array already (one row per sweep)."""
    n = pages.shape[0]
    cols = sweeps if isinstance(sweeps, np.ndarray) else np.array(sweeps, dtype=np.float64)
    if n == 0 or cols.shape[0] == 0:
        return np.full(n, -1, dtype=np.int64), np.full(n, np.inf)
    if n * cols.shape[0] <= 8192 or n <= 2 * stride or cols.shape[0] == 1:
        when = _when(pages, page_size, cols)
        who = when.argmin(axis=0)
        t = when[who, np.arange(n)]
        return np.where(np.isfinite(t), who, -1).astype(np.int64), t
    idx = np.arange(0, n, stride)
    if idx[-1] != n - 1:
        idx = np.concatenate((idx, np.array([n - 1], dtype=idx.dtype)))
    when_s = _when(pages[idx], page_size, cols)
    who_s = when_s.argmin(axis=0)
    # Pages where some sweep's arrival time jumps: just after its cursor (the time wraps to zero there) and
    # at the ends of its region.
    cursor_page = (cols[:, 1] + cols[:, 5]) // page_size
    # (sorted, not deduplicated: only whether a gap holds one matters)
    jumps = np.sort(np.concatenate([cursor_page, cursor_page + 1, cols[:, 3], cols[:, 4]]).astype(np.int64))
    lo_p, hi_p = pages[idx[:-1]], pages[idx[1:]]
    inside = jumps.searchsorted(hi_p, side="right") - jumps.searchsorted(lo_p, side="right")
    ambiguous = (who_s[:-1] != who_s[1:]) | (inside > 0)
    who = who_s[:-1].repeat(idx[1:] - idx[:-1])
    who = np.concatenate((who, who_s[-1:]))
    if np.count_nonzero(ambiguous):
        gaps = ambiguous.nonzero()[0]
        lengths = idx[gaps + 1] - idx[gaps] + 1
        within = np.arange(lengths.sum()) - (lengths.cumsum() - lengths).repeat(lengths)
        # (adjacent gaps share their end page: it is evaluated twice, to the same winner)
        sel = idx[gaps].repeat(lengths) + within
        who[sel] = _when(pages[sel], page_size, cols).argmin(axis=0)
    # Arrival time of the chosen sweep at each page.
    rstart, nbytes, p0, p1, cursor, rate, delay = cols.T[1:8].take(who, axis=1)  # (one gather, C order)
    starts = (pages * page_size).astype(np.float64)
    offset = np.maximum(starts, rstart) - rstart
    t = delay + _wrap(offset - cursor, nbytes) / rate
    covered = (pages >= p0) & (pages < p1)
    t = np.where(covered, t, np.inf)
    return np.where(covered, who, -1).astype(np.int64), t
