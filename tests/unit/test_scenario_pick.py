"""Which sweep point fills which scenario of the v6.1 endpoints layout, and what MLCommons'
checker lets through there."""

from __future__ import annotations

from client_sut.config import Scenario
from client_sut.sweep.emit import accuracy_results
from client_sut.sweep.scenario_pick import Candidate, candidate, missed_by_checker, pick_scenarios

MS = 1_000_000


def summary(tps: float, ttft_ms: float | None, tpot_ms: float | None) -> dict:
    def block(value: float | None) -> dict:
        return {"early_stopping_percentiles": {"99.0": None if value is None else value * MS}}
    return {"tps": tps, "ttft": block(ttft_ms), "tpot": block(tpot_ms)}


def test_each_scenario_holds_the_fastest_point_within_its_limits():
    points = [candidate("offline", "offline", summary(900.0, 5000.0, 200.0)),
              candidate("c0004", "concurrency", summary(300.0, 50.0, 10.0)),
              candidate("r2qps", "rate", summary(200.0, 400.0, 25.0)),  # within Interactive
              candidate("r4qps", "rate", summary(380.0, 1500.0, 60.0)),  # within Server only
              candidate("r8qps", "rate", summary(600.0, 2500.0, 90.0))]  # TTFT over Server's
    assert pick_scenarios(points) == {"Offline": "offline", "Server": "r4qps",
                                      "Interactive": "r2qps"}
    # The checker's test is strict: TTFT p99 of exactly 2,000 ms is over.
    edge = candidate("server", "server", summary(500.0, 2000.0, 50.0))
    # None within: the one nearest the limits, so that the checker says why it refuses.
    assert pick_scenarios([edge]) == {"Server": "server"}
    assert edge.load(Scenario.SERVER) == 1.0


def test_a_point_without_early_stopping_bounds_is_never_within():
    few = Candidate("r1qps", "rate", 50.0, None, None)  # under 662 requests: no p99 bound
    assert pick_scenarios([few]) == {"Server": "r1qps"}
    assert pick_scenarios([candidate("c0001", "concurrency", summary(9.0, 1.0, 1.0))]) == {}


def test_what_the_checker_lets_through_is_named():
    passed = {"passed": True, "gen_num": 13_368, "category": "datacenter"}
    full = {"duration_ns": 601 * 10**9}
    assert missed_by_checker("Server", full, passed) == []
    short = missed_by_checker("Server", {"duration_ns": 2_500_000_000},
                              {"passed": False, "gen_num": 64, "category": "datacenter"})
    assert [line.split(":")[1].split()[0] for line in short] == ["measured", "accuracy",
                                                                  "accuracy"]
    assert "2.5 s" in short[0] and "64 samples" in short[2]


def test_accuracy_results_as_endpoints_writes_them():
    scores = {"rouge1": 38.7791, "rouge2": 15.9276, "rougeL": 24.4956, "rougeLsum": 35.793,
              "gen_len": 8167644, "gen_num": 13368}
    entry = accuracy_results(scores, 12.5)["accuracy_scores"][0]
    assert entry["score"] == {"rouge1": "38.7791", "rouge2": "15.9276", "rougeL": "24.4956",
                              "rougeLsum": "35.7930", "gen_len": "8167644", "gen_num": 13368}
    assert entry["total_samples"] == 13368 and entry["dataset_type"] == "accuracy"


def test_endpoints_v1_points_their_regions_and_what_keeps_them_from_a_bundle():
    from client_sut.sweep.endpoints_v1 import (
        SEED_SET_A,
        folder_name,
        point_yaml,
        region_labels,
        v1_findings,
    )

    from client_sut.result_files.sweep import Planned, SweepPoint

    def point(concurrency, region, kind="concurrency"):
        return SweepPoint(f"c{concurrency}" if concurrency else "offline", kind,
                          concurrency=concurrency, region=region, duration_s=700.0,
                          planned=Planned(1, 13_368, 700.0))

    points = [point(1, "ultra_low"), point(16, "ultra_low"), point(40, "low"),
              point(64, "medium"), point(128, "high"), point(None, "offline", "offline")]
    labels = region_labels(points)
    # Each region's highest point is its required one; the rest the submitter's choice.
    assert labels == {"c1": "submitters_choice", "c16": "low_latency", "c40": "low_concurrency",
                      "c64": "med_concurrency", "c128": "high_concurrency",
                      "offline": "submitters_choice"}
    assert [folder_name(p, 13_368) for p in points[-2:]] == ["r128", "r13368"]
    seeds = {"scheduler_random_seed": 16159082839903944936,
             "dataloader_random_seed": 2747215439041700203}
    warmup = {"requests": 4, "errors": 1, "seconds": 0.5, "prompts": "built-in"}
    described = point_yaml(points[-1], labels["offline"], seeds, warmup, 128, 13_368, "bf16")
    assert (described["concurrency"], described["offline"]) == (13_368, "dedicated")
    assert described["runtime_settings"]["load_pattern"] == "max_throughput"
    assert described["runtime_settings"]["min_duration_ms"] == 1_200_000
    assert described["warmup"]["requests_completed"] == 3
    findings = v1_findings(points, labels, seeds, 13_368, 13_368, "Offline, every sample once")
    # Durations, passes and regions are right; the seeds and the accuracy runs are not.
    assert [f.split(" ")[0] for f in findings] == ["c40:", "c64:", "c128:", "offline:", "the",
                                                   "accuracy"]
    bound = {"scheduler_random_seed": SEED_SET_A["scheduler_rng_seed"],
             "dataloader_random_seed": SEED_SET_A["sample_index_rng_seed"]}
    assert not any("seed" in f for f in v1_findings(points, labels, bound, 13_368, 13_368, "x"))
