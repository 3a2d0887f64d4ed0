"""The run's self-checks and calibration's truth-matching, as pure functions over records."""

from __future__ import annotations

from array import array
from dataclasses import replace

import pytest

from client_sut.measure.selfcheck import (
    Calibration,
    CpuSample,
    LagHistogram,
    WorkerStats,
    loadgen_ttft_gap_ns,
    self_check,
)
from client_sut.records import RequestRecord, TokenIdSource
from client_sut.runs.calibrate import timing_errors

MS = 1_000_000


def record(send_ms: float, token_ms: list[float], *, issue_ms: float = 0.0,
           reported_ms: float | None = None) -> RequestRecord:
    return RequestRecord(
        sample_index=0, endpoint="http://e", issue_ns=int(issue_ms * MS), send_ns=int(send_ms * MS),
        first_byte_ns=int(send_ms * MS), end_ns=int((token_ms[-1] + 1) * MS),
        event_ns=array("q", [int(t * MS) for t in token_ms]),
        event_tokens=array("i", [1] * len(token_ms)), token_ids=array("i", range(len(token_ms))),
        token_id_source=TokenIdSource.SERVER, server_completion_tokens=len(token_ms),
        finish_reason="length", http_status=200,
        first_reported_ns=None if reported_ms is None else int(reported_ms * MS))


def cpu(wall_s: float, process_s: float, loop_s: float) -> CpuSample:
    return CpuSample(int(wall_s * 1e9), int(process_s * 1e9), int(loop_s * 1e9))


def test_loadgen_gap_is_issue_lag_plus_report_lag():
    # issued at 0, sent at 2 ms, first token at 22 ms, reported to LoadGen at 22.5 ms
    assert loadgen_ttft_gap_ns(record(2, [22, 24], reported_ms=22.5)) == int(2.5 * MS)
    assert loadgen_ttft_gap_ns(record(2, [22, 24])) is None  # Offline: nothing reported


def test_self_check_figures_and_no_warning_when_quiet():
    records = [record(0.1, [20, 22, 24], reported_ms=20.1) for _ in range(10)]
    check = self_check(records, LagHistogram.of([50_000] * 100), cpu(0, 0, 0), cpu(2, 0.3, 0.2))
    assert check["streamed_tokens"] == 30 and check["streamed_tokens_per_second"] == 15.0
    assert check["client_cpu_us_per_token"] == pytest.approx(10_000)
    assert check["event_loop_busy_share"] == 0.1
    assert check["event_loop_lag_ms"]["p99"] == 0.05
    assert check["loadgen_minus_client_ttft_ms"]["p50"] == pytest.approx(0.2)
    assert check["first_token_report_lag_ms"]["p50"] == pytest.approx(0.1)
    assert check["warnings"] == []


def test_self_check_warns_on_lag_busy_loop_and_capacity():
    records = [record(5, [20, 22], reported_ms=20)]  # issued at 0, sent 5 ms later
    check = self_check(records, LagHistogram.of([3 * MS]), cpu(0, 0, 0), cpu(1, 1, 0.95),
                       Calibration(max_tokens_per_second=3.0, source="calibrate.json"))
    text = " ".join(check["warnings"])
    assert "issue lag" in text and "event-loop lag" in text
    assert "busy 95%" in text and "calibrated client capacity" in text
    assert check["share_of_calibrated_capacity"] == pytest.approx(0.667, abs=1e-3)


def test_with_workers_the_loop_figures_are_theirs_and_the_cpu_every_process():
    records = [record(0.1, [20, 22, 24], reported_ms=20.1) for _ in range(10)]
    workers = [WorkerStats(0, (1,), LagHistogram.of([4 * MS] * 10), cpu(0, 0, 0), cpu(2, 0.4, 0.36),
                           18),
               WorkerStats(1, (2,), LagHistogram.of([0] * 90), cpu(0, 0, 0), cpu(2, 0.2, 0.1), 12)]
    check = self_check(records, LagHistogram.of([50_000] * 100), cpu(0, 0, 0), cpu(2, 0.3, 0.2),
                       workers=workers)
    assert check["event_loop_cpu_s"] == pytest.approx(0.46)  # the workers' loops, summed
    assert check["event_loop_busy_share"] == 0.18  # the busiest loop's
    assert check["client_cpu_us_per_token"] == pytest.approx(0.9e6 / 30)  # every process
    assert check["event_loop_lag_ms"]["max"] == 4.0  # the workers' lags, not the bridge's
    assert check["loadgen_process_loop_lag_ms"]["max"] == 0.05
    assert [w["worker"] for w in check["workers"]] == [0, 1]
    assert check["workers"][0] | {"event_loop_lag_ms": None} == {
        "worker": 0, "cores": [1], "streamed_tokens": 18, "event_loop_cpu_s": 0.36,
        "event_loop_busy_share": 0.18, "event_loop_cpu_us_per_token": 20_000.0,
        "event_loop_lag_ms": None}
    assert any("event-loop lag" in warning for warning in check["warnings"])


