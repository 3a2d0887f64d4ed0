"""The curve's rules (Endpoints regions, Pareto front, step function) and the sweep's plan."""

from pathlib import Path

import pytest

from client_sut.analysis.curve import (
    CurvePoint,
    min_duration_s,
    pareto_front,
    plan_concurrencies,
    regions,
    step_function,
    tokens_per_s_per_user,
)
from client_sut.config import LatencyLimits
from client_sut.errors import UsageError
from client_sut.sweep.plan import (
    CONCURRENCY,
    OFFLINE,
    RATE,
    RATE_MARGIN,
    Point,
    SweepPlan,
    compliance_notes,
    plan_points,
    point_args,
    point_size,
    predicted_rate,
)


def test_regions_follow_the_endpoints_formula():
    # I = log2(64 - 32) / 3 = 5/3: Low ends at round(32 + 2^I) = 35, Medium at 32 + 2^2I = 42.
    found = regions(64)
    assert (found.low_end, found.medium_end) == (35, 42)
    assert [found.of(c) for c in (1, 32, 33, 35, 36, 42, 43, 64)] == [
        "ultra_low", "ultra_low", "low", "low", "medium", "medium", "high", "high"]
    assert regions(1024).low_end == 42 and regions(1024).medium_end == 131
    assert regions(33) is None  # no room above Ultra-Low


def test_the_planned_points_cover_every_region_and_small_deployments_get_a_ladder():
    assert plan_concurrencies(64) == (1, 34, 35, 39, 42, 53, 64)
    assert plan_concurrencies(256) == (1, 35, 38, 54, 69, 163, 256)
    assert plan_concurrencies(8) == (1, 2, 4, 8) and plan_concurrencies(6) == (1, 2, 4, 6)
    found = regions(256)
    assert {found.of(c) for c in plan_concurrencies(256)} == {"ultra_low", "low", "medium",
                                                              "high"}
    assert (min_duration_s(32), min_duration_s(33), min_duration_s(None)) == (600, 1200, 1200)


def test_the_front_keeps_the_points_no_other_point_beats_on_both_axes():
    points = [CurvePoint("c1", 100.0, 50.0), CurvePoint("c4", 350.0, 40.0),
              CurvePoint("c8", 300.0, 30.0),  # beaten by c4 on both
              CurvePoint("c16", 600.0, 20.0), CurvePoint("twin", 600.0, 20.0),  # ties stay
              CurvePoint("one-token", 900.0, None)]  # no TPOT: not on the curve
    assert pareto_front(points) == ["c16", "twin", "c4", "c1"]
    assert tokens_per_s_per_user(25.0) == 40.0 and tokens_per_s_per_user(None) is None


def test_the_official_curve_is_a_step_function_through_the_front():
    front = [CurvePoint("a", 600.0, 20.0), CurvePoint("b", 350.0, 40.0),
             CurvePoint("c", 100.0, 50.0)]
    assert step_function(front) == [(20.0, 600.0), (20.0, 350.0), (40.0, 350.0),
                                    (40.0, 100.0), (50.0, 100.0)]


def test_each_point_is_whole_passes_over_the_dataset_lasting_its_duration():
    assert point_size(10.0, 5.0, 24) == (3, 72)  # 50 queries at least: three passes of 24
    assert point_size(0.01, 5.0, 24) == (1, 24)  # never less than one pass
    # A concurrency point's rate is bounded by Little's law below it and by the Offline pilot.
    assert predicted_rate(Point(CONCURRENCY, 8), 100.0, (4, 0.5)) == 16.0 * RATE_MARGIN
    assert predicted_rate(Point(CONCURRENCY, 64), 100.0, (4, 0.5)) == 100.0 * RATE_MARGIN
    assert predicted_rate(Point(OFFLINE), 100.0, (4, 0.5)) == 100.0 * RATE_MARGIN


def test_a_points_run_flags():
    args = point_args(Point(CONCURRENCY, 5), 72, 6.0, endpoints=2)
    # LoadGen sizes an Offline query at 1.1 x QPS x duration: 72 queries over 6 s
    assert args[:4] == ["--scenario", "Offline", "--target-qps", f"{72 / 6.6:.6g}"]
    assert args[args.index("--max-concurrency") + 1] == "3"  # each endpoint holds its share
    assert args[args.index("--min-query-count") + 1] == "72"
    rate = point_args(Point(RATE, 2.5), 48, 10.0, endpoints=1)
    assert rate[:4] == ["--scenario", "Server", "--target-qps", "2.5"]
    assert "--max-concurrency" not in point_args(Point(OFFLINE), 48, 10.0, endpoints=1)


def test_the_points_asked_for_and_what_is_refused():
    assert [p.name for p in plan_points([8, 1, 4, 4], 512, None)] == [
        "c0001", "c0004", "c0008", "offline"]
    assert [p.name for p in plan_points(None, 8, None)] == [
        "c0001", "c0002", "c0004", "c0008", "offline"]
    assert [p.name for p in plan_points(None, 512, [4.0, 2.5])] == ["r2.5qps", "r4qps"]
    for concurrency, rates in (([1], [2.0]), ([0], None), (None, [0.0]),
                               (list(range(1, 40)), None)):
        with pytest.raises(UsageError):
            plan_points(concurrency, 512, rates)


def test_what_keeps_a_sweep_from_being_an_endpoints_curve():
    plan = SweepPlan(points=plan_points(None, 8, None), output_dir=Path("x"), run_args=(),
                     dataset_samples=24, limits=LatencyLimits(2000.0, 100.0),
                     point_duration_s=5.0)
    notes = " | ".join(compliance_notes(plan))
    assert "--point-duration 5 s is under the official floor" in notes
    assert "5 points: an Endpoints curve has at least 8" in notes
    assert "the highest concurrency 8 leaves no Low, Medium or High region" in notes
    full = SweepPlan(points=plan_points(None, 64, None), output_dir=Path("x"), run_args=(),
                     dataset_samples=13368, limits=LatencyLimits(2000.0, 100.0))
    assert compliance_notes(full) == [] and full.duration_s(Point(CONCURRENCY, 1)) == 600
    assert full.duration_s(Point(OFFLINE)) == 1200
