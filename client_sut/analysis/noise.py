"""How far a sweep point's figures would move on a rerun, and whether two sweeps differ beyond
that: pure functions.

A point is one run, so its run-to-run noise is estimated from within it:
- system tokens/s by batch means: the run's span cut into BATCHES equal windows, the output
  tokens of the requests ending in each over its length; the standard error is their standard
  deviation over sqrt(BATCHES) (windows far apart are near independent; requests are not);
- a percentile figure (tokens/s per user = 1000 / TPOT p90, TTFT p90) by the bootstrap:
  RESAMPLES resamplings of the requests with replacement, from a fixed seed so that a report
  reads the same every time; the standard error is the spread of the figure over them.

Two sweeps' figures at the same point differ beyond the noise when the difference exceeds
Z = 1.96 times the standard error of the difference (both errors combined): a 5% chance of
calling noise a change, per figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from client_sut.analysis.metrics import tpot_ns, ttft_ns
from client_sut.records import RequestRecord

BATCHES = 10
RESAMPLES = 200
SEED = 20261202
Z = 1.96
# The figures compared, as sweep.json names them, with their standard errors' keys.
FIGURES = ("system_tokens_per_s", "tokens_per_s_per_user", "ttft_p90_ms")


def _batch_means_se(records: Sequence[RequestRecord]) -> float | None:
    if len(records) < BATCHES:
        return None
    start = min(r.send_ns for r in records)
    span = max(r.end_ns for r in records) - start
    if span <= 0:
        return None
    width = span / BATCHES
    tokens = [0] * BATCHES
    for record in records:
        tokens[min(BATCHES - 1, int((record.end_ns - start) / width))] += record.output_tokens
    rates = np.array(tokens, dtype=float) / (width / 1e9)
    return float(rates.std(ddof=1) / math.sqrt(BATCHES))


def _bootstrap_se(values: Sequence[float], figure) -> float | None:
    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(data), size=(RESAMPLES, len(data)))
    estimates = figure(np.percentile(data[picks], 90, axis=1))
    return float(np.std(estimates, ddof=1))


def standard_errors(records: Sequence[RequestRecord]) -> dict[str, float | None]:
    """Each compared figure's standard error for one point (None: too few requests)."""
    ok = [r for r in records if r.ok]
    tpots = [t / 1e6 for t in map(tpot_ns, ok) if t]
    ttfts = [t / 1e6 for t in map(ttft_ns, ok) if t is not None]
    return {"system_tokens_per_s": _round(_batch_means_se(ok)),
            "tokens_per_s_per_user": _round(_bootstrap_se(tpots, lambda p90: 1000.0 / p90)),
            "ttft_p90_ms": _round(_bootstrap_se(ttfts, lambda p90: p90))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure of one point, a baseline against a candidate."""

    point: str
    figure: str
    baseline: float
    candidate: float
    noise: float | None  # Z x the standard error of the difference; None: not estimated

    @property
    def change(self) -> float | None:
        """The candidate's relative change (0.1: 10% more)."""
        return None if not self.baseline else self.candidate / self.baseline - 1.0

    @property
    def beyond_noise(self) -> bool | None:
        if self.noise is None:
            return None
        return abs(self.candidate - self.baseline) > self.noise


def _figure(point: Mapping, figure: str) -> float | None:
    if figure == "ttft_p90_ms":
        return (point.get("ttft_ms") or {}).get("p90")
    return point.get(figure)


def compare_sweeps(baseline: Sequence[Mapping], candidate: Sequence[Mapping]) -> list[Difference]:
    """The differences at every point both sweeps measured (matched by name), figure by figure."""
    theirs = {p["name"]: p for p in candidate}
    differences = []
    for ours in baseline:
        other = theirs.get(ours["name"])
        if other is None:
            continue
        for figure in FIGURES:
            a, b = _figure(ours, figure), _figure(other, figure)
            if a is None or b is None:
                continue
            errors = [(p.get("standard_errors") or {}).get(figure) for p in (ours, other)]
            noise = None if None in errors else Z * math.hypot(*errors)
            differences.append(Difference(ours["name"], figure, a, b, noise))
    return differences
