"""The statistics of a p99 verdict, as LoadGen's early stopping states them. Pure functions.

LoadGen calls a Server run's TTFT (or TPOT) good when, with `k` of `n` queries over the limit,
the chance of seeing at most `k` such queries from a system whose true rate over the limit is
1% is below 1% (99% confidence). With no query over the limit that takes 459 queries. The mirror
image proves a run bad: seeing at least `k` over the limit is below 1% likely when the true
rate is 1%. Between the two, the queries seen so far do not decide.
"""

from __future__ import annotations

import math

PERCENTILE = 0.99  # mlperf.conf: target_latency_percentile 99 for Server
CONFIDENCE = 0.99  # LoadGen's early stopping (results.cc)
OVER_RATE = 1.0 - PERCENTILE


def _log_pmf(k: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(math.exp(_log_pmf(i, n, p)) for i in range(k + 1)))


def early_stopping_met(queries: int, over: int) -> bool:
    """LoadGen's test: `over` of `queries` over the limit still proves the p99 within it."""
    return queries > 0 and binomial_cdf(over, queries, OVER_RATE) < 1.0 - CONFIDENCE


def proven_over(queries: int, over: int) -> bool:
    """`over` of `queries` over the limit proves the true p99 above it, at the same confidence."""
    return over > 0 and 1.0 - binomial_cdf(over - 1, queries, OVER_RATE) < 1.0 - CONFIDENCE


def queries_to_pass(over_share: float, limit: int = 10_000_000) -> int | None:
    """The fewest queries that can pass early stopping at this share of queries over the limit
    (None when the share is 1% or more: no number of queries can)."""
    if over_share >= OVER_RATE:
        return None
    low, high = 1, 1
    while not early_stopping_met(high, math.floor(over_share * high)):
        if high >= limit:
            return None
        low, high = high, high * 2
    while low < high:  # the first count that passes; nearly monotone, fine for sizing
        middle = (low + high) // 2
        if early_stopping_met(middle, math.floor(over_share * middle)):
            high = middle
        else:
            low = middle + 1
    return high


def p99_allowance(queries: int) -> int:
    """How many of `queries` over a limit put LoadGen's p99 over it: LoadGen's p99 is the sorted
    value at index floor(0.99 n), not an interpolation."""
    return queries - int(queries * PERCENTILE)


MIN_QUERIES_TO_PASS = queries_to_pass(0.0)  # 459


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b): P(Binomial(a + b - 1, 1 - x) <= b - 1) for whole a and b. In O(sqrt)
    steps, where summing the binomial terms takes O(b): Endpoints computes it so too."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                     + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def min_passing(over: int, percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest queries within a bound that, beside `over` queries above it, certify the bound
    at this percentile (a fraction): the least h with P(Binomial(h + over, 1 - percentile) <=
    over) < 1 - confidence. LoadGen's FindMinPassing, as MLPerf Endpoints ports it."""
    def passes(h: int) -> bool:
        return h > 0 and regularized_beta(h, over + 1, percentile) < 1.0 - confidence

    low, high = 0, 1
    while not passes(high):
        low, high = high, high * 2
    while low + 1 < high:
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle
    return high


def early_stopping_estimate(sorted_values: list[float], percentile: float,
                            confidence: float = CONFIDENCE) -> float | None:
    """An upper bound on the percentile at this confidence, as LoadGen's early stopping states
    it and MLPerf Endpoints writes it (`early_stopping_percentiles`): the t-th highest value, t
    the most queries that may lie above it (t >= 1 with min_passing(t) + t within the count).
    None below the count that certifies t = 1 (662 queries at p99, 64 at p90)."""
    n = len(sorted_values)
    if n < min_passing(1, percentile, confidence) + 1:
        return None
    low, high = 1, n  # the largest t with min_passing(t) + t <= n (it grows with t)
    while low < high:
        middle = (low + high + 1) // 2
        if min_passing(middle, percentile, confidence) + middle <= n:
            low = middle
        else:
            high = middle - 1
    return sorted_values[n - low]