def test_a_first_token_that_waited_in_the_loop_is_a_report_lag_warned_of():
    # arrived at 20 ms (the kernel's stamp), LoadGen told at 23 ms: in LoadGen's TTFT only
    records = [record(0.1, [20, 22], reported_ms=23)] + [record(0.1, [20, 22])]  # one: Offline
    check = self_check(records, LagHistogram.of([10_000]), cpu(0, 0, 0), cpu(1, 0.01, 0.01))
    assert check["first_token_report_lag_ms"]["max"] == pytest.approx(3.0)
    assert check["first_token_report_lag_ms"]["p50"] == pytest.approx(3.0)  # one value only
    (warning,) = check["warnings"]
    assert "first-token report lag" in warning and "3.00 ms" in warning


def test_offline_queueing_is_not_called_issue_lag():
    # Offline hands every sample over at once; waiting for a stream slot is the scenario's design
    check = self_check([record(500, [520, 522])], LagHistogram(), cpu(0, 0, 0), cpu(1, 0.1, 0.1),
                       queued_by_design=True)
    assert not any("issue lag" in w for w in check["warnings"])


def request_line(response_id: str, stamps_ms: list[float], reported_ms: float | None = None):
    return {"response_id": response_id, "error": None,
            "event_ns": [int(t * MS) for t in stamps_ms] + [int(stamps_ms[-1] * MS)],
            "event_tokens": [1] * len(stamps_ms) + [0],  # a usage-only event at the end
            "first_reported_ns": None if reported_ms is None else int(reported_ms * MS)}


def test_timing_errors_match_by_response_id_and_compare_each_event():
    log = [{"response_id": "a", "write_ns": [10 * MS, 20 * MS, 30 * MS]},
           {"response_id": "b", "write_ns": [40 * MS, 50 * MS]}]
    requests = [request_line("b", [40.5, 50.5]),  # order differs from the log's
                request_line("a", [10.2, 20.4, 30.6], reported_ms=10.3),
                request_line("unknown", [1, 2]),
                {**request_line("a", [1, 2, 3]), "error": {"kind": "timeout"}}]
    errors = timing_errors(requests, log)
    assert errors["requests_matched"] == 2
    assert errors["ttft_error_ms"]["max"] == pytest.approx(0.5)
    assert errors["ttft_error_ms"]["p50"] == pytest.approx(0.35)
    assert errors["tpot_error_ms"]["max"] == pytest.approx(0.2)  # (30.6-10.2)/2 - 10
    assert sorted([errors["itl_error_ms"]["max"], errors["itl_abs_error_ms"]["max"]]) == \
        pytest.approx([0.2, 0.2])
    assert errors["first_token_to_loadgen_ms"]["max"] == pytest.approx(0.3)


def test_a_server_slow_to_accept_is_not_called_client_lag():
    # issued at 0; asked for a connection at 0.1 ms; it took 400 ms to open; token 20 ms later
    slow = replace(record(400.1, [420.1, 422.1], reported_ms=420.2), connect_ns=int(0.1 * MS))
    check = self_check([slow], LagHistogram.of([10_000]), cpu(0, 0, 0), cpu(1, 0.01, 0.01))
    assert check["issue_lag_ms"]["max"] == pytest.approx(0.1)
    assert check["connect_ms"]["max"] == pytest.approx(400.0)
    assert check["loadgen_minus_client_ttft_ms"]["max"] == pytest.approx(400.2)
    (warning,) = check["warnings"]
    assert "slow to accept" in warning and "issue lag" not in warning


def test_the_lag_tally_gives_the_values_own_figures_to_the_microsecond():
    import random

    from client_sut.analysis.metrics import summarize_ms

    rng = random.Random(3)
    lags = [rng.randrange(0, 3_000_000) for _ in range(5000)] + [150 * MS, 400 * MS]
    tally = LagHistogram.of(lags)
    exact, held = summarize_ms(lags), tally.summary_ms()
    assert held["max"] == exact["max"] == 400.0 and held["mean"] == exact["mean"]
    for key in ("p50", "p90", "p99"):
        assert abs(held[key] - exact[key]) <= 0.001  # a microsecond
    both = tally.merged([LagHistogram.of([5 * MS])])
    assert both.count == len(lags) + 1 and both.summary_ms()["max"] == 400.0
    assert list(tally.recent)[-2:] == [150 * MS, 400 * MS]
