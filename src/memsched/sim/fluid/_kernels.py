"""The fluid engine's compiled kernels (numba), imported only through :mod:`memsched.sim.fluid.jit`.

Each kernel performs the floating-point operations of the pure numpy code it replaces, on the same values and
in the same order, so that a run gives the same bits either way:

* numba compiles with ``fastmath=False`` (its default): LLVM may neither reassociate a sum nor fuse a multiply
  and an add into one rounding; ``error_model="numpy"``: a division by zero gives inf or NaN, as numpy's does,
  instead of raising ``ZeroDivisionError`` as Python's;
* a sum that numpy adds row after row (``einsum("i,ij->j")``, :func:`memmodel._weighted_rows`) is added row
  after row here, starting from 0.0 as ``einsum``'s output does;
* ``np.add.reduce`` sums pairwise (:func:`pairwise_sum`), ``einsum("im,imd->id")`` in order over ``m``, and
  ``einsum("im,im->i")`` with numpy's SIMD vectors (:func:`_dot_sse2`: the two-lane order of numpy's x86-64
  baseline build, which depends on how numpy was built, so :func:`self_check` compares it with this numpy at
  every load and ``memsched.sim.fluid.jit`` leaves off what differs);
* Python's ``min``/``max`` keep their first argument unless the second is strictly smaller/greater, and
  ``np.minimum.reduce`` returns NaN if any element is NaN: the loops below say so where it matters.

``tests/unit/sim/test_jit.py`` holds every kernel to the pure code, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

_EPS = 1e-12  # memmodel._EPS
#: No core columns (:func:`_progressive` and :func:`weighted_rows` of a full matrix).
_NO_COL = np.zeros(0, np.int64)


def _njit(fn: Callable[..., Any]) -> Any:
    """``numba.njit`` with numpy's division semantics, caching the machine code on disk (next to this file, else
    in the user's cache), so only the first process compiles; uncached where no cache directory is writable."""
    try:
        return numba.njit(cache=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(cache=False, error_model="numpy")(fn)


@_njit
def _maximum(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``np.maximum(a, b)`` of two floats: ``a`` unless ``b`` is greater, NaN if either is."""
    return a if (a >= b or np.isnan(a)) else b


@_njit
def _minimum(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``np.minimum(a, b)`` of two floats: ``a`` unless ``b`` is smaller, NaN if either is."""
    return a if (a <= b or np.isnan(a)) else b


@_njit
def weighted_rows(w: Any, a: Any) -> Any:  # pragma: no cover - compiled
    """``memmodel._weighted_rows(w, a)``: ``w @ a`` added row after row, from 0.0 as ``einsum``'s output (every
    column of ``a``: :func:`_weighted_cores`)."""
    return _weighted_cores(w, a, a.shape[1], _NO_COL, a.shape[1], 0, False, False)


@_njit
def _fill_step(load: Any, remaining: Any, rate: Any, active: Any, demand: Any, t: float) -> float:  # pragma: no cover
    """One round of progressive filling from the round's ``load`` per resource: the step (``min(1 - t, min over the
    loaded resources of remaining / load)``, a NaN minimum leaving ``1 - t``, never below 0), the active rows'
    rates and the resources' remaining capacity moved by it; returns ``t`` plus the step."""
    step = 1.0 - t
    any_pos = False
    lo = np.inf
    nan = False
    for j in range(load.shape[0]):
        if load[j] > _EPS:
            r = remaining[j] / load[j]
            if any_pos:
                if r < lo:  # noqa: PLR1730 - the first of equals, as np.minimum.reduce keeps
                    lo = r
            else:
                lo = r
                any_pos = True
            if np.isnan(r):
                nan = True
    if any_pos and not nan and lo < step:  # min(step, min(ratio)); a NaN minimum leaves step
        step = lo
    if 0.0 > step:  # noqa: PLR1730, SIM300 - Python's max(step, 0.0): step unless 0.0 is greater
        step = 0.0
    for i in range(rate.shape[0]):
        if active[i]:
            rate[i] += step * demand[i]
    for j in range(load.shape[0]):
        remaining[j] -= step * load[j]
    return t + step


@_njit
def _progressive(a: Any, cap: Any, demand: Any) -> Any:  # pragma: no cover - compiled
    """``memmodel._progressive_fill(a, cap, demand)``: weighted max-min fair rates by progressive filling (the
    matrix ``a`` in full: :func:`_progressive_rows` with every column read)."""
    return _progressive_rows(a, a.shape[1], _NO_COL, cap, demand, False, False)


@_njit
def _progressive_rows(  # pragma: no cover - compiled
    base: Any, nrd: int, col: Any, cap: Any, demand: Any, has_core: bool, has_snoop: bool
) -> Any:
    """Progressive filling (:func:`_progressive`) of a matrix whose row ``i`` is ``base[i, :nrd]`` (every column,
    or :func:`solve`'s controllers and links), then, ``has_core``, ``base[i, nrd]`` in its core's column ``col[i]``
    and, ``has_snoop``, ``base[i, nrd + 1]`` in the last column; its other core columns are 0.0 and not read. For
    finite demands that gives the full matrix's bits: such a 0.0 adds ``demand * 0.0``, +0.0, to the column's
    load, and a load is never -0.0 (it starts at +0.0, and a sum is -0.0 only of two -0.0), so leaving it out
    changes nothing; it never freezes its row either (``a > 0`` is false). Each column's load still adds its rows
    in row order."""
    n = base.shape[0]
    wt = cap.shape[0]
    snoop = wt - 1
    remaining = cap.copy()
    active = demand > 0
    nr_active = int(np.count_nonzero(active))
    rate = np.zeros(n)
    load = np.empty(wt)
    t = 0.0
    while nr_active:
        for j in range(wt):
            load[j] = 0.0
        for i in range(n):  # the active rows' demand-weighted use, row after row
            if active[i]:
                d = demand[i]
                for j in range(nrd):
                    load[j] += d * base[i, j]
                if has_core:
                    load[col[i]] += d * base[i, nrd]
                if has_snoop:
                    load[snoop] += d * base[i, nrd + 1]
        t = _fill_step(load, remaining, rate, active, demand, t)
        if t >= 1.0 - 1e-12:
            break
        frozen = 0
        for i in range(n):  # freeze the rows using a resource that saturated in this round
            if active[i]:
                hit = False
                for j in range(nrd):
                    if load[j] > _EPS and remaining[j] <= 1e-9 * cap[j] and base[i, j] > 0:
                        hit = True
                        break
                if has_core and not hit:
                    c = col[i]
                    hit = load[c] > _EPS and remaining[c] <= 1e-9 * cap[c] and base[i, nrd] > 0
                if (
                    not hit and has_snoop and load[snoop] > _EPS and remaining[snoop] <= 1e-9 * cap[snoop]
                    and base[i, nrd + 1] > 0
                ):  # fmt: skip
                    hit = True
                if hit:
                    active[i] = False
                    frozen += 1
        if not frozen:
            break
        nr_active -= frozen

    return rate


@_njit
def _weighted_cores(  # pragma: no cover - compiled
    w: Any, base: Any, nrd: int, col: Any, wt: int, nr_core_cols: int, has_core: bool, has_snoop: bool
) -> Any:
    """:func:`weighted_rows` of a matrix given as :func:`_progressive_rows` takes it: the same bits. A row whose
    weight is not finite adds ``w * 0.0``, NaN, to each of its other core columns, as the full sum does."""
    out = np.zeros(wt)
    snoop = wt - 1
    for i in range(base.shape[0]):
        wi = w[i]
        for j in range(nrd):
            out[j] += wi * base[i, j]
        if has_core:
            c = col[i]
            if np.isfinite(wi):
                out[c] += wi * base[i, nrd]
            else:
                for j in range(nrd, nrd + nr_core_cols):
                    out[j] += wi * (base[i, nrd] if j == c else 0.0)
        if has_snoop:
            out[snoop] += wi * base[i, nrd + 1]
    return out


@_njit
def solve(  # pragma: no cover - compiled (held to MemModel's pure solve by tests/unit/sim/test_jit.py)
    core: Any,
    demand: Any,
    base: Any,
    controller_cap: Any,
    link_cap: Any,
    snoop_cap: float,
    has_snoop: bool,
) -> Any:
    """``MemModel.solve_base`` (the matrix of resource use with one column per core in use, the weighted
    max-min progressive filling of ``memmodel._progressive_fill`` and the utilisations) as one loop nest.
    Returns (rate, controller_util, link_util)."""
    n = core.shape[0]
    nr = controller_cap.shape[0]
    nd = link_cap.shape[0]
    # the cores in use, numbered densely in core order
    nr_cores = 0
    for i in range(n):
        nr_cores = max(nr_cores, core[i] + 1)
    dense = np.full(nr_cores, -1, np.int64)
    for i in range(n):
        dense[core[i]] = 0
    nc = 0
    for c in range(nr_cores):
        if dense[c] == 0:
            dense[c] = nc
            nc += 1
    width = nr + nd + nc
    wt = width + 1 if has_snoop else width
    cap = np.empty(wt)
    for j in range(nr):
        cap[j] = controller_cap[j]
    for j in range(nd):
        cap[nr + j] = link_cap[j]
    for j in range(nc):
        cap[nr + nd + j] = 1.0
    if has_snoop:
        cap[width] = snoop_cap
    finite = True
    for i in range(n):
        if demand[i] > 0 and not demand[i] < np.inf:
            finite = False
    if finite:  # (the usual case: a row's own core column, not its every core's)
        col = np.empty(n, np.int64)
        for i in range(n):
            col[i] = nr + nd + dense[core[i]]
        rate = _progressive_rows(base, nr + nd, col, cap, demand, True, has_snoop)
        used = _weighted_cores(rate, base, nr + nd, col, wt, nc, True, has_snoop)
    else:
        a = np.zeros((n, wt))
        for i in range(n):
            for j in range(nr + nd):
                a[i, j] = base[i, j]
            a[i, nr + nd + dense[core[i]]] = base[i, nr + nd]
            if has_snoop:
                a[i, width] = base[i, nr + nd + 1]
        rate = _progressive(a, cap, demand)
        used = weighted_rows(rate, a)
    controller_util = np.empty(nr)
    for j in range(nr):
        controller_util[j] = used[j] / controller_cap[j]
    link_util = np.empty(nd)
    for j in range(nd):
        link_util[j] = used[nr + j] / link_cap[j]
    return rate, controller_util, link_util


@_njit
def _block_sum(x: Any, lo: int, n: int) -> Any:  # pragma: no cover - compiled
    """numpy's pairwise summation of ``x[lo:lo + n]`` for ``n <= 128`` (one block, see :func:`pairwise_sum`)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[lo + i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    end = n - n % 8
    while i < end:
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[lo + i]
        i += 1
    return res


@_njit
def pairwise_sum(x: Any, lo: int, n: int) -> Any:  # pragma: no cover - compiled
    """``np.add.reduce(x[lo:lo + n])`` of a contiguous float64 array, bit for bit: numpy's pairwise summation
    (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src): under 8 elements a plain loop from 0.0, up to
    128 eight accumulators combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)) and the rest added one
    by one, above that the two halves (the first a multiple of 8 long) summed the same way and added.

    numpy recurses; this walks the same tree with an explicit stack (a recursive function loaded from numba's
    cache crashed here), adding each pair of halves as the recursion would."""
    if n <= 128:
        return _block_sum(x, lo, n)
    los = np.empty(64, np.int64)  # the halves still open: start, length, and how far along (0, 1, 2)
    lens = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)
    vals = np.empty(64)
    los[0], lens[0] = lo, n
    top = 0
    nv = 0
    while top >= 0:
        m = lens[top]
        if m <= 128:
            vals[nv] = _block_sum(x, los[top], m)
            nv += 1
            top -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if stage[top] == 0:
            stage[top] = 1
            top += 1
            los[top], lens[top], stage[top] = los[top - 1], n2, 0
        elif stage[top] == 1:
            stage[top] = 2
            top += 1
            los[top], lens[top], stage[top] = los[top - 1] + n2, m - n2, 0
        else:
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]
            top -= 1
    return vals[0]


@_njit
def advance_folded(  # pragma: no cover - compiled (held to FluidProgress._advance_folded by tests)
    idx: Any,
    share: Any,
    rate: Any,
    dt: int,
    all_share_pos: bool,
    debt: Any,
    sys_ns: Any,
    user_ns: Any,
    rem: Any,
    copy_left: Any,
    copy_src: Any,
    copy_dst: Any,
    kind: Any,
    frac: Any,
    oncpu: Any,
    cpu_node: Any,
) -> Any:
    """``FluidProgress._advance_folded`` over the running rows ``idx`` (their ``share`` and ``rate``): each row
    pays its debt first, then copies (``copy_left > 0``) or works for the rest of ``dt``, in place on the task
    arrays. Returns (rows copying, the sum of their copy ns, the sum of the bytes copied, whether a copy
    finished, rows streaming, the sum of their bytes, the sum of their bytes on their CPU's node), each sum in
    ``np.add.reduce``'s order over the rows in ``idx`` order, as the pure code's sums are."""
    n = idx.shape[0]
    fdt = float(dt)
    copy_ns = np.empty(n)
    copied = np.empty(n)
    nbytes = np.empty(n)
    local_b = np.empty(n)
    nc = 0
    nm = 0
    finished = False
    for k in range(n):
        i = idx[k]
        s = share[k]
        d = debt[i]
        rest = fdt
        if all_share_pos or (d > 0 and s > 0):
            busy = _minimum(fdt, d / s)
            debt[i] = _maximum(d - s * fdt, 0.0)
            sys_ns[i] += s * busy
            rest = fdt - busy
        progressed = rate[k] * rest
        c = copy_left[i]
        if c > 0:
            ns = s * rest
            sys_ns[i] += ns
            copy_ns[nc] = ns
            moved = _minimum(progressed, c)
            left = c - moved
            copy_left[i] = left
            copied[nc] = moved
            nc += 1
            if left <= 1e-6:  # the copy is over: the task streams again, at rates without the copy's row
                copy_left[i] = 0.0
                copy_src[i, :] = 0.0
                copy_dst[i, :] = 0.0
                finished = True
        else:
            user_ns[i] += s * rest
            rem[i] -= progressed
            if kind[i] == 1:  # MEM
                nbytes[nm] = progressed
                local_b[nm] = progressed * frac[i, cpu_node[oncpu[i]]]
                nm += 1
    return (
        nc,
        pairwise_sum(copy_ns, 0, nc),
        pairwise_sum(copied, 0, nc),
        finished,
        nm,
        pairwise_sum(nbytes, 0, nm),
        pairwise_sum(local_b, 0, nm),
    )


@_njit
def next_completion(  # pragma: no cover - compiled (held to FluidProgress.next_time by tests)
    idx: Any, share: Any, rate: Any, all_pos: bool, all_share_pos: bool, debt: Any, rem: Any, copy_left: Any
) -> Any:
    """The folded-debt part of ``FluidProgress.next_time``: over the running rows with a rate > 0 (all of them
    when ``all_pos``), the least of debt / share (0.0 without debt) + what is left (the copy, else the phase's
    work) / rate. Returns (whether any row counted, that least, NaN if any term was NaN as
    ``np.minimum.reduce`` gives)."""
    n = idx.shape[0]
    any_indebt = False
    if not all_share_pos:
        for k in range(n):
            if debt[idx[k]] > 0 and share[k] > 0:
                any_indebt = True
                break
    found = False
    best = np.inf
    nan = False
    for k in range(n):
        r = rate[k]
        if not (all_pos or r > 0):
            continue
        i = idx[k]
        c = copy_left[i]
        t = (c if c > 0 else rem[i]) / r
        if all_share_pos:
            t = debt[i] / share[k] + t
        elif any_indebt:
            d = debt[i]
            s = share[k]
            t = (d / s if (d > 0 and s > 0) else 0.0) + t
        if np.isnan(t):
            nan = True
        elif not found or t < best:
            best = t
        found = True
    return found, np.nan if nan else best


@_njit
def fire_rows(  # pragma: no cover - compiled (held to FluidProgress.fire by tests)
    idx: Any,
    share: Any,
    rate: Any,
    debt: Any,
    rem: Any,
    copy_left: Any,
    copy_src: Any,
    copy_dst: Any,
) -> Any:
    """``FluidProgress.fire`` over the running rows: pay off the debts within share + 1e-9, end the copies within
    rate + 1e-6, and find the rows whose work is done (within rate + 1e-9). Returns (the bytes of the ended
    copies summed as ``np.add.reduce`` does, whether any ended, the done rows' task ids in ``idx`` order)."""
    n = idx.shape[0]
    copied = np.empty(n)
    nc = 0
    done = np.empty(n, np.int64)
    nd = 0
    for k in range(n):
        i = idx[k]
        d = debt[i]
        if d > 0 and d <= share[k] * 1.0 + 1e-9:
            debt[i] = 0.0
            d = 0.0
        if not d <= 0:  # (a NaN debt is not "no debt" either)
            continue
        r = rate[k]
        c = copy_left[i]
        if c > 0 and c <= r * 1.0 + 1e-6:
            copied[nc] = c
            nc += 1
            copy_left[i] = 0.0
            copy_src[i, :] = 0.0
            copy_dst[i, :] = 0.0
            c = 0.0
        if c <= 0 and r > 0 and rem[i] <= r * 1.0 + 1e-9:
            done[nd] = i
            nd += 1
    return pairwise_sum(copied, 0, nc), nc > 0, done[:nd]


@_njit
def _arrival(cols: Any, s: int, start: float, page: float, masked: bool) -> Any:  # pragma: no cover - compiled
    """``faults._arrival`` of sweep ``s`` (row of ``cols``) at one page (first byte ``start``, number ``page``):
    ``delay + _wrap(max(start, rstart) - rstart - cursor, nbytes) / rate``, ``inf`` where the sweep does not
    cover the page when ``masked``."""
    w = _behind(cols, s, start)
    w /= cols[s, 6]
    w += cols[s, 7]
    if masked and (page < cols[s, 3] or page >= cols[s, 4]):
        return np.inf
    return w


@_njit
def _behind(cols: Any, s: int, start: float) -> Any:  # pragma: no cover - compiled
    """How many bytes sweep ``s`` has to go to reach the byte ``start``: ``_wrap(max(start, rstart) - rstart -
    cursor, nbytes)``, the part of :func:`_arrival` before the division."""
    rstart = cols[s, 1]
    nbytes = cols[s, 2]
    w = _maximum(start, rstart)
    w -= rstart
    w -= cols[s, 5]
    w += nbytes if w < 0 else 0.0 * nbytes  # _wrap: x += (x < 0) * nbytes
    return w


#: 1 - 1e-15: the factor that makes ``_first``'s cheap estimate of an arrival a lower bound of the exact one.
_BELOW = 1.0 - 1e-15


@_njit
def _prunable(cols: Any) -> Any:  # pragma: no cover - compiled
    """Per sweep, ``1 / rate`` and whether :func:`_first` may skip its exact arrival by a lower bound: a finite
    rate > 0 (and a finite reciprocal) and a finite delay >= 0."""
    nsw = cols.shape[0]
    inv = np.empty(nsw)
    ok = np.zeros(nsw, np.bool_)
    for s in range(nsw):
        r, d = cols[s, 6], cols[s, 7]
        inv[s] = 1.0 / r if r > 0 else 0.0
        ok[s] = r > 0 and r < np.inf and inv[s] < np.inf and d >= 0 and d < np.inf
    return inv, ok


@_njit
def _first(  # pragma: no cover - compiled (held to faults.first_touchers by tests)
    cols: Any, start: float, page: float, masked: bool, inv: Any, ok: Any
) -> int:
    """``argmin`` over the sweeps of their (masked) arrival times at one page: the first least, or the first
    NaN. An arrival is ``x / rate + delay`` (:func:`_arrival`); the division is most of the work, and for a sweep
    that cannot win it is skipped: with ``x >= 0`` and ``ok[s]`` (:func:`_prunable`), ``(x * inv[s] + delay) *
    _BELOW`` is at most the exact arrival as floats compute it (``x * inv`` is within 2 ulps of ``x / rate``, each
    add or multiply rounds by at most half an ulp, and 1e-15 is more than the 4.5e-16 these can add up to, for
    ``x * inv`` of 1e-290 and above or exactly 0), so when it exceeds the least so far, the exact arrival is not
    below it, and not NaN: the same choice (a bound that overflows decides nothing). A sweep that does not cover
    the page (``masked``) arrives at inf, which is neither NaN nor below the least: it is skipped at once."""
    best = _arrival(cols, 0, start, page, masked)
    who = 0
    if np.isnan(best):
        return 0
    for s in range(1, cols.shape[0]):
        if masked and (page < cols[s, 3] or page >= cols[s, 4]):
            continue
        x = _behind(cols, s, start)
        if ok[s] and x >= 0.0:
            a = x * inv[s]
            if a == 0.0 or 1e-290 <= a < np.inf:
                lb = (a + cols[s, 7]) * _BELOW
                if best < lb < np.inf:
                    continue
        v = x / cols[s, 6]  # (the rest of _arrival, in its order)
        v += cols[s, 7]
        if np.isnan(v):
            return s
        if v < best:
            best = v
            who = s
    return who


@_njit
def first_touchers(pages: Any, page_size: int, cols: Any, stride: int) -> Any:  # pragma: no cover - compiled
    """``faults.first_touchers`` (its samples every ``stride`` pages, the gaps it evaluates page by page and the
    arrival of the chosen sweep at each page) as loops: (who, when) for each page."""
    n = pages.shape[0]
    nsw = cols.shape[0]
    who = np.full(n, -1, np.int64)
    t = np.full(n, np.inf)
    if n == 0 or nsw == 0:
        return who, t
    starts = np.empty(n)
    for p in range(n):
        starts[p] = float(pages[p] * page_size)
    inv, ok = _prunable(cols)
    if n * nsw <= 8192 or n <= 2 * stride or nsw == 1:
        for p in range(n):
            s = _first(cols, starts[p], float(pages[p]), True, inv, ok)
            v = _arrival(cols, s, starts[p], float(pages[p]), True)
            t[p] = v
            who[p] = s if np.isfinite(v) else -1
        return who, t
    m = (n - 2 + stride) // stride + 1  # np.arange(0, n - 1 + stride, stride).shape[0]
    idx = np.empty(m, np.int64)
    for k in range(m):
        idx[k] = k * stride
    idx[m - 1] = n - 1
    pages_s = np.empty(m, np.int64)
    who_s = np.empty(m, np.int64)
    for k in range(m):
        pages_s[k] = pages[idx[k]]
        who_s[k] = _first(cols, starts[idx[k]], float(pages[idx[k]]), True, inv, ok)
    # gaps holding a jump of some sweep's arrival time (its cursor, one end of its region), or whose ends
    # differ in the sweep that comes first
    ambiguous = np.zeros(m + 1, np.bool_)
    for s in range(nsw):
        cursor_page = (cols[s, 1] + cols[s, 5]) // page_size
        for j in (np.int64(cursor_page), np.int64(cursor_page + 1), np.int64(cols[s, 3]), np.int64(cols[s, 4])):
            ambiguous[np.searchsorted(pages_s, j)] = True
    for p in range(n - 1):
        who[p] = who_s[p // stride]
    who[n - 1] = who_s[m - 1]
    for g in range(m - 1):
        if ambiguous[g + 1] or who_s[g] != who_s[g + 1]:
            hi = min(g * stride + stride, n - 1)
            for p in range(g * stride, hi + 1):
                who[p] = _first(cols, starts[p], float(pages[p]), True, inv, ok)
    for p in range(n):
        s = who[p]
        v = _arrival(cols, s, starts[p], float(pages[p]), False)
        if float(pages[p]) >= cols[s, 3] and float(pages[p]) < cols[s, 4]:
            t[p] = v
        else:
            who[p] = -1
    return who, t


@_njit
def stable_argsort(x: Any) -> Any:  # pragma: no cover - compiled (held to argsort(kind="stable") by tests)
    """``x.argsort(kind="stable")`` of an array without NaN: its ascending runs merged pairwise, the left one's
    element first on a tie. A scan's arrival times are a few such runs (one per sweep wrapping or taking over),
    so this is a few linear passes where numba's merge sort would take ``log2(n)``."""
    n = x.shape[0]
    order = np.arange(n)
    keys = x.copy()  # (x[order], carried along: no indirect load in the merge)
    bounds = np.empty(n + 2, np.int64)  # the runs' starts, then n
    nb = 1
    bounds[0] = 0
    for i in range(1, n):
        if x[i] < x[i - 1]:
            bounds[nb] = i
            nb += 1
    bounds[nb] = n
    tmp, tkeys = np.empty(n, np.int64), np.empty(n)
    while nb > 1:  # nb runs: [bounds[r], bounds[r + 1])
        out = 0
        for r in range(0, nb, 2):
            lo = bounds[r]
            hi = bounds[min(r + 2, nb)]
            mid = bounds[r + 1] if r + 1 < nb else hi  # (an odd run out: copied as it is)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                left, right = keys[i], keys[j]
                if right < left:
                    tmp[k], tkeys[k] = order[j], right
                    j += 1
                else:
                    tmp[k], tkeys[k] = order[i], left
                    i += 1
                k += 1
            tmp[k : k + mid - i], tkeys[k : k + mid - i] = order[i:mid], keys[i:mid]
            k += mid - i
            tmp[k:hi], tkeys[k:hi] = order[j:hi], keys[j:hi]
            bounds[out] = lo
            out += 1
        bounds[out] = n
        nb = out
        order, tmp = tmp, order
        keys, tkeys = tkeys, keys
    return order


@_njit
def _median(s: Any) -> Any:  # pragma: no cover - compiled
    """``faults.median`` of a sorted non-empty array: the middle value, or ``(a + b) / 2`` of the two middle."""
    n = s.shape[0]
    h = n // 2
    return s[h] if n % 2 else (s[h - 1] + s[h]) / 2.0


@_njit
def scan_hits(  # pragma: no cover - compiled (held to faults.scan_hits by tests)
    pages: Any, page_size: int, cols: Any, stride: int, horizon: float
) -> Any:
    """``faults.scan_hits``: :func:`first_touchers`, then the pages reached within ``horizon``, in
    order of their first touch (a stable sort), how far each is ahead of its sweep's cursor, and the median of
    their touch times (the mean of the two middle ones, as ``np.median``): ([pages | first], [t_first | ahead],
    median), empty arrays when no page is reached in time."""
    first, t_first = first_touchers(pages, page_size, cols, stride)
    n = 0
    for p in range(pages.shape[0]):
        if first[p] >= 0 and t_first[p] <= horizon:
            n += 1
    sel = np.empty(n, np.int64)
    k = 0
    for p in range(pages.shape[0]):
        if first[p] >= 0 and t_first[p] <= horizon:
            sel[k] = p
            k += 1
    order = sel[stable_argsort(t_first[sel])]
    ints = np.empty(2 * n, np.int64)
    floats = np.empty(2 * n)
    for i in range(n):
        o = order[i]
        s = first[o]
        ints[i] = pages[o]
        ints[n + i] = s
        floats[i] = t_first[o]
        floats[n + i] = (t_first[o] - cols[s, 7]) * cols[s, 6]
    return ints, floats, _median(floats[:n]) if n else 0.0


@_njit
def reach_rows(  # pragma: no cover - compiled (held to faults.reach_rows by tests)
    cols: Any,
    tids: Any,
    still: Any,
    came_known: bool,
    rem: Any,
    ints: Any,
    floats: Any,
    again: bool,
    rate: Any,
    share: Any,
    oncpu: Any,
    debt: Any,
    copy_left: Any,
) -> Any:
    """``faults.reach_rows``: the split of the pages (``ints``: [pages | first], ``floats``: [offsets | ahead])
    into those their sweep has come to and the rest, and the time to look at the rest again: ([pages | first |
    rest's pages | rest's first], [offsets | rest's offsets | rest's ahead], how many reached, how many of the
    rest (those whose time is finite), the latest of those times). ``came_known``: the sweeps' progress is read
    (``rem``, synced; ``still`` where the task is still in the phase of its sweep, empty when every one is), else
    inf for every sweep; the rest only when ``again``."""
    n = ints.shape[0] // 2
    pages, first, offsets, ahead = ints[:n], ints[n:], floats[:n], floats[n:]
    ns = tids.shape[0]
    came = np.full(ns, np.inf)
    if came_known:
        for k in range(ns):
            if still.shape[0] == 0 or still[k]:
                came[k] = (cols[k, 8] - rem[tids[k]] - cols[k, 9]) * cols[k, 10]
    ok = np.empty(n, np.bool_)
    nok = 0
    for i in range(n):
        ok[i] = ahead[i] <= came[first[i]] + 1.0
        if ok[i]:
            nok += 1
    if nok == n:
        return ints, offsets, n, 0, 0.0
    r_pages, r_first = np.empty(n - nok, np.int64), np.empty(n - nok, np.int64)
    r_off, r_ahead, r_t = np.empty(n - nok), np.empty(n - nok), np.empty(n - nok)
    nr = 0
    if again:
        delay, per_byte = np.full(ns, np.inf), np.full(ns, np.inf)
        for k in range(ns):
            t = tids[k]
            rate_part = rate[t] * cols[k, 10]
            if rate_part > 0 and share[t] > 0 and oncpu[t] >= 0:
                delay[k] = debt[t] / share[t] + copy_left[t] / rate[t]
                per_byte[k] = 1.0 / rate_part
        for i in range(n):
            if ok[i]:
                continue
            f = first[i]
            t_i = delay[f] + _maximum(ahead[i] - came[f], 0.0) * per_byte[f]
            if np.isfinite(t_i):
                r_pages[nr], r_first[nr], r_off[nr], r_ahead[nr], r_t[nr] = pages[i], f, offsets[i], ahead[i], t_i
                nr += 1
    t_max = 0.0
    if nr:
        t_max = r_t[0]
        for i in range(1, nr):
            t_max = max(t_max, r_t[i])
    out_i = np.empty(2 * (nok + nr), np.int64)  # [pages | first | rest's pages | rest's first]
    out_f = np.empty(nok + 2 * nr)  # [offsets | rest's offsets | rest's ahead]
    k = 0
    for i in range(n):
        if ok[i]:
            out_i[k], out_i[nok + k], out_f[k] = pages[i], first[i], offsets[i]
            k += 1
    out_i[2 * nok : 2 * nok + nr] = r_pages[:nr]
    out_i[2 * nok + nr :] = r_first[:nr]
    out_f[nok : nok + nr] = r_off[:nr]
    out_f[nok + nr :] = r_ahead[:nr]
    return out_i, out_f, nok, nr, t_max


@_njit
def sweep_rows(  # pragma: no cover - compiled (held to progress._sweep_rows by tests)
    ids: Any,
    oncpu: Any,
    kind: Any,
    phase_key: Any,
    geo_i: Any,
    geo_f: Any,
    rate: Any,
    debt: Any,
    share: Any,
    copy_left: Any,
    rem: Any,
    page_size: int,
    lo: int,
    hi: int,
    horizon: float,
) -> Any:
    """``progress._sweep_rows``: the sweeps of the tasks ``ids`` that cover pages [lo, hi) and move within
    ``horizon``, as float64 rows, and their task ids. (Python's float ``%`` of the pure code, which numba's
    follows: the sign of the divisor.)"""
    out = np.empty((2 * ids.shape[0], 11))
    tids = np.empty(2 * ids.shape[0], dtype=np.int64)
    k = 0
    for tid in ids:
        if oncpu[tid] < 0 or kind[tid] != 1:  # (MEM: a Touch phase)
            continue
        key = phase_key[tid]
        f = geo_f[key, 0]
        work = geo_f[key, 1]
        r = rate[tid]
        delay = 0.0
        d = debt[tid]
        sh = share[tid]
        cl = copy_left[tid]
        if d > 0:
            delay += d / sh if sh > 0 else np.inf
        if cl > 0:
            delay += cl / r if r > 0 else np.inf
        done = work - rem[tid]
        nsweeps = 1 if f == 0.0 else 2
        own = 1.0 - f
        for j in range(nsweeps):
            b0 = geo_i[key, 2 * j]
            nb = geo_i[key, 2 * j + 1]
            if nsweeps == 1:
                cursor = done % nb
                rr = r
            elif j == 0:
                cursor = (done * own) % nb
                rr = r * own
            else:
                cursor = (done * f) % nb
                rr = r * f
            part = rr / r if r > 0 else 0.0
            p0 = b0 // page_size
            p1 = p0 if nb == 0 else (b0 + nb - 1) // page_size + 1
            if p1 <= lo or p0 >= hi or rr <= 0 or delay >= horizon:
                continue
            row = out[k]
            row[0] = tid
            row[1] = b0
            row[2] = nb
            row[3] = p0
            row[4] = p1
            row[5] = cursor
            row[6] = rr
            row[7] = delay
            row[8] = work
            row[9] = done
            row[10] = part
            tids[k] = tid
            k += 1
    return out[:k], tids[:k]


@_njit
def _append_new(ids: Any, count: int, seen: Any, order: Any, n: int) -> int:  # pragma: no cover - compiled
    """Append to ``order[n:]`` each of ``ids[:count]`` not ``seen`` yet, in order (marking it); the new length."""
    for j in range(count):
        t = ids[j]
        if not seen[t]:
            seen[t] = True
            order[n] = t
            n += 1
    return n


@_njit
def add_holds(  # pragma: no cover - compiled (held to Contention.hold_each's lists by tests)
    tids: Any, f: Any, n: Any, tasks: Any, counts: Any, each_ns: float, anon: bool, flushes: Any
) -> Any:
    """``Contention.hold_each`` on a batch's rows (``BatchEvents.rows``: no slot yet when they are empty): new rows
    with a slot for each of ``tasks`` not in it yet, in the order they first come; then, task after task, its
    ``flushes`` (none when empty) and, where ``counts[i]`` and ``each_ns`` are positive, ``counts[i]`` holds of
    ``each_ns`` in the lock's columns (``anon``: the anon_vma lock's, else the page table lock's), added to the
    slot as the lists add them (``counts[i] * each_ns`` and its square: exact products below 2**53, as Python's
    of the int costs are)."""
    k0, m = tids.shape[0], tasks.shape[0]
    slot = np.empty(m, np.int64)
    new = np.empty(m, np.int64)
    k = k0
    for i in range(m):
        t = tasks[i]
        s = -1
        for j in range(k):
            if (tids[j] if j < k0 else new[j - k0]) == t:
                s = j
                break
        if s < 0:
            new[k - k0] = t
            s = k
            k += 1
        slot[i] = s
    out_t = np.empty(k, np.int64)
    out_f = np.zeros((4, k))
    out_n = np.zeros((3, k), np.int64)
    out_t[:k0] = tids
    out_t[k0:] = new[: k - k0]
    out_f[:, :k0] = f
    out_n[:, :k0] = n
    row = 2 if anon else 0
    for i in range(m):
        s = slot[i]
        if flushes.shape[0]:
            out_n[2, s] += flushes[i]
        c = counts[i]
        if each_ns > 0 and c > 0:
            out_f[row, s] += c * each_ns
            out_n[row // 2, s] += c
            out_f[row + 1, s] += c * each_ns * each_ns
    return out_t, out_f, out_n


@_njit
def settle_charges(  # pragma: no cover - compiled (held to balancing._settle_charges by tests)
    hint_tid: Any,
    hint_ns: Any,
    ev_tid: Any,
    ev_f: Any,
    ev_n: Any,
    alive: Any,
    oncpu: Any,
    nr_tasks: int,
    window_ns: float,
    mutex: bool,
    cost_ns: Any,
    causes: Any,
    sums: Any,
    counts: Any,
    debt: Any,
) -> Any:
    """``balancing._settle_charges``: ``contention.outcome`` and the charges in their order, over per-task
    arrays (a Python ``min(a, b)`` is ``b if b < a else a``, ``max(a, b)`` ``b if b > a else a``; ``max`` with a
    key keeps the first of equal keys; sums start from 0), added to ``debt`` unless it is empty; the causes and
    the run's totals updated in place."""
    send_ns = sums[3]
    k = ev_tid.shape[0]
    min_sleep, flush_ns, per_cpu_ns = cost_ns[0], cost_ns[1], cost_ns[2]
    ipi_ns = float(cost_ns[3])
    w = 1.0 if window_ns < 1.0 else window_ns
    # cpus_of: the running tasks of the process, in ``alive``'s order, and the distinct CPUs they run on
    cpu_of = np.full(nr_tasks, -1, dtype=np.int64)
    running = np.empty(alive.shape[0], dtype=np.int64)
    nrun = 0
    top = 0
    for t in alive:
        c = oncpu[t]
        if c >= 0:
            cpu_of[t] = c
            running[nrun] = t
            nrun += 1
            top = max(top, c + 1)
    cpu_seen = np.zeros(top, dtype=np.bool_)
    nr_mm_cpus = 0
    for j in range(nrun):
        c = cpu_of[running[j]]
        if not cpu_seen[c]:
            cpu_seen[c] = True
            nr_mm_cpus += 1
    spin = np.zeros(nr_tasks)
    has_spin = np.zeros(nr_tasks, dtype=np.bool_)
    spin_order = np.empty(k, dtype=np.int64)
    nspin = 0
    sleep = np.zeros(nr_tasks)
    has_sleep = np.zeros(nr_tasks, dtype=np.bool_)
    waker = np.full(nr_tasks, -1, dtype=np.int64)
    sleep_order = np.empty(k, dtype=np.int64)
    nsleep = 0
    ptl_total = 0.0
    anon_total = 0.0
    for i in range(k):
        ptl_total += ev_f[0, i]
        anon_total += ev_f[2, i]
    if not (ptl_total <= 0 and anon_total <= 0):
        for lock in range(2):
            total = ptl_total if lock == 0 else anon_total
            if total <= 0:
                continue
            c_ns = 2 * lock
            c_sq = c_ns + 1
            total_sq = 0.0
            total_n = 0
            for i in range(k):
                total_sq += ev_f[c_sq, i]
                total_n += ev_n[lock, i]
            is_mutex = lock == 1 and mutex
            for i in range(k):
                task = ev_tid[i]
                n_i = ev_n[lock, i]
                if task < 0 or n_i == 0:
                    continue
                others = total - ev_f[c_ns, i]
                if others <= 0:
                    continue
                x = others / w
                rho = 0.95 if x > 0.95 else x  # (contention.RHO_CAP)
                residual = (total_sq - ev_f[c_sq, i]) / (2 * w)
                a = n_i * residual / (1.0 - rho)
                wait = others if others < a else a
                if is_mutex:
                    d = total_n - n_i
                    d = 1 if d < 1 else d
                    mean_hold = others / d
                    b = n_i * mean_hold
                    spun = b if b < wait else wait
                    slept = wait - spun
                    if slept < min_sleep:
                        spun = wait
                        slept = 0.0
                else:
                    spun = wait
                    slept = 0.0
                if has_spin[task]:
                    spin[task] = spin[task] + spun
                else:
                    has_spin[task] = True
                    spin[task] = 0.0 + spun
                    spin_order[nspin] = task
                    nspin += 1
                if slept > 0:
                    if has_sleep[task]:
                        sleep[task] = sleep[task] + slept
                    else:
                        has_sleep[task] = True
                        sleep[task] = 0.0 + slept
                        sleep_order[nsleep] = task
                        nsleep += 1
                    heavy = -1
                    best = 0.0
                    for j in range(k):
                        t = ev_tid[j]
                        if t >= 0 and t != task and (heavy < 0 or ev_f[c_ns, j] > best):
                            heavy = j
                            best = ev_f[c_ns, j]
                    if heavy >= 0 and cpu_of[ev_tid[heavy]] >= 0:
                        waker[task] = cpu_of[ev_tid[heavy]]
    send = np.zeros(nr_tasks)
    has_send = np.zeros(nr_tasks, dtype=np.bool_)
    send_order = np.empty(k, dtype=np.int64)
    nsend = 0
    ipi = np.zeros(nr_tasks)
    has_ipi = np.zeros(nr_tasks, dtype=np.bool_)
    flushes_now = 0
    ipis_now = 0
    total_flush = 0
    any_flush = False
    for i in range(k):
        if ev_n[2, i] != 0:
            any_flush = True
            total_flush += ev_n[2, i]
    if any_flush:
        for i in range(k):
            n = ev_n[2, i]
            if n == 0:
                continue
            task = ev_tid[i]
            targets = nr_mm_cpus - (1 if task >= 0 and cpu_of[task] >= 0 else 0)
            if task >= 0:
                sent = n * (flush_ns + per_cpu_ns * targets)
                send[task] = 0.0 + sent  # (a task has one slot: its first send)
                has_send[task] = True
                send_order[nsend] = task
                nsend += 1
                send_ns += sent
            flushes_now += n
            ipis_now += n * targets
        for j in range(nrun):
            t = running[j]
            ipi[t] = total_flush * ipi_ns
            has_ipi[t] = True
        for i in range(k):
            n = ev_n[2, i]
            task = ev_tid[i]
            if n != 0 and task >= 0 and has_ipi[task]:
                received = total_flush - n
                if received > 0:
                    ipi[task] = received * ipi_ns
                else:
                    has_ipi[task] = False
    spin_sum = 0.0
    for j in range(nspin):
        spin_sum += spin[spin_order[j]]
    sleep_sum = 0.0
    for j in range(nsleep):
        sleep_sum += sleep[sleep_order[j]]
    ipi_sum = 0.0
    for j in range(nrun):
        t = running[j]
        if has_ipi[t]:
            ipi_sum += ipi[t]
    # The charges: the faults' tasks, then the new ones among the spins and the sends, each with its IPIs.
    h = hint_tid.shape[0]
    has_hint = np.zeros(nr_tasks, dtype=np.bool_)
    hint = np.zeros(nr_tasks)
    in_pending = np.zeros(nr_tasks, dtype=np.bool_)
    order = np.empty(h + nspin + nsend, dtype=np.int64)
    for j in range(h):
        hint[hint_tid[j]] = hint_ns[j]
        has_hint[hint_tid[j]] = True
    npend = _append_new(hint_tid, h, in_pending, order, 0)
    npend = _append_new(spin_order, nspin, in_pending, order, npend)
    npend = _append_new(send_order, nsend, in_pending, order, npend)
    acc = causes  # (updated in place: a cause not touched keeps its value)
    touched = np.zeros(4, dtype=np.bool_)
    charged = np.empty(npend + nrun, dtype=np.int64)
    totals = np.empty(npend + nrun)
    m = 0
    for j in range(npend):
        t = order[j]
        total = 0.0
        if has_hint[t]:
            total += hint[t]
        if has_spin[t]:
            total += spin[t]
        if has_send[t]:
            total += send[t]
        if has_ipi[t]:
            total += ipi[t]
        if total <= 0:
            continue
        charged[m] = t
        totals[m] = total
        m += 1
        if has_hint[t]:
            acc[0] += hint[t]
            touched[0] = True
        if has_spin[t]:
            acc[1] += spin[t]
            touched[1] = True
        if has_send[t]:
            acc[2] += send[t]
            touched[2] = True
        if has_ipi[t]:
            acc[3] += ipi[t]
            touched[3] = True
    for j in range(nrun):  # the IPIs of the tasks charged nothing else, in the order of the running tasks
        t = running[j]
        if has_ipi[t] and not in_pending[t] and ipi[t] > 0:
            charged[m] = t
            totals[m] = ipi[t]
            m += 1
            acc[3] += ipi[t]
            touched[3] = True
    if debt.shape[0]:  # (FluidProgress.charge_totals of a synced progress: each distinct task's debt in turn)
        for i in range(m):
            debt[charged[i]] += totals[i]
    # Contention.count: the run's totals
    sums[0] += spin_sum
    sums[1] += sleep_sum
    sums[2] += ipi_sum
    sums[3] = send_ns
    counts[0] += nsleep
    counts[1] += flushes_now
    counts[2] += ipis_now
    # (two arrays, not nine: numba boxes each array it returns, at about 0.4 us each)
    ints = np.empty(4 + m + 2 * nsleep, dtype=np.int64)
    floats = np.empty(m + nsleep)
    mask = 0
    for c in range(4):
        if touched[c]:
            mask |= 1 << c
    ints[0], ints[1], ints[2], ints[3] = mask, nsleep, flushes_now, ipis_now
    ints[4 : 4 + m] = charged[:m]
    floats[:m] = totals[:m]
    for j in range(nsleep):
        t = sleep_order[j]
        ints[4 + m + j] = t
        ints[4 + m + nsleep + j] = waker[t]
        floats[m + j] = sleep[t]
    return ints, floats, m


@_njit
def migrate_rows(  # pragma: no cover - compiled (held to migrate._migrate_rows by tests)
    pages: Any,
    dst: Any,
    page_node: Any,
    ratelimit: bool,
    now: int,
    window_end: Any,
    window_pages: Any,
    last_limited: Any,
    base_per_page: int,
    ratelimit_pages: int,
    interval_ns: int,
    free_pages: Any,
    high_wmark: Any,
    nr: int,
) -> Any:
    """``migrate._migrate_rows``, after checking every page and node is in range (else nothing is changed and
    the last flag says so: the caller runs the pure code, which raises as numpy indexing does)."""
    m = pages.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    zeros = np.zeros(nr, dtype=np.int64)
    for i in range(m):
        if pages[i] < 0 or pages[i] >= page_node.shape[0] or dst[i] < 0 or dst[i] >= nr:
            return empty, empty, empty, zeros, zeros, 0, 0, 0, False, True
    # the present pages elsewhere, in order
    want = np.empty(m, dtype=np.bool_)
    for i in range(m):
        s = np.int64(page_node[pages[i]])
        want[i] = s >= 0 and s != dst[i]
    p, d = pages[want], dst[want]
    src = page_node[p].astype(np.int64)
    n = p.shape[0]
    dst_count = np.zeros(nr, dtype=np.int64)
    for i in range(n):
        dst_count[d[i]] += 1
    refused_rl = 0
    refused_bal = 0
    failed = 0
    # ok[node]: how many of the node's pages (the first ones, in order) move
    ok = dst_count.copy()
    any_refused = False
    for node in range(nr):
        count = dst_count[node]
        if count == 0:
            continue
        n_ok = count
        if ratelimit:
            if now > window_end[node]:
                window_pages[node] = 0
                window_end[node] = now + interval_ns
            wp = window_pages[node]
            n_ok = 0
            for k in range(count):  # (the window before each page: wp + base_per_page * k)
                if wp + base_per_page * k <= ratelimit_pages:
                    n_ok += 1
            if n_ok < count:
                last_limited[node] = now
                refused_rl += count - n_ok
            window_pages[node] += base_per_page * n_ok
        room = free_pages[node] - high_wmark[node]
        if room < n_ok:
            refused_bal += n_ok - max(room, 0)
            n_ok = max(room, 0)
        if n_ok:
            if free_pages[node] < n_ok:
                failed += n_ok
                n_ok = 0
            else:
                free_pages[node] -= n_ok
        if n_ok < count:
            any_refused = True
        ok[node] = n_ok
    if any_refused:
        seen = np.zeros(nr, dtype=np.int64)
        keep = np.empty(n, dtype=np.bool_)
        for i in range(n):  # (each node's first ok[node] pages, in order)
            keep[i] = seen[d[i]] < ok[d[i]]
            seen[d[i]] += 1
        p, d, src = p[keep], d[keep], src[keep]
        n = p.shape[0]
        dst_count = np.zeros(nr, dtype=np.int64)
        for i in range(n):
            dst_count[d[i]] += 1
    src_count = np.zeros(nr, dtype=np.int64)
    for i in range(n):
        src_count[src[i]] += 1
    for node in range(nr):
        free_pages[node] += src_count[node]
    kept_all = n == m and not any_refused
    return p, d, src, src_count, dst_count, refused_rl, refused_bal, failed, kept_all, False


@_njit
def mark_window(  # pragma: no cover - compiled (held to balancing._mark_window by tests)
    page_node: Any,
    marked: Any,
    lo: int,
    hi: int,
    skip: Any,
    huge_units: bool,
    thp_units: int,
    huge: Any,
    base_per_page: int,
) -> Any:
    """``balancing._mark_window``: mark the present pages of [lo, hi) whose node is not skipped; (huge PMDs,
    4 KiB PTEs) newly marked."""
    any_skip = False
    for j in range(skip.shape[0]):
        any_skip |= skip[j]
    n = 0
    pmds = 0
    split = 0
    last_block = -1
    for p in range(lo, hi):
        nd = page_node[p]
        if nd < 0 or (any_skip and skip[nd]):
            continue
        if not marked[p]:
            n += 1
            if thp_units:
                b = p // thp_units
                if huge[b]:
                    if b != last_block:
                        pmds += 1
                        last_block = b
                else:
                    split += 1
        marked[p] = True
    if huge_units:
        return n, 0
    if thp_units:
        return pmds, split * base_per_page
    return 0, n * base_per_page


@_njit
def payments(  # pragma: no cover - compiled (held to actuator._payments by tests)
    pages: Any, payer: Any, moved: Any, kept_all: bool, src: Any, dst: Any, nr: int, page_size: float, unit_ns: int
) -> Any:
    """``actuator._payments``: the distinct payers of the pages that moved (a page named twice is paid for by its
    first record's payer), the pages each moved, their CPU time and their copies' bytes read from and written to
    each node (one row per payer)."""
    m = moved.shape[0]
    n = pages.shape[0]
    payers = np.empty(m, np.int64)
    one = True  # (one payer for every record: each page's payer is that one, whichever record it takes)
    for i in range(1, n):
        if payer[i] != payer[0]:
            one = False
            break
    # (pages in increasing order, the usual case: no page twice, and their stable sort is themselves)
    increasing = True
    for i in range(1, n):
        if pages[i] <= pages[i - 1]:
            increasing = False
            break
    unique = increasing
    if kept_all and not unique and not one:
        ordered = np.sort(pages)
        unique = True
        for i in range(1, n):
            if ordered[i] == ordered[i - 1]:
                unique = False
                break
    if one:
        for i in range(m):
            payers[i] = payer[0]
    elif kept_all and unique:
        for i in range(m):
            payers[i] = payer[i]
    elif increasing:  # (actuator._lookup's search, in pages themselves)
        pos = np.searchsorted(pages, moved)
        for i in range(m):
            payers[i] = payer[pos[i]]
    else:  # (actuator._lookup: each wanted page's first record, by a stable sort and a search)
        order = np.argsort(pages, kind="mergesort")
        keys = pages[order]
        pos = np.searchsorted(keys, moved)
        for i in range(m):
            payers[i] = payer[order[pos[i]]]
    k = 0
    for i in range(m):
        k = max(k, payers[i] + 1)
    per_payer = np.zeros(k, np.int64)
    for i in range(m):
        per_payer[payers[i]] += 1
    slot = np.full(k, -1, np.int64)
    nids = 0
    for t in range(k):
        if per_payer[t]:
            slot[t] = nids
            nids += 1
    ids = np.empty(nids, np.int64)
    units = np.empty(nids, np.int64)
    fixed = np.empty(nids)
    for t in range(k):
        if slot[t] >= 0:
            ids[slot[t]] = t
            units[slot[t]] = per_payer[t]
            fixed[slot[t]] = float(per_payer[t] * unit_ns)
    src_c = np.zeros((nids, nr), np.int64)
    dst_c = np.zeros((nids, nr), np.int64)
    for i in range(m):
        r = slot[payers[i]]
        src_c[r, src[i]] += 1
        dst_c[r, dst[i]] += 1
    src_b = np.empty((nids, nr))
    dst_b = np.empty((nids, nr))
    for r in range(nids):
        for j in range(nr):
            src_b[r, j] = float(src_c[r, j]) * page_size
            dst_b[r, j] = float(dst_c[r, j]) * page_size
    return ids, units, fixed, src_b, dst_b


@_njit
def migrate_misplaced(  # pragma: no cover - compiled (held to the rule path's numpy by tests)
    cols: Any,
    mof_task: Any,
    all_mof: bool,
    state: Any,
    node_pages: Any,
    page_size: float,
    unit_ns: int,
    total: float,
    charge: Any,
) -> Any:
    """``MigrateMisplaced``'s rule over a batch's columns (``cols``, :func:`fault_rows`') carried out as the
    mechanism's numpy path does it (``SimActuator._misplaced_numpy``): the misplaced faults (page on another node
    than the faulting CPU, the task's policy with ``MPOL_F_MOF``: ``mof_task[id]`` unless ``all_mof``), then
    :func:`migrate_rows` of their pages to the CPUs' nodes (``state``: its arguments after the pages and their
    destinations, ``Migrator.rows_state``), the placement's arrays (``MmStruct.set_nodes``: ``node_pages`` and
    ``page_node``), :func:`payments` and :func:`charge_rows` of what the faulting tasks pay (``total``: the
    ``migration`` cause's sum so far; ``charge``: the arrays it updates, ``FluidProgress.charge_arrays``). Returns
    one int64 array, [n_misplaced, n_moved, refused by the rate limit, refused for balance, failed, charged,
    copied, out of range, payers, lo, hi | moved | their destinations | their sources | node_pages' change per
    node | payers | pages per payer] (``lo``, ``hi``: the least moved page and one past the greatest), and the
    cause's new sum. Out of range (a page or node :func:`migrate_rows` refuses), nothing is changed."""
    page_node = state[0]
    nr = node_pages.shape[0]
    size = cols.shape[1]
    pages, task_ids, cpu_node, pnode = cols[0], cols[1], cols[3], cols[4]
    mis = np.empty(size, np.bool_)
    n_mis = 0
    for i in range(size):
        mis[i] = pnode[i] != cpu_node[i] and (all_mof or mof_task[task_ids[i]])
        if mis[i]:
            n_mis += 1
    head = np.zeros(11, np.int64)
    head[0] = n_mis
    if n_mis == 0:
        return head, total
    p_mis, d_mis, t_mis = pages[mis], cpu_node[mis], task_ids[mis]
    moved, moved_dst, moved_src, src_count, dst_count, refused_rl, refused_bal, failed, kept_all, bad = migrate_rows(
        p_mis, d_mis, *state
    )
    if bad:
        head[7] = 1
        return head, total
    if kept_all:
        moved, moved_dst = p_mis, d_mis
    n = moved.shape[0]
    head[1], head[2], head[3], head[4] = n, refused_rl, refused_bal, failed
    if n == 0:
        return head, total
    change = np.empty(nr, np.int64)
    for j in range(nr):
        change[j] = dst_count[j] - src_count[j]
        node_pages[j] += change[j]
    lo, hi = moved[0], moved[0]
    for i in range(n):
        page_node[moved[i]] = moved_dst[i]
        lo = min(lo, moved[i])
        hi = max(hi, moved[i])
    ids, units, fixed, src_b, dst_b = payments(
        p_mis, t_mis, moved, kept_all, moved_src, moved_dst, nr, page_size, unit_ns
    )
    total, charged, copied = charge_rows(ids, fixed, src_b, dst_b, total, *charge)
    nids = ids.shape[0]
    head[5], head[6], head[8], head[9], head[10] = charged, copied, nids, lo, hi + 1
    out = np.empty(11 + 3 * n + nr + 2 * nids, np.int64)
    out[:11] = head
    o = 11
    out[o : o + n] = moved
    out[o + n : o + 2 * n] = moved_dst
    out[o + 2 * n : o + 3 * n] = moved_src
    o += 3 * n
    out[o : o + nr] = change
    o += nr
    out[o : o + nids] = ids
    out[o + nids :] = units
    return out, total


@_njit
def deliver_misplaced(  # pragma: no cover - compiled (held to the engine's way through each kernel by tests)
    cols: Any, faulters: Any, counts: Any, window_ns: float, migrate: Any, holds: Any, after: Any, settle: Any
) -> Any:
    """What ``NumaBalancing._deliver_cols`` does with a fault batch's columns (``cols``; the faulting tasks and
    their faults, the batch's window) on the rule path, from the huge faults' lock holds to the settle, in the
    order it calls their kernels (for :func:`reach_deliver`: Python calls it no other way, so that no process
    loads its machine code twice): :func:`migrate_misplaced` (``migrate``: its
    arguments after ``cols``); :func:`add_holds` of the huge faults and then of the migration's payers (``holds``:
    the pending batch's rows, whether the faults are huge and the hold of one, then whether the migration pays
    locks, natively (a THP's page table lock) or by rmap walks and flushes, the pages per payer's entry and the
    hold of one); :func:`fault_after` (``after``: the mm's placement and the pages' last nid, pid and CPU); and
    :func:`settle_charges` of the faulting tasks' hinting faults and those holds (``settle``: the ns of one
    fault, then its arguments after the events, less the window). Returns the migration's array and cause's sum,
    the remote faults kept, and the settle's arrays and count; out of range (the migration's head says so), only
    the migration's array and sum, nothing changed."""
    out, total = migrate_misplaced(cols, *migrate)
    if out[7]:
        return out, total, 0, np.zeros(0, np.int64), np.zeros(0), 0
    ev_tid, ev_f, ev_n, huge, huge_ns, pays, native, per_unit, lock_ns = holds
    no_flushes = np.zeros(0, np.int64)
    if huge:
        ev_tid, ev_f, ev_n = add_holds(ev_tid, ev_f, ev_n, faulters, counts, huge_ns, False, no_flushes)
    n = out[1]
    if n and pays:  # (after the head: moved, their destinations, their sources, node_pages' change, payers, units)
        o = 11 + 3 * n + migrate[3].shape[0]
        nids = out[8]
        ids, units = out[o : o + nids], out[o + nids : o + 2 * nids]
        if native:
            ev_tid, ev_f, ev_n = add_holds(ev_tid, ev_f, ev_n, ids, units, lock_ns, False, no_flushes)
        else:
            base = units * per_unit
            ev_tid, ev_f, ev_n = add_holds(ev_tid, ev_f, ev_n, ids, 2 * base, lock_ns, True, base)
    page_node, last_nid, last_pid, last_cpu = after
    kept = fault_after(cols[0], cols[1], cols[2], cols[3], cols[4], page_node, last_nid, last_pid, last_cpu)
    fault_ns, alive, oncpu, nr_tasks, mutex, cost_ns, causes, sums, totals, debt = settle
    hint_ns = np.empty(counts.shape[0])
    for i in range(counts.shape[0]):
        hint_ns[i] = counts[i] * fault_ns
    ints, floats, m = settle_charges(
        faulters, hint_ns, ev_tid, ev_f, ev_n, alive, oncpu, nr_tasks, window_ns, mutex, cost_ns, causes, sums,
        totals, debt,
    )  # fmt: skip
    return out, total, kept, ints, floats, m


@_njit
def reach_deliver(  # pragma: no cover - compiled (held to the engine's way through each kernel by tests)
    reach: Any, fault: Any, migrate: Any, holds: Any, after: Any, settle: Any
) -> Any:
    """``NumaBalancing._reached`` on the rule path once the kernels are in use and the progress synced, in the
    order it calls their kernels: :func:`reach_rows` (``reach``: its arguments), then, for the pages reached,
    :func:`fault_rows` (``fault``: its arguments after the pages, their tasks and offsets) and, for the faults
    that happen, :func:`deliver_misplaced` of their batch (its arguments after the batch's). Returns
    :func:`reach_rows`' results, :func:`fault_rows`' and :func:`deliver_misplaced`'s (an empty batch and zeros
    where none happened)."""
    ints, floats, nok, nr, t_max = reach_rows(*reach)
    cols, per_task = np.zeros((10, 0), np.int64), np.zeros(0, np.int64)
    nr_remote, span = 0, 0.0
    out, total, kept, s_ints, s_floats, m = np.zeros(11, np.int64), 0.0, 0, np.zeros(0, np.int64), np.zeros(0), 0
    if nok:
        task_ids = reach[1][ints[nok : 2 * nok]]
        cols, per_task, nr_remote, span = fault_rows(ints[:nok], task_ids, floats[:nok], *fault)
        if cols.shape[1]:
            faulters = per_task.nonzero()[0]
            counts = per_task[faulters]
            window = 1.0 if span < 1.0 else span  # (Python's max(span, 1.0))
            out, total, kept, s_ints, s_floats, m = deliver_misplaced(
                cols, faulters, counts, window, migrate, holds, after, settle
            )
    return ints, floats, nok, nr, t_max, cols, per_task, nr_remote, span, out, total, kept, s_ints, s_floats, m


@_njit
def charge_rows(  # pragma: no cover - compiled (held to progress._charge_rows by tests)
    tids: Any,
    ns: Any,
    src: Any,
    dst: Any,
    total: float,
    debt: Any,
    copy_left: Any,
    copy_src: Any,
    copy_dst: Any,
    copy_epoch: Any,
) -> Any:
    """``progress._charge_rows``: the debts and the cause's sum, then the copies (each row's bytes summed in
    order: they are whole pages' bytes, so the sum is numpy's in any order)."""
    charged = False
    copied = False
    nr = src.shape[1]
    for i in range(tids.shape[0]):
        x = ns[i]
        if x > 0:
            debt[tids[i]] += x
            total += x
            charged = True
    for i in range(tids.shape[0]):
        nbytes = 0.0
        for j in range(nr):
            nbytes += src[i, j]
        if nbytes > 0:
            t = tids[i]
            copy_left[t] += nbytes
            for j in range(nr):
                copy_src[t, j] += src[i, j]
                copy_dst[t, j] += dst[i, j]
            copy_epoch[t] += 1
            copied = True
    return total, charged, copied


@_njit
def fault_rows(  # pragma: no cover - compiled (held to balancing._fault_rows by tests)
    pages: Any,
    task_ids: Any,
    offsets: Any,
    oncpu: Any,
    marked: Any,
    page_node: Any,
    cpu_node: Any,
    tgid: Any,
    last_nid: Any,
    last_pid: Any,
    last_cpu: Any,
    nr_tasks: int,
    now: int,
) -> Any:
    """``balancing._fault_rows``: the faults on pages still marked and resident, by tasks on a CPU
    (their pages unmarked here), and the batch's columns as the rows of one array: (pages, task ids, CPUs, CPU
    nodes, page nodes, fault times, tgids, last nid, last pid, last CPU); then the faults per task id, how many
    remote and the offsets' span."""
    n = pages.shape[0]
    keep = np.empty(n, np.int64)
    size = 0
    for i in range(n):
        p = pages[i]
        if oncpu[task_ids[i]] >= 0 and marked[p] and page_node[p] >= 0:
            keep[size] = i
            size += 1
    cols = np.empty((10, size), np.int64)
    offs = np.empty(size)
    per_task = np.zeros(nr_tasks, np.int64)
    remote = 0
    for j in range(size):
        i = keep[j]
        p = pages[i]
        t = task_ids[i]
        marked[p] = False
        cpu = oncpu[t]
        cols[0, j] = p
        cols[1, j] = t
        cols[2, j] = cpu
        cols[3, j] = cpu_node[cpu]
        cols[4, j] = page_node[p]
        cols[6, j] = tgid[t]
        cols[7, j] = last_nid[p]
        cols[8, j] = last_pid[p]
        cols[9, j] = last_cpu[p]
        offs[j] = offsets[i]
        per_task[t] += 1
        if cols[3, j] != cols[4, j]:
            remote += 1
    span = 0.0
    if size:
        srt = offs[stable_argsort(offs)]  # (np.sort's values: no NaN here, and a tie's order shows in no sum)
        mid = np.int64(_median(srt))
        for j in range(size):
            cols[5, j] = now + np.int64(offs[j]) - mid
        if size > 1:
            span = srt[size - 1] - srt[0]
    return cols, per_task, remote, span


@_njit
def fault_after(  # pragma: no cover - compiled (held to balancing._fault_after by tests)
    pages: Any, task_ids: Any, cpus: Any, cnode: Any, pnode: Any, page_node: Any, last_nid: Any, last_pid: Any,
    last_cpu: Any,
) -> int:
    """``balancing._fault_after``, after the policy acted: how many of the remote faults' pages are still remote (now on
    ``page_node``), and the pages' last faulting node, task and CPU."""
    kept = 0
    for i in range(pages.shape[0]):
        p = pages[i]
        if cnode[i] != pnode[i] and page_node[p] != cnode[i]:
            kept += 1
        last_nid[p] = cnode[i]
        last_pid[p] = task_ids[i]
        last_cpu[p] = cpus[i]
    return kept


@_njit
def partial_gains(  # pragma: no cover - compiled (held to mm._partial_gains by tests)
    pages: Any, nodes: Any, old: Any, spans: Any, page_size: int, nr_nodes: int
) -> Any:
    """``mm._partial_gains`` as loops: each page inside a region weighed as there (``page_size``, less the
    region's lead on its first page and its tail on its last), added at its new node and taken at its present
    old one, summed as integers (the pure form's bincounts are exact integer sums)."""
    gains = np.zeros((spans.shape[0], nr_nodes), np.int64)
    for k in range(spans.shape[0]):
        p0, p1, lead, tail = spans[k, 0], spans[k, 1], spans[k, 2], spans[k, 3]
        for i in range(pages.shape[0]):
            p = pages[i]
            if p < p0 or p >= p1:
                continue
            w = page_size
            if p == p0:
                w -= lead
            if p == p1 - 1:
                w -= tail
            gains[k, nodes[i]] += w
            if old[i] >= 0:
                gains[k, old[i]] -= w
    return gains.astype(np.float64)


@_njit
def running_rows(  # pragma: no cover - compiled (held to FluidProgress.recompute by tests)
    n: int,
    oncpu: Any,
    weight: Any,
    copy_left: Any,
    kind: Any,
    phase_key: Any,
    rate: Any,
    share: Any,
    nr_cpus: int,
    cpu_node: Any,
    copy_epoch: Any,
    crow_epoch: Any,
    crow_node: Any,
) -> Any:
    """The first half of ``FluidProgress.recompute``: zero the rates and shares of tasks ``0..n-1``, give each
    running task its CPU share (``fluid_shares``: its weight over its CPU's total, summed in task order as
    ``np.bincount`` does), and sort the running rows into streaming (``MEM``, not copying), copying and
    computing ones. Returns (ids, running's shares, counts, whether every share is > 0): ``ids`` holds one after
    the other the running rows, the streaming rows, the distinct phase keys ascending of the streaming rows and
    of the copying rows in a ``Touch`` (so that a table is up to date when a copy ends: ``fire_chain`` goes on
    through a copy's end only then), the copying rows, their CPUs' nodes, the positions among the copying rows
    of those whose kept copy row is stale, and the computing rows (one array, not seven: numba boxes each array
    it returns); ``counts`` the number of running, streaming, keys, copying (and their nodes), stale and
    computing."""
    nrun = 0
    for i in range(n):
        rate[i] = 0.0
        share[i] = 0.0
        if oncpu[i] >= 0:
            nrun += 1
    running = np.empty(nrun, np.int64)
    k = 0
    per_cpu = np.zeros(nr_cpus)
    for i in range(n):
        if oncpu[i] >= 0:
            running[k] = i
            k += 1
            per_cpu[oncpu[i]] += weight[i]
    run_share = np.empty(nrun)
    nmem = ncop = ncomp = 0
    max_key = -1
    for k in range(nrun):
        i = running[k]
        s = weight[i] / per_cpu[oncpu[i]]
        run_share[k] = s
        share[i] = s
        if copy_left[i] > 0:
            ncop += 1
            if kind[i] == 1:  # (a Touch's copy: its table is kept up to date for when the copy ends)
                max_key = max(max_key, phase_key[i])
        elif kind[i] == 1:  # MEM
            nmem += 1
            max_key = max(max_key, phase_key[i])
        elif kind[i] == 2:  # COMPUTE
            ncomp += 1
    mem = np.empty(nmem, np.int64)
    cop = np.empty(ncop, np.int64)
    cop_node = np.empty(ncop, np.int64)
    comp = np.empty(ncomp, np.int64)
    seen = np.zeros(max_key + 1, np.bool_)
    stale = np.empty(ncop, np.int64)
    a = b = c = 0
    nstale = 0
    nkeys = 0
    for k in range(nrun):
        i = running[k]
        if copy_left[i] > 0:
            node = cpu_node[oncpu[i]]
            cop[b] = i
            cop_node[b] = node
            if crow_epoch[i] != copy_epoch[i] or crow_node[i] != node:
                stale[nstale] = b
                nstale += 1
            b += 1
            if kind[i] == 1 and not seen[phase_key[i]]:
                seen[phase_key[i]] = True
                nkeys += 1
        elif kind[i] == 1:
            mem[a] = i
            if not seen[phase_key[i]]:
                seen[phase_key[i]] = True
                nkeys += 1
            a += 1
        elif kind[i] == 2:
            comp[c] = i
            c += 1
    share_pos = True  # (_Running.all_share_pos: no row, or the least share > 0; NaN is not)
    if nrun:
        least = run_share[0]
        for k in range(1, nrun):
            least = _minimum(least, run_share[k])
        share_pos = least > 0
    counts = np.array([nrun, nmem, nkeys, ncop, nstale, ncomp], np.int64)
    ids = np.empty(nrun + nmem + nkeys + 2 * ncop + nstale + ncomp, np.int64)
    ids[:nrun] = running
    o = nrun
    ids[o : o + nmem] = mem
    o += nmem
    for key in range(max_key + 1):
        if seen[key]:
            ids[o] = key
            o += 1
    ids[o : o + ncop] = cop
    o += ncop
    ids[o : o + ncop] = cop_node
    o += ncop
    ids[o : o + nstale] = stale[:nstale]
    o += nstale
    ids[o:] = comp
    return ids, run_share, counts, share_pos


@_njit
def stream_and_copy_rates(  # pragma: no cover - compiled (held to FluidProgress.recompute by tests)
    mem: Any,
    cop: Any,
    oncpu: Any,
    phase_key: Any,
    share: Any,
    frac: Any,
    tab_frac: Any,
    tab_den: Any,
    tab_base: Any,
    crow_m: Any,
    crow_base: Any,
    cpu_node: Any,
    cpu_core: Any,
    mlp: float,
    controller_cap: Any,
    link_cap: Any,
    snoop_cap: float,
    has_snoop: bool,
    rate: Any,
    running: Any,
) -> Any:
    """The second half of ``FluidProgress.recompute`` (no kernel copies): the streaming rows from their phases'
    tables (demand ``share / den``, their placement fractions into ``frac``), the copying rows from their kept
    copy rows (demand ``share * mlp / m``), one :func:`solve` of both (streaming rows first) and each row's rate
    into ``rate``. Returns the controllers' utilisation, the rates of the ``running`` rows and whether there are
    some and every one is > 0 (``_Running``'s, where no running row computes)."""
    nr = controller_cap.shape[0]
    nm = mem.shape[0]
    nc = cop.shape[0]
    width = tab_base.shape[1]
    demand = np.empty(nm + nc)
    base = np.empty((nm + nc, width))
    core = np.empty(nm + nc, np.int64)
    for k in range(nm):
        i = mem[k]
        key = phase_key[i]
        cpu = oncpu[i]
        for j in range(frac.shape[1]):
            frac[i, j] = tab_frac[key, j]
        g = key * nr + cpu_node[cpu]
        demand[k] = share[i] / tab_den[g]
        for j in range(width):
            base[k, j] = tab_base[g, j]
        core[k] = cpu_core[cpu]
    for k in range(nc):
        i = cop[k]
        demand[nm + k] = share[i] * mlp / crow_m[i]
        for j in range(width):
            base[nm + k, j] = crow_base[i, j]
        core[nm + k] = cpu_core[oncpu[i]]
    r, controller_util, _ = solve(core, demand, base, controller_cap, link_cap, snoop_cap, has_snoop)
    for k in range(nm):
        rate[mem[k]] = r[k]
    for k in range(nc):
        rate[cop[k]] = r[nm + k]
    nrun = running.shape[0]
    run_rate = np.empty(nrun)
    least = np.nan
    for k in range(nrun):
        run_rate[k] = rate[running[k]]
        least = run_rate[k] if k == 0 else _minimum(least, run_rate[k])
    return controller_util, run_rate, nrun > 0 and least > 0


#: ``fire_chain``'s ways out: a phase completed (its tasks are handed to the interpreter), the rates must be
#: computed in Python (a copy row or stream table to make, a computing row), or the next completion is the
#: engine's to weigh (after the next event, none, or out of int64's range).
CHAIN_DONE, CHAIN_DIRTY, CHAIN_END = 0, 1, 2


@_njit
def fire_chain(  # pragma: no cover - compiled (held to the engine's loop of advance, fire and next_time by tests)
    t: int,
    t_last: int,
    t_ev: int,
    run: Any,
    all_pos: bool,
    all_share_pos: bool,
    tasks: Any,
    tables: Any,
    hw: Any,
    acc: Any,
    interval: Any,
) -> Any:
    """The fluid engine's loop while only its own completions happen: ``Engine._advance_to(t)`` and
    ``FluidProgress.fire`` (its compiled paths: :func:`advance_folded`, :func:`fire_rows`), then
    ``FluidProgress.next_time`` (its compiled recompute, :func:`running_rows` and :func:`stream_and_copy_rates`,
    then :func:`next_completion`), again while the next completion comes at or before the next event ``t_ev``,
    no phase completes and the rates need nothing made in Python. The same kernels in the same order on the
    same arrays, so the same bits.

    ``run``: the running rows (idx, share, rate) and their ``all_pos``, ``all_share_pos``; ``tasks``: (n, oncpu,
    weight, kind, phase_key, copy_epoch, rate, share, debt, sys_ns, user_ns, rem, copy_left, copy_src,
    copy_dst, frac); ``tables``: (key_stamp, stamp: the phase keys whose stream tables are up to date are those
    whose stamp is ``stamp``, tab_frac, tab_den,
    tab_base, crow_epoch, crow_node, crow_m, crow_base); ``hw``: (cpu_node, cpu_core, nr_cpus, mlp,
    controller_cap, link_cap, snoop_cap, has_snoop). ``acc`` (the copies' CPU ns, bytes copied, bytes streamed,
    of them local) and ``interval`` are added to in place, as the Python floats would be.

    Returns (ints: the way out, the time reached, whether the rates are dirty, whether a row copied, whether
    the rates were computed, and their ``all_pos`` and ``all_share_pos``, whether the next completion is known
    and it (-1: none), the completions fired; the completed rows; the running rows, shares and rates; the
    controllers' utilisation), the last four as of the last computation."""
    idx, share, rate = run
    n, oncpu, weight, kind, phase_key, copy_epoch, rate_a, share_a, debt, sys_ns, user_ns, rem, copy_left, \
        copy_src, copy_dst, frac = tasks  # fmt: skip
    key_stamp, stamp, tab_frac, tab_den, tab_base, crow_epoch, crow_node, crow_m, crow_base = tables
    cpu_node, cpu_core, nr_cpus, mlp, controller_cap, link_cap, snoop_cap, has_snoop = hw
    dirty = copying = recomputed = False
    known = fired = 0
    cu = np.zeros(0)
    while True:
        fired += 1
        nc, copy_ns, copied, finished, nm, total_b, local_b = advance_folded(
            idx, share, rate, t - t_last, all_share_pos, debt, sys_ns, user_ns, rem, copy_left, copy_src, copy_dst,
            kind, frac, oncpu, cpu_node,
        )  # fmt: skip
        t_last = t
        if nc:
            copying = True
            acc[0] += copy_ns
            acc[1] += copied
            if finished:
                dirty = True
        if nm:
            acc[2] += total_b
            acc[3] += local_b
            interval[0] += total_b
            interval[1] += local_b
        copied_bytes, any_copied, done = fire_rows(idx, share, rate, debt, rem, copy_left, copy_src, copy_dst)
        if any_copied:
            acc[1] += copied_bytes
            dirty = True
        if done.shape[0]:
            way = CHAIN_DONE
            break
        if dirty:
            if not _rows_ready(
                n, oncpu, kind, phase_key, copy_left, copy_epoch, key_stamp, stamp, crow_epoch, crow_node, cpu_node
            ):
                way = CHAIN_DIRTY
                break
            ids, run_share, counts, share_pos = running_rows(
                n, oncpu, weight, copy_left, kind, phase_key, rate_a, share_a, nr_cpus, cpu_node, copy_epoch,
                crow_epoch, crow_node,
            )  # fmt: skip
            nrun, nmem, nkeys, ncop = counts[0], counts[1], counts[2], counts[3]
            o = nrun + nmem + nkeys
            running = ids[:nrun]
            cu, run_rate, rate_pos = stream_and_copy_rates(
                ids[nrun : nrun + nmem], ids[o : o + ncop], oncpu, phase_key, share_a, frac, tab_frac, tab_den,
                tab_base, crow_m, crow_base, cpu_node, cpu_core, mlp, controller_cap, link_cap, snoop_cap, has_snoop,
                rate_a, running,
            )  # fmt: skip
            idx, share, rate, all_pos, all_share_pos = running, run_share, run_rate, rate_pos, share_pos
            dirty = False
            recomputed = True
        found, least = next_completion(idx, share, rate, all_pos, all_share_pos, debt, rem, copy_left)
        # next_time's: t_last + max(1, ceil(least - 1e-9)), None without a row, or where least is NaN or inf
        # (Python's min(inf, least) is inf then); -inf or beyond int64: Python's to say
        if not found or np.isnan(least) or least == np.inf:
            way, known, t = CHAIN_END, 1, -1
            break
        if not -9.0e18 < least < 9.0e18:
            way, known = CHAIN_END, 0
            break
        t = t_last + max(1, int(np.ceil(least - 1e-9)))
        if t > t_ev:
            way, known = CHAIN_END, 1
            break
    ints = np.array([way, t_last, dirty, copying, recomputed, all_pos, all_share_pos, known, t, fired], np.int64)
    return ints, done, idx, share, rate, cu


@_njit
def _rows_ready(  # pragma: no cover - compiled
    n: int,
    oncpu: Any,
    kind: Any,
    phase_key: Any,
    copy_left: Any,
    copy_epoch: Any,
    key_stamp: Any,
    stamp: int,
    crow_epoch: Any,
    crow_node: Any,
    cpu_node: Any,
) -> bool:
    """Whether ``FluidProgress._recompute_compiled`` would make nothing in Python: some task runs, each running
    task copies from a kept copy row that is up to date or streams from a stream table that is (its key stamped
    ``stamp``), and none computes or idles."""
    nrun = 0
    for i in range(n):
        if oncpu[i] < 0:
            continue
        nrun += 1
        if copy_left[i] > 0:
            if crow_epoch[i] != copy_epoch[i] or crow_node[i] != cpu_node[oncpu[i]]:
                return False
        elif kind[i] == 1:  # MEM
            key = phase_key[i]
            if key >= key_stamp.shape[0] or key_stamp[key] != stamp:
                return False
        else:
            return False
    return nrun > 0


@_njit
def _dot_sse2(x: Any, y: Any) -> Any:  # pragma: no cover - compiled
    """``einsum("m,m->")`` of two contiguous float64 rows as numpy's x86-64 baseline build sums it
    (``sum_of_products_contig_contig_outstride0_two`` with two-lane SSE vectors, multiply then add): four
    vectors at a time into one accumulator (the last vector first), then vector by vector, then the two lanes
    added; the output, from 0.0, plus that. :func:`self_check` holds it to this numpy at load."""
    m = x.shape[0]
    acc0 = 0.0
    acc1 = 0.0
    i = 0
    while m - i >= 8:
        acc0 = x[i] * y[i] + (x[i + 2] * y[i + 2] + (x[i + 4] * y[i + 4] + (x[i + 6] * y[i + 6] + acc0)))
        acc1 = x[i + 1] * y[i + 1] + (x[i + 3] * y[i + 3] + (x[i + 5] * y[i + 5] + (x[i + 7] * y[i + 7] + acc1)))
        i += 8
    while i < m:
        acc0 = x[i] * y[i] + acc0
        if i + 1 < m:
            acc1 = x[i + 1] * y[i + 1] + acc1
        else:
            acc1 = 0.0 * 0.0 + acc1  # (load_tillz: the missing lane is 0.0)
        i += 2
    return 0.0 + (acc0 + acc1)


@_njit
def _resource_row(  # pragma: no cover - compiled
    k: int, reads: Any, writes: Any, core_ns: float, hw: Any, out: Any
) -> None:
    """``MemModel.row_base`` of one row on node ``k`` into ``out``: traffic ``reads + writes`` per controller,
    the link loads as ``einsum("im,imd->id")`` adds them (over ``m`` in order, from 0.0: the reads' and the
    write-backs' sums, added), the core's share, the coherence load (:func:`_dot_sse2`, 0.0 without one).
    ``hw``: ``MemModel.row_args``."""
    _, path_to_cpu, path, mlp, snoop_weight, has_snoop = hw
    nr = reads.shape[0]
    nd = path.shape[2]
    for m in range(nr):
        out[m] = reads[m] + writes[m]
    for d in range(nd):
        r = 0.0
        for m in range(nr):
            r = r + reads[m] * path_to_cpu[k, m, d]
        b = 0.0
        for m in range(nr):
            b = b + writes[m] * path[k, m, d]
        out[nr + d] = r + b
    out[nr + nd] = core_ns / mlp
    out[nr + nd + 1] = _dot_sse2(out[:nr], snoop_weight[k]) if has_snoop else 0.0


@_njit
def stream_table(  # pragma: no cover - compiled (held to MemModel.stream_table by tests and self_check)
    frac: Any, write: Any, cpb: Any, scale: Any, hw: Any, den: Any, base: Any
) -> None:
    """``MemModel.stream_table`` of one phase into ``den`` (one per node) and ``base`` (a row per node): row
    ``k`` is a CPU on node ``k`` streaming over bytes ``frac`` per node. The row sum is ``np.add.reduce``'s
    (pairwise), the latency dot ``einsum("im,im->i")``'s (:func:`_dot_sse2`), the rest :func:`_resource_row`.
    ``hw``: ``MemModel.row_args``."""
    latency, mlp = hw[0], hw[3]
    nr = frac.shape[0]
    total = pairwise_sum(frac, 0, nr)
    t = _maximum(total, _EPS)
    empty = total <= _EPS
    f = np.empty(nr)
    w = np.empty(nr)
    for k in range(nr):
        for m in range(nr):
            f[m] = (1.0 if m == k else 0.0) if empty else frac[m] / t
            w[m] = f[m] * write[k]
        lat = _dot_sse2(f, latency[k])
        den[k] = cpb[k] + lat / (mlp * scale[k])
        _resource_row(k, f, w, lat, hw, base[k])


@_njit
def copy_rows(  # pragma: no cover - compiled (held to FluidProgress._copy_rows by tests and self_check)
    si: Any, sn: Any, copy_src: Any, copy_dst: Any, hw: Any, crow_base: Any, crow_m: Any
) -> None:
    """``FluidProgress._copy_rows``' rows (``MemModel.copy_parts``, ``row_base`` and ``copy_den``) of tasks
    ``si`` on nodes ``sn``, into ``crow_base`` and ``crow_m``: per byte copied, read the source (``src`` over
    its pairwise total), read the destination for ownership and write it back. ``hw``: ``MemModel.row_args``."""
    latency = hw[0]
    nr = copy_src.shape[1]
    reads = np.empty(nr)
    d = np.empty(nr)
    for q in range(si.shape[0]):
        i = si[q]
        k = sn[q]
        total = pairwise_sum(copy_src[i], 0, nr)
        tot = _maximum(total, _EPS)
        for m in range(nr):
            d[m] = copy_dst[i, m] / tot
            reads[m] = copy_src[i, m] / tot + d[m]
        core_ns = _dot_sse2(reads, latency[k])
        _resource_row(k, reads, d, core_ns, hw, crow_base[i])
        crow_m[i] = _maximum(core_ns, _EPS)  # copy_den


def self_check() -> list[str]:
    """The kernels whose sums this numpy does not add as they do (none on the x86-64 baseline build they were
    written against), from a few random problems on the 8-node preset (links, spread routing, the coherence
    resource, 8-element rows): numpy's SIMD sums follow how numpy was built."""
    from memsched.sim.fluid.memmodel import MemModel, _progressive_fill, _weighted_rows
    from memsched.topology import load_topology

    bad: list[str] = []
    rng = np.random.default_rng(12)
    m = MemModel(load_topology("x86-8n64"))
    nr = m.nr_nodes
    width = nr + m.link_cap.shape[0] + 2
    for _ in range(8):
        frac = rng.random(nr) * (rng.random(nr) < 0.8) * 2.0**30
        write, cpb, scale = np.full(nr, rng.random()), np.full(nr, rng.random() * 0.01), np.full(nr, rng.random())
        den, base = np.empty(nr), np.empty((nr, width))
        stream_table(frac, write, cpb, scale, m.row_args, den, base)
        want_den, want_base = m.stream_table(frac, write, cpb, scale)
        if den.tobytes() != want_den.tobytes() or base.tobytes() != want_base.tobytes():
            bad.append("stream_table")
            break
    k = 6
    src = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5) * 2.0**21
    dst = rng.random((k, nr)) * (rng.random((k, nr)) < 0.5) * 2.0**21
    node = rng.integers(0, nr, k)
    crow_base, crow_m = np.zeros((k, width)), np.zeros(k)
    copy_rows(np.arange(k), node, src, dst, m.row_args, crow_base, crow_m)
    reads, writes, core_ns = m.copy_parts(node, src, dst)
    if (
        crow_base.tobytes() != m.row_base(node, reads, writes, core_ns).tobytes()
        or crow_m.tobytes() != m.copy_den(core_ns).tobytes()
    ):
        bad.append("copy_rows")
    for _ in range(8):
        n = int(rng.integers(1, 60))
        a = rng.random((n, 40)) * (rng.random((n, 40)) < 0.3)
        w = rng.random(n)
        x = rng.standard_normal(int(rng.integers(1, 400)))
        if (
            pairwise_sum(x, 0, x.shape[0]) != np.add.reduce(x)
            or _weighted_rows(w, a).tobytes() != weighted_rows(w, a).tobytes()
        ):
            bad.append("sums")
            break
        cap = rng.random(40) * n * 0.3
        if _progressive(a, cap, w).tobytes() != _progressive_fill(a, cap, w).tobytes():
            bad.append("solve")
            break
    return bad


def warm(every: bool = True, may_compile: bool = True) -> bool:
    """Compile every kernel (or load it from numba's cache) for the argument types the engine passes, on small
    inputs, so that a build failure shows at once and no run pays a compile in its middle. With ``every=False``,
    when numba's cache holds every kernel for those types already, load none now: each then loads from the cache
    at its first call, so that a run loads only the kernels it calls (about 0.1 s of the 0.25 s they take).
    Unless ``may_compile``, when the cache lacks one of them, call none and return False (compiling them all
    takes about 50 s on 2 cores); else return True."""
    calls: list[tuple[Any, tuple[Any, ...]]] = []

    def call(kernel: Any, *args: Any) -> None:
        calls.append((kernel, args))

    i64, f64 = np.zeros(1, np.int64), np.zeros(1)
    ro = i64.copy()
    ro.flags.writeable = False  # (read-only columns: a fault batch's, once the policy has it, and an action's)
    f2 = np.zeros((1, 1))
    cap = np.ones(1)
    call(solve, i64, f64, np.zeros((1, 3)), cap, np.ones(0), 0.0, False)
    call(pairwise_sum, f64, 0, 1)
    call(advance_folded, i64, f64, f64, 1, True, f64, f64, f64, f64, f64, f2, f2, np.zeros(1, np.int8), f2, i64, i64)
    call(next_completion, i64, f64, f64, True, True, f64, f64, f64)
    call(fire_rows, i64, f64, f64, f64, f64, f64, f2, f2)
    call(first_touchers, i64, 4096, np.zeros((1, 11)), 32)
    hw = (f2, np.zeros((1, 1, 0)), np.zeros((1, 1, 0)), 1.0, f2, False)  # (MemModel.row_args' types)
    call(stream_table, f64, f64, f64, f64, hw, f64, np.zeros((1, 3)))
    call(copy_rows, i64, i64, f2, f2, hw, np.zeros((1, 3)), f64)
    cols = np.zeros((1, 11))
    call(scan_hits, i64, 4096, cols, 32, 1.0)
    i2, f2c = np.zeros(2, np.int64), np.zeros(2)  # ([pages | first], [offsets | ahead]) of one page
    call(reach_rows, cols, i64, np.zeros(0, np.bool_), True, f64, i2, f2c, True, f64, f64, i64, f64, f64)
    node16 = np.zeros(1, np.int16)
    flags = np.zeros(1, np.bool_)
    call(mark_window, node16, flags, 0, 1, flags, False, 0, flags, 1)
    geo = np.zeros((1, 4), np.int64)
    for col in (i64, ro):  # (an action's pages and nodes are read-only; filtered ones are not)
        call(migrate_rows, col, col, node16, True, 0, i64.copy(), i64.copy(), i64.copy(), 1, 1, 1, i64.copy(), i64, 1)
    ev_f, ev_n = np.zeros((4, 0)), np.zeros((3, 0), np.int64)
    call(add_holds, i64[:0], ev_f, ev_n, i64, i64, 1.0, False, i64)
    call(settle_charges,
        i64, f64, i64[:0], ev_f, ev_n, i64, i64, 1, 1.0, False, np.zeros(4, np.int64), np.zeros(4), np.zeros(4),
        np.zeros(3, np.int64), f64,
    )  # fmt: skip
    call(sweep_rows, i64, i64, np.zeros(1, np.int8), i64, geo, f2, f64, f64, f64, f64, f64, 4096, 0, 1, 1.0)
    # (MigratePages' page, payer and dst columns are read-only, filtered copies are not; the pages that moved and
    # their destinations are the action's own columns, or new arrays)
    for col in (i64, ro):
        for out in (i64, ro):
            call(payments, col, col, out, True, i64, out, 1, 4096.0, 1)
    call(charge_rows, i64, f64, f2, f2, 0.0, f64, f64, f2, f2, i64)
    state = (node16, True, 0, i64.copy(), i64.copy(), i64.copy(), 1, 1, 1, i64.copy(), i64, 1)  # (Migrator.rows_state)
    charge = (f64, f64, f2, f2, i64)  # (FluidProgress.charge_arrays)
    call(migrate_misplaced, np.zeros((10, 1), np.int64), flags, True, state, i64.copy(), 4096.0, 1, 0.0, charge)
    call(fault_rows, i64, i64, f64, i64, np.zeros(1, np.bool_), node16, i64, i64, i64, i64, i64, 1, 0)
    call(fault_after, ro, ro, ro, ro, ro, node16, i64, i64, i64)
    migrate = (flags, True, state, i64.copy(), 4096.0, 1, 0.0, charge)
    holds = (i64[:0], ev_f, ev_n, False, 1.0, True, False, 1, 1.0)
    settle = (1.0, i64, i64, 1, False, np.zeros(4, np.int64), np.zeros(4), np.zeros(4), np.zeros(3, np.int64), f64)
    reach = (cols, i64, np.zeros(0, np.bool_), True, f64, i2, f2c, True, f64, f64, i64, f64, f64)
    fault = (i64, np.zeros(1, np.bool_), node16, i64, i64, i64, i64, i64, 1, 0)
    call(reach_deliver, reach, fault, migrate, holds, (node16, i64, i64, i64), settle)
    call(running_rows, 1, i64, f64, f64, np.zeros(1, np.int8), i64, f64, f64, 1, i64, i64, i64, i64)
    for col in (i64, ro):  # (a migration's pages and their nodes are an action's read-only columns, or new arrays)
        for out in (i64, ro):
            call(partial_gains, col, out, i64, np.zeros((1, 4), np.int64), 4096, 1)
    call(stream_and_copy_rates,
        i64[:0], i64[:0], i64, i64, f64, f2, f2, f64, np.zeros((1, 3)), f64, np.zeros((1, 3)), i64, i64, 1.0, cap,
        np.ones(0), 0.0, False, f64, i64,
    )  # fmt: skip
    kind = np.zeros(1, np.int8)
    call(fire_chain,
        1, 0, 0, (i64[:0], f64[:0], f64[:0]), True, True,
        (0, i64, f64, kind, i64, i64, f64, f64, f64, f64, f64, f64, f64, f2, f2, f2),
        (i64, 0, f2, f64, np.zeros((1, 3)), i64, i64, f64, np.zeros((1, 3))),
        (i64, i64, 1, 1.0, cap, np.ones(0), 0.0, False), np.zeros(4), np.zeros(2),
    )  # fmt: skip
    missing = (not every or not may_compile) and not all(_cached(kernel, args) for kernel, args in calls)
    if missing and not may_compile:
        return False
    if every or missing:
        for kernel, args in calls:
            kernel(*args)
    return True


def _cached(kernel: Any, args: tuple[Any, ...]) -> bool:
    """Whether ``kernel`` is loaded or in numba's cache for the types of ``args``, so that a call loads it and does
    not compile it: the key numba's ``Dispatcher.compile`` looks up (its private ``Cache._index_key``, numba 0.68) in
    the index it reads, which is empty once the source has changed. False where this numba's internals differ."""
    try:
        sig = tuple(kernel.typeof_pyval(a) for a in args)
        if sig in kernel.overloads:
            return True
        cache = kernel._cache
        return cache._index_key(sig, kernel.targetctx.codegen()) in cache._cache_file._load_index()
    except Exception:  # (a numba whose cache is laid out otherwise: load them all now, as before)
        return False
