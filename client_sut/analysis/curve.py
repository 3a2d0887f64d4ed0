"""The throughput-interactivity curve as MLPerf Endpoints defines it: pure functions.

Each point of a sweep is one run at a fixed concurrency (or a fixed Server rate). Its figures,
by the Endpoints rules (endpoints_policies v1.0 §4.1, docs/sweep.md):
- system tokens/s: the output tokens of the run over its measured duration;
- tokens/s per user: 1000 / TPOT p90 (ms). Other tools call other things by this name (vLLM's
  sweep divides throughput by concurrency; AIPerf averages per request), so the mean over
  requests of 1000 / TPOT is kept beside it, labelled as such;
- TTFT p90 is the TTFT the curve plots; p50 and p99 are kept too.

The official Pareto front is the step function over the non-dominated points (no point has both
more system tokens/s and more tokens/s per user, with one of them strictly more), in order of
tokens/s per user.

Concurrency regions (§5.5): Ultra-Low is concurrency 1 to 32; above it, with C_min = 32 and
I = log2(C_max - C_min) / 3, Low ends at round(C_min + 2^I), Medium at round(C_min + 2^(2I)),
High at C_max (Python's round is the banker's rounding the rules use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from client_sut.analysis.metrics import (
    goodput,
    run_span_ns,
    summarize_ms,
    tpot_ns,
    ttft_ns,
)
from client_sut.analysis.noise import standard_errors
from client_sut.records import RequestRecord

ULTRA_LOW_MAX = 32  # Ultra-Low: concurrency 1 to 32; C_min of the other regions
MIN_POINTS, MAX_POINTS = 8, 32  # an Endpoints curve: 1 + 3 + 3 concurrency points and Offline
# Steady-state duration per point (§6.2).
ULTRA_LOW_MIN_S, OTHER_MIN_S = 600.0, 1200.0

DEFINITIONS = {
    "system_tokens_per_s": "output tokens of the run / its measured duration (Endpoints "
                           "system_tps)",
    "tokens_per_s_per_user": "1000 / TPOT p90 in ms (Endpoints tps_per_user)",
    "tokens_per_s_per_user_mean": "mean over requests of 1000 / TPOT (not the Endpoints figure)",
    "ttft_ms": "time to first token, client-side, linear-interpolated percentiles",
    "tpot_ms": "(last token - first token) / (tokens - 1) per request",
    "requests_per_s": "requests that did not fail / the measured duration (at a concurrency "
                      "C, Little's law: C / mean latency)",
    "goodput_requests_per_s": "requests per second that met both TTFT and TPOT limits, both "
                              "from the send (a request waiting for its slot is not yet "
                              "sent)",
    "standard_errors": "how far system tokens/s (batch means over 10 windows), tokens/s per "
                       "user and TTFT p90 (bootstrap, 200 resamples) would move on a rerun; two "
                       "sweeps differ beyond the noise past 1.96 x their combined error",
    "pareto": "non-dominated in (tokens_per_s_per_user, system_tokens_per_s): no other point "
              "has both at least as high and one higher; the official front is the step "
              "function through them",
}


@dataclass(frozen=True, slots=True)
class Regions:
    """Where Low and Medium end for a curve whose highest concurrency is c_max."""

    c_max: int
    low_end: int
    medium_end: int

    def of(self, concurrency: int) -> str:
        if concurrency <= ULTRA_LOW_MAX:
            return "ultra_low"
        if concurrency <= self.low_end:
            return "low"
        if concurrency <= self.medium_end:
            return "medium"
        return "high"


def regions(c_max: int) -> Regions | None:
    """The regions by the Endpoints formula; None where c_max leaves no room above Ultra-Low."""
    if c_max <= ULTRA_LOW_MAX + 1:
        return None
    step = math.log2(c_max - ULTRA_LOW_MAX) / 3
    return Regions(c_max, round(ULTRA_LOW_MAX + 2 ** step),
                   round(ULTRA_LOW_MAX + 2 ** (2 * step)))


def min_duration_s(concurrency: int | None) -> float:
    """The official floor of a point's duration: 600 s in Ultra-Low, 1,200 s elsewhere
    (Offline, with no concurrency, included)."""
    return ULTRA_LOW_MIN_S if concurrency is not None and concurrency <= ULTRA_LOW_MAX \
        else OTHER_MIN_S


def plan_concurrencies(c_max: int) -> tuple[int, ...]:
    """Concurrency points up to c_max, in order. Above Ultra-Low: one Ultra-Low point (1), and
    in each of Low, Medium and High its end and its middle (the 3 required and 3 of the
    submitter's choice), so with Offline a curve of 8. With c_max in Ultra-Low (a small
    deployment, not an Endpoints curve): powers of two up to c_max, c_max included."""
    if c_max < 1:
        raise ValueError(f"the highest concurrency must be at least 1, got {c_max}")
    found = regions(c_max)
    if found is None:
        ladder = {2 ** k for k in range(c_max.bit_length()) if 2 ** k <= c_max} | {c_max}
        return tuple(sorted(ladder))
    ends = (ULTRA_LOW_MAX, found.low_end, found.medium_end, c_max)
    points = {1}
    for start, end in zip(ends, ends[1:]):
        points |= {(start + end + 1) // 2, end}
    return tuple(sorted(p for p in points if p >= 1))


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One measured point: what the curve needs of it."""

    name: str
    system_tokens_per_s: float
    tokens_per_s_per_user: float | None  # None where TPOT p90 is unknown (one-token answers)


