"""Utilisation generators for real-time task sets: UUniFast, UUniFast-Discard and RandFixedSum.

* **UUniFast** (Bini & Buttazzo, "Measuring the performance of schedulability tests", RTS 30:129–154,
  2005): ``n`` utilisations uniformly distributed over the simplex summing to ``U``.
* **UUniFast-Discard** (Davis & Burns 2009): UUniFast, redrawn until every utilisation is at most 1
  (needed for multiprocessor sets with ``U > 1``).
* **RandFixedSum** (Stafford 2006; Emberson, Stafford & Davis, WATERS 2010): uniform over the part of the
  simplex inside ``[a, b]^n``, without rejection — the generator SimSo ships as ``gen_randfixedsum``.

Periods are drawn log-uniformly (Emberson et al.) and rounded to ``granularity_ns``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from memsched.errors import ConfigError

__all__ = ["log_uniform_periods", "randfixedsum", "uunifast", "uunifast_discard"]


def uunifast(n: int, total: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    if n < 1 or total <= 0:
        raise ConfigError("uunifast", (n, total), "needs n >= 1 tasks and a total utilisation > 0")
    out = np.empty(n)
    remaining = total
    for i in range(1, n):
        nxt = remaining * rng.random() ** (1.0 / (n - i))
        out[i - 1] = remaining - nxt
        remaining = nxt
    out[n - 1] = remaining
    return out


def uunifast_discard(
    n: int, total: float, rng: np.random.Generator, *, limit: float = 1.0, tries: int = 10_000
) -> npt.NDArray[np.float64]:
    if total > n * limit:
        raise ConfigError("utilisation", total, f"must be <= n * {limit} = {n * limit} for {n} tasks")
    for _ in range(tries):
        u = uunifast(n, total, rng)
        if u.max() <= limit:
            return u
    raise ConfigError(
        "utilisation", total, f"could not be split into {n} tasks of at most {limit} each in {tries} tries"
    )


def randfixedsum(
    n: int, total: float, rng: np.random.Generator, *, a: float = 0.0, b: float = 1.0
) -> npt.NDArray[np.float64]:
    """One vector of ``n`` values in ``[a, b]`` summing to ``total``, uniform over that polytope."""
    if n < 1 or not n * a <= total <= n * b or b <= a:
        raise ConfigError("randfixedsum", (n, total, a, b), "needs n*a <= total <= n*b and a < b")
    if n == 1:
        return np.array([float(total)])
    s = (total - n * a) / (b - a)
    k = max(min(math.floor(s), n - 1), 0)
    s = max(min(s, k + 1), k)
    s1 = s - np.arange(k, k - n, -1, dtype=np.float64)
    s2 = np.arange(k + n, k, -1, dtype=np.float64) - s
    w = np.zeros((n, n + 1))
    w[0, 1] = np.finfo(np.float64).max
    t = np.zeros((n - 1, n))
    tiny = np.finfo(np.float64).tiny
    for i in range(2, n + 1):
        tmp1 = w[i - 2, 1 : i + 1] * s1[0:i] / i
        tmp2 = w[i - 2, 0:i] * s2[n - i : n] / i
        w[i - 1, 1 : i + 1] = tmp1 + tmp2
        tmp3 = w[i - 1, 1 : i + 1] + tiny
        tmp4 = s2[n - i : n] > s1[0:i]
        t[i - 2, 0:i] = (tmp2 / tmp3) * tmp4 + (1 - tmp1 / tmp3) * (~tmp4)
    x = np.zeros(n)
    rt = rng.random(n - 1)
    rs = rng.random(n - 1)
    j = k + 1
    sm = 0.0
    pr = 1.0
    for i in range(n - 1, 0, -1):
        e = 1 if rt[n - i - 1] <= t[i - 1, j - 1] else 0
        sx = rs[n - i - 1] ** (1.0 / i)
        sm = sm + (1.0 - sx) * pr * s / (i + 1)
        pr = sx * pr
        x[n - i - 1] = sm + pr * e
        s = s - e
        j = j - e
    x[n - 1] = sm + pr * s
    x = x[rng.permutation(n)]
    return (b - a) * x + a


def log_uniform_periods(
    n: int, lo_ns: int, hi_ns: int, rng: np.random.Generator, *, granularity_ns: int = 1_000_000
) -> list[int]:
    if not 0 < lo_ns <= hi_ns:
        raise ConfigError("period", (lo_ns, hi_ns), "must satisfy 0 < min <= max")
    raw = np.exp(rng.uniform(math.log(lo_ns), math.log(hi_ns + granularity_ns), size=n))
    return [max(granularity_ns, int(p // granularity_ns) * granularity_ns) for p in raw]
