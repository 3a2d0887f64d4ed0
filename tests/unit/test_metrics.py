"""Metric functions on hand-computed records."""

from array import array

import pytest

from client_sut.analysis.metrics import (
    client_summary,
    e2e_ns,
    endpoint_summaries,
    issue_lag_ns,
    itl_ns,
    percentile,
    summarize_ms,
    tpot_ns,
    ttfb_ns,
    ttft_ns,
)
from client_sut.records import ErrorKind, RequestError, RequestRecord, TokenIdSource

MS = 1_000_000


def record(events, tokens, *, send=10 * MS, issue=9 * MS, end=None, usage=None, error=None,
           endpoint="http://a", first_byte=11 * MS):
    ids = array("i", range(sum(tokens)))
    return RequestRecord(
        sample_index=0, endpoint=endpoint, issue_ns=issue, send_ns=send, first_byte_ns=first_byte,
        end_ns=end if end is not None else (events[-1] if events else send),
        event_ns=array("q", events), event_tokens=array("i", tokens), token_ids=ids,
        token_id_source=TokenIdSource.SERVER, server_completion_tokens=usage,
        finish_reason="length", http_status=200, error=error)


# Sent at 10 ms; a role-only event at 12 ms; tokens at 30, 35, 45 ms (1, 1, 2 tokens).
R = record([12 * MS, 30 * MS, 35 * MS, 45 * MS], [0, 1, 1, 2], usage=4, end=46 * MS)


def test_ttft_skips_the_tokenless_event():
    assert ttft_ns(R) == 20 * MS


def test_ttfb_and_e2e_and_issue_lag():
    assert ttfb_ns(R) == 1 * MS
    assert e2e_ns(R) == 36 * MS
    assert issue_lag_ns(R) == 1 * MS


def test_tpot_divides_by_server_tokens_minus_one():
    assert tpot_ns(R) == pytest.approx(15 * MS / 3)


def test_tpot_is_undefined_below_two_tokens():
    assert tpot_ns(record([30 * MS], [1], usage=1)) is None


def test_itl_is_every_gap_between_token_events():
    assert itl_ns(R) == [5 * MS, 10 * MS]


def test_percentile_interpolates_linearly():
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0


def test_summary_in_ms():
    assert summarize_ms([1 * MS, 3 * MS]) == {"p50": 2.0, "p90": 2.8, "p99": 2.98,
                                              "mean": 2.0, "max": 3.0}
    assert summarize_ms([]) == {"p50": None, "p90": None, "p99": None, "mean": None, "max": None}


def test_client_summary_counts_errors_and_excludes_them_from_latency():
    failed = record([], [], error=RequestError(ErrorKind.HTTP_STATUS, "HTTP 500"), end=12 * MS)
    summary = client_summary([R, failed])
    assert summary["requests"] == 2 and summary["errors"] == 1
    assert summary["errors_by_kind"] == {"http_status": 1}
    assert summary["output_tokens"] == 4
    assert summary["ttft_ms"]["max"] == 20.0
    # 4 tokens over the span from the first send (10 ms) to the last end (46 ms).
    assert summary["output_tokens_per_second"] == pytest.approx(4 / 0.036, rel=1e-3)


def test_token_count_mismatch_is_recorded():
    mismatched = record([30 * MS, 31 * MS], [1, 1], usage=3)
    assert client_summary([mismatched])["token_count_mismatches"] == 1
    assert client_summary([R])["token_count_mismatches"] == 0


def test_endpoint_summaries_split_by_url():
    other = record([20 * MS, 21 * MS], [1, 1], usage=2, endpoint="http://b")
    by_url = {e["url"]: e for e in endpoint_summaries([R, other], ["http://a", "http://b"])}
    assert by_url["http://a"]["output_tokens"] == 4 and by_url["http://b"]["requests"] == 1
    assert by_url["http://b"]["ttft_ms"]["p50"] == 10.0