def tokens_per_s_per_user(tpot_p90_ms: float | None) -> float | None:
    return 1000.0 / tpot_p90_ms if tpot_p90_ms else None


def pareto_front(points: Sequence[CurvePoint]) -> list[str]:
    """The names of the non-dominated points, by tokens/s per user (then system tokens/s)."""
    placed = [p for p in points if p.tokens_per_s_per_user is not None]

    def dominated(p: CurvePoint) -> bool:
        return any(q.tokens_per_s_per_user >= p.tokens_per_s_per_user
                   and q.system_tokens_per_s >= p.system_tokens_per_s
                   and (q.tokens_per_s_per_user > p.tokens_per_s_per_user
                        or q.system_tokens_per_s > p.system_tokens_per_s) for q in placed)

    front = [p for p in placed if not dominated(p)]
    front.sort(key=lambda p: (p.tokens_per_s_per_user, p.system_tokens_per_s))
    return [p.name for p in front]


def step_function(front: Sequence[CurvePoint]) -> list[tuple[float, float]]:
    """The official curve's corners through the front's points (sorted by tokens/s per user):
    it holds each point's system tokens/s up to that point's tokens/s per user, then steps
    down to the next point's, with nothing interpolated."""
    corners: list[tuple[float, float]] = []
    for point, after in zip(front, [*front[1:], None]):
        corners.append((point.tokens_per_s_per_user, point.system_tokens_per_s))
        if after is not None:
            corners.append((point.tokens_per_s_per_user, after.system_tokens_per_s))
    return corners


def littles_law_rate(concurrency: int, mean_latency_s: float) -> float | None:
    """Requests per second a closed loop of `concurrency` requests sustains (L = lambda W)."""
    return concurrency / mean_latency_s if mean_latency_s > 0 else None


def point_figures(records: Sequence[RequestRecord], ttft_limit_ms: float,
                  tpot_limit_ms: float) -> dict:
    """One point's figures from its requests (sweep.json's contract; DEFINITIONS names each)."""
    ok = [r for r in records if r.ok]
    span_s = run_span_ns(records) / 1e9
    output_tokens = sum(r.output_tokens for r in ok)
    tpots = [t for t in map(tpot_ns, ok) if t]
    ttft = summarize_ms(t for t in map(ttft_ns, ok) if t is not None)
    tpot = summarize_ms(tpots)
    keep = ("p50", "p90", "p99")
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "output_tokens": output_tokens,
        "duration_s": round(span_s, 3),
        "requests_per_s": round(len(ok) / span_s, 3) if span_s else None,
        "system_tokens_per_s": round(output_tokens / span_s, 3) if span_s else None,
        "tokens_per_s_per_user": _rounded(tokens_per_s_per_user(tpot["p90"])),
        "tokens_per_s_per_user_mean": round(sum(1e9 / t for t in tpots) / len(tpots), 3)
        if tpots else None,
        "ttft_ms": {k: ttft[k] for k in keep},
        "tpot_ms": {k: tpot[k] for k in keep},
        "goodput": goodput(records, ttft_limit_ms, tpot_limit_ms, from_send=True),
        "standard_errors": standard_errors(records),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """A measured point as the Server edge is predicted from it."""

    requests_per_s: float
    ttft_p99_ms: float
    tpot_p99_ms: float | None


def predicted_server_rate(points: Sequence[LoadPoint], ttft_limit_ms: float,
                          tpot_limit_ms: float) -> float | None:
    """Where the curve puts the Server edge: between the fastest point whose p99s are within
    the limits and the slowest point above it that is over them, the rate where the worse of
    the two p99s, as a share of its limit, reaches 1 (linear in the rate); with no point over,
    the fastest within. None when no point is within the limits. A closed loop at fixed
    concurrency meets no Poisson bursts, so a Server run's edge lies at or below this: it is
    where a search starts, not its answer."""
    def load(p: LoadPoint) -> float:
        return max(p.ttft_p99_ms / ttft_limit_ms, (p.tpot_p99_ms or 0.0) / tpot_limit_ms)

    ordered = sorted(points, key=lambda p: p.requests_per_s)
    within = [p for p in ordered if load(p) <= 1.0]
    if not within:
        return None
    best = within[-1]
    over = next((p for p in ordered if p.requests_per_s > best.requests_per_s
                 and load(p) > 1.0), None)
    if over is None or load(over) == load(best):
        return best.requests_per_s
    share = (1.0 - load(best)) / (load(over) - load(best))
    return best.requests_per_s + share * (over.requests_per_s - best.requests_per_s)


def round_rate(qps: float) -> float:
    """Four significant digits: rates that read well and name folders cleanly."""
    return float(f"{qps:.4g}")
