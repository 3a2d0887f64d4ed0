"""What a sweep runs: its points, each point's size, and what makes it non-compliant. Pure.

A concurrency point is LoadGen's Offline issue with the client holding exactly C requests in
flight; a rate point is a Server run at a fixed QPS; the Offline point issues everything at
once. Every point is a whole number of passes over the dataset (Endpoints: the issued count is a
multiple of the dataset size) and lasts at least its duration: the official floor by default
(600 s in Ultra-Low, 1,200 s elsewhere), else `--point-duration`, noted as not compliant.

An Offline run's size must be set before it starts, so each concurrency point's rate is
predicted from what is known, as an upper bound (a bound too low would end the point before its
duration): Little's law with the latency of the last point below it (latency only grows with
concurrency), and at most the Offline pilot's throughput, both with a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from client_sut.analysis.curve import (
    MAX_POINTS,
    MIN_POINTS,
    littles_law_rate,
    min_duration_s,
    plan_concurrencies,
    regions,
)
from client_sut.config import LatencyLimits
from client_sut.errors import UsageError
from client_sut.security import Credentials

CONCURRENCY, RATE, OFFLINE = "concurrency", "rate", "offline"
# A Server run at the rate the measured curve predicts for the official Server limits: what a
# concurrency sweep adds for --emit endpoints-v61 (whose layout needs a Server scenario).
SERVER = "server"
EMIT_V61, EMIT_V1 = "endpoints-v61", "endpoints-v1"
EMITS = (EMIT_V61, EMIT_V1)
RATE_MARGIN = 1.5  # a predicted rate is raised by this much: a point too long costs only time
OFFLINE_SCALE = 1.1  # LoadGen's Offline sizes its query at 1.1 x the expected QPS x duration
PILOT_LATENCY_QUERIES = 4  # the pilot at concurrency 1: its mean latency bounds every point's


@dataclass(frozen=True, slots=True)
class Point:
    kind: str  # CONCURRENCY, RATE or OFFLINE
    value: float | None = None  # the concurrency, the rate in QPS; None for Offline

    @property
    def name(self) -> str:
        if self.kind == CONCURRENCY:
            return f"c{int(self.value):04d}"
        if self.kind == RATE:
            return f"r{self.value:g}qps"
        return self.kind  # "offline", "server"

    @property
    def concurrency(self) -> int | None:
        return int(self.value) if self.kind == CONCURRENCY else None


@dataclass(frozen=True, slots=True)
class SweepPlan:
    points: tuple[Point, ...]
    output_dir: Path
    run_args: tuple[str, ...]  # the deployment flags, passed to every run
    dataset_samples: int  # one pass over the dataset
    limits: LatencyLimits  # goodput counts the requests within them
    point_duration_s: float | None = None  # None: each point's official floor
    emit: tuple[str, ...] = ()  # EMITS: the result layouts written at the end
    system_file: Path | None = None  # the system's description, for the layouts
    checker: Path | None = None  # a checkout of mlcommons/inference, to check endpoints-v61
    division: str = "closed"
    endpoints: tuple[str, ...] = ()
    credentials: Credentials = field(default_factory=Credentials)

    def duration_s(self, point: Point) -> float:
        return self.point_duration_s or min_duration_s(point.concurrency)


def plan_points(concurrency: list[int] | None, max_concurrency: int,
                rates: list[float] | None, emit: tuple[str, ...] = ()) -> tuple[Point, ...]:
    """The points in the order they run (rising load): `concurrency` as listed, else the
    Endpoints plan up to `max_concurrency`, each with an Offline point last; or `rates`.
    The v6.1 layout needs Offline and Server: a rate sweep then ends with an Offline point, a
    concurrency sweep with a Server point at the rate its curve predicts."""
    if concurrency and rates:
        raise UsageError("give --concurrency or --rates, not both: a curve is at fixed "
                         "concurrency or at fixed rates")
    unknown = [name for name in emit if name not in EMITS]
    if unknown:
        raise UsageError(f"--emit {unknown[0]}: choose among {', '.join(EMITS)}")
    if rates:
        if any(not rate > 0 for rate in rates):
            raise UsageError(f"--rates must all be above 0, got {rates}")
        if EMIT_V1 in emit:
            raise UsageError("--emit endpoints-v1 holds points at fixed concurrency: drop "
                             "--rates")
        offline = (Point(OFFLINE),) if EMIT_V61 in emit else ()
        return (*(Point(RATE, rate) for rate in sorted(set(rates))), *offline)
    if concurrency:
        if any(c < 1 for c in concurrency):
            raise UsageError(f"--concurrency values must be 1 or more, got {concurrency}")
        levels = tuple(sorted(set(concurrency)))
    else:
        if max_concurrency < 1:
            raise UsageError(f"--max-concurrency must be 1 or more, got {max_concurrency}")
        levels = plan_concurrencies(max_concurrency)
    if len(levels) + 1 > MAX_POINTS:
        raise UsageError(f"{len(levels)} concurrency points and Offline are more than the "
                         f"{MAX_POINTS} points an Endpoints curve may have")
    server = (Point(SERVER),) if EMIT_V61 in emit else ()
    return (*(Point(CONCURRENCY, c) for c in levels), Point(OFFLINE), *server)


def point_size(rate_qps: float, duration_s: float, dataset_samples: int,
               min_queries: int = 1) -> tuple[int, int]:
    """Whole passes over the dataset that last at least duration_s at rate_qps and hold at
    least min_queries: (passes, queries)."""
    passes = max(1, math.ceil(rate_qps * duration_s / dataset_samples),
                 math.ceil(min_queries / dataset_samples))
    return passes, passes * dataset_samples


def predicted_rate(point: Point, offline_qps: float,
                   latency_below: tuple[int, float] | None) -> float:
    """An upper bound on the queries/s a point will serve, with a margin: a concurrency point
    at most what C requests at the latency measured below it sustain (Little's law), and at
    most the Offline pilot's rate; the Offline point that rate."""
    bound = offline_qps
    if point.kind == CONCURRENCY and latency_below is not None:
        by_law = littles_law_rate(point.concurrency, latency_below[1])
        if by_law is not None:
            bound = min(bound, by_law)
    return bound * RATE_MARGIN


def point_args(point: Point, rate_qps: float, queries: int, duration_s: float,
               endpoints: int) -> list[str]:
    """The `client-sut run` flags of one point (after the deployment's own); rate_qps is a
    Server point's rate. A concurrency C is the deployment's: with several endpoints each
    holds its share (rounded up)."""
    common = ["--duration", f"{duration_s:g}", "--min-query-count", str(queries),
              "--no-report"]
    if point.kind in (RATE, SERVER):
        return ["--scenario", "Server", "--target-qps", f"{rate_qps:g}", *common]
    # LoadGen's Offline query holds max(min_query_count, 1.1 x expected QPS x duration)
    # samples, rounded up to whole passes: told this rate, exactly the passes planned.
    rate = queries / (OFFLINE_SCALE * duration_s)
    args = ["--scenario", "Offline", "--target-qps", f"{rate:.6g}", *common]
    if point.kind == CONCURRENCY:
        args += ["--max-concurrency", str(math.ceil(point.concurrency / max(1, endpoints)))]
    return args


def compliance_notes(plan: SweepPlan) -> list[str]:
    """What keeps the sweep from being an MLPerf Endpoints curve."""
    notes = []
    if plan.point_duration_s is not None:
        short = [p.name for p in plan.points if plan.point_duration_s < min_duration_s(
            p.concurrency)]
        if short:
            notes.append(f"--point-duration {plan.point_duration_s:g} s is under the official "
                         f"floor (600 s in Ultra-Low, 1,200 s elsewhere) for "
                         f"{', '.join(short)}")
    kinds = {p.kind for p in plan.points}
    if RATE in kinds:
        notes.append("points at fixed rates (Server, Poisson arrivals): an Endpoints curve is "
                     "at fixed concurrency")
    levels = [p.concurrency for p in plan.points if p.kind == CONCURRENCY]
    curve = [p for p in plan.points if p.kind != SERVER]
    if levels and len(curve) < MIN_POINTS:
        notes.append(f"{len(curve)} points: an Endpoints curve has at least {MIN_POINTS} "
                     f"(one in Ultra-Low, one each in Low, Medium and High, three more and "
                     f"Offline)")
    if levels and regions(max(levels)) is None:
        notes.append(f"the highest concurrency {max(levels)} leaves no Low, Medium or High "
                     f"region (they lie above 32)")
    return notes
