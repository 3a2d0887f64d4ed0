"""A dead or restarting server told from an overloaded one, from what the client saw."""

from __future__ import annotations

from array import array

from client_sut.analysis.health import endpoint_health, lost_endpoints, lost_reason, outages
from client_sut.records import (
    Answer,
    ErrorKind,
    HealthCheck,
    RequestError,
    RequestRecord,
    TokenIdSource,
)

URL = "http://127.0.0.1:8000"
MS = 1_000_000


def record(send_ms: float, end_ms: float, kind: ErrorKind | None = None,
           status: int | None = 200) -> RequestRecord:
    return RequestRecord(
        sample_index=0, endpoint=URL, issue_ns=int(send_ms * MS), send_ns=int(send_ms * MS),
        first_byte_ns=None if kind in (ErrorKind.REFUSED, ErrorKind.TIMEOUT) else int(
            (send_ms + 1) * MS), end_ns=int(end_ms * MS), event_ns=array("q"),
        event_tokens=array("i"), token_ids=array("i"), token_id_source=TokenIdSource.NONE,
        server_completion_tokens=None, finish_reason=None, http_status=status,
        error=RequestError(kind, "x") if kind else None)


def check(t_ms: float, answer: Answer) -> HealthCheck:
    return HealthCheck(URL, int(t_ms * MS), answer, answer.value)


def test_a_server_that_answers_throughout_is_answering():
    records = [record(i * 100, i * 100 + 50) for i in range(10)]
    health = endpoint_health(records, [check(0, Answer.ANSWERED), check(900, Answer.ANSWERED)], 0)
    assert health["state"] == "answering" and health["outages"] == []
    assert health["stopped_answering_s"] is None


def test_timeouts_429s_and_a_slow_health_path_are_overload_not_a_dead_server():
    records = [record(0, 50), record(10, 5000, ErrorKind.TIMEOUT, None),
               record(20, 30, ErrorKind.HTTP_STATUS, 429),
               record(30, 40, ErrorKind.HTTP_STATUS, 503), record(100, 150)]
    health = endpoint_health(records, [check(60, Answer.SLOW), check(2000, Answer.ANSWERED)], 0)
    assert health["state"] == "overloaded"
    assert health["overload_signs"] == {"timeouts": 1, "http_429": 1, "http_5xx": 1,
                                        "health_slow": 1}
    assert health["outages"] == []


def test_one_broken_stream_among_served_ones_is_no_outage():
    records = [record(0, 100), record(10, 60, ErrorKind.DISCONNECTED), record(20, 120),
               record(200, 300)]
    assert outages(records, []) == []


def test_in_flight_streams_breaking_at_once_then_refusals_date_the_death_to_the_break():
    served = [record(i * 10, i * 10 + 40) for i in range(5)]  # the last ends at 80 ms
    broken = [record(100 + i, 500 + i, ErrorKind.DISCONNECTED) for i in range(4)]
    refused = [record(600 + i * 10, 600 + i * 10, ErrorKind.REFUSED) for i in range(3)]
    health = endpoint_health(served + broken + refused, [check(1000, Answer.DOWN)], 0)
    assert health["state"] == "stopped"
    assert health["stopped_answering_s"] == 0.5  # the first broken stream, not the refusal
    assert health["came_back_s"] is None
    [outage] = health["outages"]
    assert outage["evidence"] == ("4 requests in flight broke at once, 3 connections refused, "
                                  "its health path did not answer once")
    assert health["summary"].endswith("it did not come back")


def test_every_in_flight_stream_broken_at_once_is_a_death_even_without_a_refusal():
    broken = [record(100 + i, 500 + i, ErrorKind.TRUNCATED) for i in range(3)]
    [outage] = outages([record(0, 50), *broken], [])
    assert outage.stopped_ns == 500 * MS and outage.burst == 3


def test_a_server_that_answers_again_after_refusals_restarted():
    records = [record(0, 50), record(100, 100, ErrorKind.REFUSED),
               record(200, 200, ErrorKind.REFUSED), record(3000, 3100)]
    checks = [check(150, Answer.DOWN), check(1150, Answer.DOWN), check(2150, Answer.ANSWERED)]
    health = endpoint_health(records, checks, 0)
    assert health["state"] == "restarted"
    assert health["stopped_answering_s"] == 0.1 and health["came_back_s"] == 2.15
    assert health["health_checks"] == {"answered": 1, "down": 2, "slow": 0}


def test_times_are_seconds_from_the_runs_first_issue():
    records = [record(1000, 1050), record(1500, 1500, ErrorKind.REFUSED)]
    assert endpoint_health(records, [], 1000 * MS)["stopped_answering_s"] == 0.5


def test_the_reason_names_the_dead_server_and_with_several_a_lost_replica():
    dead = {"url": URL, "health": endpoint_health(
        [record(0, 50), record(100, 100, ErrorKind.REFUSED)], [], 0)}
    alive = {"url": "http://127.0.0.1:8001", "health": endpoint_health([record(0, 50)], [], 0)}
    assert lost_endpoints([dead, alive]) == [dead]
    assert lost_reason([alive], "probe-01") is None
    assert lost_reason([dead], "probe-01") == (
        f"the server at {URL} stopped answering during probe-01, 0.1 s into the run (1 "
        f"connection refused); it did not come back")
    both = lost_reason([dead, alive], "probe-02")
    assert both.startswith(f"the deployment lost a replica: the server at {URL} stopped "
                           f"answering during probe-02")
    assert both.endswith("while 1 other kept answering")


def test_requests_failing_one_after_another_are_no_burst():
    # One at a time, every second one broken on a connection the server had closed.
    records = [record(i * 10, i * 10 + (2 if i % 2 else 8),
                      ErrorKind.DISCONNECTED if i % 2 else None) for i in range(10)]
    assert outages(records, []) == []
