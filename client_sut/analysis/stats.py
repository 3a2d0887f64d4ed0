"""Two classical tests, exact enough for a warning and free of dependencies (no SciPy).

- `chi_square_uniform`: do counts differ from equal shares more than chance explains?
  Pearson's statistic against the uniform expectation, with k-1 degrees of freedom; its
  p-value from the chi-square survival function in closed form (integer degrees of freedom).
- `mann_whitney`: do two samples come from distributions with the same location? The U
  statistic with the normal approximation, corrected for ties and for continuity. It compares
  ranks, not means, so a few huge outliers (a stalled request) do not decide it alone, and it
  assumes no distribution for latencies, which are skewed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TestResult:
    statistic: float
    p_value: float


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square with `dof` (>= 1) degrees of freedom."""
    if x <= 0:
        return 1.0
    half = x / 2.0
    if dof % 2 == 0:  # Q = e^-h * sum_{i < dof/2} h^i / i!
        term = total = 1.0
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    # Odd: Q = erfc(sqrt(h)) + e^-h * sum_{i=1}^{(dof-1)/2} h^(i-1/2) / Gamma(i+1/2)
    term = math.sqrt(half) / math.gamma(1.5)
    total = 0.0
    for i in range(1, (dof + 1) // 2):
        total += term
        term *= half / (i + 0.5)
    return min(1.0, math.erfc(math.sqrt(half)) + math.exp(-half) * total)


def chi_square_uniform(counts: Sequence[int]) -> TestResult:
    """Pearson's goodness of fit of counts to equal shares (needs 2+ counts, a positive total)."""
    total = sum(counts)
    expected = total / len(counts)
    statistic = sum((c - expected) ** 2 for c in counts) / expected
    return TestResult(statistic, chi_square_sf(statistic, len(counts) - 1))


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) of values, and the tie term sum(t^3 - t) over groups of ties."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2.0 + 1.0
        size = end - start + 1
        ties += size ** 3 - size
        start = end + 1
    return ranks, ties


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U test of a against b (normal approximation; both non-empty).

    The statistic returned is U of `a`; its p-value is two-sided."""
    n1, n2 = len(a), len(b)
    ranks, ties = _ranks([*a, *b])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence of any difference
        return TestResult(u1, 1.0)
    z = (abs(u1 - mean) - 0.5) / math.sqrt(variance)
    return TestResult(u1, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))
