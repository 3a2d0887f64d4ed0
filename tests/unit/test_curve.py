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
    EMIT_V1,
    EMIT_V61,
    OFFLINE,
    RATE,
    RATE_MARGIN,
    SERVER,
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
    args = point_args(Point(CONCURRENCY, 5), 40.0, 72, 6.0, endpoints=2)
    # LoadGen sizes an Offline query at 1.1 x QPS x duration: 72 queries over 6 s
    assert args[:4] == ["--scenario", "Offline", "--target-qps", f"{72 / 6.6:.6g}"]
    assert args[args.index("--max-concurrency") + 1] == "3"  # each endpoint holds its share
    assert args[args.index("--min-query-count") + 1] == "72"
    rate = point_args(Point(RATE, 2.5), 2.5, 48, 10.0, endpoints=1)
    assert rate[:4] == ["--scenario", "Server", "--target-qps", "2.5"]
    server = point_args(Point(SERVER), 3.25, 48, 10.0, endpoints=1)  # at the curve's rate
    assert server[:4] == ["--scenario", "Server", "--target-qps", "3.25"]
    assert "--max-concurrency" not in point_args(Point(OFFLINE), 9.0, 48, 10.0, endpoints=1)
    # A point's size: whole passes over the dataset, enough for its duration and its floor.
    assert point_size(2.0, 10.0, 24) == (1, 24)
    assert point_size(2.0, 10.0, 24, min_queries=662) == (28, 672)


def test_the_points_asked_for_and_what_is_refused():
    assert [p.name for p in plan_points([8, 1, 4, 4], 512, None)] == [
        "c0001", "c0004", "c0008", "offline"]
    assert [p.name for p in plan_points(None, 8, None)] == [
        "c0001", "c0002", "c0004", "c0008", "offline"]
    assert [p.name for p in plan_points(None, 512, [4.0, 2.5])] == ["r2.5qps", "r4qps"]
    # The v6.1 layout needs Offline and Server: each sweep adds the one it lacks.
    assert [p.name for p in plan_points([1, 4], 512, None, (EMIT_V61,))] == [
        "c0001", "c0004", "offline", "server"]
    assert [p.name for p in plan_points(None, 512, [2.5], (EMIT_V61,))] == ["r2.5qps", "offline"]
    for concurrency, rates, emit in (([1], [2.0], ()), ([0], None, ()), (None, [0.0], ()),
                                     (list(range(1, 40)), None, ()), ([1], None, ("v2",)),
                                     (None, [2.0], (EMIT_V1,))):
        with pytest.raises(UsageError):
            plan_points(concurrency, 512, rates, emit)


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


def test_the_curve_predicts_where_the_server_edge_lies():
    from client_sut.analysis.curve import LoadPoint, predicted_server_rate

    points = [LoadPoint(5.0, 100.0, 20.0), LoadPoint(10.0, 1000.0, 40.0),
              LoadPoint(20.0, 3000.0, 60.0)]  # TTFT p99 over 2,000 ms here
    # The worse p99 as a share of its limit: 0.5 at 10/s, 1.5 at 20/s; it reaches 1 at 15/s.
    assert predicted_server_rate(points, 2000.0, 100.0) == 15.0
    assert predicted_server_rate(points[:2], 2000.0, 100.0) == 10.0  # none over: the fastest
    assert predicted_server_rate(points[2:], 2000.0, 100.0) is None  # none within
    # TPOT binds first under a tighter limit: 20/32 at 5/s, 40/32 at 10/s -> 1 at 8/s.
    assert predicted_server_rate(points, 2000.0, 32.0) == 8.0


def test_early_stopping_estimates_are_loadgens_as_mlperf_endpoints_writes_them():
    from client_sut.analysis.early_stopping import early_stopping_estimate, min_passing

    # The counts below which no estimate is made: 662 at p99, 64 at p90 (Endpoints' floors).
    assert (min_passing(1, 0.99) + 1, min_passing(1, 0.90) + 1) == (662, 64)
    assert min_passing(0, 0.99) == 459  # LoadGen's "no query over" count
    assert early_stopping_estimate(list(range(661)), 0.99) is None
    assert early_stopping_estimate(list(range(662)), 0.99) == 661  # t = 1: the maximum
    # Endpoints' own function on 0..n-1: n=10,000 gives sorted[9923]; 13,368 gives [13261] at
    # p99 and [12112] at p90.
    assert early_stopping_estimate(list(range(10_000)), 0.99) == 9923
    assert early_stopping_estimate(list(range(13_368)), 0.99) == 13261
    assert early_stopping_estimate(list(range(13_368)), 0.90) == 12112


def test_a_runs_result_summary_as_mlperf_endpoints_writes_it():
    from array import array

    from client_sut.analysis.endpoints_summary import result_summary, stat_block
    from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource

    def record(start: int, failed: bool = False) -> RequestRecord:
        # sent at start, first chunk of 2 tokens at +100, 3 more tokens, done at +400
        return RequestRecord(
            sample_index=0, endpoint="http://e", issue_ns=start, send_ns=start,
            first_byte_ns=start + 50, end_ns=start + 400,
            event_ns=array("q", [start + 100, start + 200, start + 400]),
            event_tokens=array("i", [2, 1, 2]), token_ids=array("i", range(5)),
            token_id_source=TokenIdSource.SERVER, server_completion_tokens=5,
            finish_reason="length", http_status=200,
            error=RequestError(ErrorKind.DISCONNECTED, "x") if failed else None)

    records = [record(0), record(1000), record(2000, failed=True)]
    summary = result_summary(records, [10, 20, 30], poisson=False, run_config={})
    assert (summary["n_samples_issued"], summary["n_samples_completed"],
            summary["n_samples_failed"]) == (3, 3, 1)
    assert summary["duration_ns"] == 2400 and summary["legacy_loadgen_window_duration_ns"] is None
    assert summary["ttft"]["percentiles"]["50.0"] == 100.0
    assert summary["tpot"]["max"] == 100.0  # 300 ns over the 3 tokens after the first chunk
    assert summary["latency"]["total"] == 800
    assert summary["tps"] == 10 / 2400e-9 and summary["qps"] == 3 / 2400e-9
    assert summary["ttft"]["early_stopping_percentiles"]["99.0"] is None  # too few
    assert summary["finish_reason_counts"]["length"] == 2
    poisson = result_summary(records, [10, 20, 30], poisson=True, run_config={})
    assert poisson["legacy_loadgen_window_duration_ns"] == 2400
    assert poisson["qps"] == 2 / 2400e-9
    block = stat_block([1.0, 2.0, 3.0, 4.0], tail=False)
    assert block["median"] == 2.0 and block["std_dev"] == (5 / 3) ** 0.5  # lower; n - 1
    assert sum(block["histogram"]["counts"]) == 4 and len(block["histogram"]["buckets"]) == 30
    assert block["histogram"]["buckets"][-1][1] == pytest.approx(10.0)  # ten times the minimum
